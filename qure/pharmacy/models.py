"""The medicine catalogue, its stock batches, dispensing and the Schedule H1 register."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qure.auth.models import User
from qure.extensions import db

DOSAGE_FORMS = (
    "TABLET",
    "CAPSULE",
    "SYRUP",
    "SUSPENSION",
    "INJECTION",
    "OINTMENT",
    "CREAM",
    "DROPS",
    "INHALER",
    "OTHER",
)
GST_RATES = (0, 5, 12, 18, 28)


class DrugSchedule(enum.StrEnum):
    """The Drugs and Cosmetics Rules schedule; H1 and X dispensings go to the register."""

    NONE = "NONE"
    H = "H"
    H1 = "H1"
    X = "X"


# The schedules whose every dispensing is written to the H1 register.
REGISTERED = frozenset({DrugSchedule.H1, DrugSchedule.X})


class MovementType(enum.StrEnum):
    """A `stock_movements` document's type."""

    IN = "IN"
    OUT = "OUT"
    ADJUSTMENT = "ADJUSTMENT"
    RETURN = "RETURN"


class AdjustmentReason(enum.StrEnum):
    DAMAGED = "DAMAGED"
    EXPIRED_DISPOSAL = "EXPIRED_DISPOSAL"
    COUNT_CORRECTION = "COUNT_CORRECTION"
    RETURN_TO_SUPPLIER = "RETURN_TO_SUPPLIER"


