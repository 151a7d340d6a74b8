"""JSON shapes of invoices, payments, credit notes, takings and the day's close. Money is
a string with two decimals ("1180.00"); the server computes every amount."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from qure.billing import service
from qure.billing.models import InvoiceMode, InvoiceStatus, LineKind, PaymentMethod
from qure.core.db import MAX_BIG_ID
from qure.core.money import AMOUNT, GST_RATES, PERCENT
from qure.core.schemas import ClinicDay, PageArgs, page_schema
from qure.scheduling.schemas import PatientRef, PersonRef

MONEY_PATTERN = r"^-?[0-9]+\.[0-9]{2}$"


def _text(description: str | None = None, **extra) -> dict:
    """What the OpenAPI document says of a field answered as text."""
    return {"type": "string", **({"description": description} if description else {}), **extra}


def Amount(metadata: dict | None = None, **kwargs) -> fields.Decimal:
    """Money as a string with two decimals ("1180.00"), and documented so: apispec would
    call a Decimal field a number whatever it answers."""
    documented = _text(pattern=MONEY_PATTERN, example="1180.00", **(metadata or {}))
    return fields.Decimal(as_string=True, places=2, metadata=documented, **kwargs)


def _by_method() -> dict:
    return {
        "type": "object",
        "properties": {m.value: _text(pattern=MONEY_PATTERN) for m in PaymentMethod},
        "required": [m.value for m in PaymentMethod],
        "additionalProperties": False,
    }


class LineSchema(Schema):
    id = fields.Integer()
    position = fields.Integer()
    kind = fields.String()
    description = fields.String()
    hsn_sac = fields.String(allow_none=True)
    medicine_id = fields.Integer(allow_none=True)
    quantity = Amount()
    unit_price = Amount()
    gst_rate = fields.Integer()
    value = Amount(metadata={"description": "quantity x unit price"})
    discount = Amount(metadata={"description": "The line's share of the invoice discount"})
    taxable = Amount()
    cgst = Amount()
    sgst = Amount()
    total = Amount()
    refunded_quantity = fields.Function(
        lambda line: f"{service.refunded(line.invoice).get(line.id, 0):.2f}",
        metadata=_text("What credit notes have refunded of the quantity", pattern=MONEY_PATTERN),
    )


class DiscountSchema(Schema):
    type = fields.String(attribute="discount_type")
    value = Amount(attribute="discount_value")


class PaymentSchema(Schema):
    method = fields.String()
    amount = Amount()
    reference = fields.String(allow_none=True)
    tendered = Amount(allow_none=True)
    change = Amount(allow_none=True)
    paid_on = fields.Date()
    received_at = fields.DateTime()
    received_by = fields.Nested(PersonRef)


class CreditNoteRef(Schema):
    id = fields.Integer()
    number = fields.String()
    total = Amount()
    method = fields.String()
    created_at = fields.DateTime()


class InvoiceSummary(Schema):
    id = fields.Integer()
    number = fields.String(allow_none=True)
    mode = fields.String()
    status = fields.String()
    patient = fields.Nested(PatientRef)
    visit_id = fields.Integer(allow_none=True)
    prescription_id = fields.Integer(allow_none=True)
    invoice_date = fields.Date()
    total = Amount()
    created_at = fields.DateTime()


class InvoiceSchema(InvoiceSummary):
    lines = fields.List(fields.Nested(LineSchema))
    discount = fields.Function(
        lambda invoice: DiscountSchema().dump(invoice) if invoice.discount_type else None,
        metadata={
            "description": "{type: PERCENT | AMOUNT, value}, or null",
            "type": "object",
            "nullable": True,
            "properties": {
                "type": {"type": "string", "enum": [PERCENT, AMOUNT]},
                "value": _text(pattern=MONEY_PATTERN),
            },
            "additionalProperties": False,
        },
    )
    subtotal = Amount()
    discount_amount = Amount(attribute="discount")
    taxable = Amount()
    cgst = Amount()
    sgst = Amount()
    payment = fields.Nested(PaymentSchema, allow_none=True)
    credit_notes = fields.List(fields.Nested(CreditNoteRef))
    refundable = fields.Function(
        lambda invoice: f"{service.refundable_amount(invoice):.2f}",
        metadata=_text("What credit notes may still refund", pattern=MONEY_PATTERN),
    )
    upi_link = fields.Function(
        service.upi_link,
        metadata=_text(
            "For a numbered unpaid invoice, when the clinic has a UPI ID", nullable=True
        ),
    )
    cancel_reason = fields.String(allow_none=True)
    finalized_at = fields.DateTime(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)


class CreditNoteLineSchema(Schema):
    id = fields.Integer()
    line_id = fields.Integer(attribute="invoice_line_id")
    description = fields.Function(lambda row: row.invoice_line.description, metadata=_text())
    quantity = Amount()
    taxable = Amount()
    cgst = Amount()
    sgst = Amount()
    total = Amount()


class CreditNoteSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    invoice_id = fields.Integer()
    invoice_number = fields.Function(lambda note: note.invoice.number, metadata=_text())
    lines = fields.List(fields.Nested(CreditNoteLineSchema))
    taxable = Amount()
    cgst = Amount()
    sgst = Amount()
    total = Amount()
    method = fields.String()
    reason = fields.String()
    created_at = fields.DateTime()
    created_by = fields.Nested(PersonRef)


class ToBillSchema(Schema):
    visit_id = fields.Integer(attribute="id")
    patient = fields.Nested(PatientRef)
    doctor = fields.Nested(PersonRef)
    diagnosis = fields.String(allow_none=True)
    completed_at = fields.DateTime()


class ByMethod(Schema):
    CASH = Amount()
    CARD = Amount()
    UPI = Amount()


class TakingsSchema(Schema):
    date = fields.Date()
    by_method = fields.Nested(ByMethod, metadata={"description": "Payments less refunds"})
    payments_by_method = fields.Nested(ByMethod)
    refunds_by_method = fields.Nested(ByMethod)
    payments = Amount()
    refunds = Amount()
    net = Amount()


class DayCloseSchema(Schema):
    id = fields.Integer()
    date = fields.Date(attribute="day")
    expected = fields.Function(
        lambda close: {
            PaymentMethod.CASH.value: f"{close.expected_cash:.2f}",
            PaymentMethod.CARD.value: f"{close.expected_card:.2f}",
            PaymentMethod.UPI.value: f"{close.expected_upi:.2f}",
        },
        metadata={"description": "Payments less refunds per method", **_by_method()},
    )
    payments = Amount()
    refunds = Amount()
    cash_counted = Amount()
    variance = Amount(metadata={"description": "cash counted - expected cash"})
    note = fields.String(allow_none=True)
    closed_by = fields.Nested(PersonRef)
    closed_at = fields.DateTime()


class DayReportSchema(Schema):
    date = fields.Date()
    closed = fields.Boolean()
    by_method = fields.Nested(ByMethod, metadata={"description": "Expected: payments - refunds"})
    payments = Amount()
    refunds = Amount()
    net = Amount()
    close = fields.Nested(DayCloseSchema, allow_none=True)


# ---- input: read loosely here, checked by the service (which names each bad field) -------


class Loose(Schema):
    class Meta:
        unknown = EXCLUDE


class Shaped(fields.Nested):
    """A nested object that, given anything else, names itself (`discount`, `items.0`):
    marshmallow's own error would name `discount._schema`."""

    def _deserialize(self, value, attr, data, partial=None, **kwargs):
        if not isinstance(value, Mapping):
            raise ValidationError("Give an object.")
        return super()._deserialize(value, attr, data, partial=partial, **kwargs)


