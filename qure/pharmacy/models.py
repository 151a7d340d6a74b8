"""The medicine catalogue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

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
