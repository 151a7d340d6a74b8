"""Appointments: book, reschedule, cancel, and the one function that
changes an appointment's status (`move`, with its transition table and audit record),
which the queue and visits call. The database makes the rules true (one active
appointment per slot, no patient in two places at once); these functions give the
friendly answer first."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.db import constraint_name, get_or_none, get_or_raise
from qure.core.errors import Conflict, Forbidden, InvalidInput
from qure.core.pagination import Page, paginate
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.patients.models import Patient
from qure.scheduling.models import (
    ACTIVE_APPOINTMENT,
    ARRIVED,
    Appointment,
    AppointmentStatus,
    Slot,
    SlotStatus,
)
from qure.scheduling.parsing import check_days
from qure.scheduling.slots import locked_slot

# What an appointment's page and answer show of it, loaded with it (the models raise on
# a lazy load).
SHOWN = (
    joinedload(Appointment.patient, innerjoin=True),
    joinedload(Appointment.doctor, innerjoin=True),
    joinedload(Appointment.slot, innerjoin=True),
)


def week_appointments(doctor_id: int, monday: date) -> dict[int, Appointment]:
    """The active appointments of a doctor's week, by slot id."""
    first = clock.day_bounds(monday)[0]
    last = clock.day_bounds(monday + timedelta(days=6))[1]
    query = (
        select(Appointment)
        .where(
            Appointment.doctor_id == doctor_id,
            Appointment.start_at >= first,
            Appointment.start_at < last,
            Appointment.status.in_(ACTIVE_APPOINTMENT),
        )
        .options(joinedload(Appointment.patient))
    )
    return {a.slot_id: a for a in db.session.scalars(query)}


def slot_appointment(slot_id: int) -> Appointment | None:
    """The slot's active appointment, if it has one."""
    query = (
        select(Appointment)
        .where(Appointment.slot_id == slot_id, Appointment.status.in_(ACTIVE_APPOINTMENT))
        .options(joinedload(Appointment.patient))
    )
    return db.session.scalars(query).first()


def appointment_snapshot(appointment: Appointment) -> dict[str, Any]:
    return {
        "patient_id": appointment.patient_id,
        "slot_id": appointment.slot_id,
        "doctor_id": appointment.doctor_id,
        "start_at": appointment.start_at.isoformat(),
        "reason": appointment.reason,
        "status": appointment.status,
    }


def bookable_patient(patient_id: int) -> Patient:
    patient = get_or_none(Patient, patient_id)
    if patient is None:
        raise InvalidInput("patient_id: no such patient", fields={"patient_id": "No such patient."})
    if patient.archived_at:
        raise InvalidInput(
            "patient_id: archived", fields={"patient_id": "This patient is archived."}
        )
    return patient


def _check_slot_free(slot: Slot) -> None:
    if slot.status == SlotStatus.BLOCKED:
        raise Conflict(
            f"This slot is blocked ({slot.block_reason}).",
            "slot_blocked",
            details={"slot_id": slot.id},
        )
    if slot.status == SlotStatus.BOOKED:
        raise Conflict(
            "This slot was just taken; choose another.", "slot_taken", details={"slot_id": slot.id}
        )
    if slot.start_at <= clock.now():
        raise InvalidInput(
            "This slot has already started; choose a later one.",
            "slot_in_past",
            fields={"slot_id": "This slot is in the past."},
        )


def _patient_clash(patient_id: int, slot: Slot, exclude: int | None = None) -> Appointment | None:
    query = select(Appointment).where(
        Appointment.patient_id == patient_id,
        Appointment.status.in_(ACTIVE_APPOINTMENT),
        Appointment.start_at < slot.end_at,
        Appointment.end_at > slot.start_at,
    )
    if exclude:
        query = query.where(Appointment.id != exclude)
    return db.session.scalars(query.limit(1)).first()


def _double_booked(clash: Appointment | None) -> Conflict:
    details = {"appointment_id": clash.id} if clash else {}
    when = clash.start_at.astimezone(clock.clinic_tz()).strftime("%d %b %H:%M") if clash else "then"
    return Conflict(
        f"The patient already has an appointment at that time ({when}).",
        "patient_double_booked",
        details=details,
    )


