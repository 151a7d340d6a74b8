"""`flask rebuild-analytics` rebuilds every read model from PostgreSQL: into an EMPTY
document store it gives exactly the documents the relay and the closing-time job built;
over a store that has them it modifies no audit record (append-only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import mongomock

from qure.core import clock, outbox
from qure.core.models import AUDIT_TOPIC
from qure.extensions import mongo
from qure.reports import rebuild, summary
from qure.reports.tasks import store_due_summary
from tests.helpers import NOW
from tests.reports.test_summary import DAY, day  # noqa: F401 - the day's story

COLLECTIONS = (AUDIT_TOPIC, "visit_history", "stock_movements", summary.COLLECTION)
EARLIER = DAY - timedelta(days=3)  # the older patient registered then


def _evening(on):
    return clock.fixed(
        datetime.combine(on, datetime.min.time(), ZoneInfo("Asia/Kolkata"))
        + (timedelta(hours=21, minutes=5))
    )


def _snapshot() -> dict[str, list[dict]]:
    """Every collection's documents; a summary's `_id` is the store's own (upserted)."""
    found = {}
    for name in COLLECTIONS:
        docs = list(mongo.db[name].find({}, sort=[("_id", 1)]))
        if name == summary.COLLECTION:
            docs = sorted(
                ({k: v for k, v in d.items() if k != "_id"} for d in docs), key=lambda d: d["date"]
            )
        found[name] = docs
    return found


def _built_as_usual() -> dict[str, list[dict]]:
    """The relay ships the journal; the closing-time job stores each day's summary."""
    assert outbox.relay().error is None
    for on in (EARLIER, DAY):
        with _evening(on):
            store_due_summary()
    return _snapshot()


def test_an_empty_store_is_rebuilt_to_exactly_what_the_relay_built(app, day):  # noqa: F811
    built = _built_as_usual()
    assert all(built[name] for name in COLLECTIONS)
    every_day = [EARLIER + timedelta(days=n) for n in range((DAY - EARLIER).days + 1)]
    assert [d["date"].date() for d in built[summary.COLLECTION]] == every_day

    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_rebuilt", embedded=False)
    assert all(mongo.db[name].count_documents({}) == 0 for name in COLLECTIONS)
    with clock.fixed(NOW + timedelta(days=1)):
        result = rebuild.rebuild()
    assert result.error is None
    assert result.relayed == 0  # everything had been shipped
    assert result.days == every_day  # the quiet days between, as the job stored them
    assert _snapshot() == built
    assert outbox.verify().ok
    assert mongo.db[summary.COLLECTION].index_information()["date_1"]["unique"] is True


def test_rebuilding_over_a_full_store_modifies_no_audit_record(app, day):  # noqa: F811
    _built_as_usual()
    store = mongo.db[AUDIT_TOPIC]
    store.update_one({"seq": 1}, {"$set": {"note": "left as it was"}})
    store.delete_one({"seq": 2})
    before = {d["_id"]: d for d in store.find({})}
    with clock.fixed(NOW + timedelta(days=1)):
        result = rebuild.rebuild()
    assert result.error is None
    after = {d["_id"]: d for d in store.find({})}
    assert set(after) == set(before) | {2}  # the missing record is back
    assert all(after[key] == doc for key, doc in before.items())  # the others untouched
    assert after[1]["note"] == "left as it was"


def test_the_command_rebuilds_a_real_store_and_says_what_it_did(app, day):  # noqa: F811
    outbox.relay()
    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_rebuilt", embedded=False)
    with clock.fixed(NOW + timedelta(days=1)):
        result = app.test_cli_runner().invoke(args=["rebuild-analytics"])
    assert result.exit_code == 0, result.output
    assert "stored 4 daily summaries" in result.output  # 4 Jan to 7 Jan
    assert mongo.db[summary.COLLECTION].count_documents({}) == 4
