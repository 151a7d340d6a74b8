"""Catalogue pages: find, add and edit medicines. Thin: changes go through the service."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from qure.core.errors import Conflict, InvalidInput
from qure.core.http import transaction
from qure.core.roles import roles_required
from qure.pharmacy import service
from qure.pharmacy.forms import MedicineForm

bp = Blueprint("pharmacy", __name__, url_prefix="/pharmacy")
PER_PAGE = 50


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