def _save(appointment: Appointment, slot: Slot) -> None:
    """Flush the appointment inside a savepoint, turning the database's refusals into the
    same answers the checks above give (for the booking that lost a race)."""
    try:
        with db.session.begin_nested():
            db.session.add(appointment)
    except IntegrityError as exc:
        name = constraint_name(exc)
        if name == "uq_appointments_active_slot":
            raise Conflict(
                "This slot was just taken; choose another.",
                "slot_taken",
                details={"slot_id": slot.id},
            ) from None
        if name == "ex_appointments_patient_overlap":
            raise _double_booked(_patient_clash(appointment.patient_id, slot)) from None
        raise


def book(actor: User, data: dict[str, Any]) -> Appointment:
    """Book a patient into an OPEN slot: {patient_id, slot_id, reason?}.

    Raises InvalidInput (unknown patient or slot, reason too long), Conflict `slot_taken`,
    `slot_blocked`, `patient_double_booked`, and InvalidInput `slot_in_past`. The slot row
    is locked, so of two simultaneous bookings exactly one wins. Returns the appointment.
    """
    reason = plain_text(data.get("reason"), "reason", 500)
    patient = bookable_patient(data.get("patient_id"))
    slot = locked_slot(data.get("slot_id"), "slot_id")
    _check_slot_free(slot)
    clash = _patient_clash(patient.id, slot)
    if clash:
        raise _double_booked(clash)
    appointment = Appointment(
        patient_id=patient.id,
        patient=patient,
        slot_id=slot.id,
        slot=slot,
        doctor_id=slot.doctor_id,
        doctor=slot.doctor,
        start_at=slot.start_at,
        end_at=slot.end_at,
        reason=reason,
        status=AppointmentStatus.SCHEDULED,
        created_by_id=actor.id,
    )
    _save(appointment, slot)
    slot.status = SlotStatus.BOOKED
    db.session.flush()
    audit.record(
        actor,
        "APPOINTMENT_BOOKED",
        ("appointment", appointment.id),
        None,
        appointment_snapshot(appointment),
    )
    return appointment


def get_appointment(appointment_id: int, actor: User | None = None) -> Appointment:
    """One appointment; a DOCTOR may read only their own (Forbidden otherwise)."""
    appointment = get_or_raise(
        Appointment, appointment_id, "No such appointment.", "appointment_not_found", options=SHOWN
    )
    if actor is not None and actor.role == Role.DOCTOR and appointment.doctor_id != actor.id:
        raise Forbidden("A doctor reads only their own appointments.", "forbidden")
    return appointment


def locked_appointment(appointment_id: int, with_people: bool = False) -> Appointment:
    """The appointment, its row locked (NotFound otherwise). `with_people` loads its patient
    and doctor in the same query (only the appointment's row is locked)."""
    options = [joinedload(Appointment.patient), joinedload(Appointment.doctor)]
    return get_or_raise(
        Appointment,
        appointment_id,
        "No such appointment.",
        "appointment_not_found",
        lock=True,
        options=options if with_people else (),
    )


# Who moves an appointment where: the front desk books, checks in
# and cancels; the queue follows its token (called, skipped, completed, no-show); the
# visit completes it; closing the day marks the missed ones. A visit completed after its
# day was closed shows the patient came after all (NO_SHOW -> COMPLETED).
APPOINTMENT_MOVES: dict[AppointmentStatus, frozenset[AppointmentStatus]] = {
    AppointmentStatus.SCHEDULED: frozenset(
        {
            AppointmentStatus.CHECKED_IN,
            AppointmentStatus.CANCELLED,
            AppointmentStatus.NO_SHOW,
            AppointmentStatus.COMPLETED,
        }
    ),
    AppointmentStatus.CHECKED_IN: frozenset(
        {AppointmentStatus.IN_CONSULTATION, AppointmentStatus.NO_SHOW, AppointmentStatus.COMPLETED}
    ),
    AppointmentStatus.IN_CONSULTATION: frozenset(
        {AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED}
    ),
    AppointmentStatus.NO_SHOW: frozenset({AppointmentStatus.COMPLETED}),
    AppointmentStatus.COMPLETED: frozenset(),
    AppointmentStatus.CANCELLED: frozenset(),
}


APPOINTMENT_ACTIONS = {
    AppointmentStatus.CHECKED_IN: "APPOINTMENT_CHECKED_IN",
    AppointmentStatus.IN_CONSULTATION: "APPOINTMENT_IN_CONSULTATION",
    AppointmentStatus.COMPLETED: "APPOINTMENT_COMPLETED",
    AppointmentStatus.NO_SHOW: "APPOINTMENT_NO_SHOW",
    AppointmentStatus.CANCELLED: "APPOINTMENT_CANCELLED",
}


