"""JSON shapes of prescriptions."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from qure.core.db import MAX_BIG_ID, MAX_ID
from qure.core.schemas import PageArgs, page_schema
from qure.prescriptions import dosing
from qure.prescriptions.models import DispenseStatus
from qure.scheduling.schemas import PatientRef, PersonRef


class MedicineRef(Schema):
    id = fields.Integer()
    name = fields.String()
    generic_name = fields.String()
    strength = fields.String()
    dosage_form = fields.String()


class ItemSchema(Schema):
    medicine = fields.Nested(MedicineRef)
    dose = fields.Decimal(
        as_string=True,
        metadata={"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$", "example": "0.5"},
    )
    frequency = fields.String()
    frequency_words = fields.Function(lambda item: dosing.parse_frequency(item.frequency).words)
    duration_days = fields.Integer()
    quantity = fields.Integer()
    route = fields.String(allow_none=True)
    instructions = fields.String(allow_none=True)


class PrescriptionSchema(Schema):
    id = fields.Integer()
    visit_id = fields.Integer()
    patient = fields.Nested(PatientRef)
    doctor = fields.Nested(PersonRef)
    notes = fields.String(allow_none=True)
    allergy_override_reason = fields.String(allow_none=True)
    dispense_status = fields.String(metadata={"enum": [s.value for s in DispenseStatus]})
    created_at = fields.DateTime()
    items = fields.List(fields.Nested(ItemSchema))


class ItemIn(Schema):
    medicine_id = fields.Raw(required=True)
    dose = fields.Raw(required=True, metadata={"example": "0.5"})
    frequency = fields.String(required=True, metadata={"example": "1-0-1"})
    duration_days = fields.Raw(required=True)
    quantity = fields.Raw(allow_none=True)
    route = fields.String(allow_none=True)
    instructions = fields.String(allow_none=True, metadata={"example": "after food"})


class PrescriptionIn(Schema):
    visit_id = fields.Integer(required=True)
    items = fields.List(fields.Dict(), required=True, metadata={"description": "See ItemIn"})
    notes = fields.String(allow_none=True)
    override_reason = fields.String(
        allow_none=True, metadata={"description": "Required to go on past an allergy match"}
    )


class PrescriptionPatch(Schema):
    items = fields.List(fields.Dict())
    notes = fields.String(allow_none=True)
    override_reason = fields.String(allow_none=True)


class PrescriptionArgs(PageArgs):
    status = fields.String(
        validate=validate.OneOf(["awaiting_dispense"]),
        metadata={
            "description": "awaiting_dispense: a PAID invoice and not fully dispensed, "
            "oldest first (patient and doctor filters do not apply)"
        },
    )
    patient_id = fields.Integer(validate=validate.Range(min=1, max=MAX_BIG_ID))
    doctor_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


PrescriptionPage = page_schema(PrescriptionSchema, "PrescriptionPage")
