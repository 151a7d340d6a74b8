"""The billing counter's pages (reception and admin; a pharmacist reads invoices): what is
left to bill, an invoice (edit a draft with a preview, finalise, pay, cancel, refund by
credit note), a manual invoice, finding invoices, the day's takings and its close. Thin:
every change is one billing service call in one `transaction`; templates get plain values.

Every form works without JavaScript: "Add more lines" and "Preview" are submit buttons
that come back to the same page with what was typed, nothing saved."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from io import BytesIO
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from qure.admin import settings as clinic_settings
from qure.billing import bundle_pages, receipts, service
from qure.billing.forms import (
    METHOD_LABELS,
    CancelForm,
    DayCloseForm,
    InvoiceForm,
    PayForm,
    RefundForm,
    short,
)
from qure.billing.models import InvoiceMode, InvoiceStatus, PaymentMethod
from qure.billing.qr import qr_svg
from qure.core import clock, money
from qure.core.errors import Conflict, DomainError, InvalidInput
from qure.core.forms import ActionForm, attach_errors, checked, int_arg, small_int
from qure.core.http import transaction
from qure.core.roles import roles_required
from qure.patients import service as patients
from qure.visits import service as visits

bp = Blueprint("billing", __name__, url_prefix="/billing")
# Templates compare with the members (`invoice.status == InvoiceStatus.PAID`).
bp.add_app_template_global(InvoiceStatus, "InvoiceStatus")
bp.add_app_template_global(PaymentMethod, "PaymentMethod")
PER_PAGE = 50


def rupees(value: Decimal | None) -> str:
    """An amount with two places and Indian digit grouping: 102340.5 -> "1,02,340.50"."""
    return "" if value is None else money.grouped(value)


bp.add_app_template_filter(rupees, "rupees")
bp.add_app_template_filter(short, "qty")


def _page_arg() -> int:
    return int_arg("page") or 1


def _day_arg(default: date) -> date:
    """`?date=` as ISO or as staff type it; an unreadable one is today, with a word."""
    typed = request.args.get("date", "").strip()[:40]
    if not typed:
        return default
    try:
        return clock.parse_day(typed)
    except ValueError:
        flash("That date could not be read; showing today.", "error")
        return default


# ---- plain values for the templates ------------------------------------------------------


def _patient(patient) -> dict[str, Any]:
    return {
        "id": patient.id,
        "full_name": patient.full_name,
        "mrn": patient.mrn,
        "phone": patient.phone,
    }


def _summary(invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "status": invoice.status,
        "mode": invoice.mode,
        "patient": _patient(invoice.patient),
        "invoice_date": invoice.invoice_date,
        "created_at": invoice.created_at,
        "total": invoice.total,
    }


def _visit(visit_id: int | None) -> dict[str, Any] | None:
    if visit_id is None:
        return None
    visit = visits.get_visit(visit_id)
    return {
        "id": visit.id,
        "doctor": visit.doctor.full_name,
        "completed_at": visit.completed_at,
        "diagnosis": visit.diagnosis,
    }


def _invoice(invoice) -> dict[str, Any]:
    """What the invoice page shows of an invoice."""
    refunds = service.line_refunds(invoice)
    payment = invoice.payment
    return {
        **_summary(invoice),
        "visit": _visit(invoice.visit_id),
        "lines": [
            {
                "id": line.id,
                "position": line.position,
                "kind": line.kind,
                "description": line.description,
                "hsn_sac": line.hsn_sac,
                "medicine_id": line.medicine_id,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "gst_rate": line.gst_rate,
                "value": line.value,
                "discount": line.discount,
                "taxable": line.taxable,
                "cgst": line.cgst,
                "sgst": line.sgst,
                "total": line.total,
                **refunds[line.id],
            }
            for line in invoice.lines
        ],
        "discount_type": invoice.discount_type,
        "discount_value": invoice.discount_value,
        "discount_label": _discount_label(invoice.discount_type, invoice.discount_value),
        "subtotal": invoice.subtotal,
        "discount": invoice.discount,
        "taxable": invoice.taxable,
        "cgst": invoice.cgst,
        "sgst": invoice.sgst,
        "in_words": money.in_words(invoice.total),
        "payment": (
            {
                "method": payment.method,
                "method_label": METHOD_LABELS[payment.method],
                "amount": payment.amount,
                "reference": payment.reference,
                "tendered": payment.tendered,
                "change": payment.change,
                "received_by": payment.received_by.full_name,
                "received_at": payment.received_at,
            }
            if payment
            else None
        ),
        "credit_notes": [_note_summary(note) for note in invoice.credit_notes],
        "refundable": service.refundable_amount(invoice),
        "cancel_reason": invoice.cancel_reason,
        "cancelled_at": invoice.cancelled_at,
        "finalized_at": invoice.finalized_at,
    }


def _method_words(method: str) -> str:
    """A method inside a sentence: "by cash", "by card", "by UPI"."""
    label = METHOD_LABELS[method]
    return label if label.isupper() else label.lower()


def _discount_label(kind: str | None, value: Decimal | None) -> str:
    """ "10%" or "₹50.00": the discount as it was given."""
    if not kind or value is None:
        return ""
    return f"{short(value)}%" if kind == money.PERCENT else f"₹{rupees(value)}"


def _note_summary(note) -> dict[str, Any]:
    return {
        "id": note.id,
        "number": note.number,
        "total": note.total,
        "method": _method_words(note.method),
        "reason": note.reason,
        "issued_on": note.issued_on,
    }


def _close(close) -> dict[str, Any] | None:
    if close is None:
        return None
    return {
        "day": close.day,
        "expected_cash": close.expected_cash,
        "cash_counted": close.cash_counted,
        "variance": close.variance,
        "payments": close.payments,
        "refunds": close.refunds,
        "net": close.payments - close.refunds,
        "note": close.note,
        "closed_by": close.closed_by.full_name,
        "closed_at": close.closed_at,
    }


def _takings(figures: dict[str, Any]) -> dict[str, Any]:
    """A day's takings as rows per method (payments, refunds, expected) and the totals."""
    paid = figures.get("payments_by_method") or {}
    back = figures.get("refunds_by_method") or {}
    return {
        "date": figures["date"],
        "rows": [
            {
                "label": label,
                "payments": paid.get(method),
                "refunds": back.get(method),
                "net": figures["by_method"][method],
            }
            for method, label in METHOD_LABELS.items()
        ],
        "payments": figures["payments"],
        "refunds": figures["refunds"],
        "net": figures["net"],
    }


