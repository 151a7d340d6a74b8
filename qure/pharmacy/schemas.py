"""JSON shapes of the medicine catalogue."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from qure.core.db import MAX_ID
from qure.core.schemas import ClinicDay, PageArgs, page_schema
from qure.pharmacy.models import DOSAGE_FORMS, GST_RATES, AdjustmentReason, DrugSchedule
from qure.prescriptions.models import DispenseStatus

SCHEDULES = [s.value for s in DrugSchedule]


def Money(example: str = "12.50", **kwargs) -> fields.Decimal:
    """Rupees as a string with two decimals, documented so (apispec would call a Decimal
    field a number whatever it answers)."""
    documented = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "example": example}
    return fields.Decimal(as_string=True, places=2, metadata=documented, **kwargs)


class MedicineSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    generic_name = fields.String(metadata={"description": "Ingredients joined by ' + '"})
    ingredients = fields.List(fields.String())
    drug_class = fields.String(allow_none=True)
    dosage_form = fields.String(metadata={"enum": list(DOSAGE_FORMS)})
    strength = fields.String()
    manufacturer = fields.String(allow_none=True)
    unit_price = Money()
    gst_rate = fields.Integer(metadata={"enum": list(GST_RATES)})
    hsn_code = fields.String(allow_none=True)
    reorder_level = fields.Integer()
    is_active = fields.Boolean()
    schedule = fields.String(metadata={"enum": SCHEDULES})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class GstRate(fields.Integer):
    """A GST rate in per cent, as a number or its text ("12"); which rates exist is the
    service's rule."""

    default_error_messages = {"invalid": "One of 0, 5, 12, 18 or 28 (per cent)."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.make_error("invalid")
        return value


class MedicineInSchema(Schema):
    """What a client sends; the service checks every rule and names the field."""

    name = fields.String()
    generic_name = fields.String(metadata={"example": "Amoxicillin + Clavulanic Acid"})
    drug_class = fields.String(allow_none=True, metadata={"example": "Penicillin"})
    dosage_form = fields.String(metadata={"enum": list(DOSAGE_FORMS)})
    strength = fields.String(metadata={"example": "625 mg"})
    manufacturer = fields.String(allow_none=True)
    unit_price = fields.Raw(metadata={"description": 'Rupees, e.g. "12.50"'})
    gst_rate = GstRate(metadata={"enum": list(GST_RATES)})
    hsn_code = fields.String(allow_none=True)
    reorder_level = fields.Integer(strict=True)
    is_active = fields.Boolean()
    schedule = fields.String(
        metadata={"enum": SCHEDULES, "description": "Drugs and Cosmetics Rules schedule"}
    )


class MedicineCreateSchema(MedicineInSchema):
    name = fields.String(required=True)
    generic_name = fields.String(required=True)
    dosage_form = fields.String(required=True, metadata={"enum": list(DOSAGE_FORMS)})
    strength = fields.String(required=True)
    unit_price = fields.Raw(required=True)
    gst_rate = GstRate(required=True, metadata={"enum": list(GST_RATES)})


class MedicineArgs(PageArgs):
    q = fields.String(load_default="", validate=validate.Length(max=120))
    include_inactive = fields.Boolean(load_default=False)
    stock = fields.String(
        validate=validate.OneOf(["low", "out", "expiring"]),
        metadata={
            "description": "low: at or below the reorder level; out: no usable stock; "
            "expiring: usable stock expiring within 30 days"
        },
    )


MedicinePage = page_schema(MedicineSchema, "MedicinePage")


# ---- stock -----------------------------------------------------------------------------


class InventoryMedicineSchema(MedicineSchema):
    usable_stock = fields.Integer(metadata={"description": "Units in batches not expired"})
    next_expiry = fields.Date(allow_none=True, metadata={"description": "Soonest usable expiry"})
    low_stock = fields.Boolean(metadata={"description": "usable_stock <= reorder_level"})


InventoryMedicinePage = page_schema(InventoryMedicineSchema, "InventoryMedicinePage")


def listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `InventoryMedicineSchema` dumps, for each row of an inventory page
    (`stock.inventory`, `stock.low_stock`): built directly, because the schema's per-field
    work is a third of such a request's CPU. A test holds the two equal, field by field.
    (The columns the table requires are never None.)"""
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "generic_name": r["generic_name"],
            "ingredients": list(r["ingredients"]),
            "drug_class": r["drug_class"],
            "dosage_form": r["dosage_form"],
            "strength": r["strength"],
            "manufacturer": r["manufacturer"],
            "unit_price": f"{r['unit_price']:.2f}",
            "gst_rate": r["gst_rate"],
            "hsn_code": r["hsn_code"],
            "reorder_level": r["reorder_level"],
            "is_active": r["is_active"],
            "schedule": r["schedule"],
            "created_at": r["created_at"].isoformat(),
            "updated_at": r["updated_at"].isoformat(),
            "usable_stock": r["usable_stock"],
            "next_expiry": r["next_expiry"] and r["next_expiry"].isoformat(),
            "low_stock": r["low_stock"],
        }
        for r in rows
    ]


class BatchMedicineRef(Schema):
    id = fields.Integer()
    name = fields.String()
    strength = fields.String()
    dosage_form = fields.String()
    schedule = fields.String(metadata={"enum": SCHEDULES})


class BatchSchema(Schema):
    id = fields.Integer()
    medicine_id = fields.Integer()
    medicine = fields.Nested(BatchMedicineRef)
    batch_number = fields.String()
    quantity = fields.Integer()
    expiry_date = fields.Date()
    mfg_date = fields.Date(allow_none=True)
    supplier = fields.String(allow_none=True)
    purchase_price = Money("1.80", allow_none=True)
    received_by_id = fields.Integer()
    received_at = fields.DateTime()
    expired = fields.Boolean(metadata={"description": "On or after its expiry date (clinic date)"})


BatchPage = page_schema(BatchSchema, "BatchPage")


class BatchListSchema(Schema):
    items = fields.List(fields.Nested(BatchSchema))


class BatchIn(Schema):
    """One batch of a delivery (the service checks each rule and names `batches.N.field`)."""

    batch_number = fields.String(required=True, metadata={"example": "PC2301"})
    quantity = fields.Raw(required=True, metadata={"example": 100})
    expiry_date = fields.Raw(required=True, metadata={"example": "2031-06-30"})
    mfg_date = fields.Raw(allow_none=True, metadata={"example": "2029-07-01"})
    supplier = fields.String(allow_none=True)
    purchase_price = fields.Raw(allow_none=True, metadata={"description": 'Rupees, e.g. "1.80"'})


class StockIn(Schema):
    medicine_id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    batches = fields.List(
        fields.Dict(), required=True, metadata={"description": "See BatchIn (one or more)"}
    )


class AdjustIn(Schema):
    delta = fields.Raw(required=True, metadata={"description": "Signed units", "example": -2})
    reason = fields.String(required=True, metadata={"enum": [r.value for r in AdjustmentReason]})
    note = fields.String(allow_none=True)


class BatchArgs(PageArgs):
    medicine_id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))


class ExpiringArgs(PageArgs):
    days = fields.Integer(load_default=30, metadata={"enum": [30, 60, 90]})


# ---- dispensing ------------------------------------------------------------------------


class DispenseIn(Schema):
    prescription_id = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    allow_partial = fields.Boolean(load_default=False)


class PharmacistRef(Schema):
    id = fields.Integer()
    full_name = fields.String()


class DispensedItemSchema(Schema):
    id = fields.Integer(metadata={"description": "The dispensed_item_id a return names"})
    prescription_item_id = fields.Integer()
    medicine = fields.Nested(BatchMedicineRef)
    batch_id = fields.Integer()
    batch_number = fields.String()
    expiry_date = fields.Date()
    quantity = fields.Integer()
    returned_quantity = fields.Integer()
    returnable = fields.Integer()
    invoice_line_id = fields.Integer(
        allow_none=True,
        metadata={"description": "The PAID invoice's line that billed it (for a credit note)"},
    )
    refundable = fields.String(
        allow_none=True,
        metadata={"description": "What of that line a credit note may still refund, e.g. 2"},
    )


class OutstandingSchema(Schema):
    prescription_item_id = fields.Integer()
    medicine_id = fields.Integer()
    medicine = fields.String()
    quantity = fields.Integer(metadata={"description": "Still due"})


class DispensedPatientRef(Schema):
    id = fields.Integer()
    full_name = fields.String()
    mrn = fields.String()


class DispensingSchema(Schema):
    id = fields.Integer()
    prescription_id = fields.Integer()
    patient = fields.Nested(DispensedPatientRef)
    invoice_id = fields.Integer(allow_none=True, metadata={"description": "Its PAID invoice"})
    invoice_number = fields.String(allow_none=True)
    dispensed_by = fields.Nested(PharmacistRef)
    dispensed_at = fields.DateTime()
    partial = fields.Boolean()
    dispense_status = fields.String(metadata={"enum": [s.value for s in DispenseStatus]})
    items = fields.List(fields.Nested(DispensedItemSchema))
    outstanding = fields.List(fields.Nested(OutstandingSchema))


class ReturnItemIn(Schema):
    dispensed_item_id = fields.Integer(required=True)
    quantity = fields.Integer(required=True)


class ReturnIn(Schema):
    items = fields.List(fields.Dict(), required=True, metadata={"description": "See ReturnItemIn"})
    reason = fields.String(required=True, metadata={"example": "Unopened strip handed back"})


# ---- the H1 register -------------------------------------------------------------------


class H1EntrySchema(Schema):
    id = fields.Integer()
    entry_date = fields.Date()
    dispensed_at = fields.DateTime()
    patient_name = fields.String()
    patient_address = fields.String(allow_none=True)
    doctor_name = fields.String()
    doctor_registration = fields.String(allow_none=True)
    medicine_name = fields.String()
    schedule = fields.String(metadata={"enum": ["H1", "X"]})
    batch_number = fields.String()
    expiry_date = fields.Date()
    quantity = fields.Integer()
    pharmacist_name = fields.String()
    dispensing_id = fields.Integer()


H1Page = page_schema(H1EntrySchema, "H1RegisterPage")


class H1Args(PageArgs):
    from_ = ClinicDay(
        data_key="from", metadata={"description": "First clinic date (default: today)"}
    )
    to = ClinicDay(metadata={"description": "Last clinic date, included"})
    format = fields.String(validate=validate.OneOf(["json", "csv"]))
