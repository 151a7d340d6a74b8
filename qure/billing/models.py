"""Billing's tables: invoices and their lines, payments, credit notes, the day's close and
the document counters that number them."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qure.auth.models import User
from qure.extensions import db
from qure.patients.models import Patient

Money = Numeric(12, 2)


class InvoiceStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    PENDING = "PENDING"
    PAID = "PAID"
    CANCELLED = "CANCELLED"


class InvoiceMode(enum.StrEnum):
    AUTO = "AUTO"
    MANUAL = "MANUAL"


class LineKind(enum.StrEnum):
    CONSULTATION = "CONSULTATION"
    MEDICINE = "MEDICINE"
    PROCEDURE = "PROCEDURE"
    LAB = "LAB"
    IMAGING = "IMAGING"
    OTHER = "OTHER"


class PaymentMethod(enum.StrEnum):
    CASH = "CASH"
    CARD = "CARD"
    UPI = "UPI"


class DocumentCounter(db.Model):
    """The last number given in one series (INV, CN) of one financial year ("2026-27").

    Numbers are taken by incrementing this row in the transaction that issues the
    document: the row stays locked until that transaction ends, so numbers come out one
    at a time, and a transaction that rolls back gives its number back (no gaps, no
    duplicates; never max() + 1 over the documents)."""

    __tablename__ = "document_counters"
    __table_args__ = (CheckConstraint("last_number > 0", name="ck_document_counters_positive"),)

    series: Mapped[str] = mapped_column(String(8), primary_key=True)
    financial_year: Mapped[str] = mapped_column(String(7), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, nullable=False)


class Invoice(db.Model):
    """A bill. Its amounts are the sums of its lines, computed by the server (core.money).

    DRAFT is editable; finalising gives it the next INV number of the financial year
    (PENDING); a payment of exactly the total makes it PAID, after which only credit notes
    change what it is worth. DRAFT and PENDING can be CANCELLED with a reason."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(24), unique=True)
    mode: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, default=InvoiceStatus.DRAFT)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), nullable=False)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    prescription_id: Mapped[int | None] = mapped_column(ForeignKey("prescriptions.id"))
    # The clinic day the invoice is dated: the day it was made, then the day it was numbered.
    invoice_date: Mapped[date] = mapped_column(Date, nullable=False)
    discount_type: Mapped[str | None] = mapped_column(String(8))
    discount_value: Mapped[Decimal | None] = mapped_column(Money)
    subtotal: Mapped[Decimal] = mapped_column(Money, nullable=False)
    discount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    taxable: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    sgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )

    patient: Mapped[Patient] = relationship(lazy="raise_on_sql")
    created_by: Mapped[User] = relationship(lazy="raise_on_sql")
    lines: Mapped[list[InvoiceLine]] = relationship(
        lazy="raise_on_sql",
        back_populates="invoice",
        order_by="InvoiceLine.position",
        cascade="all, delete-orphan",
    )
    payment: Mapped[Payment | None] = relationship(
        lazy="raise_on_sql", back_populates="invoice", uselist=False
    )
    credit_notes: Mapped[list[CreditNote]] = relationship(
        lazy="raise_on_sql", back_populates="invoice", order_by="CreditNote.id"
    )

    __table_args__ = (
        CheckConstraint(
            "status IN ('DRAFT', 'PENDING', 'PAID', 'CANCELLED')", name="ck_invoices_status"
        ),
        CheckConstraint("mode IN ('AUTO', 'MANUAL')", name="ck_invoices_mode"),
        CheckConstraint(
            "discount_type IS NULL OR discount_type IN ('PERCENT', 'AMOUNT')",
            name="ck_invoices_discount_type",
        ),
        CheckConstraint(
            "subtotal >= 0 AND discount >= 0 AND discount <= subtotal AND taxable >= 0 "
            "AND cgst >= 0 AND sgst >= 0 AND total = taxable + cgst + sgst",
            name="ck_invoices_amounts",
        ),
        # Numbered once finalised, and never again without one (a cancelled number stays).
        CheckConstraint(
            "status = 'DRAFT' OR status = 'CANCELLED' OR number IS NOT NULL",
            name="ck_invoices_numbered",
        ),
        CheckConstraint("mode = 'MANUAL' OR visit_id IS NOT NULL", name="ck_invoices_auto_visit"),
        # At most one invoice that is not cancelled per prescription, and one AUTO per visit.
        Index(
            "uq_invoices_prescription",
            "prescription_id",
            unique=True,
            postgresql_where=text("status <> 'CANCELLED' AND prescription_id IS NOT NULL"),
        ),
        Index(
            "uq_invoices_auto_visit",
            "visit_id",
            unique=True,
            postgresql_where=text("status <> 'CANCELLED' AND mode = 'AUTO'"),
        ),
        Index("ix_invoices_patient", "patient_id", "created_at"),
        Index("ix_invoices_date", "invoice_date", "id"),
        Index("ix_invoices_status", "status", "invoice_date"),
    )


class InvoiceLine(db.Model):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(14), nullable=False)
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    hsn_sac: Mapped[str | None] = mapped_column(String(8))
    medicine_id: Mapped[int | None] = mapped_column(ForeignKey("medicines.id"))
    prescription_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("prescription_items.id", ondelete="SET NULL")
    )
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    gst_rate: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    value: Mapped[Decimal] = mapped_column(Money, nullable=False)
    discount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    taxable: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    sgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total: Mapped[Decimal] = mapped_column(Money, nullable=False)

    invoice: Mapped[Invoice] = relationship(back_populates="lines", lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint(
            "kind IN ('CONSULTATION', 'MEDICINE', 'PROCEDURE', 'LAB', 'IMAGING', 'OTHER')",
            name="ck_invoice_lines_kind",
        ),
        CheckConstraint("quantity > 0", name="ck_invoice_lines_quantity"),
        CheckConstraint("unit_price >= 0", name="ck_invoice_lines_price"),
        CheckConstraint("gst_rate IN (0, 5, 12, 18, 28)", name="ck_invoice_lines_rate"),
        CheckConstraint(
            "discount >= 0 AND discount <= value AND taxable = value - discount "
            "AND total = taxable + cgst + sgst",
            name="ck_invoice_lines_amounts",
        ),
        Index("uq_invoice_lines_position", "invoice_id", "position", unique=True),
    )


