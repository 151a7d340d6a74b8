"""What billing tells other domains about their rows, without importing its service (which
imports theirs): whether a prescription has been invoiced, and what of it was paid."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Select, func, select

from qure.billing.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceStatus
from qure.extensions import db


def invoice_for_prescription(prescription_id: int) -> int | None:
    """The id of the prescription's invoice that is not cancelled, or None."""
    query = select(Invoice.id).where(
        Invoice.prescription_id == prescription_id, Invoice.status != InvoiceStatus.CANCELLED
    )
    return db.session.scalar(query)


def paid_prescriptions() -> Select:
    """The ids of prescriptions with a PAID invoice (for `IN (...)`)."""
    return select(Invoice.prescription_id).where(
        Invoice.status == InvoiceStatus.PAID, Invoice.prescription_id.is_not(None)
    )


def paid_lines_for_prescription(
    prescription_id: int, lock: bool = False
) -> dict[int, Decimal] | None:
    """Per prescription item id, the quantity its PAID invoice's lines bill, less what
    credit notes have refunded of them; None when the prescription has no PAID invoice.

    With `lock`, the invoice row is held FOR SHARE until the transaction ends: a credit
    note (which locks it FOR UPDATE) waits for the dispensing reading it, and the other
    way round."""
    query = select(Invoice.id).where(
        Invoice.prescription_id == prescription_id, Invoice.status == InvoiceStatus.PAID
    )
    if lock:
        query = query.with_for_update(read=True)
    invoice_id = db.session.scalar(query)
    if invoice_id is None:
        return None
    refunded = (
        select(func.coalesce(func.sum(CreditNoteLine.quantity), 0))
        .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
        .where(
            CreditNoteLine.invoice_line_id == InvoiceLine.id,
            CreditNote.invoice_id == invoice_id,
        )
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(InvoiceLine.prescription_item_id, InvoiceLine.quantity - refunded).where(
            InvoiceLine.invoice_id == invoice_id, InvoiceLine.prescription_item_id.is_not(None)
        )
    )
    paid: dict[int, Decimal] = {}
    for item_id, quantity in rows:
        paid[item_id] = paid.get(item_id, Decimal(0)) + quantity
    return paid


def paid_invoice_lines(prescription_id: int) -> dict[int, dict]:
    """Per prescription item id, the PAID invoice's line that bills it: {invoice_id,
    invoice_number, line_id, refundable} (refundable: its quantity less what credit notes
    refunded), so that a returned item can be offered its credit note. Empty without a
    PAID invoice."""
    refunded = (
        select(func.coalesce(func.sum(CreditNoteLine.quantity), 0))
        .where(CreditNoteLine.invoice_line_id == InvoiceLine.id)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(
            InvoiceLine.prescription_item_id,
            Invoice.id,
            Invoice.number,
            InvoiceLine.id,
            InvoiceLine.quantity - refunded,
        )
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            Invoice.prescription_id == prescription_id,
            Invoice.status == InvoiceStatus.PAID,
            InvoiceLine.prescription_item_id.is_not(None),
        )
        .order_by(InvoiceLine.id)
    )
    return {
        item_id: {
            "invoice_id": invoice_id,
            "invoice_number": number,
            "line_id": line_id,
            "refundable": refundable,
        }
        for item_id, invoice_id, number, line_id, refundable in rows
    }
