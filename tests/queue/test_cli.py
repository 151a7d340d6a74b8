"""`flask rebuild-queue`, `flask close-day`, `flask set-display-key` and the closing job."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from qure.core import clock
from qure.core.db import commit
from qure.extensions import db, redis_store
from qure.queue import board, service
from qure.queue.models import QueueEntry
from qure.queue.tasks import close_due_day
from qure.scheduling.models import Appointment
from tests.helpers import TODAY, make_appointment, make_patient, make_slots

KEY = f"q:{TODAY.isoformat()}:"


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(args=list(args))


@pytest.fixture
def day_with_tokens(clinic_now, doctor, reception):
    """Token 1 (walk-in), 2 (appointment, on time: first in the queue), 3 (walk-in)."""
    slots = make_slots(doctor)
    appointment = make_appointment(make_patient(), slots[1], reception)
    walk_in = service.walk_in(reception, {"patient_id": make_patient().id, "doctor_id": doctor.id})
    commit()
    service.check_in(reception, appointment.id)
    commit()
    service.walk_in(reception, {"patient_id": make_patient().id, "doctor_id": doctor.id})
    commit()
    return {"doctor": doctor, "appointment": appointment, "walk_in": walk_in}


def _waiting(doctor_id: int) -> list[str]:
    return [m.decode() for m in redis_store.client.zrange(f"{KEY}wait:{doctor_id}", 0, -1)]


def test_rebuild_queue_restores_the_order_after_redis_lost_it(cli, day_with_tokens):
    doctor = day_with_tokens["doctor"]
    before = _waiting(doctor.id)
    assert before == ["000002", "000001", "000003"]  # the on-time appointment first
    redis_store.client.flushall()

    result = cli("rebuild-queue", "--date", TODAY.isoformat())

    assert result.exit_code == 0, result.output
    assert f"Queue of {TODAY.isoformat()} rebuilt: 3 waiting or current tokens." in result.output
    assert _waiting(doctor.id) == before
    assert redis_store.client.get(f"{KEY}counter") == b"3"


def test_rebuild_queue_refuses_a_bad_date(cli):
    result = cli("rebuild-queue", "--date", "24/11/2026")
    assert result.exit_code == 2
    assert "use YYYY-MM-DD" in result.output


def test_close_day_marks_waiting_tokens_and_unseen_appointments_no_show(
    cli, day_with_tokens, reception
):
    doctor = day_with_tokens["doctor"]
    called = service.call_next(doctor)
    commit()
    never_came = make_appointment(make_patient(), make_slots(doctor, start="14:00", end="14:15")[0])

    result = cli("close-day", "--date", TODAY.isoformat())

    assert result.exit_code == 0, result.output
    assert "2 tokens and 1 appointments marked no-show" in result.output
    statuses = dict(db.session.execute(select(QueueEntry.token_number, QueueEntry.status)).all())
    assert statuses == {1: "NO_SHOW", 2: "WITH_DOCTOR", 3: "NO_SHOW"}
    assert called.token_number == 2
    assert db.session.get(Appointment, never_came.id).status == "NO_SHOW"
    # the called appointment patient is still with the doctor
    assert db.session.get(Appointment, day_with_tokens["appointment"].id).status == (
        "IN_CONSULTATION"
    )
    again = cli("close-day", "--date", TODAY.isoformat())
    assert "0 tokens and 0 appointments" in again.output


def test_the_closing_job_closes_today_only_after_closing_time(day_with_tokens):
    evening = datetime(2030, 1, 7, 20, 59, tzinfo=ZoneInfo("Asia/Kolkata"))
    with clock.fixed(evening):
        assert close_due_day() == {"day": "2030-01-06", "tokens": 0, "appointments": 0}
    with clock.fixed(evening.replace(hour=21, minute=0)):
        assert close_due_day() == {"day": TODAY.isoformat(), "tokens": 3, "appointments": 0}
    statuses = set(db.session.scalars(select(QueueEntry.status)))
    assert statuses == {"NO_SHOW"}


def test_set_display_key_sets_the_given_or_a_random_key(cli, app):
    result = cli("set-display-key", "--key", "front-hall-screen-01")
    assert result.exit_code == 0, result.output
    assert board.display_key_matches("front-hall-screen-01")

    random_key = cli("set-display-key").output.split("Display key set: ")[1].strip()
    assert len(random_key) >= 12
    assert board.display_key_matches(random_key)
    assert not board.display_key_matches("front-hall-screen-01")


def test_set_display_key_refuses_a_short_key(cli):
    result = cli("set-display-key", "--key", "short")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert board.display_key_digest() is None