class Payment(db.Model):
    """The one payment of an invoice: exactly its total, by cash, card or UPI."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), nullable=False, unique=True)
    method: Mapped[str] = mapped_column(String(4), nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    reference: Mapped[str | None] = mapped_column(String(100))
    tendered: Mapped[Decimal | None] = mapped_column(Money)
    change: Mapped[Decimal | None] = mapped_column(Money)
    # The clinic day the money came in: the day's takings and its close count it there.
    paid_on: Mapped[date] = mapped_column(Date, nullable=False)
    received_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # A client's Idempotency-Key and a digest of what it asked with it (a retry with the
    # same key and body gets the first answer again; another body is refused).
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_digest: Mapped[str | None] = mapped_column(String(64))

    invoice: Mapped[Invoice] = relationship(back_populates="payment", lazy="raise_on_sql")
    received_by: Mapped[User] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint("method IN ('CASH', 'CARD', 'UPI')", name="ck_payments_method"),
        CheckConstraint("amount >= 0", name="ck_payments_amount"),
        CheckConstraint("method = 'CASH' OR reference IS NOT NULL", name="ck_payments_reference"),
        CheckConstraint(
            "tendered IS NULL OR (tendered >= amount AND change = tendered - amount)",
            name="ck_payments_change",
        ),
        Index("ix_payments_paid_on", "paid_on", "method"),
    )


class CreditNote(db.Model):
    """A refund against a PAID invoice: it reverses chosen lines' taxable value and tax."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), nullable=False, unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), nullable=False)
    method: Mapped[str] = mapped_column(String(4), nullable=False)
    reason: Mapped[str] = mapped_column(String(300), nullable=False)
    taxable: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    sgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total: Mapped[Decimal] = mapped_column(Money, nullable=False)
    issued_on: Mapped[date] = mapped_column(Date, nullable=False)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    invoice: Mapped[Invoice] = relationship(back_populates="credit_notes", lazy="raise_on_sql")
    created_by: Mapped[User] = relationship(lazy="raise_on_sql")
    lines: Mapped[list[CreditNoteLine]] = relationship(
        lazy="raise_on_sql",
        back_populates="credit_note",
        order_by="CreditNoteLine.id",
        cascade="all, delete-orphan",
    )

    __table_args__ = (
        CheckConstraint("method IN ('CASH', 'CARD', 'UPI')", name="ck_credit_notes_method"),
        CheckConstraint(
            "total > 0 AND total = taxable + cgst + sgst", name="ck_credit_notes_amounts"
        ),
        Index("ix_credit_notes_issued_on", "issued_on", "method"),
        Index("ix_credit_notes_invoice", "invoice_id"),
    )


class CreditNoteLine(db.Model):
    __tablename__ = "credit_note_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_note_id: Mapped[int] = mapped_column(
        ForeignKey("credit_notes.id", ondelete="CASCADE"), nullable=False
    )
    invoice_line_id: Mapped[int] = mapped_column(ForeignKey("invoice_lines.id"), nullable=False)
    quantity: Mapped[Decimal] = mapped_column(Numeric(10, 2), nullable=False)
    taxable: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    sgst: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total: Mapped[Decimal] = mapped_column(Money, nullable=False)

    credit_note: Mapped[CreditNote] = relationship(back_populates="lines", lazy="raise_on_sql")
    invoice_line: Mapped[InvoiceLine] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_credit_note_lines_quantity"),
        CheckConstraint(
            "taxable >= 0 AND cgst >= 0 AND sgst >= 0 AND total = taxable + cgst + sgst",
            name="ck_credit_note_lines_amounts",
        ),
        Index("ix_credit_note_lines_line", "invoice_line_id"),
    )


class DayClose(db.Model):
    """The cashier's close of one clinic day: the expected takings per method (payments
    less refunds) as they stood, the cash counted and the variance. One per day; once it
    exists the day's takings are read-only (payments and refunds on it are refused)."""

    __tablename__ = "day_closes"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, nullable=False, unique=True)
    expected_cash: Mapped[Decimal] = mapped_column(Money, nullable=False)
    expected_card: Mapped[Decimal] = mapped_column(Money, nullable=False)
    expected_upi: Mapped[Decimal] = mapped_column(Money, nullable=False)
    payments: Mapped[Decimal] = mapped_column(Money, nullable=False)
    refunds: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cash_counted: Mapped[Decimal] = mapped_column(Money, nullable=False)
    variance: Mapped[Decimal] = mapped_column(Money, nullable=False)
    note: Mapped[str | None] = mapped_column(String(500))
    closed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    closed_by: Mapped[User] = relationship(lazy="raise_on_sql")

    __table_args__ = (
        CheckConstraint("cash_counted >= 0", name="ck_day_closes_counted"),
        CheckConstraint("variance = cash_counted - expected_cash", name="ck_day_closes_variance"),
    )


class ReceiptBundle(db.Model):
    """A clinic day's receipts as one PDF (billing.bundles), made by a job on request from
    the day close and downloaded from there; made again, it replaces the day's one."""

    __tablename__ = "receipt_bundles"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    receipts: Mapped[int] = mapped_column(Integer, nullable=False)
    made_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
