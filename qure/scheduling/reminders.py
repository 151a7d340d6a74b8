"""Appointment reminders, the day before: which appointments are due one, what it says,
and the record that it went out (`appointments.reminded_at`), so that a second run of the
job sends nothing again. Only SCHEDULED appointments get one: a cancelled, no-show or
already checked-in appointment gets none. The job (`scheduling.tasks`) sends each through
`core.notify` and commits after each one."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from qure.admin import settings as clinic_settings
from qure.core import audit, clock
from qure.core.notify import Message, initials
from qure.extensions import db
from qure.scheduling.models import Appointment, AppointmentStatus


def due_day(now: datetime | None = None) -> date | None:
    """The clinic day whose reminders are due now: tomorrow once the clinic-local hour
    REMINDER_HOUR has passed, else None (too early: nothing to send yet)."""
    local = (now or clock.now()).astimezone(clock.clinic_tz())
    if local.hour < int(current_app.config["REMINDER_HOUR"]):
        return None
    return local.date() + timedelta(days=1)


def _waiting(day: date):
    first, last = clock.day_bounds(day)
    return (
        Appointment.start_at >= first,
        Appointment.start_at < last,
        Appointment.status == AppointmentStatus.SCHEDULED,
        Appointment.reminded_at.is_(None),
    )


def to_remind(day: date) -> list[int]:
    """Ids of the SCHEDULED appointments of clinic day `day` not reminded yet, by time."""
    query = select(Appointment.id).where(*_waiting(day)).order_by(Appointment.start_at)
    return list(db.session.scalars(query))


def claim(appointment_id: int, day: date) -> Appointment | None:
    """The appointment, its row locked until the transaction ends, with its patient and
    doctor; None when it no longer needs a reminder (sent meanwhile by another run,
    cancelled, moved to another day) or another run holds it."""
    query = (
        select(Appointment)
        .where(Appointment.id == appointment_id, *_waiting(day))
        .options(joinedload(Appointment.patient), joinedload(Appointment.doctor))
        .with_for_update(of=Appointment, skip_locked=True)
    )
    return db.session.scalars(query).first()


# A name already titled: "Dr" or "Dr." and a space ("Drishti Rao" is not one).
TITLED = re.compile(r"dr\.? ", re.IGNORECASE)


def _doctor_name(full_name: str) -> str:
    return full_name if TITLED.match(full_name) else f"Dr {full_name}"


def message(appointment: Appointment) -> Message:
    """The reminder for an appointment (loaded with its patient and doctor)."""
    start = appointment.start_at.astimezone(clock.clinic_tz())
    doctor = _doctor_name(appointment.doctor.full_name)
    patient = appointment.patient
    clinic = clinic_settings.clinic_name()
    when = f"{clock.weekday_day(start.date())} at {start:%H:%M}"
    body = (
        f"Dear {patient.full_name},\n\n"
        f"This is a reminder of your appointment with {doctor} at {clinic} "
        f"on {when}.\n\n"
        "Please arrive ten minutes early and bring your previous prescriptions. "
        "If you cannot come, please call the clinic to cancel or move it.\n\n"
        f"{clinic}\n"
    )
    return Message(
        subject=f"Appointment reminder: {when} with {doctor}",
        body=body,
        log_line=(
            f"reminder for {initials(patient.full_name)}, appointment "
            f"{start:%Y-%m-%d %H:%M} with {doctor}"
        ),
        email=patient.email,
        phone=patient.phone,
    )


def mark_reminded(appointment: Appointment, channel: str) -> None:
    """Record that the appointment's reminder went out (through `channel`), audited as
    APPOINTMENT_REMINDED; flushes."""
    appointment.reminded_at = clock.now()
    audit.record(
        None,
        "APPOINTMENT_REMINDED",
        ("appointment", appointment.id),
        None,
        {"channel": channel, "start_at": appointment.start_at.isoformat()},
    )
    db.session.flush()
