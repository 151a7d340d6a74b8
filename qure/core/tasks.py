"""RQ jobs of the core: the outbox relay."""

from __future__ import annotations

from qure.core import outbox
from qure.core.jobs import RELAY_PENDING_KEY, in_app
from qure.extensions import redis_store


@in_app
def relay_outbox() -> dict:
    """Relay the outbox to MongoDB (idempotent; MongoDB down leaves rows waiting)."""
    redis_store.client.delete(RELAY_PENDING_KEY)
    result = outbox.relay()
    return {"chained": result.chained, "shipped": result.shipped, "error": result.error}
