"""What billing tells other domains about their rows, without importing its service (which
imports theirs): whether a prescription has been invoiced, and what of it was paid."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, select

from qure.billing.models import CreditNoteLine, Invoice, InvoiceLine, InvoiceStatus
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


def paid_invoice(prescription_id: int, lock: bool = False) -> dict[str, Any] | None:
    """The prescription's PAID invoice, in one statement: {invoice_id, invoice_number,
    lines: {prescription item id: {line_id, quantity}}}, where `quantity` is what its
    lines bill less what credit notes have refunded of them (`line_id` the first line
    that bills the item: the one a credit note for a returned item names). None when the
    prescription has no PAID invoice.

    With `lock`, the invoice row is held FOR SHARE until the transaction ends: a credit
    note (which locks it FOR UPDATE) waits for the dispensing reading it, and the other
    way round."""
    refunded = (
        select(func.coalesce(func.sum(CreditNoteLine.quantity), 0))
        .where(CreditNoteLine.invoice_line_id == InvoiceLine.id)
        .scalar_subquery()
    )
    query = (
        select(
            Invoice.id,
            Invoice.number,
            InvoiceLine.prescription_item_id,
            InvoiceLine.id,
            InvoiceLine.quantity - refunded,
        )
        .outerjoin(
            InvoiceLine,
            and_(
                InvoiceLine.invoice_id == Invoice.id,
                InvoiceLine.prescription_item_id.is_not(None),
            ),
        )
        .where(Invoice.prescription_id == prescription_id, Invoice.status == InvoiceStatus.PAID)
        .order_by(InvoiceLine.id)
    )
    if lock:
        query = query.with_for_update(read=True, of=Invoice)
    rows = db.session.execute(query).all()
    if not rows:
        return None
    lines: dict[int, dict[str, Any]] = {}
    for _, _, item_id, line_id, quantity in rows:
        if item_id is None:
            continue  # an invoice of the consultation alone
        if item_id in lines:
            lines[item_id]["quantity"] += quantity
        else:
            lines[item_id] = {"line_id": line_id, "quantity": quantity}
    return {"invoice_id": rows[0][0], "invoice_number": rows[0][1], "lines": lines}


def paid_lines_for_prescription(
    prescription_id: int, lock: bool = False
) -> dict[int, Decimal] | None:
    """Per prescription item id, the quantity its PAID invoice's lines bill, less what
    credit notes have refunded of them; None when the prescription has no PAID invoice
    (see `paid_invoice`)."""
    invoice = paid_invoice(prescription_id, lock)
    if invoice is None:
        return None
    return {item_id: line["quantity"] for item_id, line in invoice["lines"].items()}
