"""Doctor slots and appointments (SPEC section 3).

Slots: bulk creation over a date range, blocking and unblocking. Appointments: book,
reschedule, cancel. The database makes the rules true (no overlapping slots, one active
appointment per slot, no patient in two places at once); these functions give the
friendly answer first.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.db import constraint_name
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.pagination import Page, paginate
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.patients.models import Patient
from qure.scheduling.models import (
    ACTIVE_APPOINTMENT,
    APPOINTMENT_STATUSES,
    SLOT_DURATIONS,
    SLOT_STATUSES,
    Appointment,
    Slot,
)

MAX_DAYS = 92
MAX_SLOTS = 3000
MAX_ID = 2**31 - 1
BOOKERS = (Role.ADMIN, Role.RECEPTION)  # who books, reschedules, cancels (SPEC section 0)
SCHEDULERS = (Role.ADMIN, Role.DOCTOR)  # who creates and blocks slots
READERS = (Role.ADMIN, Role.RECEPTION, Role.DOCTOR)  # who reads appointments (a doctor: own)
WEEKDAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


# ---- who and what ----------------------------------------------------------------------


def get_doctor(doctor_id: Any, field: str = "doctor_id") -> User:
    """An active DOCTOR by id; InvalidInput naming `field` otherwise."""
    if isinstance(doctor_id, bool) or not isinstance(doctor_id, int) or not 0 < doctor_id <= MAX_ID:
        raise InvalidInput(f"{field}: choose a doctor", fields={field: "Choose a doctor."})
    doctor = db.session.get(User, doctor_id)
    if doctor is None or doctor.role != Role.DOCTOR or not doctor.is_active:
        raise InvalidInput(f"{field}: no such doctor", fields={field: "No such active doctor."})
    return doctor


def doctors() -> list[User]:
    """Every active doctor, by name."""
    query = select(User).where(User.role == Role.DOCTOR, User.is_active.is_(True))
    return list(db.session.scalars(query.order_by(User.full_name, User.id)))


def schedule_owner(actor: User, doctor_id: int | None) -> User:
    """The doctor whose slots `actor` works on: a DOCTOR their own (Forbidden for another's),
    an ADMIN the doctor named."""
    if actor.role == Role.DOCTOR:
        if doctor_id not in (None, actor.id):
            raise Forbidden("A doctor manages only their own schedule.", "not_your_schedule")
        return actor
    if actor.role != Role.ADMIN:
        raise Forbidden("Your role may not change schedules.", "forbidden")
    return get_doctor(doctor_id)


def get_slot(slot_id: int) -> Slot:
    slot = db.session.get(Slot, slot_id) if 0 < slot_id <= MAX_ID else None
    if slot is None:
        raise NotFound("No such slot.", "slot_not_found")
    return slot


def _locked_slot(slot_id: Any, field: str | None = None) -> Slot:
    valid = isinstance(slot_id, int) and not isinstance(slot_id, bool) and 0 < slot_id <= MAX_ID
    slot = (
        db.session.get(Slot, slot_id, with_for_update=True, populate_existing=True)
        if valid
        else None
    )
    if slot is None:
        if field:
            raise InvalidInput(f"{field}: no such slot", fields={field: "No such slot."})
        raise NotFound("No such slot.", "slot_not_found")
    return slot


def slot_snapshot(slot: Slot) -> dict[str, Any]:
    return {
        "doctor_id": slot.doctor_id,
        "start_at": slot.start_at.isoformat(),
        "duration_minutes": slot.duration_minutes,
        "status": slot.status,
        "block_reason": slot.block_reason,
    }


# ---- bulk creation -----------------------------------------------------------------------


@dataclass(frozen=True)
class SlotPlan:
    """What a bulk creation would make: the periods, and how many it leaves out."""

    doctor: User
    periods: list[tuple[datetime, datetime]]
    skipped_past: int
    duration: int


def _parse_time(value: Any, field: str, errors: dict[str, str]) -> time | None:
    if isinstance(value, time):
        return value
    match = TIME_RE.match(str(value or "").strip())
    if not match:
        errors[field] = "Use a clinic-local time as HH:MM (24-hour)."
        return None
    return time(int(match.group(1)), int(match.group(2)))


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def in_calendar(day: date) -> bool:
    """Whether a date is one the clinic can schedule on (1900 to 2199): the far ends of
    Python's calendar cannot be turned into clinic-time instants."""
    return FIRST_DAY <= day <= LAST_DAY


def check_days(**days: date | None) -> None:
    """InvalidInput naming each given date outside 1900-2199."""
    errors = {
        field: "Use a date between 1900 and 2199."
        for field, day in days.items()
        if day is not None and not in_calendar(day)
    }
    if errors:
        raise InvalidInput.naming(errors)


def _parse_date(value: Any, field: str, errors: dict[str, str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = date.fromisoformat(str(value or "").strip())
        except ValueError:
            errors[field] = "Use a date as YYYY-MM-DD."
            return None
    if not in_calendar(parsed):
        errors[field] = "Use a date between 1900 and 2199."
        return None
    return parsed


def _parse_weekdays(value: Any, errors: dict[str, str]) -> set[int]:
    """Weekdays as ISO numbers (1 = Monday ... 7 = Sunday) or names (MON ... SUN, or in
    full);
    every day when none are given. Returns Python weekday numbers (0 = Monday)."""
    if value in (None, [], ""):
        return set(range(7))
    if not isinstance(value, list):
        value = [value]
    days: set[int] = set()
    for item in value:
        text = str(item).strip().upper()
        full = {name.upper(): i for i, name in enumerate(calendar.day_name)}
        if text in WEEKDAY_NAMES:
            days.add(WEEKDAY_NAMES.index(text))
        elif text in full:
            days.add(full[text])
        elif text in {"1", "2", "3", "4", "5", "6", "7"}:
            days.add(int(text) - 1)
        else:
            errors["weekdays"] = "Give weekdays as 1 (Monday) to 7 (Sunday) or MON to SUN."
            return set()
    return days


def _parse_breaks(value: Any, errors: dict[str, str]) -> list[tuple[time, time]]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > 10:
        errors["breaks"] = "Give at most 10 breaks, each {start, end} as HH:MM."
        return []
    breaks = []
    for item in value:
        if not isinstance(item, dict):
            errors["breaks"] = "Give each break as a start and an end time, such as 13:00-14:00."
            return []
        start = _parse_time(item.get("start"), "breaks", errors)
        end = _parse_time(item.get("end"), "breaks", errors)
        if start is None or end is None:
            errors["breaks"] = "Give each break as a start and an end time, such as 13:00-14:00."
            return []
        if end <= start:
            errors["breaks"] = "A break must end after it starts."
            return []
        breaks.append((start, end))
    return breaks


def plan_slots(actor: User, data: dict[str, Any]) -> SlotPlan:
    """Work out the slots a bulk creation asks for, without writing anything.

    `data`: doctor_id, start_date, end_date, weekdays?, start_time, end_time,
    duration_minutes (15 or 30), breaks? [{start, end}]. Slots that would start in the
    past are left out (counted in `skipped_past`). Raises InvalidInput naming each bad
    field (more than 92 days or 3,000 slots included) and Forbidden for another doctor.
    """
    doctor = schedule_owner(actor, data.get("doctor_id"))
    errors: dict[str, str] = {}
    first = _parse_date(data.get("start_date"), "start_date", errors)
    last = _parse_date(data.get("end_date"), "end_date", errors)
    opens = _parse_time(data.get("start_time"), "start_time", errors)
    closes = _parse_time(data.get("end_time"), "end_time", errors)
    weekdays = _parse_weekdays(data.get("weekdays"), errors)
    breaks = _parse_breaks(data.get("breaks"), errors)
    duration = data.get("duration_minutes")
    if isinstance(duration, str) and duration in ("15", "30"):
        duration = int(duration)
    if duration not in SLOT_DURATIONS or isinstance(duration, bool):
        errors["duration_minutes"] = "Choose 15 or 30 minutes."
    if first and last:
        if last < first:
            errors["end_date"] = "The end date must not be before the start date."
        elif (last - first).days + 1 > MAX_DAYS:
            errors["end_date"] = f"At most {MAX_DAYS} days in one request."
    if opens and closes and closes <= opens:
        errors["end_time"] = "The day must end after it starts."
    if errors:
        raise InvalidInput.naming(errors)
    now = clock.now()
    periods: list[tuple[datetime, datetime]] = []
    skipped_past = 0
    step = timedelta(minutes=duration)
    day = first
    while day <= last:
        if day.weekday() in weekdays:
            start = datetime.combine(day, opens)
            stop = datetime.combine(day, closes)
            while start + step <= stop:
                end = start + step
                if any(start.time() < b_end and end.time() > b_start for b_start, b_end in breaks):
                    start = end
                    continue
                begins = clock.at_clinic_time(day, start.time())
                if begins <= now:
                    skipped_past += 1
                else:
                    periods.append((begins, begins + step))
                start = end
        day += timedelta(days=1)
    if len(periods) > MAX_SLOTS:
        raise InvalidInput(
            f"That makes {len(periods)} slots; at most {MAX_SLOTS} in one request.",
            "too_many_slots",
            fields={"end_date": f"At most {MAX_SLOTS} slots in one request; shorten the range."},
        )
    return SlotPlan(doctor, periods, skipped_past, duration)


def overlapping_count(plan: SlotPlan) -> int:
    """How many of the planned periods overlap a slot the doctor already has."""
    if not plan.periods:
        return 0
    first, last = plan.periods[0][0], plan.periods[-1][1]
    existing = db.session.execute(
        select(Slot.start_at, Slot.end_at).where(
            Slot.doctor_id == plan.doctor.id, Slot.start_at < last, Slot.end_at > first
        )
    ).all()
    taken = sorted(existing)
    count = 0
    for start, end in plan.periods:
        if any(s < end and e > start for s, e in taken):
            count += 1
    return count


def bulk_create(actor: User, data: dict[str, Any]) -> dict[str, Any]:
    """Create every planned slot that does not overlap one the doctor already has.

    Returns {created, skipped, slots}: counts, and the created slots in time order.
    Skipped counts periods already in the past and periods that overlap existing slots.
    One INSERT ... ON CONFLICT DO NOTHING: the exclusion constraint decides overlaps, so two
    bulk creations at once cannot make overlapping slots. Raises as `plan_slots`.
    """
    plan = plan_slots(actor, data)
    created: list[Slot] = []
    if plan.periods:
        rows = [
            {
                "doctor_id": plan.doctor.id,
                "start_at": start,
                "end_at": end,
                "duration_minutes": plan.duration,
                "status": "OPEN",
                "created_by_id": actor.id,
            }
            for start, end in plan.periods
        ]
        statement = pg_insert(Slot).values(rows).on_conflict_do_nothing().returning(Slot.id)
        ids = list(db.session.scalars(statement))
        if ids:
            created = list(
                db.session.scalars(select(Slot).where(Slot.id.in_(ids)).order_by(Slot.start_at))
            )
    skipped = plan.skipped_past + len(plan.periods) - len(created)
    if created:
        audit.record(
            actor,
            "SLOTS_CREATED",
            ("doctor", plan.doctor.id),
            None,
            {
                "created": len(created),
                "skipped": skipped,
                "first": created[0].start_at.isoformat(),
                "last": created[-1].start_at.isoformat(),
                "duration_minutes": plan.duration,
                "slot_ids": [s.id for s in created],
            },
        )
    return {"created": len(created), "skipped": skipped, "slots": created}


# ---- reading slots -----------------------------------------------------------------------


def list_slots(
    doctor_id: int | None = None,
    day: date | None = None,
    start: date | None = None,
    end: date | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 200,
) -> Page:
    """Slots in time order, filtered by doctor, one clinic day or a date range (`start`
    to `end` inclusive), and status. Raises InvalidInput for an unknown status or a date
    outside 1900-2199."""
    check_days(date=day, **{"from": start}, to=end)
    query = select(Slot)
    if doctor_id is not None:
        query = query.where(Slot.doctor_id == doctor_id)
    if day is not None:
        start = end = day
    if start is not None:
        query = query.where(Slot.start_at >= clock.day_bounds(start)[0])
    if end is not None:
        query = query.where(Slot.start_at < clock.day_bounds(end)[1])
    if status:
        status = status.upper()
        if status not in SLOT_STATUSES:
            raise InvalidInput(
                "status: unknown", fields={"status": "One of " + ", ".join(SLOT_STATUSES) + "."}
            )
        query = query.where(Slot.status == status)
    return paginate(query.order_by(Slot.start_at, Slot.doctor_id), page, per_page)


def week_slots(doctor_id: int, monday: date) -> dict[date, list[Slot]]:
    """A doctor's slots for the seven days from `monday`, by clinic day."""
    first = clock.day_bounds(monday)[0]
    last = clock.day_bounds(monday + timedelta(days=6))[1]
    query = (
        select(Slot)
        .where(Slot.doctor_id == doctor_id, Slot.start_at >= first, Slot.start_at < last)
        .order_by(Slot.start_at)
    )
    days: dict[date, list[Slot]] = {monday + timedelta(days=i): [] for i in range(7)}
    for slot in db.session.scalars(query):
        days[clock.clinic_day(slot.start_at)].append(slot)
    return days


def week_appointments(doctor_id: int, monday: date) -> dict[int, Appointment]:
    """The active appointments of a doctor's week, by slot id."""
    first = clock.day_bounds(monday)[0]
    last = clock.day_bounds(monday + timedelta(days=6))[1]
    query = select(Appointment).where(
        Appointment.doctor_id == doctor_id,
        Appointment.start_at >= first,
        Appointment.start_at < last,
        Appointment.status.in_(ACTIVE_APPOINTMENT),
    )
    return {a.slot_id: a for a in db.session.scalars(query)}


def slot_appointment(slot_id: int) -> Appointment | None:
    """The slot's active appointment, if it has one."""
    query = select(Appointment).where(
        Appointment.slot_id == slot_id, Appointment.status.in_(ACTIVE_APPOINTMENT)
    )
    return db.session.scalars(query).first()


def open_slots(doctor_id: int, day: date) -> list[Slot]:
    """A doctor's OPEN slots on a clinic day that have not started yet."""
    return [s for s in coming_slots(doctor_id, day) if s.status == "OPEN"]


def coming_slots(doctor_id: int, day: date) -> list[Slot]:
    """Every slot of a doctor on a clinic day that has not started yet (open, booked or
    blocked), in time order: the front desk answers "is 11 free?" from it."""
    first, last = clock.day_bounds(day)
    query = select(Slot).where(
        Slot.doctor_id == doctor_id,
        Slot.start_at >= max(first, clock.now()),
        Slot.start_at < last,
    )
    return list(db.session.scalars(query.order_by(Slot.start_at)))


# ---- blocking ----------------------------------------------------------------------------


def _reason(value: Any) -> str:
    reason = " ".join(str(value or "").split())
    if not reason or len(reason) > 200:
        raise InvalidInput(
            "reason: give a reason", fields={"reason": "Give a reason (up to 200 characters)."}
        )
    return reason


def set_blocked(actor: User, slot_id: int, blocked: bool, reason: str | None = None) -> Slot:
    """Block one OPEN slot (with a reason) or return a BLOCKED slot to OPEN.

    Raises NotFound, Forbidden (another doctor's slot), InvalidInput (no reason), Conflict
    `slot_booked` (a booked slot is cancelled through its appointment, never blocked),
    `already_blocked` or `not_blocked`. Returns the slot.
    """
    slot = _locked_slot(slot_id)
    schedule_owner(actor, slot.doctor_id)
    before = slot_snapshot(slot)
    if blocked:
        why = _reason(reason)
        if slot.status == "BOOKED":
            raise Conflict(
                "This slot is booked; cancel or move the appointment first.", "slot_booked"
            )
        if slot.status == "BLOCKED":
            raise Conflict("This slot is already blocked.", "already_blocked")
        slot.status, slot.block_reason = "BLOCKED", why
        action = "SLOT_BLOCKED"
    else:
        if slot.status != "BLOCKED":
            raise Conflict("This slot is not blocked.", "not_blocked")
        slot.status, slot.block_reason = "OPEN", None
        action = "SLOT_UNBLOCKED"
    db.session.flush()
    old, new = audit.diff(before, slot_snapshot(slot))
    audit.record(actor, action, ("slot", slot.id), old, new)
    return slot


def _instant(value: Any, field: str, errors: dict[str, str]) -> datetime | None:
    """A datetime from ISO text; one without an offset is read as clinic-local time."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value or "").strip())
        except ValueError:
            errors[field] = "Use a date and time such as 2026-12-01T09:00 (clinic time)."
            return None
    if not in_calendar(moment.date()):
        errors[field] = "Use a date between 1900 and 2199."
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.clinic_tz())
    return moment


def block_range(actor: User, data: dict[str, Any]) -> dict[str, list[Slot]]:
    """Block every OPEN slot of a doctor that starts in [start, end), with a reason.

    Booked slots in the range are left as they are and listed in `left_booked`. Returns
    {blocked, left_booked}. Raises InvalidInput and Forbidden.
    """
    doctor = schedule_owner(actor, data.get("doctor_id"))
    errors: dict[str, str] = {}
    start = _instant(data.get("start"), "start", errors)
    end = _instant(data.get("end"), "end", errors)
    if start and end and end <= start:
        errors["end"] = "The end must be after the start."
    elif start and end and end - start > timedelta(days=MAX_DAYS):
        errors["end"] = f"At most {MAX_DAYS} days at a time."
    try:
        reason = _reason(data.get("reason"))
    except InvalidInput as exc:
        errors.update(exc.fields)
    if errors:
        raise InvalidInput.naming(errors)
    in_range = and_(Slot.doctor_id == doctor.id, Slot.start_at >= start, Slot.start_at < end)
    to_block = list(
        db.session.scalars(
            select(Slot)
            .where(in_range, Slot.status == "OPEN")
            .order_by(Slot.start_at)
            .with_for_update()
        )
    )
    for slot in to_block:
        slot.status, slot.block_reason = "BLOCKED", reason
    booked = list(
        db.session.scalars(
            select(Slot).where(in_range, Slot.status == "BOOKED").order_by(Slot.start_at)
        )
    )
    db.session.flush()
    if to_block:
        audit.record(
            actor,
            "SLOTS_BLOCKED",
            ("doctor", doctor.id),
            None,
            {
                "reason": reason,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "slot_ids": [s.id for s in to_block],
            },
        )
    return {"blocked": to_block, "left_booked": booked}


# ---- appointments ------------------------------------------------------------------------


def appointment_snapshot(appointment: Appointment) -> dict[str, Any]:
    return {
        "patient_id": appointment.patient_id,
        "slot_id": appointment.slot_id,
        "doctor_id": appointment.doctor_id,
        "start_at": appointment.start_at.isoformat(),
        "reason": appointment.reason,
        "status": appointment.status,
    }


def bookable_patient(patient_id: Any) -> Patient:
    valid = isinstance(patient_id, int) and not isinstance(patient_id, bool)
    patient = db.session.get(Patient, patient_id) if valid and 0 < patient_id < 2**63 else None
    if patient is None:
        raise InvalidInput("patient_id: no such patient", fields={"patient_id": "No such patient."})
    if patient.archived_at:
        raise InvalidInput(
            "patient_id: archived", fields={"patient_id": "This patient is archived."}
        )
    return patient


def _check_slot_free(slot: Slot) -> None:
    if slot.status == "BLOCKED":
        raise Conflict(
            f"This slot is blocked ({slot.block_reason}).",
            "slot_blocked",
            details={"slot_id": slot.id},
        )
    if slot.status == "BOOKED":
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
    slot = _locked_slot(data.get("slot_id"), "slot_id")
    _check_slot_free(slot)
    clash = _patient_clash(patient.id, slot)
    if clash:
        raise _double_booked(clash)
    appointment = Appointment(
        patient_id=patient.id,
        slot_id=slot.id,
        doctor_id=slot.doctor_id,
        start_at=slot.start_at,
        end_at=slot.end_at,
        reason=reason,
        status="SCHEDULED",
        created_by_id=actor.id,
    )
    _save(appointment, slot)
    slot.status = "BOOKED"
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
    appointment = (
        db.session.get(Appointment, appointment_id) if 0 < appointment_id <= MAX_ID else None
    )
    if appointment is None:
        raise NotFound("No such appointment.", "appointment_not_found")
    if actor is not None and actor.role == Role.DOCTOR and appointment.doctor_id != actor.id:
        raise Forbidden("A doctor reads only their own appointments.", "forbidden")
    return appointment


def locked_appointment(appointment_id: int, with_people: bool = False) -> Appointment:
    """The appointment, its row locked (NotFound otherwise). `with_people` loads its patient
    and doctor in the same query (only the appointment's row is locked)."""
    options = [joinedload(Appointment.patient), joinedload(Appointment.doctor)]
    found = (
        db.session.get(
            Appointment,
            appointment_id,
            with_for_update={"of": Appointment},
            populate_existing=True,
            options=options if with_people else None,
        )
        if 0 < appointment_id <= MAX_ID
        else None
    )
    if found is None:
        raise NotFound("No such appointment.", "appointment_not_found")
    return found


# Who moves an appointment where (SPEC section 3 and 4): the front desk books, checks in
# and cancels; the queue follows its token (called, skipped, completed, no-show); the
# visit completes it; closing the day marks the missed ones. A visit completed after its
# day was closed shows the patient came after all (NO_SHOW -> COMPLETED).
APPOINTMENT_MOVES: dict[str, frozenset[str]] = {
    "SCHEDULED": frozenset({"CHECKED_IN", "CANCELLED", "NO_SHOW", "COMPLETED"}),
    "CHECKED_IN": frozenset({"IN_CONSULTATION", "NO_SHOW", "COMPLETED"}),
    "IN_CONSULTATION": frozenset({"CHECKED_IN", "COMPLETED"}),
    "NO_SHOW": frozenset({"COMPLETED"}),
    "COMPLETED": frozenset(),
    "CANCELLED": frozenset(),
}
APPOINTMENT_ACTIONS = {
    "CHECKED_IN": "APPOINTMENT_CHECKED_IN",
    "IN_CONSULTATION": "APPOINTMENT_IN_CONSULTATION",
    "COMPLETED": "APPOINTMENT_COMPLETED",
    "NO_SHOW": "APPOINTMENT_NO_SHOW",
    "CANCELLED": "APPOINTMENT_CANCELLED",
}
# Back in the queue from the consulting room: the token was skipped while with the doctor.
RETURNED = ("IN_CONSULTATION", "CHECKED_IN")


def move(
    actor: User | None,
    appointment: Appointment | int,
    status: str,
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
    if appointment.status == "CANCELLED":
        return appointment
    return move(actor, appointment, "COMPLETED")


def _must_be_scheduled(appointment: Appointment, verb: str) -> None:
    if appointment.status in ("CHECKED_IN", "IN_CONSULTATION", "COMPLETED"):
        raise Conflict(
            f"The patient has already checked in; it can no longer be {verb}.",
            "already_checked_in",
        )
    if appointment.status != "SCHEDULED":
        raise Conflict(
            f"This appointment is {appointment.status.lower().replace('_', ' ')}.",
            "appointment_not_scheduled",
        )


def reschedule(actor: User, appointment_id: int, data: dict[str, Any]) -> Appointment:
    """Move a SCHEDULED appointment to another slot and/or change its reason.

    The old slot is freed and the new one taken in the same transaction (both rows locked,
    in id order). Raises NotFound, Conflict (`already_checked_in`, `slot_taken`,
    `slot_blocked`, `patient_double_booked`), InvalidInput (`slot_in_past`, fields).
    """
    reason_given = "reason" in data
    reason = plain_text(data.get("reason"), "reason", 500) if reason_given else None
    appointment = locked_appointment(appointment_id)
    _must_be_scheduled(appointment, "rescheduled")
    before = appointment_snapshot(appointment)
    new_slot_id = data.get("slot_id")
    if new_slot_id is not None and new_slot_id != appointment.slot_id:
        ids = sorted([appointment.slot_id, new_slot_id]) if isinstance(new_slot_id, int) else []
        locked = {i: _locked_slot(i, "slot_id") for i in ids} if ids else {}
        new_slot = locked.get(new_slot_id) or _locked_slot(new_slot_id, "slot_id")
        old_slot = locked.get(appointment.slot_id) or _locked_slot(appointment.slot_id)
        _check_slot_free(new_slot)
        clash = _patient_clash(appointment.patient_id, new_slot, exclude=appointment.id)
        if clash:
            raise _double_booked(clash)
        old_slot.status = "OPEN"
        db.session.flush()  # the old slot frees its partial-unique entry first
        appointment.slot_id = new_slot.id
        appointment.doctor_id = new_slot.doctor_id
        appointment.start_at, appointment.end_at = new_slot.start_at, new_slot.end_at
        appointment.slot = new_slot
        _save(appointment, new_slot)
        new_slot.status = "BOOKED"
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
    appointment = locked_appointment(appointment_id)
    _must_be_scheduled(appointment, "cancelled")
    slot = _locked_slot(appointment.slot_id)
    if slot.status == "BOOKED":
        slot.status = "OPEN"
    return move(
        actor,
        appointment,
        "CANCELLED",
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
        if status not in APPOINTMENT_STATUSES:
            raise InvalidInput(
                "status: unknown",
                fields={"status": "One of " + ", ".join(APPOINTMENT_STATUSES) + "."},
            )
        query = query.where(Appointment.status == status)
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
            Appointment.status != "CANCELLED",
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


def on_duty_doctor_ids(day: date) -> list[int]:
    """Doctors with at least one slot on a clinic day (whatever its status)."""
    first, last = clock.day_bounds(day)
    query = (
        select(Slot.doctor_id)
        .join(User, User.id == Slot.doctor_id)
        .where(Slot.start_at >= first, Slot.start_at < last, User.is_active.is_(True))
        .group_by(Slot.doctor_id)
    )
    return list(db.session.scalars(query))


def mark_day_no_shows(day: date, actor: User | None = None) -> list[Appointment]:
    """SCHEDULED appointments of a clinic day (or earlier) that never checked in become
    NO_SHOW. Returns them."""
    last = clock.day_bounds(day)[1]
    query = (
        select(Appointment)
        .where(Appointment.status == "SCHEDULED", Appointment.start_at < last)
        .with_for_update()
    )
    missed = list(db.session.scalars(query))
    for appointment in missed:
        move(actor, appointment, "NO_SHOW")
    return missed
