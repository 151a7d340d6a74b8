"""`flask` commands, run through Flask's CLI runner against the test databases."""

from __future__ import annotations

import json
from pathlib import Path

import mongomock
import pytest
from sqlalchemy import func, select, text

from qure.auth.models import User
from qure.core import outbox
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db, mongo
from qure.patients.models import Patient
from tests.helpers import make_patient


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args):
        return runner.invoke(args=list(args))

    return run


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _failed_cleanly(result) -> None:
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


# ---- create-user ---------------------------------------------------------------------


def test_create_user(app, cli):
    result = cli("create-user", "front.desk", "--role", "RECEPTION", "--password", "long-pass-1")
    assert result.exit_code == 0, result.output
    assert "Created front.desk (RECEPTION)" in result.output
    user = db.session.scalar(select(User).where(User.username == "front.desk"))
    assert user.role == Role.RECEPTION
    assert user.email == "front.desk@clinic.local"
    assert user.is_active
    login = app.test_client().post(
        "/api/v1/auth/login", json={"username": "front.desk", "password": "long-pass-1"}
    )
    assert login.status_code == 200


def test_create_user_twice_fails_cleanly_naming_the_username(app, cli):
    args = ("create-user", "dup.user", "--role", "RECEPTION", "--password", "long-pass-1")
    assert cli(*args).exit_code == 0
    second = cli(*args)
    _failed_cleanly(second)
    assert "dup.user" in second.output
    third = cli(*args, "--email", "someone.else@clinic.local")
    _failed_cleanly(third)
    assert "dup.user" in third.output
    assert "username: Already taken" in third.output
    assert _count(User) == 1


def test_create_user_refuses_a_short_password(app, cli):
    result = cli("create-user", "shorty", "--role", "RECEPTION", "--password", "short")
    _failed_cleanly(result)
    assert "password" in result.output.lower()
    assert "8" in result.output
    assert _count(User) == 0


def test_create_doctor_needs_a_registration_number(app, cli):
    result = cli("create-user", "dr.who", "--role", "DOCTOR", "--password", "long-pass-1")
    _failed_cleanly(result)
    assert "registration_number" in result.output
    ok = cli(
        "create-user",
        "dr.who",
        "--role",
        "DOCTOR",
        "--password",
        "long-pass-1",
        "--registration-number",
        "MMC-1",
        "--full-name",
        "Dr. Who",
    )
    assert ok.exit_code == 0, ok.output
    user = db.session.scalar(select(User).where(User.username == "dr.who"))
    assert (user.full_name, user.registration_number) == ("Dr. Who", "MMC-1")


def test_create_user_rejects_an_unknown_role(app, cli):
    result = cli("create-user", "someone", "--role", "JANITOR", "--password", "long-pass-1")
    assert result.exit_code == 2
    assert "JANITOR" in result.output
    assert _count(User) == 0


# ---- seed-demo -----------------------------------------------------------------------


def _saved_passwords(app) -> dict:
    return json.loads(Path(app.config["DEMO_ACCOUNTS_FILE"]).read_text())


def test_seed_demo_creates_one_account_per_role_and_15_patients(app, cli):
    result = cli("seed-demo")
    assert result.exit_code == 0, result.output
    assert "Demo patients added: 15." in result.output
    users = db.session.scalars(select(User)).all()
    assert sorted(u.role.value for u in users) == sorted(r.value for r in Role)
    assert _count(Patient) == 15
    saved = _saved_passwords(app)
    display_key = saved.pop("display_key")
    assert set(saved) == {u.username for u in users}
    assert f"display key {display_key}" in result.output
    client = app.test_client()
    assert (
        client.get("/api/v1/queue/display", headers={"X-Display-Key": display_key}).status_code
        == 200
    )
    for name, password in saved.items():
        assert password in result.output
        login = client.post("/api/v1/auth/login", json={"username": name, "password": password})
        assert login.status_code == 200, name


def test_seed_demo_twice_changes_nothing(app, cli):
    assert cli("seed-demo").exit_code == 0
    first = (_count(User), _count(Patient), _count(OutboxEvent))
    passwords = _saved_passwords(app)
    again = cli("seed-demo")
    assert again.exit_code == 0, again.output
    assert "Demo patients added: 0." in again.output
    assert (_count(User), _count(Patient), _count(OutboxEvent)) == first
    assert _saved_passwords(app) == passwords
    login = app.test_client().post(
        "/api/v1/auth/login", json={"username": "admin", "password": passwords["admin"]}
    )
    assert login.status_code == 200


