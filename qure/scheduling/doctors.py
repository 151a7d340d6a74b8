"""Who works the schedule: the clinic's doctors, who may book,
who may change a doctor's slots, and who is on duty on a day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Select, select

from qure.auth.models import User
from qure.core import clock
from qure.core.db import get_or_none, rows_stamp
from qure.core.errors import Forbidden, InvalidInput
from qure.core.roles import Role
from qure.extensions import db
from qure.scheduling.models import (
    Slot,
)

BOOKERS = (Role.ADMIN, Role.RECEPTION)  # who books, reschedules, cancels


SCHEDULERS = (Role.ADMIN, Role.DOCTOR)  # who creates and blocks slots


READERS = (Role.ADMIN, Role.RECEPTION, Role.DOCTOR)  # who reads appointments (a doctor: own)


def get_doctor(doctor_id: int | None, field: str = "doctor_id") -> User:
    """An active DOCTOR by id; InvalidInput naming `field` otherwise."""
    if doctor_id is None:
        raise InvalidInput(f"{field}: choose a doctor", fields={field: "Choose a doctor."})
    doctor = get_or_none(User, doctor_id)
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


def on_duty_query(day: date, doctor_id: int | None = None) -> Select[tuple[int]]:
    """The ids of the doctors with at least one slot on a clinic day (whatever its
    status), as a statement other reads may embed; with `doctor_id`, that doctor's id only."""
    first, last = clock.day_bounds(day)
    query = (
        select(Slot.doctor_id)
        .join(User, User.id == Slot.doctor_id)
        .where(Slot.start_at >= first, Slot.start_at < last, User.is_active.is_(True))
        .group_by(Slot.doctor_id)
    )
    return query if doctor_id is None else query.where(Slot.doctor_id == doctor_id)


def slots_stamp_query(day: date) -> Select[tuple[str]]:
    """A short text that changes whenever a clinic day's slots do (created, removed,
    booked, blocked), as a statement other reads may embed: for answers cached until the
    doctors on duty change."""
    first, last = clock.day_bounds(day)
    query = select(rows_stamp(Slot)).select_from(Slot)
    return query.where(Slot.start_at >= first, Slot.start_at < last)


def on_duty_doctor_ids(day: date) -> list[int]:
    """Doctors with at least one slot on a clinic day (whatever its status)."""
    return list(db.session.scalars(on_duty_query(day)))
