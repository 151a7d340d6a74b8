"""JSON shapes of prescriptions."""

from __future__ import annotations

from typing import Any

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


def listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `PrescriptionSchema` dumps, for each prescription of the to-dispense list
    (`pharmacy.dispensing.to_dispense`, plain dicts of the same shape): built directly,
    because the nested schemas' per-field work is most of such a request's CPU. A test
    holds the two equal, field by field and in order. (Patient, doctor and medicine are
    the rows' own dicts, already the schema's shape; the columns the tables require are
    never None; a stored frequency always parses.)"""
    words: dict[str, str] = {}  # a page repeats a few frequencies
    out = []
    for p in rows:
        items = []
        for i in p["items"]:
            frequency = i["frequency"]
            if frequency not in words:
                words[frequency] = dosing.parse_frequency(frequency).words
            items.append(
                {
                    "medicine": i["medicine"],
                    "dose": format(i["dose"], "f"),
                    "frequency": frequency,
                    "frequency_words": words[frequency],
                    "duration_days": i["duration_days"],
                    "quantity": i["quantity"],
                    "route": i["route"],
                    "instructions": i["instructions"],
                }
            )
        out.append(
            {
                "id": p["id"],
                "visit_id": p["visit_id"],
                "patient": p["patient"],
                "doctor": p["doctor"],
                "notes": p["notes"],
                "allergy_override_reason": p["allergy_override_reason"],
                "dispense_status": p["dispense_status"],
                "created_at": p["created_at"].isoformat(),
                "items": items,
            }
        )
    return out
