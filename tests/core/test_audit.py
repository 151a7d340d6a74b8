"""audit.record: one outbox row per audited act, in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from qure.core import audit
from qure.core.db import add_pending, commit
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import Patient
from tests.helpers import (
    bearer,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
    statements,
)


def _outbox_rows(action: str | None = None) -> list[OutboxEvent]:
    add_pending()  # the rows this transaction writes at commit
    query = select(OutboxEvent).order_by(OutboxEvent.id)
    if action:
        query = query.where(OutboxEvent.payload["action"].astext == action)
    return list(db.session.scalars(query))


def _count(model) -> int:
    add_pending()  # the rows this transaction writes at commit
    return db.session.scalar(select(func.count()).select_from(model))


def test_record_is_written_in_the_same_transaction_as_the_change(app):
    before_patients, before_rows = _count(Patient), _count(OutboxEvent)
    nested = db.session.begin_nested()
    patient = patients.register(
        None,
        {
            "full_name": "Rolled Back",
            "date_of_birth": date(1980, 5, 5),
            "sex": "M",
            "phone": "+919811122233",
        },
        confirm_new=True,
    )
    # Inside the transaction both the patient and its audit row are there ...
    assert db.session.get(Patient, patient.id) is not None
    rows = _outbox_rows("PATIENT_CREATED")
    assert [r.payload["resource"] for r in rows] == [{"type": "patient", "id": patient.id}]
    nested.rollback()
    # ... and both disappear with it.
    assert _count(Patient) == before_patients
    assert _count(OutboxEvent) == before_rows
    assert _outbox_rows("PATIENT_CREATED") == []


def test_committed_change_keeps_its_record(app, reception):
    patient = make_patient(reception, full_name="Kept Record")
    rows = _outbox_rows("PATIENT_CREATED")
    assert len(rows) == 1
    assert rows[0].payload["resource"] == {"type": "patient", "id": patient.id}
    assert rows[0].payload["changes"]["old"] is None
    assert rows[0].payload["changes"]["new"]["full_name"] == "Kept Record"
    # Not yet chained or shipped: that is the relay's work.
    assert rows[0].seq is None and rows[0].hash is None and rows[0].shipped_at is None


def test_payload_fields(app, reception):
    started = datetime.now(UTC)
    patient = make_patient(reception, full_name="Asha Rao", phone="+919800000123")
    (row,) = _outbox_rows("PATIENT_CREATED")
    payload = row.payload
    assert row.topic == "audit_logs"
    assert set(payload) == {
        "timestamp",
        "user",
        "action",
        "resource",
        "changes",
        "ip",
        "request_id",
    }
    stamp = datetime.fromisoformat(payload["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert stamp.microsecond % 1000 == 0  # millisecond precision, as BSON stores it
    assert started - timedelta(seconds=1) <= stamp <= datetime.now(UTC)
    assert payload["user"] == {
        "id": reception.id,
        "name": reception.full_name,
        "role": "RECEPTION",
    }
    assert payload["action"] == "PATIENT_CREATED"
    assert payload["resource"] == {"type": "patient", "id": patient.id}
    assert set(payload["changes"]) == {"old", "new"}
    assert payload["changes"]["old"] is None
    assert payload["changes"]["new"]["phone"] == "+919800000123"
    assert payload["changes"]["new"]["date_of_birth"] == patient.date_of_birth.isoformat()


def test_update_records_only_changed_fields(app, reception):
    patient = make_patient(reception, full_name="Before Name", address="1 MG Road")
    patients.update(reception, patient.id, {"full_name": "After Name"})
    db.session.commit()
    (row,) = _outbox_rows("PATIENT_UPDATED")
    assert row.payload["changes"] == {
        "old": {"full_name": "Before Name"},
        "new": {"full_name": "After Name"},
    }


def test_record_outside_a_request_has_no_request_data(app, client, reception):
    # A request first, so that a context leaking past it would show up here.
    client.get("/health", headers={"X-Request-ID": "earlier-request"})
    row = audit.record(None, "THING_DONE", ("thing", 7), None, {"x": 1})
    assert row.payload["user"] is None
    assert row.payload["ip"] is None
    assert row.payload["request_id"] is None
    assert row.payload["resource"] == {"type": "thing", "id": 7}


def test_plain_values_are_json(app):
    from decimal import Decimal

    from qure.core.roles import Role

    row = audit.record(
        None,
        "INVOICE_PAID",
        ("invoice", 3),
        {"amount": Decimal("10.50"), "on": date(2024, 1, 2)},
        {"amount": Decimal("1180.00"), "role": Role.ADMIN, "tags": ("a", "b")},
    )
    add_pending()
    db.session.flush()
    db.session.expire(row)
    assert row.payload["changes"] == {
        "old": {"amount": "10.50", "on": "2024-01-02"},
        "new": {"amount": "1180.00", "role": "ADMIN", "tags": ["a", "b"]},
    }


def test_api_request_records_client_ip_and_request_id(app, client, reception):
    headers = bearer(client, reception)
    response = client.post(
        "/api/v1/patients",
        json={
            "full_name": "Imran Qureshi",
            "date_of_birth": "1985-02-03",
            "sex": "M",
            "phone": "+919876500001",
        },
        headers={**headers, "X-Request-ID": "req-7f3a-clinic"},
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 201, response.json
    assert response.headers["X-Request-ID"] == "req-7f3a-clinic"
    (row,) = _outbox_rows("PATIENT_CREATED")
    assert row.payload["ip"] == "203.0.113.9"
    assert row.payload["request_id"] == "req-7f3a-clinic"
    assert row.payload["resource"] == {"type": "patient", "id": response.json["id"]}
    assert row.payload["user"]["id"] == reception.id


def test_api_request_without_request_id_gets_a_generated_one(app, client, reception):
    headers = bearer(client, reception)
    response = client.post(
        "/api/v1/patients",
        json={
            "full_name": "Nisha Verma",
            "date_of_birth": "1991-07-08",
            "sex": "F",
            "phone": "+919876500002",
        },
        headers=headers,
    )
    assert response.status_code == 201, response.json
    generated = response.headers["X-Request-ID"]
    assert len(generated) >= 16
    (row,) = _outbox_rows("PATIENT_CREATED")
    assert row.payload["request_id"] == generated
    assert row.payload["ip"] == "127.0.0.1"


def test_sign_in_is_audited_with_failed_attempts_naming_the_username(app, client):
    user = make_user("DOCTOR")
    bad = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": "nope1234"}
    )
    assert bad.status_code == 401
    bearer(client, user)
    failed = _outbox_rows("USER_LOGIN_FAILED")
    assert len(failed) == 1
    assert failed[0].payload["user"] == {"id": None, "name": user.username, "role": None}
    (ok,) = _outbox_rows("USER_LOGIN")
    assert ok.payload["user"] == {"id": user.id, "name": user.full_name, "role": "DOCTOR"}
    assert ok.payload["resource"] == {"type": "user", "id": user.id}


def test_a_request_writes_its_outbox_rows_in_one_insert(app, client, clinic_now, reception):
    """Checking in writes two audit records (the token, the appointment): the commit's
    flush writes both in one INSERT, not one round trip each."""
    doctor = make_user(Role.DOCTOR)
    appointment = make_appointment(make_patient(reception), make_slots(doctor)[0])
    commit()
    headers = bearer(client, reception)
    before = _count(OutboxEvent)
    sent = statements(
        app,
        lambda: client.post(
            "/api/v1/queue/checkin", json={"appointment_id": appointment.id}, headers=headers
        ),
    )
    inserts = [s for s in sent if s.startswith("INSERT INTO outbox")]
    assert len(inserts) == 1, sent
    assert _count(OutboxEvent) == before + 2
    actions = [r.payload["action"] for r in _outbox_rows()[-2:]]
    assert sorted(actions) == ["APPOINTMENT_CHECKED_IN", "TOKEN_ISSUED"]
