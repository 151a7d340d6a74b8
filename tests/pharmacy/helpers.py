"""What pharmacy tests start from: stocked batches and paid prescriptions."""

from __future__ import annotations

from datetime import date, timedelta

from qure.billing import service as billing
from qure.billing.models import InvoiceMode, PaymentMethod
from qure.core import clock
from qure.core.db import commit
from qure.pharmacy import stock
from tests.billing.helpers import completed_visit, medicine

INVENTORY = "/api/v1/inventory"
DISPENSING = "/api/v1/dispensing"


def in_days(days: int) -> date:
    """The clinic date `days` from today."""
    return clock.today() + timedelta(days=days)


def stocked(actor, med, *batches) -> list:
    """Receive (batch_number, quantity, days until expiry) batches of `med`."""
    return stock.stock_in(
        actor,
        {
            "medicine_id": med.id,
            "batches": [
                {"batch_number": number, "quantity": quantity, "expiry_date": in_days(days)}
                for number, quantity, days in batches
            ],
        },
    )


def paid_prescription(doctor, desk, medicines, patient=None):
    """A prescription of `medicines` ((medicine, quantity) pairs) with its AUTO invoice
    PAID at the desk; committed. Returns (prescription, invoice)."""
    _, prescription = completed_visit(doctor, medicines, patient=patient)
    invoice = billing.create(desk, {"mode": InvoiceMode.AUTO, "prescription_id": prescription.id})
    invoice, _ = billing.pay(
        desk, invoice.id, {"method": PaymentMethod.CASH, "amount": invoice.total}
    )
    commit()
    return prescription, invoice


__all__ = ["in_days", "medicine", "paid_prescription", "stocked"]
