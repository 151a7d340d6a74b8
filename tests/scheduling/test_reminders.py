"""Appointment reminders the day before: through the log (initials only) or e-mail (a real
local SMTP server), once per appointment however often the job runs; cancelled and no-show
appointments get none; a patient without e-mail is skipped and counted."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from qure.core import clock
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.scheduling import appointments, reminders, tasks
from qure.scheduling.models import Appointment, AppointmentStatus
from tests import smtp
from tests.helpers import NOW, TODAY, make_appointment, make_patient, make_slots

TOMORROW = TODAY + timedelta(days=1)
EVENING = NOW.replace(hour=18, minute=30)  # after REMINDER_HOUR (18:00)


@pytest.fixture
def booked(app, doctor, reception):
    """Tomorrow: Asha Kulkarni at 10:30 (e-mail), one without e-mail at 10:45, one cancelled
    at 11:00; and one today (no reminder: the day before has passed)."""
    with clock.fixed(NOW):
        slots = make_slots(doctor, TOMORROW, "10:30", "11:15")
        today_slot = make_slots(doctor, TODAY, "12:00", "12:15")[0]
        asha = make_patient(
            reception,
            full_name="Asha Kulkarni",
            phone="+919812345678",
            email="asha@example.test",
        )
        first = make_appointment(asha, slots[0], reception)
        second = make_appointment(make_patient(reception, full_name="Ravi Patil"), slots[1])
        gone = make_appointment(make_patient(reception, email="x@example.test"), slots[2])
        appointments.cancel(reception, gone.id, "Patient called")
        db.session.commit()
        make_appointment(make_patient(reception, email="t@example.test"), today_slot)
    return {"asha": first, "no_email": second, "cancelled": gone, "doctor": doctor}


def _reminded() -> dict[int, datetime | None]:
    return dict(db.session.execute(select(Appointment.id, Appointment.reminded_at)).all())


def test_nothing_is_due_before_the_reminder_hour(app):
    assert reminders.due_day(NOW.replace(hour=17, minute=59)) is None
    assert reminders.due_day(EVENING) == TOMORROW


def test_the_log_sender_names_initials_only_and_a_second_run_sends_nothing(app, booked, caplog):
    with clock.fixed(EVENING), caplog.at_level(logging.INFO):
        first = tasks.send_due_reminders()
        second = tasks.send_due_reminders()
    assert first == {"day": TOMORROW.isoformat(), "sent": 2, "no_address": 0}
    assert second == {"day": TOMORROW.isoformat(), "sent": 0, "no_address": 0}
    lines = [r.getMessage() for r in caplog.records if r.name == "qure.core.notify"]
    doctor = booked["doctor"].full_name
    assert lines == [
        f"reminder for A.K., appointment {TOMORROW.isoformat()} 10:30 with Dr {doctor}, via log",
        f"reminder for R.P., appointment {TOMORROW.isoformat()} 10:45 with Dr {doctor}, via log",
    ]
    logged = caplog.text
    assert "Kulkarni" not in logged and "Asha" not in logged and "Ravi" not in logged
    assert "9812345678" not in logged and "asha@example.test" not in logged
    reminded = _reminded()
    assert reminded[booked["asha"].id] is not None
    assert reminded[booked["no_email"].id] is not None
    assert reminded[booked["cancelled"].id] is None
    audited = db.session.scalars(select(OutboxEvent.payload)).all()
    assert [p["resource"]["id"] for p in audited if p.get("action") == "APPOINTMENT_REMINDED"] == [
        booked["asha"].id,
        booked["no_email"].id,
    ]


def test_no_show_and_checked_in_appointments_get_none(app, booked, reception):
    with clock.fixed(NOW):
        appointment = appointments.locked_appointment(booked["asha"].id)
        appointments.move(reception, appointment, AppointmentStatus.NO_SHOW)
        db.session.commit()
    with clock.fixed(EVENING):
        assert tasks.send_due_reminders()["sent"] == 1  # the patient without e-mail only
    assert _reminded()[booked["asha"].id] is None


@pytest.fixture
def smtp_server(app):
    with smtp.serving(app) as inbox:
        yield inbox


def test_smtp_mails_the_patient_once_and_skips_one_without_email(app, booked, smtp_server):
    from email import message_from_bytes, policy

    with clock.fixed(EVENING):
        first = tasks.send_reminders(TOMORROW.isoformat())
        second = tasks.send_reminders(TOMORROW.isoformat())
    assert first == {"day": TOMORROW.isoformat(), "sent": 1, "no_address": 1}
    assert second == {"day": TOMORROW.isoformat(), "sent": 0, "no_address": 1}
    assert len(smtp_server.messages) == 1
    envelope = smtp_server.messages[0]
    assert envelope.rcpt_tos == ["asha@example.test"]
    mail = message_from_bytes(envelope.content, policy=policy.default)
    doctor = booked["doctor"].full_name
    assert mail["To"] == "asha@example.test"
    assert mail["From"] == "desk@qure.test"
    assert (
        str(mail["Subject"]).strip()
        == f"Appointment reminder: Tue 08 Jan 2030 at 10:30 with Dr {doctor}"
    )
    body = mail.get_body().get_content()
    assert "Dear Asha Kulkarni" in body
    assert f"appointment with Dr {doctor} at Qure Clinic on Tue 08 Jan 2030 at 10:30" in body
    reminded = _reminded()
    assert reminded[booked["asha"].id] is not None
    assert reminded[booked["no_email"].id] is None  # asked again by the next run


def test_an_unknown_sender_is_refused_not_silently_dropped(app, booked):
    app.config["REMINDER_SENDER"] = "pigeon"
    try:
        with clock.fixed(EVENING), pytest.raises(ValueError, match="pigeon"):
            tasks.send_due_reminders()
    finally:
        app.config["REMINDER_SENDER"] = "log"
    assert all(v is None for v in _reminded().values())


def test_a_rescheduled_appointment_is_reminded_again_for_its_new_day(
    app, booked, reception, caplog
):
    later_day = TOMORROW + timedelta(days=1)
    with clock.fixed(EVENING):
        assert tasks.send_due_reminders()["sent"] == 2
        new_slot = make_slots(booked["doctor"], later_day, "09:00", "09:15")[0]
        appointments.reschedule(reception, booked["asha"].id, {"slot_id": new_slot.id})
        db.session.commit()
    assert _reminded()[booked["asha"].id] is None  # its start moved: the reminder is due again
    caplog.clear()
    with clock.fixed(EVENING + timedelta(days=1)), caplog.at_level(logging.INFO):
        assert tasks.send_due_reminders() == {
            "day": later_day.isoformat(),
            "sent": 1,
            "no_address": 0,
        }
    lines = [r.getMessage() for r in caplog.records if r.name == "qure.core.notify"]
    doctor = booked["doctor"].full_name
    assert lines == [
        f"reminder for A.K., appointment {later_day.isoformat()} 09:00 with Dr {doctor}, via log"
    ]
    assert _reminded()[booked["asha"].id] is not None


def test_changing_only_the_reason_keeps_the_reminder_sent(app, booked, reception):
    with clock.fixed(EVENING):
        tasks.send_due_reminders()
        appointments.reschedule(reception, booked["asha"].id, {"reason": "Follow-up"})
        db.session.commit()
        assert tasks.send_due_reminders()["sent"] == 0
    assert _reminded()[booked["asha"].id] is not None


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Drishti Rao", "Dr Drishti Rao"),
        ("Dravid Menon", "Dr Dravid Menon"),
        ("Dr Meera Iyer", "Dr Meera Iyer"),
        ("Dr. Meera Iyer", "Dr. Meera Iyer"),
        ("dr. meera iyer", "dr. meera iyer"),
        ("Anil Shah", "Dr Anil Shah"),
    ],
)
def test_the_doctor_is_titled_once(name, shown):
    assert reminders._doctor_name(name) == shown
