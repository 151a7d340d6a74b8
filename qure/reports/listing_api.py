"""`/api/v1/reports`: the listing reports. Visit history (ADMIN; a DOCTOR their own
patients'), stock movements (ADMIN, PHARMACIST), invoices and credit notes (ADMIN):
`{items, page, per_page, total}`, newest first; every filtered row as CSV with
`?format=csv` or `Accept: text/csv` (streamed, formula cells neutralised). Who sees what:
`qure.reports.listings`."""

from __future__ import annotations

from flask import g
from marshmallow import Schema, fields, validate

from qure.billing.models import InvoiceStatus, PaymentMethod
from qure.billing.service import DOCUMENT_KINDS
from qure.core.db import MAX_BIG_ID
from qure.core.exports import csv_response, wants_csv
from qure.core.roles import api_roles
from qure.core.schemas import ClinicDay, ErrorSchema, PageArgs, page_body, page_schema
from qure.pharmacy.models import MovementType
from qure.reports import listings
from qure.reports.blueprints import blp

MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "example": "1180.00"}


def _json_or_csv(page: str) -> dict:
    """The 200 answer documented both ways: a page of JSON, or every row as CSV."""
    return {
        "responses": {
            "200": {
                "description": "A page of rows; with ?format=csv (or Accept: text/csv) every "
                "filtered row as a CSV download",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{page}"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        }
    }


def _id(description: str) -> fields.Integer:
    return fields.Integer(
        validate=validate.Range(min=1, max=MAX_BIG_ID), metadata={"description": description}
    )


class ListingArgs(PageArgs):
    from_ = ClinicDay(data_key="from", metadata={"description": "First clinic day (included)"})
    to = ClinicDay(metadata={"description": "Last clinic day (included)"})
    format = fields.String(
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "csv: every filtered row as a CSV download (no pages)"},
    )


class VisitHistoryArgs(ListingArgs):
    patient_id = _id("A patient (a doctor: one of their own patients)")
    doctor_id = _id("The doctor who saw the visit")


class StockMovementArgs(ListingArgs):
    medicine_id = _id("A medicine")
    type = fields.String(validate=validate.OneOf(list(MovementType)))


class InvoiceReportArgs(ListingArgs):
    kind = fields.String(
        validate=validate.OneOf(DOCUMENT_KINDS),
        metadata={"description": "invoice or credit_note (default both)"},
    )
    status = fields.String(
        validate=validate.OneOf(list(InvoiceStatus)),
        metadata={"description": "An invoice's status (credit notes have none: left out)"},
    )
    method = fields.String(
        validate=validate.OneOf(list(PaymentMethod)),
        metadata={"description": "How an invoice was paid, or a credit note refunded"},
    )
    patient_id = _id("A patient")


class ListingPatient(Schema):
    id = fields.Integer()
    mrn = fields.String()
    full_name = fields.String()


class ListingDoctor(Schema):
    id = fields.Integer()
    full_name = fields.String()


class VisitHistoryRow(Schema):
    visit_id = fields.Integer()
    completed_at = fields.DateTime(metadata={"description": "Clinic time, with its offset"})
    patient = fields.Nested(ListingPatient)
    doctor = fields.Nested(ListingDoctor)
    icd10_code = fields.String(allow_none=True)
    diagnosis = fields.String(allow_none=True)
    chief_complaint = fields.String(allow_none=True)
    medicines_count = fields.Integer(metadata={"description": "Medicines prescribed"})
    medicines = fields.List(fields.String(), metadata={"description": "Name and strength"})


class ListingMedicine(Schema):
    id = fields.Integer()
    name = fields.String()
    strength = fields.String(allow_none=True)


class ListingBatch(Schema):
    id = fields.Integer()
    batch_number = fields.String()
    expiry_date = fields.Date(allow_none=True)


class ListingUser(Schema):
    id = fields.Integer()
    name = fields.String()


class StockMovementRow(Schema):
    id = fields.Integer(metadata={"description": "The movement's id"})
    timestamp = fields.DateTime(metadata={"description": "Clinic time, with its offset"})
    type = fields.String(validate=validate.OneOf(list(MovementType)))
    medicine = fields.Nested(ListingMedicine)
    batch = fields.Nested(ListingBatch)
    quantity = fields.Integer(metadata={"description": "Units moved (an ADJUSTMENT signed)"})
    balance = fields.Integer(metadata={"description": "The batch's quantity after it"})
    user = fields.Nested(ListingUser, allow_none=True)
    reason = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    reference = fields.String(metadata={"description": "What it belongs to (a dispensing)"})


def _money(description: str) -> fields.Decimal:
    return fields.Decimal(as_string=True, places=2, metadata={**MONEY, "description": description})


class InvoiceReportRow(Schema):
    kind = fields.String(validate=validate.OneOf(DOCUMENT_KINDS))
    id = fields.Integer()
    number = fields.String(allow_none=True, metadata={"description": "None for a draft"})
    date = fields.Date(metadata={"description": "Invoice date, or the day a note was issued"})
    patient = fields.Nested(ListingPatient)
    total = _money("A credit note's is negative")
    paid = _money("What the payment took (0.00 unpaid); a credit note's refund, negative")
    method = fields.String(allow_none=True, validate=validate.OneOf(list(PaymentMethod)))
    status = fields.String(allow_none=True, metadata={"description": "An invoice's status"})
    against = fields.String(
        allow_none=True, metadata={"description": "The invoice a credit note refunds"}
    )


VisitHistoryPage = page_schema(VisitHistoryRow, "VisitHistoryPage")
StockMovementPage = page_schema(StockMovementRow, "StockMovementPage")
InvoiceReportPage = page_schema(InvoiceReportRow, "InvoiceReportPage")


def _days(args) -> dict:
    return {"start": args.get("from_"), "end": args.get("to")}


def _answer(args, page_of, rows_of, filters: dict, name: str, header, csv_row):
    if args.get("format") == "csv" or (args.get("format") is None and wants_csv()):
        rows = rows_of(g.actor, **filters)
        return csv_response(name, header, (csv_row(r) for r in rows))
    return page_body(page_of(g.actor, page=args["page"], per_page=args["per_page"], **filters))


@blp.get("/visit-history")
@api_roles(*listings.VISIT_READERS)
@blp.arguments(VisitHistoryArgs, location="query")
@blp.response(200, VisitHistoryPage)
@blp.alt_response(403, schema=ErrorSchema, description="forbidden; not_your_patient")
@blp.alt_response(422, schema=ErrorSchema)
@blp.alt_response(503, schema=ErrorSchema, description="analytics_unavailable")
@blp.doc(**_json_or_csv("VisitHistoryPage"))
def visit_history(args):
    """Completed visits, newest first, by patient, doctor and clinic days: an ADMIN every
    visit; a DOCTOR the whole history of the patients they have completed a visit with
    (naming another patient is 403 `not_your_patient`)."""
    filters = {
        "patient_id": args.get("patient_id"),
        "doctor_id": args.get("doctor_id"),
        **_days(args),
    }
    return _answer(
        args,
        listings.visit_history,
        listings.visit_history_rows,
        filters,
        "visit-history.csv",
        listings.VISIT_CSV,
        listings.visit_csv_row,
    )


@blp.get("/stock-movements")
@api_roles(*listings.MOVEMENT_READERS)
@blp.arguments(StockMovementArgs, location="query")
@blp.response(200, StockMovementPage)
@blp.alt_response(422, schema=ErrorSchema)
@blp.alt_response(503, schema=ErrorSchema, description="analytics_unavailable")
@blp.doc(**_json_or_csv("StockMovementPage"))
def stock_movements(args):
    """Stock movements (IN, OUT, ADJUSTMENT, RETURN), newest first, by medicine, type and
    clinic days."""
    filters = {"medicine_id": args.get("medicine_id"), "kind": args.get("type"), **_days(args)}
    return _answer(
        args,
        listings.stock_movements,
        listings.stock_movement_rows,
        filters,
        "stock-movements.csv",
        listings.MOVEMENT_CSV,
        listings.movement_csv_row,
    )


@blp.get("/invoices")
@api_roles(*listings.INVOICE_READERS)
@blp.arguments(InvoiceReportArgs, location="query")
@blp.response(200, InvoiceReportPage)
@blp.alt_response(422, schema=ErrorSchema)
@blp.doc(**_json_or_csv("InvoiceReportPage"))
def invoices(args):
    """Invoices and credit notes, newest first, by kind, status, payment method, patient
    and days (invoice date; the day a credit note was issued)."""
    filters = {
        "kind": args.get("kind"),
        "status": args.get("status"),
        "method": args.get("method"),
        "patient_id": args.get("patient_id"),
        **_days(args),
    }
    return _answer(
        args,
        listings.invoices,
        listings.invoice_rows,
        filters,
        "invoices.csv",
        listings.INVOICE_CSV,
        listings.invoice_csv_row,
    )
