"""Doctor slots: bulk creation over a date range, reading, blocking and
unblocking. The exclusion constraint makes "no overlapping slots" true; these functions
give the friendly answer first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.db import get_or_none, get_or_raise
from qure.core.errors import Conflict, InvalidInput, NotFound
from qure.core.pagination import Page, paginate
from qure.extensions import db
from qure.scheduling.doctors import schedule_owner
from qure.scheduling.models import (
    SLOT_DURATIONS,
    Slot,
    SlotStatus,
)
from qure.scheduling.parsing import (
    BAD_DAY,
    BAD_INSTANT,
    BAD_TIME,
    BAD_WEEKDAYS,
    OUT_OF_CALENDAR,
    check_days,
    in_calendar,
)

MAX_DAYS = 92


MAX_SLOTS = 3000
MAX_BREAKS = 10
# Every slot read here is shown with its doctor (the models raise on a lazy load); in a
# second query, as slots are often read with their rows locked.
# The doctor joined into the slot's own statement (a slot always has one).
WITH_DOCTOR = joinedload(Slot.doctor, innerjoin=True)


def get_slot(slot_id: int) -> Slot:
    """One slot with its doctor; NotFound otherwise."""
    return get_or_raise(Slot, slot_id, "No such slot.", "slot_not_found", options=[WITH_DOCTOR])


def locked_slot(slot_id: int, field: str | None = None) -> Slot:
    """The slot, its row locked; InvalidInput naming `field` when given, else NotFound."""
    slot = get_or_none(Slot, slot_id, lock=True, options=[WITH_DOCTOR])
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


@dataclass(frozen=True)
class SlotPlan:
    """What a bulk creation would make: the periods, and how many it leaves out."""

    doctor: User
    periods: list[tuple[datetime, datetime]]
    skipped_past: int
    duration: int


def plan_slots(actor: User, data: dict[str, Any]) -> SlotPlan:
    """Work out the slots a bulk creation asks for, without writing anything.

    `data`: doctor_id (int), start_date and end_date (`date`), weekdays? (ISO numbers,
    1 = Monday; every day when none), start_time and end_time (clinic-local `time`),
    duration_minutes (15 or 30), breaks? [(start, end) times]. Slots that would start in
    the past are left out (counted in `skipped_past`). Raises InvalidInput naming each bad
    field (more than 92 days or 3,000 slots included) and Forbidden for another doctor.
    """
    doctor = schedule_owner(actor, data.get("doctor_id"))
    errors: dict[str, str] = {}
    first, last = data.get("start_date"), data.get("end_date")
    opens, closes = data.get("start_time"), data.get("end_time")
    weekdays = set(data.get("weekdays") or range(1, 8))
    breaks = data.get("breaks") or []
    duration = data.get("duration_minutes")
    for field, day in (("start_date", first), ("end_date", last)):
        if day is None or not in_calendar(day):
            errors[field] = BAD_DAY if day is None else OUT_OF_CALENDAR
    first, last = (None, None) if errors else (first, last)  # a bad date is not compared
    for field, moment in (("start_time", opens), ("end_time", closes)):
        if moment is None:
            errors[field] = BAD_TIME
    if not weekdays <= set(range(1, 8)):
        errors["weekdays"] = BAD_WEEKDAYS
    if len(breaks) > MAX_BREAKS:
        errors["breaks"] = f"Give at most {MAX_BREAKS} breaks, each {{start, end}} as HH:MM."
    elif any(end <= start for start, end in breaks):
        errors["breaks"] = "A break must end after it starts."
    if duration not in SLOT_DURATIONS:
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
        if day.isoweekday() in weekdays:
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
                "status": SlotStatus.OPEN,
                "created_by_id": actor.id,
            }
            for start, end in plan.periods
        ]
        statement = pg_insert(Slot).values(rows).on_conflict_do_nothing().returning(Slot)
        created = sorted(db.session.scalars(statement), key=lambda slot: slot.start_at)
        for slot in created:  # the rows come back whole; their doctor is the plan's
            set_committed_value(slot, "doctor", plan.doctor)
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
    query = select(Slot).options(WITH_DOCTOR)
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
        if status not in tuple(SlotStatus):
            raise InvalidInput(
                "status: unknown", fields={"status": "One of " + ", ".join(SlotStatus) + "."}
            )
        query = query.where(Slot.status == status)
    return paginate(query.order_by(Slot.start_at, Slot.doctor_id), page, per_page)


def week_slots(doctor_id: int, monday: date) -> dict[date, list[Slot]]:
    """A doctor's slots for the seven days from `monday`, by clinic day."""
    first = clock.day_bounds(monday)[0]
    last = clock.day_bounds(monday + timedelta(days=6))[1]
    query = (
        select(Slot)
        .options(WITH_DOCTOR)
        .where(Slot.doctor_id == doctor_id, Slot.start_at >= first, Slot.start_at < last)
        .order_by(Slot.start_at)
    )
    days: dict[date, list[Slot]] = {monday + timedelta(days=i): [] for i in range(7)}
    for slot in db.session.scalars(query):
        days[clock.clinic_day(slot.start_at)].append(slot)
    return days


