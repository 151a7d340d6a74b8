"""Visits and their notes."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from qure.auth.models import User
from qure.extensions import db
from qure.patients.models import Patient


class VisitStatus(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


class NoteCategory(enum.StrEnum):
    SYMPTOM = "SYMPTOM"
    OBSERVATION = "OBSERVATION"
    DIAGNOSIS = "DIAGNOSIS"
    TREATMENT = "TREATMENT"


class Visit(db.Model):
    """One consultation. Temperature is kept in °C; BMI is computed, not stored."""

    __tablename__ = "visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    queue_entry_id: Mapped[int | None] = mapped_column(ForeignKey("queue_entries.id"))
    status: Mapped[str] = mapped_column(String(12), nullable=False, default=VisitStatus.IN_PROGRESS)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    bp_systolic: Mapped[int | None] = mapped_column(SmallInteger)
    bp_diastolic: Mapped[int | None] = mapped_column(SmallInteger)
    temperature_c: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    pulse: Mapped[int | None] = mapped_column(SmallInteger)
    spo2: Mapped[int | None] = mapped_column(SmallInteger)
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    height_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    respiratory_rate: Mapped[int | None] = mapped_column(SmallInteger)
    chief_complaint: Mapped[str | None] = mapped_column(String(500))
    symptom_duration: Mapped[str | None] = mapped_column(String(100))
    diagnosis: Mapped[str | None] = mapped_column(String(500))
    icd10_code: Mapped[str | None] = mapped_column(String(8))
    treatment_plan: Mapped[str | None] = mapped_column(Text)
    follow_up_date: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    patient: Mapped[Patient] = relationship(lazy="raise_on_sql")
    doctor: Mapped[User] = relationship(foreign_keys=[doctor_id], lazy="raise_on_sql")
    notes: Mapped[list[VisitNote]] = relationship(
        lazy="raise_on_sql", back_populates="visit", order_by="VisitNote.created_at, VisitNote.id"
    )

    __table_args__ = (
        CheckConstraint("status IN ('IN_PROGRESS', 'COMPLETED')", name="ck_visits_status"),
        CheckConstraint("bp_systolic > bp_diastolic", name="ck_visits_bp"),
        CheckConstraint(
            "(status = 'COMPLETED') = (completed_at IS NOT NULL)", name="ck_visits_completed"
        ),
        # A patient has at most one visit in progress.
        Index(
            "uq_visits_patient_in_progress",
            "patient_id",
            unique=True,
            postgresql_where=text("status = 'IN_PROGRESS'"),
        ),
        Index("ix_visits_patient_started", "patient_id", "started_at"),
        Index("ix_visits_doctor_started", "doctor_id", "started_at"),
        Index("ix_visits_started", "started_at"),  # a day's visits (the daily summary)
    )


class VisitNote(db.Model):
    """A clinical note; one written after completion is an addendum."""

    __tablename__ = "visit_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), nullable=False)
    category: Mapped[str] = mapped_column(String(12), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    is_addendum: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    visit: Mapped[Visit] = relationship(back_populates="notes", lazy="raise_on_sql")
    author: Mapped[User] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint(
            "category IN ('SYMPTOM', 'OBSERVATION', 'DIAGNOSIS', 'TREATMENT')",
            name="ck_visit_notes_category",
        ),
        Index("ix_visit_notes_visit", "visit_id"),
    )


# What a visit's pages and answers show of it, loaded with it (the models raise on a lazy
# load): the patient, the doctor and the notes with their authors joined into the visit's
# own statement (a locked read locks only `visits`: `get_or_none` asks FOR UPDATE OF the
# model), one statement where a second for the notes cost as much again. For a read by id
# (`Session.get`, which makes the joined notes unique). Here, not in the service, so that
# prescriptions can load a visit without depending on visits' service.
SHOWN = (
    joinedload(Visit.patient, innerjoin=True),
    joinedload(Visit.doctor, innerjoin=True),
    joinedload(Visit.notes).joinedload(VisitNote.author, innerjoin=True),
)
