"""Pharmacy pages: the catalogue (find, add, edit medicines) and the stock (the inventory
with its filters, a medicine's batches, stock-in, adjustments, alerts). Every role reads;
the pharmacist and the admin change. Thin: every change is one service call in one
`transaction`; templates get plain values. The dispensing counter is `counter.py`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from qure.core import clock
from qure.core.errors import Conflict, InvalidInput
from qure.core.forms import checked, int_arg
from qure.core.http import transaction
from qure.core.roles import roles_required
from qure.pharmacy import service, stock
from qure.pharmacy.forms import REASON_LABELS, AdjustForm, MedicineForm, StockInForm
from qure.pharmacy.models import AdjustmentReason, DrugSchedule

bp = Blueprint("pharmacy", __name__, url_prefix="/pharmacy")
bp.add_app_template_global(DrugSchedule, "DrugSchedule")
bp.add_app_template_global(AdjustmentReason, "AdjustmentReason")
PER_PAGE = 50
FILTER_LABELS = {
    "low": "Low stock",
    "out": "Out of stock",
    "expiring": "Expiring within 30 days",
}
ALERT_TABS = {
    "low": "Low stock",
    "30": "Expiring in 30 days",
    "60": "in 60 days",
    "90": "in 90 days",
    "expired": "Expired, still on the shelf",
}


@bp.get("/medicines")
@roles_required()
def medicines():
    """The catalogue with one search box (name, ingredient or class)."""
    q = request.args.get("q", "").strip()[:120]
    everything = request.args.get("all") == "1"
    page_arg = request.args.get("page", "1")
    page = int(page_arg) if page_arg.isascii() and page_arg.isdigit() and len(page_arg) < 6 else 1
    results = service.search(q, not everything, max(page, 1), PER_PAGE)
    return render_template("pharmacy/medicines.html", q=q, results=results, everything=everything)


def _save(form: MedicineForm, action, medicine=None):
    status = 200
    if form.validate_on_submit():
        with transaction(form, catch=(InvalidInput, Conflict)) as outcome:
            saved = action(form.medicine_data())
        if not outcome.failed:
            flash(f"Saved {saved.name} {saved.strength}.", "success")
            return redirect(url_for(".medicines", q=saved.name))
        status = outcome.status
    elif request.method == "POST":
        status = 422
    return render_template("pharmacy/medicine_form.html", form=form, medicine=medicine), status


@bp.route("/medicines/new", methods=["GET", "POST"])
@roles_required(*service.EDITORS)
def new_medicine():
    return _save(MedicineForm(), lambda data: service.create(g.actor, data))


@bp.route("/medicines/<int:medicine_id>/edit", methods=["GET", "POST"])
@roles_required(*service.EDITORS)
def edit_medicine(medicine_id: int):
    medicine = service.get_medicine(medicine_id)
    form = MedicineForm()
    if request.method == "GET":
        form.fill(medicine)
    return _save(form, lambda data: service.update(g.actor, medicine_id, data), medicine)


# ---- stock -------------------------------------------------------------------------------


def _medicine(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: row[key]
        for key in (
            "id",
            "name",
            "generic_name",
            "strength",
            "dosage_form",
            "schedule",
            "reorder_level",
            "is_active",
            "usable_stock",
            "next_expiry",
            "low_stock",
        )
    }


@bp.get("/stock")
@roles_required()
def inventory():
    """Every medicine with its usable stock, next expiry and reorder level; by name, and
    low, out of stock or expiring."""
    q = request.args.get("q", "").strip()[:120]
    chosen = request.args.get("stock") or None
    if chosen not in FILTER_LABELS:
        chosen = None
    found = stock.inventory(q, True, int_arg("page") or 1, PER_PAGE, chosen)
    return render_template(
        "pharmacy/inventory.html",
        q=q,
        chosen=chosen,
        filters=FILTER_LABELS,
        results=found,
        medicines=[_medicine(row) for row in found.items],
        counts=stock.alert_counts(),
    )


def _batch(batch, today) -> dict[str, Any]:
    row = stock.batch_row(batch, today)
    row.pop("medicine")
    return row


@bp.get("/medicines/<int:medicine_id>")
@roles_required()
def medicine(medicine_id: int):
    """A medicine and its batches (earliest expiry first, empty and expired ones too)."""
    found = service.get_medicine(medicine_id)
    usable, next_expiry = stock.levels([found.id]).get(found.id, (0, None))
    page = stock.batches(found.id, int_arg("page") or 1, PER_PAGE)
    today = clock.today()
    return render_template(
        "pharmacy/medicine.html",
        medicine=_medicine(stock.medicine_row(found, usable, next_expiry))
        | {"manufacturer": found.manufacturer, "unit_price": found.unit_price},
        batches=[_batch(b, today) for b in page.items],
        page=page,
    )


def _stock_in_page(medicine_id: int, form: StockInForm, status: int = 200):
    found = service.get_medicine(medicine_id)
    usable, _ = stock.levels([found.id]).get(found.id, (0, None))
    return render_template(
        "pharmacy/stock_in.html",
        medicine={"id": found.id, "name": found.name, "strength": found.strength},
        usable=usable,
        form=form,
    ), status


@bp.route("/medicines/<int:medicine_id>/stock-in", methods=["GET", "POST"])
@roles_required(*stock.EDITORS)
def stock_in(medicine_id: int):
    """Receive a supplier's delivery of a medicine: several batches on one form."""
    form = StockInForm()
    if request.method == "GET":
        form.add_rows()
        return _stock_in_page(medicine_id, form)
    if not checked(form):
        return _stock_in_page(medicine_id, form, 422)
    if "more" in request.form:
        form.add_rows()
        return _stock_in_page(medicine_id, form)
    batches, rows = form.delivery()
    if not batches:
        form.form_errors.append("Fill in at least one batch: its number, quantity and expiry.")
        return _stock_in_page(medicine_id, form, 422)
    with transaction(None) as outcome:
        received = stock.stock_in(g.actor, {"medicine_id": medicine_id, "batches": batches})
    if outcome.failed:
        form.attach(outcome.error, rows)
        return _stock_in_page(medicine_id, form, outcome.status)
    units = sum(b.quantity for b in received)
    flash(
        f"Received {len(received)} batch{'es' if len(received) > 1 else ''}, {units:,} units.",
        "success",
    )
    return redirect(url_for(".medicine", medicine_id=medicine_id))