def _given(kind: str, required: bool = False, allow_none: bool = False, **documented):
    """An input field read as given (the service checks it and names it when it is bad),
    documented with the type it takes: amounts and quantities are text ("250.00"), a
    JSON number is read too."""
    if kind == "amount":
        documented = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$", **documented}
    else:
        documented = {"type": kind, **documented}
    return fields.Raw(required=required, allow_none=allow_none, metadata=documented)


class LineIn(Loose):
    kind = _given("string", required=True, enum=list(LineKind))
    description = _given("string", required=True, maxLength=200, example="Wound dressing")
    quantity = _given("amount", required=True, example="1", description="More than 0")
    unit_price = _given("amount", required=True, example="250.00")
    gst_rate = _given(
        "integer", enum=list(GST_RATES), description="A GST slab; left out, the default rate"
    )
    hsn_sac = _given("string", allow_none=True, pattern="^[0-9]{4,8}$")
    medicine_id = _given("integer", allow_none=True)


class DiscountIn(Loose):
    type = _given("string", required=True, enum=[PERCENT, AMOUNT])
    value = _given("amount", required=True, example="10", description="A percentage or rupees")


class InvoiceIn(Schema):
    mode = _given("string", required=True, enum=list(InvoiceMode))
    prescription_id = _given("integer", description="AUTO: the prescription to bill")
    visit_id = _given(
        "integer",
        allow_none=True,
        description="AUTO: a visit without a prescription; MANUAL: optional",
    )
    include_consultation = _given("boolean", description="AUTO; default true")
    patient_id = _given("integer", description="MANUAL: the patient billed")
    items = fields.List(Shaped(LineIn), metadata={"description": "MANUAL: the lines, in order"})
    discount = Shaped(DiscountIn, allow_none=True)


