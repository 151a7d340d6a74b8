"""A visit's prescription and its items."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qure.auth.models import User
from qure.extensions import db
from qure.patients.models import Patient
from qure.pharmacy.models import Medicine
from qure.visits.models import Visit


class DispenseStatus(enum.StrEnum):
    """How much of a prescription the pharmacy has handed over (kept by
    `qure.pharmacy.dispensing`, the one place it changes)."""

    AWAITING = "AWAITING"
    PARTIALLY_DISPENSED = "PARTIALLY_DISPENSED"
    DISPENSED = "DISPENSED"


class Prescription(db.Model):
    """One per visit (a unique constraint), written by the visit's doctor."""

    __tablename__ = "prescriptions"
    __table_args__ = (
        CheckConstraint(
            "dispense_status IN ('AWAITING', 'PARTIALLY_DISPENSED', 'DISPENSED')",
            name="ck_prescriptions_dispense_status",
        ),
        Index(
            "ix_prescriptions_to_dispense",
            "created_at",
            "id",
            postgresql_where=text("dispense_status <> 'DISPENSED'"),
        ),
        Index("ix_prescriptions_patient", "patient_id"),  # a patient's prescriptions
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), nullable=False, unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    notes: Mapped[str | None] = mapped_column(String(1000))
    allergy_override_reason: Mapped[str | None] = mapped_column(String(500))
    # "medicine_id:allergy" of every allergy match the doctor overrode with a reason.
    allergy_overrides: Mapped[list[str]] = mapped_column(
        ARRAY(String(200)), nullable=False, default=list, server_default="{}"
    )
    dispense_status: Mapped[str] = mapped_column(
        String(20),
        nullable=False,
        default=DispenseStatus.AWAITING,
        server_default=DispenseStatus.AWAITING,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    visit: Mapped[Visit] = relationship(lazy="raise_on_sql")
    patient: Mapped[Patient] = relationship(lazy="raise_on_sql")
    doctor: Mapped[User] = relationship(lazy="raise_on_sql")
    items: Mapped[list[PrescriptionItem]] = relationship(
        lazy="raise_on_sql",
        back_populates="prescription",
        order_by="PrescriptionItem.position",
        cascade="all, delete-orphan",
    )


class PrescriptionItem(db.Model):
    __tablename__ = "prescription_items"
    __table_args__ = (UniqueConstraint("prescription_id", "position", name="uq_items_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(
        ForeignKey("prescriptions.id", ondelete="CASCADE"), nullable=False
    )
    medicine_id: Mapped[int] = mapped_column(ForeignKey("medicines.id"), nullable=False)
    position: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    dose: Mapped[Decimal] = mapped_column(Numeric(6, 2), nullable=False)
    frequency: Mapped[str] = mapped_column(String(20), nullable=False)
    duration_days: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    route: Mapped[str | None] = mapped_column(String(40))
    instructions: Mapped[str | None] = mapped_column(String(300))

    prescription: Mapped[Prescription] = relationship(back_populates="items", lazy="raise_on_sql")
    medicine: Mapped[Medicine] = relationship(lazy="raise_on_sql")