def _adjust_page(batch_id: int, form: AdjustForm, status: int = 200, offer: bool = False):
    batch = stock.get_batch(batch_id)
    medicine = batch.medicine
    if offer and form.reason.data == AdjustmentReason.EXPIRED_DISPOSAL and batch.quantity:
        # Disposing of an expired batch takes all of it: offered, still to confirm.
        form.delta.data = str(-batch.quantity)
    return render_template(
        "pharmacy/adjust.html",
        batch=_batch(batch, clock.today()),
        medicine={"id": medicine.id, "name": medicine.name, "strength": medicine.strength},
        form=form,
    ), status


@bp.route("/batches/<int:batch_id>/adjust", methods=["GET", "POST"])
@roles_required(*stock.EDITORS)
def adjust(batch_id: int):
    """Change a batch's quantity with a reason; never below zero."""
    form = AdjustForm()
    if request.method == "GET":
        if request.args.get("reason") in REASON_LABELS:
            form.reason.data = request.args["reason"]
        return _adjust_page(batch_id, form, offer=True)
    if not checked(form):
        return _adjust_page(batch_id, form, 422)
    with transaction(form, catch=(InvalidInput, Conflict)) as outcome:
        batch = stock.adjust(g.actor, batch_id, form.adjustment())
        medicine_id = batch.medicine_id
    if outcome.failed:
        return _adjust_page(batch_id, form, outcome.status)
    flash(f"Batch {batch.batch_number} now holds {batch.quantity:,}.", "success")
    return redirect(url_for(".medicine", medicine_id=medicine_id))


@bp.get("/alerts")
@roles_required()
def alerts():
    """Stock alerts in tabs: low stock (no batch at all and expired-only included),
    expiring within 30, 60 or 90 days, and expired batches still holding stock."""
    tab = request.args.get("tab", "low")
    if tab not in ALERT_TABS:
        tab = "low"
    page = int_arg("page") or 1
    today = clock.today()
    if tab == "low":
        found = stock.low_stock(page, PER_PAGE)
        rows = [_medicine(row) for row in found.items]
    else:
        if tab == "expired":
            found = stock.expired(page, PER_PAGE)
        else:
            found = stock.expiring(int(tab), page, PER_PAGE)
        rows = [
            _batch(b, today)
            | {"medicine": {"id": b.medicine.id, "name": b.medicine.name}}
            | {"strength": b.medicine.strength, "days_left": (b.expiry_date - today).days}
            for b in found.items
        ]
    return render_template(
        "pharmacy/alerts.html",
        tab=tab,
        tabs=ALERT_TABS,
        results=found,
        rows=rows,
        counts=stock.alert_counts(),
    )
