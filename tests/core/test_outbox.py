"""The relay from the PostgreSQL outbox to the document store, and the hash chain."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import mongomock
import pymongo
from sqlalchemy import func, select

from qure.core import outbox
from qure.core.models import OutboxEvent
from qure.extensions import db, mongo
from tests.helpers import bearer, make_patient, sign_in

GENESIS = "0" * 64


def _journal() -> list[OutboxEvent]:
    return list(db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def _audit_docs() -> list[dict]:
    return list(mongo.db["audit_logs"].find({}, sort=[("seq", 1)]))


def _changes(actor, count: int = 3) -> list:
    return [make_patient(actor, full_name=f"Relay Patient {i}") for i in range(count)]


def _fresh_store() -> None:
    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_test", embedded=True)


def test_relay_ships_every_row_in_a_hash_chain(app, reception):
    _changes(reception, 3)
    rows = _journal()
    assert len(rows) == 4  # USER_CREATED for the receptionist, then 3 PATIENT_CREATED
    result = outbox.relay()
    assert (result.chained, result.shipped, result.error) == (4, 4, None)

    docs = _audit_docs()
    assert [d["seq"] for d in docs] == [1, 2, 3, 4]
    assert [d["_id"] for d in docs] == [1, 2, 3, 4]
    assert [d["action"] for d in docs] == [r.payload["action"] for r in rows]
    assert docs[0]["prev_hash"] == GENESIS
    prev = GENESIS
    for row, doc in zip(_journal(), docs, strict=True):
        assert doc["prev_hash"] == prev
        body = {**row.payload, "seq": doc["seq"], "prev_hash": prev}
        assert doc["hash"] == outbox.chain_hash(prev, body)
        assert len(doc["hash"]) == 64
        assert (row.seq, row.prev_hash, row.hash) == (doc["seq"], prev, doc["hash"])
        assert row.shipped_at is not None
        prev = doc["hash"]
    assert outbox.backlog() == 0


def test_documents_carry_the_record_and_a_bson_date(app, reception):
    patient = make_patient(reception, full_name="Deepa Menon")
    outbox.relay()
    doc = mongo.db["audit_logs"].find_one({"action": "PATIENT_CREATED"})
    (row,) = [r for r in _journal() if r.payload["action"] == "PATIENT_CREATED"]
    assert isinstance(doc["timestamp"], datetime)
    assert doc["timestamp"] == datetime.fromisoformat(row.payload["timestamp"])
    assert doc["timestamp"].astimezone(UTC) == doc["timestamp"]
    assert doc["user"] == {"id": reception.id, "name": reception.full_name, "role": "RECEPTION"}
    assert doc["resource"] == {"type": "patient", "id": patient.id}
    assert doc["changes"]["new"]["full_name"] == "Deepa Menon"
    assert set(doc) == {
        "_id",
        "seq",
        "timestamp",
        "user",
        "action",
        "resource",
        "changes",
        "ip",
        "request_id",
        "prev_hash",
        "hash",
    }


def test_relay_twice_writes_nothing_new(app, reception):
    _changes(reception, 2)
    outbox.relay()
    before = _audit_docs()
    again = outbox.relay()
    assert (again.chained, again.shipped, again.error) == (0, 0, None)
    assert _audit_docs() == before


def test_later_changes_continue_the_chain(app, reception):
    _changes(reception, 2)
    outbox.relay()
    _changes(reception, 2)
    result = outbox.relay()
    assert (result.chained, result.shipped) == (2, 2)
    docs = _audit_docs()
    assert [d["seq"] for d in docs] == [1, 2, 3, 4, 5]
    assert docs[3]["prev_hash"] == docs[2]["hash"]
    report = outbox.verify()
    assert report.ok, report.problems
    assert report.checked == 5


def test_verify_reports_ok_on_an_intact_chain(app, reception):
    _changes(reception, 3)
    outbox.relay()
    report = outbox.verify()
    assert report.ok
    assert report.problems == []
    assert report.checked == 4


def test_verify_reports_a_tampered_record(app, reception):
    _changes(reception, 3)
    outbox.relay()
    mongo.db["audit_logs"].update_one({"seq": 2}, {"$set": {"action": "PATIENT_ARCHIVED"}})
    report = outbox.verify()
    assert not report.ok
    assert any(p.startswith("seq 2:") for p in report.problems), report.problems
    assert not any(p.startswith(("seq 1:", "seq 3:", "seq 4:")) for p in report.problems)


def test_verify_reports_a_tampered_timestamp(app, reception):
    _changes(reception, 2)
    outbox.relay()
    mongo.db["audit_logs"].update_one(
        {"seq": 3}, {"$set": {"timestamp": datetime(2020, 1, 1, tzinfo=UTC)}}
    )
    report = outbox.verify()
    assert [p for p in report.problems if p.startswith("seq 3:")], report.problems


def test_verify_reports_a_deleted_record(app, reception):
    _changes(reception, 3)
    outbox.relay()
    mongo.db["audit_logs"].delete_one({"seq": 2})
    report = outbox.verify()
    assert not report.ok
    assert any(p.startswith("seq 2:") for p in report.problems), report.problems


def test_verify_reports_a_rewritten_chain_link(app, reception):
    # Changing a record and recomputing its own hash still breaks the next link.
    _changes(reception, 3)
    outbox.relay()
    doc = mongo.db["audit_logs"].find_one({"seq": 2})
    doc["action"] = "PATIENT_ARCHIVED"
    body = {k: v for k, v in doc.items() if k not in {"_id", "hash"}}
    body["timestamp"] = body["timestamp"].isoformat()
    mongo.db["audit_logs"].update_one(
        {"seq": 2},
        {"$set": {"action": "PATIENT_ARCHIVED", "hash": outbox.chain_hash(doc["prev_hash"], body)}},
    )
    report = outbox.verify()
    assert any(p.startswith("seq 3:") for p in report.problems), report.problems


def test_verify_reports_the_newest_records_deleted(app, reception):
    _changes(reception, 3)
    outbox.relay()
    mongo.db["audit_logs"].delete_many({"seq": {"$gte": 3}})
    report = outbox.verify()
    assert not report.ok
    assert report.problems == ["seq 4: missing (the journal shipped it)"]


def test_verify_reports_an_emptied_store(app, reception):
    _changes(reception, 1)
    outbox.relay()
    mongo.db["audit_logs"].delete_many({})
    assert outbox.verify().problems == ["seq 2: missing (the journal shipped it)"]


def test_verify_reports_a_whole_rewritten_tail(app, reception):
    # Rewriting a record and recomputing every later hash: only the journal can tell.
    _changes(reception, 3)
    outbox.relay()
    store = mongo.db["audit_logs"]
    prev = store.find_one({"seq": 1})["hash"]
    for seq in (2, 3, 4):
        doc = store.find_one({"seq": seq})
        if seq == 2:
            doc["changes"]["new"]["full_name"] = "Someone Else"
        body = {k: v for k, v in doc.items() if k not in {"_id", "hash"}}
        body["prev_hash"] = prev
        body["timestamp"] = body["timestamp"].isoformat()
        new_hash = outbox.chain_hash(prev, body)
        store.update_one(
            {"seq": seq},
            {"$set": {"changes": doc["changes"], "prev_hash": prev, "hash": new_hash}},
        )
        prev = new_hash
    report = outbox.verify()
    assert report.problems == ["seq 4: hash differs from the journal's"]


def test_verify_ignores_records_not_shipped_yet(app, reception):
    _changes(reception, 1)
    outbox.relay()
    _changes(reception, 1)
    outbox.chain_pending()  # chained in the journal, not in the store yet
    report = outbox.verify()
    assert report.ok, report.problems
    assert report.checked == 2


def test_refill_copies_every_chained_record_into_an_empty_store(app, reception):
    _changes(reception, 3)
    outbox.relay()
    shipped = _audit_docs()
    _fresh_store()
    assert _audit_docs() == []
    copied = outbox.refill()
    assert copied == 4
    assert _audit_docs() == shipped
    assert outbox.verify().ok


def test_refill_leaves_existing_documents_untouched(app, reception):
    _changes(reception, 3)
    outbox.relay()
    mongo.db["audit_logs"].delete_one({"seq": 3})
    mongo.db["audit_logs"].update_one({"seq": 1}, {"$set": {"note": "already here"}})
    outbox.refill()
    docs = _audit_docs()
    assert [d["seq"] for d in docs] == [1, 2, 3, 4]
    assert docs[0]["note"] == "already here"  # not overwritten
    assert [d["hash"] for d in docs] == [r.hash for r in _journal()]


def test_refill_skips_rows_not_yet_chained(app, reception):
    _changes(reception, 2)
    assert outbox.refill() == 0
    assert _audit_docs() == []
    assert outbox.backlog() == 3


def test_backlog_counts_rows_waiting(app, reception):
    assert outbox.backlog() == 1
    _changes(reception, 2)
    assert outbox.backlog() == 3
    outbox.relay()
    assert outbox.backlog() == 0


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_mongodb_outage_loses_nothing(app, client, reception):
    unreachable = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    mongo.use_client(unreachable, "qure_test", embedded=False)
    try:
        token, elapsed = _timed(lambda: bearer(client, reception))
        assert elapsed < 1.0
        created = []
        for i in range(3):
            response, elapsed = _timed(
                lambda i=i: client.post(
                    "/api/v1/patients",
                    json={
                        "full_name": f"Outage Patient {i}",
                        "date_of_birth": "1970-01-0" + str(i + 1),
                        "sex": "F",
                        "phone": f"+91990000000{i}",
                    },
                    headers=token,
                )
            )
            assert response.status_code == 201, response.json
            assert elapsed < 1.0, f"request {i} waited {elapsed:.2f}s on MongoDB"
            created.append(response.json["id"])
        browser = app.test_client()
        response, elapsed = _timed(lambda: sign_in(browser, reception))
        assert response.status_code == 302
        assert elapsed < 1.0

        health = client.get("/health")
        assert health.status_code == 200
        assert health.json["status"] == "degraded"
        assert health.json["checks"]["postgres"] == "ok"
        assert health.json["checks"]["mongo"].startswith("error: ")

        waiting = outbox.backlog()
        assert waiting == 6  # USER_CREATED, USER_LOGIN, 3 PATIENT_CREATED, USER_LOGIN
        result = outbox.relay()
        assert result.error is not None
        assert result.shipped == 0
        assert outbox.backlog() == waiting
    finally:
        unreachable.close()

    # MongoDB is back.
    _fresh_store()
    result = outbox.relay()
    assert result.error is None
    assert result.shipped == waiting
    assert outbox.backlog() == 0
    docs = _audit_docs()
    rows = _journal()
    assert [d["seq"] for d in docs] == list(range(1, waiting + 1))
    assert [d["action"] for d in docs] == [r.payload["action"] for r in rows]
    assert [d["action"] for d in docs] == [
        "USER_CREATED",
        "USER_LOGIN",
        "PATIENT_CREATED",
        "PATIENT_CREATED",
        "PATIENT_CREATED",
        "USER_LOGIN",
    ]
    assert [d["resource"]["id"] for d in docs if d["action"] == "PATIENT_CREATED"] == created
    assert outbox.verify().ok
    assert client.get("/health").json["checks"]["mongo"] == "ok (embedded)"


def test_relay_outage_keeps_rows_unshipped_in_postgres(app, reception):
    _changes(reception, 1)
    unreachable = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    mongo.use_client(unreachable, "qure_test", embedded=False)
    try:
        result = outbox.relay()
    finally:
        unreachable.close()
    assert result.error == "ServerSelectionTimeoutError"
    unshipped = db.session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.shipped_at.is_(None))
    )
    assert unshipped == 2


def test_other_topics_ship_by_outbox_id_without_a_chain(app):
    topic = "visit_history"
    row = OutboxEvent(
        topic=topic, payload={"visit_id": 5, "timestamp": "2024-05-01T10:00:00+05:30"}
    )
    db.session.add(row)
    db.session.commit()
    result = outbox.relay()
    assert result.shipped == 1
    doc = mongo.db[topic].find_one({"_id": row.id})
    assert doc["visit_id"] == 5
    assert doc["timestamp"] == datetime(2024, 5, 1, 4, 30, tzinfo=UTC)
    assert "seq" not in doc and "hash" not in doc
    db.session.refresh(row)
    assert row.seq is None and row.shipped_at is not None
