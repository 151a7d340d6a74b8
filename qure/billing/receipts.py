"""Receipt and credit-note PDFs (SPEC 8): an invoice's receipt on A4 or on an 80 mm
thermal roll, and a credit note on A4, with the clinic's saved settings in the header.

Everything printed is worked out here as plain values (text, already formatted); the
templates under templates/pdf/ only lay it out, and Jinja escapes every value, so a
patient named `<b>Asha</b>` prints as those characters.

A DRAFT invoice has no number and may still change: its receipt prints, marked DRAFT
and "not a tax invoice" (the desk can hand the patient what the bill will be), with no
number and no QR code. A PENDING invoice is UNPAID, with the UPI QR code for its exact
total when the clinic's UPI ID is set; a PAID one carries the payment; a CANCELLED one
says so and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from qure.admin import settings as clinic_settings
from qure.auth.models import User
from qure.billing import service
from qure.billing.models import CreditNote, Invoice, InvoiceStatus, PaymentMethod
from qure.billing.qr import qr_png
from qure.core import clock, money, phone
from qure.core.money import PERCENT
from qure.core.templating import clinic_datetime
from qure.extensions import db
from qure.visits.models import Visit

STYLESHEET = "css/receipt.css"
# How a payment method reads in a sentence ("Paid by cash", "refunded by UPI").
METHODS = {m: m.value if m == PaymentMethod.UPI else m.value.lower() for m in PaymentMethod}
# The stamp on a receipt, by the invoice's status: the word and its style.
STAMPS = {
    InvoiceStatus.DRAFT: (InvoiceStatus.DRAFT.value, "draft"),
    InvoiceStatus.PENDING: ("UNPAID", "unpaid"),
    InvoiceStatus.PAID: (InvoiceStatus.PAID.value, "paid"),
    InvoiceStatus.CANCELLED: (InvoiceStatus.CANCELLED.value, "cancelled"),
}
TITLES = {
    InvoiceStatus.DRAFT: "Draft bill",
    InvoiceStatus.PENDING: "Tax invoice",
    InvoiceStatus.PAID: "Tax invoice / receipt",
    InvoiceStatus.CANCELLED: "Tax invoice (cancelled)",
}
BANNERS = {
    InvoiceStatus.DRAFT: "DRAFT - not a tax invoice. Amounts may change until it is finalised.",
    InvoiceStatus.CANCELLED: "CANCELLED - this invoice is void; nothing is due.",
}


def _patient(patient) -> dict[str, str]:
    return {
        "full_name": patient.full_name,
        "mrn": patient.mrn,
        "phone": phone.display(patient.phone),
    }


def _doctor(visit_id: int | None) -> dict[str, Any] | None:
    """The doctor of the visit an invoice bills (none for a MANUAL invoice without one)."""
    if visit_id is None:
        return None
    row = db.session.execute(
        select(User.full_name, User.qualification, User.registration_number)
        .join(Visit, Visit.doctor_id == User.id)
        .where(Visit.id == visit_id)
    ).one_or_none()
    return dict(row._mapping) if row else None


def receipt_values(invoice: Invoice, thermal: bool = False) -> dict[str, Any]:
    """Everything an invoice's receipt prints, as plain values."""
    settings = clinic_settings.get_settings()
    status = InvoiceStatus(invoice.status)
    word, css = STAMPS[status]
    payment = invoice.payment
    link = service.upi_link(invoice, settings)
    refunded = service.refunded_amount(invoice)
    discount_label = None
    if invoice.discount_type == PERCENT and invoice.discount_value is not None:
        discount_label = f"{money.quantity_text(invoice.discount_value)}%"
    return {
        "thermal": thermal,
        "title": TITLES[status],
        "banner": BANNERS.get(status),
        "stamp": {"word": word, "css": css},
        "clinic": clinic_settings.letterhead(settings),
        "invoice": {
            "number": invoice.number,
            "date": clock.format_day(invoice.invoice_date),
            "cancel_reason": invoice.cancel_reason if status == InvoiceStatus.CANCELLED else None,
        },
        "patient": _patient(invoice.patient),
        "doctor": _doctor(invoice.visit_id),
        "lines": [
            {
                "n": n,
                "description": line.description,
                "hsn_sac": line.hsn_sac,
                "quantity": money.quantity_text(line.quantity),
                "unit_price": money.grouped(line.unit_price),
                "value": money.grouped(line.value),
                "discount": money.grouped(line.discount),
                "has_discount": line.discount > 0,
                "taxable": money.grouped(line.taxable),
                "gst_rate": line.gst_rate,
                "cgst": money.grouped(line.cgst),
                "sgst": money.grouped(line.sgst),
                "total": money.grouped(line.total),
            }
            for n, line in enumerate(invoice.lines, 1)
        ],
        "totals": {
            name: money.grouped(getattr(invoice, name))
            for name in ("subtotal", "discount", "taxable", "cgst", "sgst", "total")
        },
        "discount_label": discount_label,
        "in_words": money.in_words(invoice.total),
        "payment": {
            "method": METHODS[PaymentMethod(payment.method)],
            "reference": payment.reference,
            "tendered": money.grouped(payment.tendered) if payment.tendered is not None else None,
            "change": money.grouped(payment.change) if payment.change is not None else None,
            "received_at": clinic_datetime(payment.received_at),
        }
        if payment is not None and status == InvoiceStatus.PAID
        else None,
        "credit_notes": [
            {
                "number": note.number,
                "date": clock.format_day(note.issued_on),
                "method": METHODS[PaymentMethod(note.method)],
                "total": money.grouped(note.total),
            }
            for note in invoice.credit_notes
        ],
        "refunded": money.grouped(refunded),
        "refundable": money.grouped(service.refundable_amount(invoice)),
        "qr": link,  # the UPI link its QR code (the image "upi-qr.png") encodes
        "upi_id": settings["upi_id"],
        "footer": "Thank you. This is a computer-generated document; no signature is needed.",
    }


