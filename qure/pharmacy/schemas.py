"""JSON shapes of the medicine catalogue."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from qure.core.schemas import PageArgs, page_schema
from qure.pharmacy.models import DOSAGE_FORMS, GST_RATES, DrugSchedule

SCHEDULES = [s.value for s in DrugSchedule]


class MedicineSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    generic_name = fields.String(metadata={"description": "Ingredients joined by ' + '"})
    ingredients = fields.List(fields.String())
    drug_class = fields.String(allow_none=True)
    dosage_form = fields.String(metadata={"enum": list(DOSAGE_FORMS)})
    strength = fields.String()
    manufacturer = fields.String(allow_none=True)
    unit_price = fields.Decimal(as_string=True, places=2, metadata={"example": "12.50"})
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


MedicinePage = page_schema(MedicineSchema, "MedicinePage")