def open_slots(doctor_id: int, day: date) -> list[Slot]:
    """A doctor's OPEN slots on a clinic day that have not started yet."""
    return [s for s in coming_slots(doctor_id, day) if s.status == SlotStatus.OPEN]


def coming_slots(doctor_id: int, day: date) -> list[Slot]:
    """Every slot of a doctor on a clinic day that has not started yet (open, booked or
    blocked), in time order: the front desk answers "is 11 free?" from it."""
    first, last = clock.day_bounds(day)
    query = (
        select(Slot)
        .options(WITH_DOCTOR)
        .where(
            Slot.doctor_id == doctor_id,
            Slot.start_at >= max(first, clock.now()),
            Slot.start_at < last,
        )
    )
    return list(db.session.scalars(query.order_by(Slot.start_at)))


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
    slot = locked_slot(slot_id)
    schedule_owner(actor, slot.doctor_id)
    before = slot_snapshot(slot)
    if blocked:
        why = _reason(reason)
        if slot.status == SlotStatus.BOOKED:
            raise Conflict(
                "This slot is booked; cancel or move the appointment first.", "slot_booked"
            )
        if slot.status == SlotStatus.BLOCKED:
            raise Conflict("This slot is already blocked.", "already_blocked")
        slot.status, slot.block_reason = SlotStatus.BLOCKED, why
        action = "SLOT_BLOCKED"
    else:
        if slot.status != SlotStatus.BLOCKED:
            raise Conflict("This slot is not blocked.", "not_blocked")
        slot.status, slot.block_reason = SlotStatus.OPEN, None
        action = "SLOT_UNBLOCKED"
    db.session.flush()
    old, new = audit.diff(before, slot_snapshot(slot))
    audit.record(actor, action, ("slot", slot.id), old, new)
    return slot


def block_range(actor: User, data: dict[str, Any]) -> dict[str, list[Slot]]:
    """Block every OPEN slot of a doctor that starts in [start, end), with a reason.

    `data`: doctor_id (int), start and end (aware `datetime`s), reason. Booked slots in the
    range are left as they are and listed in `left_booked`. Returns {blocked, left_booked}.
    Raises InvalidInput and Forbidden.
    """
    doctor = schedule_owner(actor, data.get("doctor_id"))
    errors: dict[str, str] = {}
    start, end = data.get("start"), data.get("end")
    for field, moment in (("start", start), ("end", end)):
        if moment is None or not in_calendar(moment.date()):
            errors[field] = BAD_INSTANT if moment is None else OUT_OF_CALENDAR
    start, end = (None, None) if errors else (start, end)  # a bad instant is not compared
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
            .options(WITH_DOCTOR)
            .where(in_range, Slot.status == SlotStatus.OPEN)
            .order_by(Slot.start_at)
            .with_for_update()
        )
    )
    for slot in to_block:
        slot.status, slot.block_reason = SlotStatus.BLOCKED, reason
    booked = list(
        db.session.scalars(
            select(Slot)
            .options(WITH_DOCTOR)
            .where(in_range, Slot.status == SlotStatus.BOOKED)
            .order_by(Slot.start_at)
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