def _default_rate() -> int:
    return clinic_settings.get_settings()["default_gst_rate"]


def _refused(error: DomainError, invoice_id: int):
    """A refusal that is no mistake in a field (invoice_not_draft, already_paid,
    day_closed, ...): its message on the invoice's page."""
    flash(error.message, "error")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


# ---- the counter's home -------------------------------------------------------------------


@bp.get("")
@roles_required(*service.EDITORS)
def index():
    """What is left to bill, the unpaid invoices and today's takings."""
    to_bill = service.to_bill(_page_arg(), PER_PAGE)
    unpaid = [
        _summary(i) for i in service.list_invoices(status=InvoiceStatus.PENDING, per_page=20).items
    ]
    drafts = [
        _summary(i) for i in service.list_invoices(status=InvoiceStatus.DRAFT, per_page=20).items
    ]
    return render_template(
        "billing/index.html",
        to_bill=to_bill,
        visits=[
            {
                "id": v["id"],
                "patient": v["patient"],
                "doctor": v["doctor"]["full_name"],
                "diagnosis": v["diagnosis"],
                "completed_at": v["completed_at"],
            }
            for v in to_bill.items
        ],
        unpaid=unpaid,
        drafts=drafts,
        takings=_takings(service.takings(clock.today())),
        action=ActionForm(),
    )