def _file_part(number: str) -> str:
    return number.replace("/", "-")


def receipt_pdf(invoice_id: int, thermal: bool = False) -> tuple[bytes, str]:
    """An invoice's receipt: A4, or with `thermal` one 80 mm page as long as the receipt.
    Returns (the PDF, its file name `receipt-INV-2029-30-000001.pdf`; a draft's is
    `receipt-draft-<id>.pdf`). Raises NotFound `invoice_not_found`."""
    # WeasyPrint takes about a second to import: loaded at the first print, not at start.
    from qure.core.pdf import render_pdf

    invoice = service.get_invoice(invoice_id)
    values = receipt_values(invoice, thermal)
    images = {"upi-qr.png": qr_png(values["qr"])} if values["qr"] else None
    pdf = render_pdf("pdf/receipt.html", STYLESHEET, roll=thermal, images=images, **values)
    name = _file_part(invoice.number) if invoice.number else f"draft-{invoice.id}"
    return pdf, f"receipt-{name}{'-thermal' if thermal else ''}.pdf"


def receipt_document(invoice_id: int):
    """An invoice's A4 receipt, laid out but not yet written (for a day's bundle, which
    joins many in one file). Raises NotFound `invoice_not_found`."""
    from qure.core.pdf import render_document

    values = receipt_values(service.get_invoice(invoice_id))
    images = {"upi-qr.png": qr_png(values["qr"])} if values["qr"] else None
    return render_document("pdf/receipt.html", STYLESHEET, images=images, **values)


def credit_note_values(note: CreditNote) -> dict[str, Any]:
    """Everything a credit note prints, as plain values."""
    settings = clinic_settings.get_settings()
    invoice = note.invoice
    return {
        "clinic": clinic_settings.letterhead(settings),
        "number": note.number,
        "date": clock.format_day(note.issued_on),
        "invoice": {"number": invoice.number, "date": clock.format_day(invoice.invoice_date)},
        "patient": _patient(invoice.patient),
        "lines": [
            {
                "n": n,
                "description": line.invoice_line.description,
                "hsn_sac": line.invoice_line.hsn_sac,
                "gst_rate": line.invoice_line.gst_rate,
                "quantity": money.quantity_text(line.quantity),
                "taxable": money.grouped(line.taxable),
                "cgst": money.grouped(line.cgst),
                "sgst": money.grouped(line.sgst),
                "total": money.grouped(line.total),
            }
            for n, line in enumerate(note.lines, 1)
        ],
        "totals": {
            name: money.grouped(getattr(note, name))
            for name in ("taxable", "cgst", "sgst", "total")
        },
        "in_words": money.in_words(note.total),
        "reason": note.reason,
        "method": METHODS[PaymentMethod(note.method)],
        "issued_by": note.created_by.full_name,
    }


def credit_note_pdf(credit_note_id: int) -> tuple[bytes, str]:
    """A credit note on A4. Returns (the PDF, `credit-note-CN-2029-30-000001.pdf`).
    Raises NotFound `credit_note_not_found`."""
    from qure.core.pdf import render_pdf

    note = service.get_credit_note(credit_note_id)
    values = credit_note_values(note)
    pdf = render_pdf("pdf/credit_note.html", STYLESHEET, **values)
    return pdf, f"credit-note-{_file_part(note.number)}.pdf"