# Back in the queue from the consulting room: the token was skipped while with the doctor.
RETURNED = (AppointmentStatus.IN_CONSULTATION, AppointmentStatus.CHECKED_IN)


def move(
    actor: User | None,
    appointment: Appointment | int,
    status: AppointmentStatus,
    details: dict[str, Any] | None = None,
    **values: Any,
) -> Appointment:
    """The one place an appointment's status changes: `status` must be one the table
    APPOINTMENT_MOVES allows from the current one (the same status is left as it is, with
    nothing written). `values` are set on the appointment too (checked_in_at, ...);
    `details` go into the audit record, written in the same transaction. An id is
    loaded with its row locked; an Appointment given must already be locked.

    Raises NotFound, Conflict `appointment_invalid_transition`. Returns the appointment."""
    if not isinstance(appointment, Appointment):
        appointment = locked_appointment(appointment)
    current = appointment.status
    if status == current:
        return appointment
    if status not in APPOINTMENT_MOVES.get(current, frozenset()):
        raise Conflict(
            f"A {current.lower().replace('_', ' ')} appointment cannot become "
            f"{status.lower().replace('_', ' ')}.",
            "appointment_invalid_transition",
            details={"appointment_id": appointment.id, "from": current, "to": status},
        )
    appointment.status = status
    for name, value in values.items():
        setattr(appointment, name, value)
    db.session.flush()
    returned = (current, status) == RETURNED
    action = "APPOINTMENT_RETURNED" if returned else APPOINTMENT_ACTIONS[status]
    audit.record(
        actor,
        action,
        ("appointment", appointment.id),
        {"status": current},
        {"status": status, **(details or {})},
    )
    return appointment


def complete_seen(actor: User, appointment_id: int) -> Appointment | None:
    """The appointment's visit is completed: the appointment is COMPLETED too, unless it
    was cancelled while the visit was open (it then stays cancelled). Returns it."""
    appointment = locked_appointment(appointment_id)
    if appointment.status == AppointmentStatus.CANCELLED:
        return appointment
    return move(actor, appointment, AppointmentStatus.COMPLETED)


def _must_be_scheduled(appointment: Appointment, verb: str) -> None:
    if appointment.status in ARRIVED:
        raise Conflict(
            f"The patient has already checked in; it can no longer be {verb}.",
            "already_checked_in",
        )
    if appointment.status != AppointmentStatus.SCHEDULED:
        raise Conflict(
            f"This appointment is {appointment.status.lower().replace('_', ' ')}.",
            "appointment_not_scheduled",
        )


def reschedule(actor: User, appointment_id: int, data: dict[str, Any]) -> Appointment:
    """Move a SCHEDULED appointment to another slot and/or change its reason.

    The old slot is freed and the new one taken in the same transaction (both rows locked,
    in id order). A new start clears `reminded_at`: the new day gets its own reminder.
    Raises NotFound, Conflict (`already_checked_in`, `slot_taken`,
    `slot_blocked`, `patient_double_booked`), InvalidInput (`slot_in_past`, fields).
    """
    reason_given = "reason" in data
    reason = plain_text(data.get("reason"), "reason", 500) if reason_given else None
    appointment = locked_appointment(appointment_id, with_people=True)
    _must_be_scheduled(appointment, "rescheduled")
    before = appointment_snapshot(appointment)
    new_slot_id = data.get("slot_id")
    if new_slot_id is not None and new_slot_id != appointment.slot_id:
        ids = sorted([appointment.slot_id, new_slot_id])
        locked = {i: locked_slot(i, "slot_id") for i in ids}
        new_slot = locked.get(new_slot_id) or locked_slot(new_slot_id, "slot_id")
        old_slot = locked.get(appointment.slot_id) or locked_slot(appointment.slot_id)
        _check_slot_free(new_slot)
        clash = _patient_clash(appointment.patient_id, new_slot, exclude=appointment.id)
        if clash:
            raise _double_booked(clash)
        old_slot.status = SlotStatus.OPEN
        db.session.flush()  # the old slot frees its partial-unique entry first
        appointment.slot_id = new_slot.id
        appointment.doctor_id = new_slot.doctor_id
        if new_slot.start_at != appointment.start_at:
            # The reminder sent was for the old time: the new one is due its own.
            appointment.reminded_at = None
        appointment.start_at, appointment.end_at = new_slot.start_at, new_slot.end_at
        appointment.slot = new_slot
        _save(appointment, new_slot)
        new_slot.status = SlotStatus.BOOKED
    if reason_given:
        appointment.reason = reason
    db.session.flush()
    old, new = audit.diff(before, appointment_snapshot(appointment))
    if new:
        action = "APPOINTMENT_RESCHEDULED" if "slot_id" in new else "APPOINTMENT_UPDATED"
        audit.record(actor, action, ("appointment", appointment.id), old, new)
    return appointment