@bp.post("/visits/<int:visit_id>/invoice")
@roles_required(*service.EDITORS)
def make_invoice(visit_id: int):
    """One click: the AUTO invoice of a completed visit, as a draft to review."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with transaction(None) as outcome:
        invoice = service.create(g.actor, {"mode": InvoiceMode.AUTO, "visit_id": visit_id})
    error = outcome.error
    if error is None:
        flash("Draft invoice made: check it, then finalise.", "success")
        return redirect(url_for(".invoice", invoice_id=invoice.id))
    flash(error.message, "error")
    if error.code == "invoice_exists" and error.details.get("invoice_id"):
        return redirect(url_for(".invoice", invoice_id=error.details["invoice_id"]))
    return redirect(url_for(".index"))


# ---- an invoice ---------------------------------------------------------------------------


def _invoice_page(invoice_id: int, status: int = 200, **forms):
    invoice = service.get_invoice(invoice_id)
    values = _invoice(invoice)
    settings = clinic_settings.get_settings()  # once: the default GST rate and the UPI ID
    edit = forms.get("edit")
    if edit is None and invoice.status == InvoiceStatus.DRAFT:
        edit = InvoiceForm(formdata=None)
        edit.fill(values, extra_rows=1 if invoice.mode == InvoiceMode.MANUAL else 0)
    if edit is not None:
        edit.rate_choices(settings["default_gst_rate"])
    pay = forms.get("pay")
    if pay is None:
        pay = PayForm(formdata=None)
        pay.amount.data, pay.key.data = str(invoice.total), uuid.uuid4().hex
    refund = forms.get("refund")
    if refund is None:
        refund = RefundForm(formdata=None)
        refund.fill(values["lines"], _offered_refund())
        if refund.lines and any(row.form.chosen.data for row in refund.lines):
            refund.reason.data = "Returned unopened at the pharmacy"
    link = service.upi_link(invoice, settings)
    return render_template(
        "billing/invoice.html",
        invoice=values,
        manual=invoice.mode == InvoiceMode.MANUAL,
        edit=edit,
        preview=forms.get("preview"),
        cancel=forms.get("cancel") or CancelForm(formdata=None),
        pay=pay,
        refund=refund,
        refund_lines={line["id"]: line for line in values["lines"]},
        upi_link=link,
        upi_qr=qr_svg(link) if link else None,
        action=ActionForm(),
    ), status


def _offered_refund() -> dict[int, str]:
    """`?refund_line=<id>&refund_qty=<n>`: the line and quantity the pharmacy's record of
    a returned item offers to refund (ticked, not issued: the desk still confirms)."""
    line, quantity = int_arg("refund_line"), int_arg("refund_qty")
    return {line: str(quantity)} if line and quantity else {}


@bp.get("/<int:invoice_id>")
@roles_required(*service.READERS)
def invoice(invoice_id: int):
    return _invoice_page(invoice_id)


def _lines_and_discount(form: InvoiceForm, invoice=None):
    """What the form asks the service: the typed rows (a MANUAL invoice) or the draft's
    own lines (AUTO: only the discount is changed here), and the discount."""
    if invoice is not None and invoice.mode == InvoiceMode.AUTO:
        items = service.line_items(invoice)
        return items, list(range(len(items))), form.discount()
    items, rows = form.items()
    return items, rows, form.discount()


@bp.post("/<int:invoice_id>")
@roles_required(*service.EDITORS)
def edit(invoice_id: int):
    """A draft's form: "Add more lines", "Preview" (priced, not saved) or "Save"."""
    found = service.get_invoice(invoice_id)
    form = InvoiceForm()
    form.rate_choices(_default_rate())
    if not checked(form):
        return _invoice_page(invoice_id, 422, edit=form)
    try:
        service.ensure_draft(found)
    except Conflict as error:
        return _refused(error, invoice_id)
    manual = found.mode == InvoiceMode.MANUAL
    if "more" in request.form and manual:
        form.add_rows()
        return _invoice_page(invoice_id, edit=form)
    items, rows, discount = _lines_and_discount(form, found)
    if "preview" in request.form:
        try:
            priced = service.preview(items, discount)
        except InvalidInput as error:
            form.attach(error, rows)
            return _invoice_page(invoice_id, 422, edit=form)
        return _invoice_page(invoice_id, edit=form, preview=priced)
    data = {"items": items, "discount": discount} if manual else {"discount": discount}
    with transaction(None) as outcome:
        service.update(g.actor, invoice_id, data)
    if isinstance(outcome.error, InvalidInput):
        form.attach(outcome.error, rows)
        return _invoice_page(invoice_id, 422, edit=form)
    if outcome.failed:
        return _refused(outcome.error, invoice_id)
    flash("Saved.", "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.post("/<int:invoice_id>/finalize")
@roles_required(*service.EDITORS)
def finalize(invoice_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    with transaction(None) as outcome:
        invoice = service.finalize(g.actor, invoice_id)
    if outcome.failed:
        return _refused(outcome.error, invoice_id)
    flash(f"Finalised as {invoice.number}.", "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.post("/<int:invoice_id>/cancel")
@roles_required(*service.EDITORS)
def cancel(invoice_id: int):
    form = CancelForm()
    if not checked(form):
        return _invoice_page(invoice_id, 422, cancel=form)
    with transaction(None) as outcome:
        service.cancel(g.actor, invoice_id, {"reason": form.reason.data})
    if isinstance(outcome.error, InvalidInput):
        attach_errors(form, outcome.error)
        return _invoice_page(invoice_id, 422, cancel=form)
    if outcome.failed:
        return _refused(outcome.error, invoice_id)
    flash("The invoice is cancelled.", "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.post("/<int:invoice_id>/pay")
@roles_required(*service.EDITORS)
def pay(invoice_id: int):
    """Take the payment; a second press of the same form answers the first again."""
    form = PayForm()
    if not checked(form):
        return _invoice_page(invoice_id, 422, pay=form)
    with transaction(None) as outcome:
        invoice, _ = service.pay(g.actor, invoice_id, form.payment(), form.key.data or None)
    if isinstance(outcome.error, InvalidInput):
        attach_errors(form, outcome.error)
        return _invoice_page(invoice_id, 422, pay=form)
    if outcome.failed:
        return _refused(outcome.error, invoice_id)
    payment = invoice.payment
    message = f"Paid: ₹{rupees(payment.amount)} by {_method_words(payment.method)}."
    if payment.change is not None:
        message += f" Give ₹{rupees(payment.change)} change."
    flash(message, "success")
    return redirect(url_for(".invoice", invoice_id=invoice_id))


@bp.post("/<int:invoice_id>/refund")
@roles_required(*service.EDITORS)
def refund(invoice_id: int):
    """A credit note for the ticked lines and quantities of a paid invoice."""
    form = RefundForm()
    if not checked(form):
        return _invoice_page(invoice_id, 422, refund=form)
    items, rows = form.items()
    if not items:
        form.form_errors.append("Tick the lines to refund.")
        return _invoice_page(invoice_id, 422, refund=form)
    data = {"items": items, "reason": form.reason.data, "method": form.method.data}
    with transaction(None) as outcome:
        note = service.issue_credit_note(g.actor, invoice_id, data)
    if isinstance(outcome.error, InvalidInput):
        form.attach(outcome.error, rows)
        return _invoice_page(invoice_id, 422, refund=form)
    if outcome.failed:
        return _refused(outcome.error, invoice_id)
    flash(
        f"Credit note {note.number}: ₹{rupees(note.total)} back by {_method_words(note.method)}.",
        "success",
    )
    return redirect(url_for(".credit_note", credit_note_id=note.id))


def _pdf(pdf: bytes, name: str):
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=name)


@bp.get("/<int:invoice_id>/receipt.pdf")
@roles_required(*service.READERS)
def receipt(invoice_id: int):
    """The receipt (A4, or `?format=thermal` for an 80 mm roll) for a signed-in desk."""
    return _pdf(*receipts.receipt_pdf(invoice_id, thermal=request.args.get("format") == "thermal"))


# ---- credit notes -------------------------------------------------------------------------


@bp.get("/credit-notes/<int:credit_note_id>")
@roles_required(*service.READERS)
def credit_note(credit_note_id: int):
    note = service.get_credit_note(credit_note_id)
    invoice = note.invoice
    values = {
        **_note_summary(note),
        "taxable": note.taxable,
        "cgst": note.cgst,
        "sgst": note.sgst,
        "in_words": money.in_words(note.total),
        "created_by": note.created_by.full_name,
        "created_at": note.created_at,
        "invoice": {"id": invoice.id, "number": invoice.number},
        "patient": _patient(invoice.patient),
        "lines": [
            {
                "description": row.invoice_line.description,
                "quantity": row.quantity,
                "gst_rate": row.invoice_line.gst_rate,
                "taxable": row.taxable,
                "cgst": row.cgst,
                "sgst": row.sgst,
                "total": row.total,
            }
            for row in note.lines
        ],
    }
    return render_template("billing/credit_note.html", note=values)


@bp.get("/credit-notes/<int:credit_note_id>.pdf")
@roles_required(*service.READERS)
def credit_note_pdf(credit_note_id: int):
    return _pdf(*receipts.credit_note_pdf(credit_note_id))


# ---- a manual invoice ---------------------------------------------------------------------


def _new_page(form: InvoiceForm, patient, status: int = 200, preview=None):
    form.rate_choices(_default_rate())
    return render_template(
        "billing/new.html",
        form=form,
        patient=_patient(patient),
        preview=preview,
    ), status


@bp.get("/new")
@roles_required(*service.EDITORS)
def new_invoice():
    """A MANUAL invoice: the patient first (from their page, or found here), then lines."""
    patient_id = int_arg("patient_id")
    if patient_id is None:
        q = request.args.get("q", "").strip()[:120]
        found = patients.search(q, 1, 10, False, g.actor).items if q else []
        return render_template(
            "billing/choose_patient.html",
            q=q,
            found=[_patient(p) for p in found],
        )
    patient = patients.get_patient(patient_id)
    form = InvoiceForm(formdata=None)
    form.patient_id.data = str(patient.id)
    form.add_rows()
    return _new_page(form, patient)


@bp.post("/new")
@roles_required(*service.EDITORS)
def create_invoice():
    form = InvoiceForm()
    form.rate_choices(_default_rate())
    valid = checked(form)
    patient_id = small_int(form.patient_id.data)
    if patient_id is None:
        flash("Choose the patient first.", "error")
        return redirect(url_for(".new_invoice"))
    patient = patients.get_patient(patient_id)
    if not valid:
        return _new_page(form, patient, 422)
    if "more" in request.form:
        form.add_rows()
        return _new_page(form, patient)
    items, rows, discount = _lines_and_discount(form)
    if "preview" in request.form:
        try:
            priced = service.preview(items, discount)
        except InvalidInput as error:
            form.attach(error, rows)
            return _new_page(form, patient, 422)
        return _new_page(form, patient, preview=priced)
    data = {
        "mode": InvoiceMode.MANUAL,
        "patient_id": patient.id,
        "items": items,
        "discount": discount,
    }
    with transaction(None) as outcome:
        invoice = service.create(g.actor, data)
    if outcome.failed:
        form.attach(outcome.error, rows)
        return _new_page(form, patient, outcome.status)
    flash("Draft invoice made: check it, then finalise.", "success")
    return redirect(url_for(".invoice", invoice_id=invoice.id))


# ---- finding invoices ---------------------------------------------------------------------


@bp.get("/invoices")
@roles_required(*service.READERS)
def invoices():
    """Invoices newest first, by patient (name or MRN), status, number and date."""
    args = request.args
    q = args.get("q", "").strip()[:120]
    number = args.get("number", "").strip()[:24]
    status = args.get("status", "")
    status = status if status in set(InvoiceStatus) else ""
    typed_day = args.get("date", "").strip()[:40]
    day = None
    if typed_day:
        try:
            day = clock.parse_day(typed_day)
        except ValueError:
            flash("That date could not be read: give it like 07 Jan 2030.", "error")
    patient_id = int_arg("patient_id")
    page = service.list_invoices(
        patient_id=patient_id,
        status=status or None,
        day=day,
        number=number or None,
        patient_q=q or None,
        page=_page_arg(),
        per_page=PER_PAGE,
    )
    filters = {
        "q": q or None,
        "number": number or None,
        "status": status or None,
        "date": day.isoformat() if day else None,
        "patient_id": patient_id,
    }
    return render_template(
        "billing/invoices.html",
        page=page,
        items=[_summary(i) for i in page.items],
        q=q,
        number=number,
        status=status,
        typed_day=clock.format_day(day) if day else typed_day,
        statuses=list(InvoiceStatus),
        filters=filters,
    )


# ---- the day's takings and its close ------------------------------------------------------


def _day_close_page(day: date, form: DayCloseForm | None = None, status: int = 200):
    report = service.day_report(day)
    if form is None:
        form = DayCloseForm(formdata=None)
        form.date.data = day.isoformat()
    return render_template(
        "billing/day_close.html",
        day=day,
        today=clock.today(),
        takings=_takings(report),
        closed=report["closed"],
        close=_close(report["close"]),
        form=form,
        action=ActionForm(),
    ), status


@bp.get("/day-close")
@roles_required(*service.EDITORS)
def day_close():
    return _day_close_page(_day_arg(clock.today()))


@bp.post("/day-close")
@roles_required(*service.EDITORS)
def close_day():
    """The cashier's close: the cash counted and a note; the day is read-only after."""
    form = DayCloseForm()
    try:
        day = date.fromisoformat(form.date.data or "")
    except ValueError:
        day = clock.today()
    if not checked(form):
        return _day_close_page(day, form, 422)
    data = {"date": form.date.data, "cash_counted": form.cash_counted.data, "note": form.note.data}
    with transaction(None) as outcome:
        service.close_day(g.actor, data)
    if isinstance(outcome.error, InvalidInput):
        attach_errors(form, outcome.error, {"date": "day"})  # the hidden day: above the form
        return _day_close_page(day, form, 422)
    if outcome.failed:
        flash(outcome.error.message, "error")
    else:
        flash(f"{clock.format_day(day)} is closed.", "success")
    return redirect(url_for(".day_close", date=day.isoformat()))


@bp.get("/day-closes")
# The cashier's (SPEC 0: invoices and the day close are ADMIN and RECEPTION), as the API's
# /billing/day-closes: the desk's day-close page already shows any past day's close.
@roles_required(*service.EDITORS)
def day_closes():
    page = service.past_closes(_page_arg(), PER_PAGE)
    return render_template(
        "billing/day_closes.html", page=page, items=[_close(c) for c in page.items]
    )


# The day's receipts as one PDF: pages of their own module, on this blueprint.
bundle_pages.register(bp)
