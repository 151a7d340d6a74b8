"""The dispensing counter's pages: what is to dispense (paid, not fully handed over,
oldest first), the dispense screen (the plan before confirming: which batches each item
comes from, what is short, partial dispensing), the dispensing record with its returns
and the credit note to offer, the slip, and the Schedule H1 register. Thin: every change
is one dispensing service call in one `transaction`; templates get plain values."""

from __future__ import annotations

from datetime import date
from io import BytesIO
from typing import Any

from flask import (
    Blueprint,
    Response,
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
from qure.core import clock
from qure.core.errors import Conflict, InvalidInput
from qure.core.forms import checked, int_arg
from qure.core.http import transaction
from qure.core.roles import roles_required
from qure.pharmacy import dispensing
from qure.pharmacy.forms import DispenseForm, RegisterRangeForm, ReturnForm
from qure.prescriptions.models import DispenseStatus

bp = Blueprint("dispensing", __name__, url_prefix="/pharmacy")
bp.add_app_template_global(DispenseStatus, "DispenseStatus")
PER_PAGE = 50


# ---- what is to dispense -----------------------------------------------------------------


@bp.get("/dispense")
@roles_required(*dispensing.COUNTER)
def queue():
    """Prescriptions whose invoice is PAID and that are not fully dispensed, oldest first."""
    found = dispensing.to_dispense(int_arg("page") or 1, PER_PAGE)
    rows = [
        {
            "id": p["id"],
            "created_at": p["created_at"],
            "patient": p["patient"],
            "doctor": p["doctor"]["full_name"],
            "medicines": [
                {
                    "name": i["medicine"]["name"],
                    "strength": i["medicine"]["strength"],
                    "quantity": i["quantity"],
                }
                for i in p["items"]
            ],
            "partial": p["dispense_status"] == DispenseStatus.PARTIALLY_DISPENSED,
        }
        for p in found.items
    ]
    return render_template("pharmacy/to_dispense.html", results=found, rows=rows)


def _dispense_page(prescription_id: int, form: DispenseForm, status: int = 200, short=None):
    plan = dispensing.preview(prescription_id)
    return render_template("pharmacy/dispense.html", plan=plan, form=form, refused=short), status


@bp.get("/dispense/<int:prescription_id>")
@roles_required(*dispensing.COUNTER)
def prescription(prescription_id: int):
    """The dispense screen: what each item will be dispensed from, before confirming."""
    return _dispense_page(prescription_id, DispenseForm(formdata=None))


@bp.post("/dispense/<int:prescription_id>")
@roles_required(*dispensing.DISPENSERS)
def dispense(prescription_id: int):
    form = DispenseForm()
    if not checked(form):
        return _dispense_page(prescription_id, form, 422)
    data = {"prescription_id": prescription_id, "allow_partial": bool(form.allow_partial.data)}
    with transaction(None) as outcome:
        done = dispensing.dispense(g.actor, data)
    error = outcome.error
    if error is None:
        words = "Part dispensed" if done["partial"] else "Dispensed"
        flash(f"{words}: print the slip and hand it over with the medicines.", "success")
        return redirect(url_for(".record", dispensing_id=done["id"]))
    if error.code == "insufficient_stock":
        # The stock changed since the screen was drawn, or it was short and partial was
        # not ticked: the screen again, with what is short now.
        return _dispense_page(prescription_id, form, 409, short=error.message)
    flash(error.message, "error")
    if error.code == "already_dispensed":
        done = dispensing.for_prescription(prescription_id)
        if done:
            return redirect(url_for(".record", dispensing_id=done[-1]))
    return redirect(url_for(".prescription", prescription_id=prescription_id))


# ---- a dispensing ------------------------------------------------------------------------


def _record_page(dispensing_id: int, form: ReturnForm | None = None, status: int = 200):
    record = dispensing.get_dispensing(dispensing_id)
    if form is None:
        form = ReturnForm(formdata=None)
        form.fill(record["items"])
    rows = {entry.form.item_id.data: entry.form for entry in form.items}
    # A row the page no longer shows (its item came back meanwhile, from another tab):
    # its message above the form, or the 422 would say nothing.
    shown = {str(item["id"]) for item in record["items"] if item["returnable"] > 0}
    for item_id, row in rows.items():
        for message in row.quantity.errors if item_id not in shown else ():
            if message not in form.form_errors:
                form.form_errors.append(message)
    returned = [
        item | {"credit_offer": dispensing.credit_offer(item)}
        for item in record["items"]
        if item["returned_quantity"]
    ]
    return render_template(
        "pharmacy/dispensing.html",
        record=record,
        form=form,
        return_rows=rows,
        returned=returned,
        others=dispensing.for_prescription(record["prescription_id"]),
    ), status


@bp.get("/dispensings/<int:dispensing_id>")
@roles_required()
def record(dispensing_id: int):
    """A dispensing: per item the batch and quantity, the slip, and returns."""
    return _record_page(dispensing_id)


@bp.post("/dispensings/<int:dispensing_id>/returns")
@roles_required(*dispensing.DISPENSERS)
def returns(dispensing_id: int):
    """Unopened items handed back go back into the batch they came from."""
    form = ReturnForm()
    if not checked(form):
        return _record_page(dispensing_id, form, 422)
    wanted, rows = form.wanted()
    if not wanted:
        form.form_errors.append("Give the quantity that came back beside its item.")
        return _record_page(dispensing_id, form, 422)
    with transaction(None, catch=(InvalidInput, Conflict)) as outcome:
        dispensing.returns(g.actor, dispensing_id, {"items": wanted, "reason": form.reason.data})
    if outcome.failed:
        form.attach(outcome.error, rows)
        return _record_page(dispensing_id, form, outcome.status)
    units = sum(int(w["quantity"]) for w in wanted)
    flash(
        f"{units} unit{'s' if units != 1 else ''} back in stock. The money goes back by credit "
        "note at the billing counter: the lines to refund are below.",
        "success",
    )
    return redirect(url_for(".record", dispensing_id=dispensing_id) + "#returned")


@bp.get("/dispensings/<int:dispensing_id>/slip.pdf")
@roles_required()
def slip(dispensing_id: int):
    """The dispensing slip handed over with the medicines: A5, or `?format=thermal` for an
    80 mm roll; batch numbers and expiry dates as a pharmacy labels what it hands over."""
    from qure.pharmacy.slips import slip_pdf  # WeasyPrint loads at the first print

    pdf, name = slip_pdf(dispensing_id, thermal=request.args.get("format") == "thermal")
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=name)


