"""What billing tells other domains about their rows, without importing its service (which
imports theirs): whether a prescription has been invoiced."""

from __future__ import annotations

from sqlalchemy import select

from qure.billing.models import Invoice, InvoiceStatus
from qure.extensions import db


def invoice_for_prescription(prescription_id: int) -> int | None:
    """The id of the prescription's invoice that is not cancelled, or None."""
    query = select(Invoice.id).where(
        Invoice.prescription_id == prescription_id, Invoice.status != InvoiceStatus.CANCELLED
    )
    return db.session.scalar(query)
