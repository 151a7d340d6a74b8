"""Reading the read models: declared indexes exist after start, pages, and an outage."""

from __future__ import annotations

import pymongo
import pytest

from qure.core import documents
from qure.core.documents import AnalyticsUnavailable
from qure.extensions import mongo


def test_every_declared_index_is_created_and_creating_again_changes_nothing(app):
    assert documents.ensure_indexes() is True
    first = {
        spec.collection: mongo.db[spec.collection].index_information()
        for spec in documents.declared_indexes()
    }
    assert documents.ensure_indexes() is True
    again = {
        spec.collection: mongo.db[spec.collection].index_information()
        for spec in documents.declared_indexes()
    }
    assert first == again
    summaries = mongo.db["daily_summaries"].index_information()
    assert summaries["date_1"]["unique"] is True


def test_a_page_counts_everything_and_returns_its_slice_in_order(app):
    coll = mongo.db["scratch"]
    coll.insert_many([{"_id": n, "n": n, "even": n % 2 == 0} for n in range(1, 26)])
    found = documents.page_of("scratch", {"even": True}, [("n", -1)], 2, 5)
    assert found.total == 12
    assert [d["n"] for d in found.items] == [14, 12, 10, 8, 6]
    beyond = documents.page_of("scratch", {"even": True}, [("n", -1)], 9, 5)
    assert beyond.items == [] and beyond.total == 12
    everything = documents.page_of("scratch", {}, [("n", 1)], 1, 3)
    assert everything.total == 25 and [d["n"] for d in everything.items] == [1, 2, 3]


def test_a_dead_mongodb_is_analytics_unavailable_and_indexes_wait(app):
    dead = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    saved = (mongo.client, mongo.db, mongo.embedded)
    mongo.use_client(dead, "qure_dead", embedded=False)
    try:
        with pytest.raises(AnalyticsUnavailable) as caught:
            documents.page_of("audit_logs", {"action": "X"}, [("seq", -1)], 1, 10)
        assert caught.value.status == 503 and caught.value.code == "analytics_unavailable"
        assert documents.ensure_indexes() is False
    finally:
        mongo.client, mongo.db, mongo.embedded = saved
        dead.close()
