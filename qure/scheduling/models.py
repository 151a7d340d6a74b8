"""Slots of a doctor's time and the appointments booked into them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qure.auth.models import User
from qure.extensions import db
from qure.patients.models import Patient


class SlotStatus(enum.StrEnum):
    OPEN = "OPEN"
    BOOKED = "BOOKED"
    BLOCKED = "BLOCKED"


class AppointmentStatus(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    CHECKED_IN = "CHECKED_IN"
    IN_CONSULTATION = "IN_CONSULTATION"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    NO_SHOW = "NO_SHOW"


SLOT_DURATIONS = (15, 30)
# An appointment in one of these holds its slot and its patient's time.
ACTIVE_APPOINTMENT = (
    AppointmentStatus.SCHEDULED,
    AppointmentStatus.CHECKED_IN,
    AppointmentStatus.IN_CONSULTATION,
    AppointmentStatus.COMPLETED,
)
# An appointment in one of these has checked in: it can no longer be moved or cancelled.
ARRIVED = (
    AppointmentStatus.CHECKED_IN,
    AppointmentStatus.IN_CONSULTATION,
    AppointmentStatus.COMPLETED,
)
ACTIVE_SQL = "status IN ('SCHEDULED', 'CHECKED_IN', 'IN_CONSULTATION', 'COMPLETED')"


class Slot(db.Model):
    """A doctor's bookable period. `end_at` is stored (start + duration) so that the
    exclusion constraint can index the range."""

    __tablename__ = "slots"

    id: Mapped[int] = mapped_column(primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_minutes: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    status: Mapped[str] = mapped_column(
        String(10), nullable=False, default=SlotStatus.OPEN, server_default=SlotStatus.OPEN
    )
    block_reason: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    doctor: Mapped[User] = relationship(foreign_keys=[doctor_id], lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint("status IN ('OPEN', 'BOOKED', 'BLOCKED')", name="ck_slots_status"),
        CheckConstraint("duration_minutes IN (15, 30)", name="ck_slots_duration"),
        CheckConstraint(
            "end_at - start_at = duration_minutes * interval '1 minute'", name="ck_slots_end"
        ),
        CheckConstraint(
            "(status = 'BLOCKED') = (block_reason IS NOT NULL)", name="ck_slots_block_reason"
        ),
        ExcludeConstraint(
            ("doctor_id", "="),
            (text("tstzrange(start_at, end_at)"), "&&"),
            name="ex_slots_no_overlap",
            using="gist",
        ),
        Index("ix_slots_start", "start_at"),
    )


class Appointment(db.Model):
    """A patient booked into a slot. `start_at`/`end_at` copy the slot's times so that
    the database can refuse a patient two overlapping appointments."""

    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False)
    slot_id: Mapped[int] = mapped_column(ForeignKey("slots.id"), nullable=False)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(
        String(20),
        nullable=False,
        default=AppointmentStatus.SCHEDULED,
        server_default=AppointmentStatus.SCHEDULED,
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    # When the day-before reminder went out (scheduling.reminders): sent once.
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    patient: Mapped[Patient] = relationship(lazy="raise_on_sql")
    doctor: Mapped[User] = relationship(foreign_keys=[doctor_id], lazy="raise_on_sql")
    slot: Mapped[Slot] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint(
            "status IN ('SCHEDULED', 'CHECKED_IN', 'IN_CONSULTATION', 'COMPLETED', "
            "'CANCELLED', 'NO_SHOW')",
            name="ck_appointments_status",
        ),
        Index(
            "uq_appointments_active_slot",
            "slot_id",
            unique=True,
            postgresql_where=text(ACTIVE_SQL),
        ),
        ExcludeConstraint(
            ("patient_id", "="),
            (text("tstzrange(start_at, end_at)"), "&&"),
            name="ex_appointments_patient_overlap",
            using="gist",
            where=text(ACTIVE_SQL),
        ),
        Index("ix_appointments_doctor_start", "doctor_id", "start_at"),
        Index("ix_appointments_patient", "patient_id"),
        # The reminders job's search (migration 0011): tomorrow's, not reminded yet.
        Index(
            "ix_appointments_to_remind",
            "start_at",
            postgresql_where=text("reminded_at IS NULL AND status = 'SCHEDULED'"),
        ),
    )
