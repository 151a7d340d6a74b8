"""RQ jobs of the core: the outbox relay, after each commit that wrote outbox rows and
every `OUTBOX_SWEEP_SECONDS`."""

from __future__ import annotations

from redis.exceptions import RedisError

from qure.core import documents, jobs, outbox
from qure.extensions import redis_store

RELAY_PENDING_KEY = "qure:relay:pending"


@jobs.periodic(every="OUTBOX_SWEEP_SECONDS", name="outbox-sweep")
def relay_outbox() -> dict:
    """Relay the outbox to MongoDB (idempotent; MongoDB down leaves rows waiting)."""
    redis_store.client.delete(RELAY_PENDING_KEY)
    result = outbox.relay()
    if result.error is None:
        documents.ensure_indexes_once()
    return {"chained": result.chained, "shipped": result.shipped, "error": result.error}


def schedule_relay() -> None:
    """After a commit that wrote outbox rows: one relay job, unless one is already waiting."""
    try:
        if not redis_store.client.set(RELAY_PENDING_KEY, "1", nx=True, ex=30):
            return
    except RedisError:
        return
    jobs.enqueue(relay_outbox)
