"""The listing reports' pages under /reports: visit history, stock movements, invoices and
credit notes. A GET form of filters (a value that cannot be read: its message beside the
field, 422), a table, pages that keep the filters, and "Download CSV" of exactly the
filtered rows (`?format=csv`, streamed). MongoDB not answering is a clear "Analytics
unavailable" page (503). Who sees what: `qure.reports.listings`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import g, render_template, request
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional

from qure.billing.models import InvoiceStatus, PaymentMethod
from qure.billing.service import CREDIT_NOTE_KIND, INVOICE_KIND
from qure.core.documents import AnalyticsUnavailable
from qure.core.errors import InvalidInput
from qure.core.exports import csv_response, wants_csv
from qure.core.forms import ClinicDateField, attach_errors, int_arg, small_int
from qure.core.roles import Role, roles_required
from qure.pharmacy import service as catalogue
from qure.pharmacy.models import MovementType
from qure.reports import listings
from qure.reports.blueprints import bp
from qure.scheduling import doctors as doctor_list

PER_PAGE = 50
ANY = SelectChoice("", "Any")

LINKS: tuple[tuple[str, str, str], ...] = (
    ("Visit history", "reports.visits", "Completed visits by patient, doctor and days."),
    (
        "Stock movements",
        "reports.stock_movements",
        "Stock received, dispensed, returned and adjusted, by medicine.",
    ),
    (
        "Invoices and credit notes",
        "reports.invoices",
        "Every bill and refund, by status, payment method, patient and days.",
    ),
)

ID_MESSAGE = "Give the number (id) only, such as 42."


class _Filters(FlaskForm):
    """Filters read from the query string (a GET form: no token)."""

    class Meta:
        csrf = False

    start = ClinicDateField("From", message="Enter the first day like 02 Dec 2026.")
    end = ClinicDateField("To", message="Enter the last day like 02 Dec 2026.")


def _id_field(label: str) -> StringField:
    return StringField(label, render_kw={"inputmode": "numeric", "size": 8, "maxlength": 18})


class VisitFilters(_Filters):
    patient_id = _id_field("Patient id")
    doctor_id = SelectField("Doctor", validators=[Optional()], validate_choice=False)


class MovementFilters(_Filters):
    medicine_id = SelectField("Medicine", validators=[Optional()], validate_choice=False)
    type = SelectField(
        "Type",
        choices=[ANY, *(SelectChoice(t.value, t.value.title()) for t in MovementType)],
        default="",
    )


class InvoiceFilters(_Filters):
    kind = SelectField(
        "Kind",
        choices=[
            SelectChoice("", "Invoices and credit notes"),
            SelectChoice(INVOICE_KIND, "Invoices"),
            SelectChoice(CREDIT_NOTE_KIND, "Credit notes"),
        ],
        default="",
    )
    status = SelectField(
        "Status",
        choices=[ANY, *(SelectChoice(s.value, s.value.title()) for s in InvoiceStatus)],
        default="",
    )
    method = SelectField(
        "Payment method",
        choices=[ANY, *(SelectChoice(m.value, m.value.title()) for m in PaymentMethod)],
        default="",
    )
    patient_id = _id_field("Patient id")


def _chosen_id(field) -> int | None:
    """An id typed, or chosen in a select whose choices may not hold every id (a medicine
    beyond the list's first 200): a positive number, or a message beside the field."""
    value = (field.data or "").strip()
    if not value:
        return None
    chosen = small_int(value)
    if chosen is not None:
        return chosen
    field.errors = [*list(field.errors), ID_MESSAGE]
    return None


def _kept(form: FlaskForm) -> dict[str, str]:
    """The filters as typed, for the page's links (pages, CSV)."""
    return {f.name: request.args[f.name] for f in form if request.args.get(f.name)}


def _report(
    template: str,
    form: FlaskForm,
    filters: Callable[[], dict[str, Any]],
    page_of: Callable[..., Any],
    rows_of: Callable[..., Any],
    csv: tuple[str, tuple[str, ...], Callable],
    **context: Any,
):
    """Render a listing report (or its CSV): the form's errors, and a service's, shown on
    their fields with 422; MongoDB down is the unavailable page with 503."""
    valid = form.validate()
    asked = filters()  # reads what the form's own checks do not (ids), adding its errors
    if not valid or any(f.errors for f in form):
        return render_template(template, form=form, page=None, rows=[], kept={}, **context), 422
    try:
        if wants_csv():
            name, header, csv_row = csv
            rows = rows_of(g.actor, **asked)
            return csv_response(name, header, (csv_row(r) for r in rows))
        found = page_of(g.actor, page=int_arg("page") or 1, per_page=PER_PAGE, **asked)
    except AnalyticsUnavailable as error:
        return render_template("reports/listing_unavailable.html", message=error.message), 503
    except InvalidInput as error:
        attach_errors(form, error, {"from": "start", "to": "end"})
        return render_template(template, form=form, page=None, rows=[], kept={}, **context), 422
    return render_template(
        template, form=form, page=found, rows=found.items, kept=_kept(form), **context
    )


@bp.get("/visits")
@roles_required(*listings.VISIT_READERS)
def visits():
    """Visit history: completed visits, newest first (a doctor: their own patients')."""
    form = VisitFilters(request.args)
    form.doctor_id.choices = [
        ANY,
        *(SelectChoice(str(d.id), d.full_name) for d in doctor_list.doctors()),
    ]

    def filters() -> dict[str, Any]:
        return {
            "patient_id": _chosen_id(form.patient_id),
            "doctor_id": _chosen_id(form.doctor_id),
            "start": form.start.data,
            "end": form.end.data,
        }

    return _report(
        "reports/visits.html",
        form,
        filters,
        listings.visit_history,
        listings.visit_history_rows,
        ("visit-history.csv", listings.VISIT_CSV, listings.visit_csv_row),
        own_patients=g.actor.role == Role.DOCTOR,
    )


@bp.get("/stock-movements")
@roles_required(*listings.MOVEMENT_READERS)
def stock_movements():
    """Stock movements, newest first, by medicine, type and days."""
    form = MovementFilters(request.args)
    medicines = catalogue.search(active_only=False, per_page=200).items
    form.medicine_id.choices = [
        ANY,
        *(SelectChoice(str(m.id), f"{m.name} {m.strength or ''}".strip()) for m in medicines),
    ]

    def filters() -> dict[str, Any]:
        return {
            "medicine_id": _chosen_id(form.medicine_id),
            "kind": form.type.data or None,
            "start": form.start.data,
            "end": form.end.data,
        }

    return _report(
        "reports/stock_movements.html",
        form,
        filters,
        listings.stock_movements,
        listings.stock_movement_rows,
        ("stock-movements.csv", listings.MOVEMENT_CSV, listings.movement_csv_row),
    )


@bp.get("/invoices")
@roles_required(*listings.INVOICE_READERS)
def invoices():
    """Invoices and credit notes, newest first, by kind, status, method, patient, days."""
    form = InvoiceFilters(request.args)

    def filters() -> dict[str, Any]:
        return {
            "kind": form.kind.data or None,
            "status": form.status.data or None,
            "method": form.method.data or None,
            "patient_id": _chosen_id(form.patient_id),
            "start": form.start.data,
            "end": form.end.data,
        }

    return _report(
        "reports/invoices.html",
        form,
        filters,
        listings.invoices,
        listings.invoice_rows,
        ("invoices.csv", listings.INVOICE_CSV, listings.invoice_csv_row),
        INVOICE_KIND=INVOICE_KIND,
    )
