"""`queue_entries`: the lasting record of every token (Redis holds the live order)."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qure.auth.models import User
from qure.extensions import db
from qure.patients.models import Patient


class TokenStatus(enum.StrEnum):
    WAITING = "WAITING"
    WITH_DOCTOR = "WITH_DOCTOR"
    SKIPPED = "SKIPPED"
    NO_SHOW = "NO_SHOW"
    COMPLETED = "COMPLETED"


class TokenKind(enum.StrEnum):
    APPOINTMENT = "APPOINTMENT"
    WALK_IN = "WALK_IN"


# A token in one of these is still in the queue (a patient holds at most one).
ACTIVE_TOKEN = (TokenStatus.WAITING, TokenStatus.WITH_DOCTOR, TokenStatus.SKIPPED)

# Order within a doctor's queue, lowest first. A recalled token goes
# back to the head of the queue.
TIER_RECALLED = 0
TIER_URGENT = 1
TIER_ON_TIME = 2
TIER_ARRIVAL = 3


class QueueEntry(db.Model):
    """One token of one clinic day. `tier` and `sort_at` are the token's place in its
    doctor's queue, so the Redis order can be rebuilt exactly from this table."""

    __tablename__ = "queue_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    token_number: Mapped[int] = mapped_column(Integer, nullable=False)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    urgent: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )
    urgent_reason: Mapped[str | None] = mapped_column(String(200))
    complaint: Mapped[str | None] = mapped_column(String(500))
    no_show_reason: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(
        String(12), nullable=False, default=TokenStatus.WAITING, server_default=TokenStatus.WAITING
    )
    tier: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    sort_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    checked_in_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    called_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    doctor: Mapped[User] = relationship(foreign_keys=[doctor_id], lazy="raise_on_sql")
    patient: Mapped[Patient] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        UniqueConstraint("day", "token_number", name="uq_queue_day_token"),
        UniqueConstraint("appointment_id", name="uq_queue_appointment"),
        CheckConstraint(
            "status IN ('WAITING', 'WITH_DOCTOR', 'SKIPPED', 'NO_SHOW', 'COMPLETED')",
            name="ck_queue_status",
        ),
        CheckConstraint("kind IN ('APPOINTMENT', 'WALK_IN')", name="ck_queue_kind"),
        CheckConstraint(
            "(kind = 'APPOINTMENT') = (appointment_id IS NOT NULL)", name="ck_queue_kind_appt"
        ),
        CheckConstraint("NOT urgent OR urgent_reason IS NOT NULL", name="ck_queue_urgent"),
        CheckConstraint("token_number > 0", name="ck_queue_token_positive"),
        # A patient holds at most one active token a day; a doctor sees one at a time.
        Index(
            "uq_queue_patient_active",
            "day",
            "patient_id",
            unique=True,
            postgresql_where=text("status IN ('WAITING', 'WITH_DOCTOR', 'SKIPPED')"),
        ),
        Index(
            "uq_queue_doctor_current",
            "day",
            "doctor_id",
            unique=True,
            postgresql_where=text("status = 'WITH_DOCTOR'"),
        ),
        Index("ix_queue_day_doctor", "day", "doctor_id", "status"),
    )