# ---- the Schedule H1 register ------------------------------------------------------------


def _register_days(form: RegisterRangeForm) -> tuple[date, date] | None:
    """The days asked for (today by default), or None with the form's errors set."""
    if not form.validate():
        return None
    try:
        return dispensing.register_range(form.start.data, form.end.data)
    except InvalidInput as error:
        for name, message in error.fields.items():
            field = form.start if name == "from" else form.end
            field.errors = [*list(field.errors), message]
        return None


def _asked_days() -> tuple[date, date]:
    """The days of a download's link (made by the register's page): 422 if unreadable."""
    days = _register_days(RegisterRangeForm(request.args))
    if days is None:
        abort(422)
    return days


def _entries(entries) -> list[dict[str, Any]]:
    return [
        {key: getattr(e, key) for _, key in dispensing.CSV_COLUMNS} | {"id": e.id} for e in entries
    ]


@bp.get("/h1-register")
@roles_required(*dispensing.REGISTER_READERS)
def register():
    """The Schedule H1 register by date range: on screen, printable (PDF) and as CSV."""
    form = RegisterRangeForm(request.args)
    days = _register_days(form)
    if days is None:
        return render_template("pharmacy/h1_register.html", form=form, days=None), 422
    start, end = days
    form.start.data, form.end.data = start, end
    form.start.raw_data = form.end.raw_data = None
    found = dispensing.h1_register(start, end, int_arg("page") or 1, PER_PAGE)
    return render_template(
        "pharmacy/h1_register.html",
        form=form,
        days={"from": start.isoformat(), "to": end.isoformat()},
        results=found,
        entries=_entries(found.items),
    )


@bp.get("/h1-register.csv")
@roles_required(*dispensing.REGISTER_READERS)
def register_csv():
    start, end = _asked_days()
    name = f"h1-register-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(
        "".join(dispensing.h1_register_csv(start, end)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/h1-register.pdf")
@roles_required(*dispensing.REGISTER_READERS)
def register_pdf():
    """The register for printing: A4 landscape, every entry of the range."""
    from qure.core.pdf import render_pdf  # WeasyPrint loads at the first print

    start, end = _asked_days()
    pdf = render_pdf(
        "pdf/h1_register.html",
        "css/register.css",
        clinic=clinic_settings.letterhead(),
        start=clock.format_day(start),
        end=clock.format_day(end),
        entries=_entries(dispensing.h1_register_entries(start, end)),
        printed=clock.now(),
    )
    name = f"h1-register-{start.isoformat()}-{end.isoformat()}.pdf"
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=name)