class Medicine(db.Model):
    """A medicine the clinic prescribes and sells. `generic_name` is the ingredients joined
    by " + "; `ingredients` keeps them apart for the allergy check and the search."""

    __tablename__ = "medicines"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    generic_name: Mapped[str] = mapped_column(String(400), nullable=False)
    ingredients: Mapped[list[str]] = mapped_column(ARRAY(String(120)), nullable=False)
    drug_class: Mapped[str | None] = mapped_column(String(80))
    dosage_form: Mapped[str] = mapped_column(String(12), nullable=False)
    strength: Mapped[str] = mapped_column(String(60), nullable=False)
    manufacturer: Mapped[str | None] = mapped_column(String(120))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2), nullable=False)
    gst_rate: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    hsn_code: Mapped[str | None] = mapped_column(String(8))
    reorder_level: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    schedule: Mapped[str] = mapped_column(
        String(4), nullable=False, default=DrugSchedule.NONE, server_default=DrugSchedule.NONE
    )
    is_active: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=text("true")
    )
    search_text: Mapped[str] = mapped_column(String(700), nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint(
            "dosage_form IN ('TABLET', 'CAPSULE', 'SYRUP', 'SUSPENSION', 'INJECTION', "
            "'OINTMENT', 'CREAM', 'DROPS', 'INHALER', 'OTHER')",
            name="ck_medicines_form",
        ),
        CheckConstraint("gst_rate IN (0, 5, 12, 18, 28)", name="ck_medicines_gst"),
        CheckConstraint("unit_price >= 0", name="ck_medicines_price"),
        CheckConstraint("reorder_level >= 0", name="ck_medicines_reorder"),
        CheckConstraint("schedule IN ('NONE', 'H', 'H1', 'X')", name="ck_medicines_schedule"),
        Index(
            "uq_medicines_name_strength_form",
            text("lower(name)"),
            text("lower(strength)"),
            "dosage_form",
            unique=True,
        ),
        Index(
            "ix_medicines_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
    )


class Batch(db.Model):
    """Stock of one medicine received under one batch number. A batch is expired on and
    after its expiry date (the clinic's date): its stock then counts as none."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    medicine_id: Mapped[int] = mapped_column(ForeignKey("medicines.id"), nullable=False)
    batch_number: Mapped[str] = mapped_column(String(40), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    expiry_date: Mapped[date] = mapped_column(Date, nullable=False)
    mfg_date: Mapped[date | None] = mapped_column(Date)
    supplier: Mapped[str | None] = mapped_column(String(120))
    purchase_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    received_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    medicine: Mapped[Medicine] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        UniqueConstraint("medicine_id", "batch_number", name="uq_batches_medicine_number"),
        CheckConstraint("quantity >= 0", name="ck_batches_quantity"),
        CheckConstraint("mfg_date IS NULL OR mfg_date <= expiry_date", name="ck_batches_dates"),
        CheckConstraint("purchase_price IS NULL OR purchase_price >= 0", name="ck_batches_price"),
        Index(
            "ix_batches_fefo",
            "medicine_id",
            "expiry_date",
            "id",
            postgresql_where=text("quantity > 0"),
        ),
        Index("ix_batches_expiry", "expiry_date", "id", postgresql_where=text("quantity > 0")),
    )


class Dispensing(db.Model):
    """One hand-over at the counter against a paid prescription: its items say which
    batch each quantity came from. `partial` when something was short."""

    __tablename__ = "dispensings"

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"), nullable=False)
    dispensed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    dispensed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    partial: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=text("false")
    )

    dispensed_by: Mapped[User] = relationship(lazy="raise_on_sql")
    items: Mapped[list[DispensedItem]] = relationship(
        lazy="raise_on_sql",
        back_populates="dispensing",
        order_by="DispensedItem.id",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        Index("ix_dispensings_prescription", "prescription_id"),
        Index("ix_dispensings_at", "dispensed_at"),
    )


class DispensedItem(db.Model):
    """A quantity of one prescription item taken from one batch; `returned_quantity` of it
    has come back into that batch since."""

    __tablename__ = "dispensed_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    dispensing_id: Mapped[int] = mapped_column(
        ForeignKey("dispensings.id", ondelete="CASCADE"), nullable=False
    )
    prescription_item_id: Mapped[int] = mapped_column(
        ForeignKey("prescription_items.id"), nullable=False
    )
    batch_id: Mapped[int] = mapped_column(ForeignKey("batches.id"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    returned_quantity: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )

    dispensing: Mapped[Dispensing] = relationship(back_populates="items", lazy="raise_on_sql")
    batch: Mapped[Batch] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_dispensed_items_quantity"),
        CheckConstraint(
            "returned_quantity >= 0 AND returned_quantity <= quantity",
            name="ck_dispensed_items_returned",
        ),
        Index("ix_dispensed_items_dispensing", "dispensing_id"),
        Index("ix_dispensed_items_item", "prescription_item_id"),
    )


class H1RegisterEntry(db.Model):
    """A line of the Schedule H1 register, copied at dispensing. Append-only: the service
    only inserts, and a trigger refuses UPDATE and DELETE."""

    __tablename__ = "h1_register"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    entry_date: Mapped[date] = mapped_column(Date, nullable=False)
    dispensed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    patient_name: Mapped[str] = mapped_column(String(120), nullable=False)
    patient_address: Mapped[str | None] = mapped_column(Text)
    doctor_name: Mapped[str] = mapped_column(String(120), nullable=False)
    doctor_registration: Mapped[str | None] = mapped_column(String(60))
    medicine_name: Mapped[str] = mapped_column(String(200), nullable=False)
    schedule: Mapped[str] = mapped_column(String(4), nullable=False)
    batch_number: Mapped[str] = mapped_column(String(40), nullable=False)
    expiry_date: Mapped[date] = mapped_column(Date, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    pharmacist_name: Mapped[str] = mapped_column(String(120), nullable=False)
    dispensing_id: Mapped[int] = mapped_column(ForeignKey("dispensings.id"), nullable=False)
    dispensed_item_id: Mapped[int] = mapped_column(ForeignKey("dispensed_items.id"), nullable=False)

    __table_args__ = (
        CheckConstraint("schedule IN ('H1', 'X')", name="ck_h1_register_schedule"),
        CheckConstraint("quantity > 0", name="ck_h1_register_quantity"),
        Index("ix_h1_register_date", "entry_date", "id"),
    )


class StockAlertDay(db.Model):
    """The morning's stock alerts of one clinic day, raised (audited and told to the
    pharmacists) once: the row is the record that they were."""

    __tablename__ = "stock_alert_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    low_stock: Mapped[int] = mapped_column(Integer, nullable=False)
    expiring_30: Mapped[int] = mapped_column(Integer, nullable=False)
    expiring_60: Mapped[int] = mapped_column(Integer, nullable=False)
    expiring_90: Mapped[int] = mapped_column(Integer, nullable=False)
    expired: Mapped[int] = mapped_column(Integer, nullable=False)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class StockAlertTold(db.Model):
    """One pharmacist told one day's stock alerts (through `channel`): inserted before the
    message goes out and committed after it, so each is told once however the sends fail
    and the job retries."""

    __tablename__ = "stock_alert_told"

    day: Mapped[date] = mapped_column(
        ForeignKey("stock_alert_days.day", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    told_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