class InvoicePatch(Schema):
    items = fields.List(Shaped(LineIn), metadata={"description": "Every line: replaces them"})
    discount = Shaped(DiscountIn, allow_none=True, metadata={"description": "null removes it"})


class InvoiceCancelIn(Schema):
    reason = _given("string", required=True, maxLength=300)


class PayIn(Schema):
    method = _given("string", required=True, enum=list(PaymentMethod))
    amount = _given("amount", required=True, description="Exactly the total")
    reference = _given("string", allow_none=True, maxLength=100, description="CARD, UPI: needed")
    tendered = _given("amount", allow_none=True, description="CASH: handed over")


class RefundItemIn(Loose):
    line_id = _given("integer", required=True)
    quantity = _given("amount", required=True, example="1")


class CreditNoteIn(Schema):
    items = fields.List(
        Shaped(RefundItemIn),
        metadata={"description": "Leave out to refund everything still refundable"},
    )
    reason = _given("string", required=True, maxLength=300)
    method = _given("string", required=True, enum=list(PaymentMethod))


class DayCloseIn(Schema):
    date = _given("string", required=True, format="date", example="2026-12-02")
    cash_counted = _given("amount", required=True, example="12500.00")
    note = _given("string", allow_none=True, maxLength=500)


class InvoiceArgs(PageArgs):
    patient_id = fields.Integer(validate=validate.Range(min=1, max=MAX_BIG_ID))
    status = fields.String(validate=validate.OneOf(list(InvoiceStatus)))
    date = ClinicDay()
    number = fields.String(validate=validate.Length(max=24))


class DayArgs(Schema):
    date = ClinicDay(metadata={"description": "Default: today"})


class ReceiptArgs(Schema):
    format = fields.String(
        load_default="a4", validate=validate.OneOf(["a4", "thermal"]), metadata={"example": "a4"}
    )


InvoicePage = page_schema(InvoiceSummary, "InvoicePage")
ToBillPage = page_schema(ToBillSchema, "ToBillPage")
DayClosePage = page_schema(DayCloseSchema, "DayClosePage")


def listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `ToBillSchema` dumps, for each visit of the to-bill list (`service.to_bill`,
    plain dicts: patient and doctor already the schema's shape): built directly, because
    the nested schemas' per-field work is most of such a request's CPU. A test holds the
    two equal, field by field and in order. (A completed visit has its completion time.)"""
    return [
        {
            "visit_id": v["id"],
            "patient": v["patient"],
            "doctor": v["doctor"],
            "diagnosis": v["diagnosis"],
            "completed_at": v["completed_at"].isoformat(),
        }
        for v in rows
    ]
