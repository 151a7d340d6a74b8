"""`/api/v1/billing` and `/api/v1/credit-notes`: thin, every change through the service."""

from __future__ import annotations

from io import BytesIO

from flask import g, request, send_file, url_for
from flask_smorest import Blueprint

from qure.billing import receipts, service
from qure.billing.schemas import (
    CreditNoteIn,
    CreditNoteSchema,
    DayArgs,
    DayCloseIn,
    DayClosePage,
    DayCloseSchema,
    DayReportSchema,
    InvoiceArgs,
    InvoiceCancelIn,
    InvoiceIn,
    InvoicePage,
    InvoicePatch,
    InvoiceSchema,
    PayIn,
    ReceiptArgs,
    TakingsSchema,
    ToBillPage,
    listed,
)
from qure.core import clock
from qure.core.http import transactional
from qure.core.roles import api_roles
from qure.core.schemas import ErrorSchema, PageArgs, listed_page, page_body

blp = Blueprint("api_billing", __name__, url_prefix="/api/v1/billing", description="Billing")
notes_blp = Blueprint(
    "api_credit_notes", __name__, url_prefix="/api/v1/credit-notes", description="Billing"
)


def _pdf(pdf: bytes, name: str):
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=name)


@blp.post("")
@api_roles(*service.EDITORS)
@blp.arguments(InvoiceIn)
@blp.response(201, InvoiceSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(
    409, schema=ErrorSchema, description="visit_not_completed; invoice_exists (id in details)"
)
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def create(body):
    """Make a DRAFT invoice: AUTO from a completed visit's prescription, or MANUAL lines."""
    invoice = service.create(g.actor, body)
    location = url_for("api_billing.get_invoice", invoice_id=invoice.id)
    return invoice, 201, {"Location": location}


@blp.get("")
@api_roles(*service.READERS)
@blp.arguments(InvoiceArgs, location="query")
@blp.response(200, InvoicePage)
def list_invoices(args):
    """Invoices newest first, by patient, status, date and number."""
    page = service.list_invoices(
        patient_id=args.get("patient_id"),
        status=args.get("status"),
        day=args.get("date"),
        number=args.get("number"),
        page=args["page"],
        per_page=args["per_page"],
    )
    return page_body(page)


@blp.get("/to-bill")
@api_roles(*service.EDITORS)
@blp.arguments(PageArgs, location="query")
@blp.response(200, ToBillPage)
def to_bill(args):
    """Completed visits not yet invoiced, the latest first."""
    # Items built as ToBillPage documents them (`listed`), not dumped again.
    page = service.to_bill(args["page"], args["per_page"])
    return listed_page(page, listed(page.items))


@blp.get("/takings")
@api_roles(*service.EDITORS)
@blp.arguments(DayArgs, location="query")
@blp.response(200, TakingsSchema)
def takings(args):
    """A clinic day's takings by method: payments less refunds."""
    return service.takings(args.get("date") or clock.today())


@blp.post("/day-close")
@api_roles(*service.EDITORS)
@blp.arguments(DayCloseIn)
@blp.response(201, DayCloseSchema)
@blp.alt_response(409, schema=ErrorSchema, description="day_closed")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def close_day(body):
    """Close a clinic day: expected takings, the cash counted, the variance and a note."""
    return service.close_day(g.actor, body), 201


@blp.get("/day-close")
@api_roles(*service.EDITORS)
@blp.arguments(DayArgs, location="query")
@blp.response(200, DayReportSchema)
def day_report(args):
    """A day's close report: as closed (read-only), or the takings as they stand."""
    return service.day_report(args.get("date") or clock.today())


@blp.get("/day-closes")
@api_roles(*service.EDITORS)
@blp.arguments(PageArgs, location="query")
@blp.response(200, DayClosePage)
def past_closes(args):
    """Every day's close, the latest first."""
    return page_body(service.past_closes(args["page"], args["per_page"]))


@blp.get("/<int:invoice_id>")
@api_roles(*service.READERS)
@blp.response(200, InvoiceSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_invoice(invoice_id: int):
    """One invoice with its lines, payment and credit notes."""
    return service.get_invoice(invoice_id)


@blp.patch("/<int:invoice_id>")
@api_roles(*service.EDITORS)
@blp.arguments(InvoicePatch)
@blp.response(200, InvoiceSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="invoice_not_draft")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update(body, invoice_id: int):
    """Change a DRAFT's lines (all of them) and/or its discount (null removes it)."""
    return service.update(g.actor, invoice_id, body)


@blp.post("/<int:invoice_id>/finalize")
@api_roles(*service.EDITORS)
@blp.response(200, InvoiceSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="invoice_not_draft")
@transactional
def finalize(invoice_id: int):
    """Give a DRAFT the next invoice number of the financial year (PENDING)."""
    return service.finalize(g.actor, invoice_id)


@blp.post("/<int:invoice_id>/cancel")
@api_roles(*service.EDITORS)
@blp.arguments(InvoiceCancelIn)
@blp.response(200, InvoiceSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="already_paid, invoice_cancelled")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def cancel(body, invoice_id: int):
    """Cancel a DRAFT or PENDING invoice with a reason."""
    return service.cancel(g.actor, invoice_id, body)


@blp.post("/<int:invoice_id>/pay")
@api_roles(*service.EDITORS)
@blp.arguments(PayIn)
@blp.response(200, InvoiceSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="already_paid, invoice_cancelled, day_closed, idempotency_key_reused",
)
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def pay(body, invoice_id: int):
    """Take the payment of exactly the total. An `Idempotency-Key` header makes a retry
    safe: the same key and body answer the first payment again (with `Idempotent-Replayed:
    true`); another body is 409."""
    key = request.headers.get("Idempotency-Key")
    invoice, replayed = service.pay(g.actor, invoice_id, body, key)
    return invoice, 200, {"Idempotent-Replayed": "true"} if replayed else {}


@blp.get("/<int:invoice_id>/receipt")
@api_roles(*service.READERS)
@blp.arguments(ReceiptArgs, location="query")
@blp.response(200, content_type="application/pdf", description="A4, or an 80 mm roll")
@blp.alt_response(404, schema=ErrorSchema)
def receipt(args, invoice_id: int):
    """The receipt as a PDF (`?format=thermal` for an 80 mm thermal printer): PAID or
    UNPAID in large letters, the UPI QR code on an unpaid one when the clinic's UPI ID is
    set. A DRAFT prints too, without a number, marked "DRAFT - not a tax invoice"."""
    return _pdf(*receipts.receipt_pdf(invoice_id, thermal=args["format"] == "thermal"))


@blp.post("/<int:invoice_id>/credit-notes")
@api_roles(*service.EDITORS)
@blp.arguments(CreditNoteIn)
@blp.response(201, CreditNoteSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(
    409, schema=ErrorSchema, description="invoice_not_paid, nothing_to_refund, day_closed"
)
@blp.alt_response(422, schema=ErrorSchema, description="Names the item asking more than is left")
@transactional
def credit_note(body, invoice_id: int):
    """Refund chosen lines (or everything still refundable) of a PAID invoice."""
    note = service.issue_credit_note(g.actor, invoice_id, body)
    location = url_for("api_credit_notes.get_credit_note", credit_note_id=note.id)
    return note, 201, {"Location": location}


@notes_blp.get("/<int:credit_note_id>")
@api_roles(*service.READERS)
@notes_blp.response(200, CreditNoteSchema)
@notes_blp.alt_response(404, schema=ErrorSchema)
def get_credit_note(credit_note_id: int):
    """One credit note."""
    return service.get_credit_note(credit_note_id)


@notes_blp.get("/<int:credit_note_id>/pdf")
@api_roles(*service.READERS)
@notes_blp.response(200, content_type="application/pdf", description="The credit note")
@notes_blp.alt_response(404, schema=ErrorSchema)
def credit_note_pdf(credit_note_id: int):
    """The credit note as a PDF (A4)."""
    return _pdf(*receipts.credit_note_pdf(credit_note_id))