def test_seed_demo_bulk_tops_up_to_the_target(app, cli):
    result = cli("seed-demo", "--patients", "300")
    assert result.exit_code == 0, result.output
    assert "Synthetic patients added: 285." in result.output
    assert _count(Patient) == 300
    # Every synthetic patient is a usable record: an MRN and a searchable name.
    blank = db.session.scalar(
        select(func.count())
        .select_from(Patient)
        .where((Patient.mrn.is_(None)) | (Patient.name_search == ""))
    )
    assert blank == 0
    bulk = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.payload["action"].astext == "PATIENTS_BULK_LOADED")
    ).all()
    assert [r.payload["changes"]["new"] for r in bulk] == [{"count": 285}]

    again = cli("seed-demo", "--patients", "300")
    assert again.exit_code == 0, again.output
    assert "Synthetic patients added: 0." in again.output
    assert _count(Patient) == 300


# ---- audit-verify and rebuild-analytics ----------------------------------------------


def test_audit_verify_passes_on_an_intact_chain(app, cli, reception):
    for i in range(3):
        make_patient(reception, full_name=f"Verify {i}")
    result = cli("audit-verify")
    assert result.exit_code == 0, result.output
    assert "Audit chain intact: 4 records checked." in result.output
    assert mongo.db["audit_logs"].count_documents({}) == 4


def test_audit_verify_fails_after_the_journal_is_tampered_with(app, cli, reception):
    for i in range(3):
        make_patient(reception, full_name=f"Verify {i}")
    assert cli("audit-verify").exit_code == 0
    db.session.execute(
        text(
            "UPDATE outbox SET payload = jsonb_set(payload, '{action}', '\"PATIENT_ARCHIVED\"') "
            "WHERE seq = 3"
        )
    )
    db.session.commit()
    # The embedded store is rebuilt from the journal when the process starts.
    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_test", embedded=True)
    result = cli("audit-verify")
    _failed_cleanly(result)
    assert "seq 3" in result.output
    assert "audit chain broken" in result.output


def test_audit_verify_fails_on_a_tampered_store(app, cli, reception):
    make_patient(reception)
    outbox.relay()
    mongo.db["audit_logs"].update_one({"seq": 2}, {"$set": {"action": "PATIENT_ARCHIVED"}})
    # A real MongoDB is not refilled first: its documents are checked as they are.
    mongo.use_client(mongo.client, "qure_test", embedded=False)
    result = cli("audit-verify")
    _failed_cleanly(result)
    assert "seq 2" in result.output


def test_rebuild_analytics_copies_missing_records(app, cli, reception):
    # A MongoDB server of its own (mongomock stands in for it), as with MONGO_URL set.
    mongo.use_client(mongomock.MongoClient(tz_aware=True), "qure_test", embedded=False)
    for i in range(3):
        make_patient(reception, full_name=f"Rebuild {i}")
    outbox.relay()
    store = mongo.db["audit_logs"]
    store.delete_many({"seq": {"$in": [2, 4]}})
    store.update_one({"seq": 1}, {"$set": {"kept": True}})
    make_patient(reception, full_name="Pending one")  # not relayed yet
    result = cli("rebuild-analytics")
    assert result.exit_code == 0, result.output
    assert "Relayed 1 pending" in result.output
    docs = list(store.find({}, sort=[("seq", 1)]))
    assert [d["seq"] for d in docs] == [1, 2, 3, 4, 5]
    assert docs[0]["kept"] is True  # existing records are never rewritten
    assert outbox.backlog() == 0


def test_rebuild_analytics_fails_cleanly_when_mongodb_is_down(app, cli, reception):
    import pymongo

    make_patient(reception)
    unreachable = pymongo.MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, connectTimeoutMS=200
    )
    mongo.use_client(unreachable, "qure_test", embedded=False)
    try:
        result = cli("rebuild-analytics")
    finally:
        unreachable.close()
    _failed_cleanly(result)
    assert "MongoDB unavailable" in result.output
    assert outbox.backlog() == 2


def test_the_worker_refuses_to_run_without_a_real_mongodb(app):
    result = app.test_cli_runner().invoke(args=["worker"])
    assert result.exit_code != 0
    assert "flask worker needs MONGO_URL" in result.output


def test_rebuild_analytics_refuses_the_embedded_store(app, cli, reception):
    make_patient(reception)
    result = cli("rebuild-analytics")
    assert result.exit_code != 0
    assert "rebuild-analytics needs MONGO_URL" in result.output
    assert outbox.backlog() == 2  # nothing was marked as shipped into a private store