def cancel(actor: User, appointment_id: int, reason: Any = None) -> Appointment:
    """Cancel a SCHEDULED appointment and free its slot (only before check-in). `reason`
    (optional, up to 200 characters) is kept on the appointment and in the audit.

    Raises InvalidInput `reason`, NotFound, Conflict `already_checked_in` or
    `appointment_not_scheduled`.
    """
    why = plain_text(reason, "reason", 200)
    appointment = locked_appointment(appointment_id, with_people=True)
    _must_be_scheduled(appointment, "cancelled")
    slot = locked_slot(appointment.slot_id)
    if slot.status == SlotStatus.BOOKED:
        slot.status = SlotStatus.OPEN
    return move(
        actor,
        appointment,
        AppointmentStatus.CANCELLED,
        {"slot_id": slot.id, **({"reason": why} if why else {})},
        cancelled_at=clock.now(),
        cancel_reason=why,
    )


def list_appointments(
    actor: User,
    day: date | None = None,
    doctor_id: int | None = None,
    patient_id: int | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Appointments in time order. A DOCTOR sees only their own (naming another doctor is
    Forbidden). Raises InvalidInput for an unknown status or a date outside 1900-2199."""
    check_days(date=day)
    if actor.role == Role.DOCTOR:
        if doctor_id not in (None, actor.id):
            raise Forbidden("A doctor reads only their own appointments.", "forbidden")
        doctor_id = actor.id
    query = select(Appointment)
    if day is not None:
        first, last = clock.day_bounds(day)
        query = query.where(Appointment.start_at >= first, Appointment.start_at < last)
    if doctor_id is not None:
        query = query.where(Appointment.doctor_id == doctor_id)
    if patient_id is not None:
        query = query.where(Appointment.patient_id == patient_id)
    if status:
        status = status.upper()
        if status not in tuple(AppointmentStatus):
            raise InvalidInput(
                "status: unknown",
                fields={"status": "One of " + ", ".join(AppointmentStatus) + "."},
            )
        query = query.where(Appointment.status == status)
    query = query.options(joinedload(Appointment.patient), joinedload(Appointment.doctor))
    return paginate(query.order_by(Appointment.start_at, Appointment.id), page, per_page)


def day_appointments(day: date) -> list[Appointment]:
    """Every appointment of a clinic day (cancelled ones left out), by time, with its
    patient and doctor loaded in the same query."""
    first, last = clock.day_bounds(day)
    query = (
        select(Appointment)
        .where(
            Appointment.start_at >= first,
            Appointment.start_at < last,
            Appointment.status != AppointmentStatus.CANCELLED,
        )
        .options(joinedload(Appointment.patient), joinedload(Appointment.doctor))
    )
    return list(db.session.scalars(query.order_by(Appointment.start_at, Appointment.doctor_id)))


def day_fingerprint(day: date) -> str:
    """A short text that changes whenever a clinic day's appointments do (booked,
    cancelled, moved, checked in): for pages that poll for changes. One query."""
    first, last = clock.day_bounds(day)
    count, latest = db.session.execute(
        select(func.count(), func.max(Appointment.updated_at)).where(
            Appointment.start_at >= first, Appointment.start_at < last
        )
    ).one()
    return f"{count}.{int(latest.timestamp() * 1e6) if latest else 0}"


def mark_day_no_shows(day: date, actor: User | None = None) -> list[Appointment]:
    """SCHEDULED appointments of a clinic day (or earlier) that never checked in become
    NO_SHOW. Returns them."""
    last = clock.day_bounds(day)[1]
    query = (
        select(Appointment)
        .where(Appointment.status == AppointmentStatus.SCHEDULED, Appointment.start_at < last)
        .with_for_update()
    )
    missed = list(db.session.scalars(query))
    for appointment in missed:
        move(actor, appointment, AppointmentStatus.NO_SHOW)
    return missed
