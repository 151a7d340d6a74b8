"""MongoDB down for a whole clinic day: every desk keeps working (patients registered, a
visit completed, payments and a refund, a dispensing), the relay ships nothing and says
why, the reports answer 503 analytics_unavailable at once; MongoDB back, one relay run
ships every record in seq order, the audit chain verifies, and each collection holds
exactly what the outbox journalled for it."""

from __future__ import annotations

import time
from datetime import timedelta

import mongomock
import pymongo
import pytest
from sqlalchemy import func, select

from qure.core import clock, outbox
from qure.core.models import AUDIT_TOPIC, OutboxEvent
from qure.extensions import db, mongo
from tests.helpers import NOW, bearer
from tests.reports.test_summary import DAY, URL, day  # noqa: F401 - the day's story

QUICK = 1.5  # seconds: a report must not hang on a dead MongoDB


@pytest.fixture
def dead_store(app):
    """MongoDB down from before the day starts (requested before `day`)."""
    dead = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    mongo.use_client(dead, "qure_test", embedded=False)
    yield dead
    dead.close()


def _journal_counts() -> dict[str, int]:
    query = select(OutboxEvent.topic, func.count()).group_by(OutboxEvent.topic)
    return dict(db.session.execute(query).all())


def test_a_day_without_mongodb_loses_nothing(dead_store, day, client, admin):  # noqa: F811
    # The day ran through the services with MongoDB down (the `day` fixture); the API too:
    with clock.fixed(NOW + timedelta(hours=3)):
        headers = bearer(client, admin)
        started = time.monotonic()
        registered = client.post(
            "/api/v1/patients",
            json={
                "full_name": "Outage Patient",
                "date_of_birth": "1970-01-01",
                "sex": "F",
                "phone": "+919900000001",
            },
            headers=headers,
        )
        assert registered.status_code == 201, registered.get_json()
        assert time.monotonic() - started < QUICK

    waiting = _journal_counts()
    assert {AUDIT_TOPIC, "visit_history", "stock_movements"} <= set(waiting)
    backlog = outbox.backlog()
    assert backlog == sum(waiting.values())
    result = outbox.relay()
    assert result.error == "ServerSelectionTimeoutError"
    assert result.shipped == 0 and outbox.backlog() == backlog

    with clock.fixed(NOW + timedelta(days=1)):
        for query in ({"date": DAY.isoformat()}, {"from": DAY.isoformat(), "to": DAY.isoformat()}):
            started = time.monotonic()
            answer = client.get(URL, query_string=query, headers=bearer(client, admin))
            assert time.monotonic() - started < QUICK + 1  # the sign-in included
            assert answer.status_code == 503, answer.get_json()
            assert answer.get_json()["error"]["code"] == "analytics_unavailable"

    # MongoDB is back (empty: a new server).
    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_test", embedded=True)
    result = outbox.relay()
    assert result.error is None
    assert outbox.backlog() == 0
    journalled = _journal_counts()  # the sign-ins above added their records
    assert result.shipped == sum(journalled.values())
    for topic, count in journalled.items():
        assert mongo.db[topic].count_documents({}) == count, topic
    audit = list(mongo.db[AUDIT_TOPIC].find({}, sort=[("_id", 1)]))
    assert [d["seq"] for d in audit] == list(range(1, len(audit) + 1))
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == AUDIT_TOPIC).order_by(OutboxEvent.seq)
    ).all()
    assert [d["action"] for d in audit] == [r.payload["action"] for r in rows]
    assert {"VISIT_COMPLETED", "INVOICE_PAID", "STOCK_DISPENSED", "PATIENT_CREATED"} <= {
        d["action"] for d in audit
    }
    report = outbox.verify()
    assert report.ok, report.problems
    assert report.checked == len(audit)
