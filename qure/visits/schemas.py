"""JSON shapes of visits and notes."""

from __future__ import annotations

from marshmallow import Schema, fields

from qure.core.schemas import ClinicDay, page_schema
from qure.scheduling.schemas import PatientRef, PersonRef
from qure.visits import vitals
from qure.visits.models import NoteCategory, VisitStatus
from qure.visits.service import BAD_DAY


def _vitals(visit) -> dict:
    return {
        "bp_systolic": visit.bp_systolic,
        "bp_diastolic": visit.bp_diastolic,
        "temperature_c": str(visit.temperature_c) if visit.temperature_c is not None else None,
        "pulse": visit.pulse,
        "spo2": visit.spo2,
        "weight_kg": str(visit.weight_kg) if visit.weight_kg is not None else None,
        "height_cm": str(visit.height_cm) if visit.height_cm is not None else None,
        "respiratory_rate": visit.respiratory_rate,
        "bmi": str(vitals.bmi(visit)) if vitals.bmi(visit) is not None else None,
    }


class NoteSchema(Schema):
    id = fields.Integer()
    category = fields.String(metadata={"enum": [c.value for c in NoteCategory]})
    text = fields.String()
    author = fields.Nested(PersonRef)
    created_at = fields.DateTime()
    is_addendum = fields.Boolean()


class VisitSchema(Schema):
    id = fields.Integer()
    patient = fields.Nested(PatientRef)
    doctor = fields.Nested(PersonRef)
    appointment_id = fields.Integer(allow_none=True)
    status = fields.String(metadata={"enum": [s.value for s in VisitStatus]})
    started_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    vitals = fields.Function(_vitals)
    chief_complaint = fields.String(allow_none=True)
    symptom_duration = fields.String(allow_none=True)
    diagnosis = fields.String(allow_none=True)
    icd10_code = fields.String(allow_none=True)
    treatment_plan = fields.String(allow_none=True)
    follow_up_date = fields.Date(allow_none=True)
    notes = fields.List(fields.Nested(NoteSchema))


class VisitStartIn(Schema):
    token_number = fields.Integer(allow_none=True)
    appointment_id = fields.Integer(allow_none=True)
    patient_id = fields.Integer(allow_none=True)


class VitalsIn(Schema):
    bp_systolic = fields.Raw(allow_none=True)
    bp_diastolic = fields.Raw(allow_none=True)
    temperature = fields.Raw(allow_none=True)
    temperature_unit = fields.String(allow_none=True, metadata={"enum": ["C", "F"]})
    pulse = fields.Raw(allow_none=True)
    spo2 = fields.Raw(allow_none=True)
    weight_kg = fields.Raw(allow_none=True)
    height_cm = fields.Raw(allow_none=True)
    respiratory_rate = fields.Raw(allow_none=True)


class VisitPatch(Schema):
    vitals = fields.Dict(allow_none=True, metadata={"description": "See VitalsIn"})
    chief_complaint = fields.String(allow_none=True)
    symptom_duration = fields.String(allow_none=True)
    diagnosis = fields.String(allow_none=True)
    icd10_code = fields.String(allow_none=True)
    treatment_plan = fields.String(allow_none=True)
    follow_up_date = ClinicDay(allow_none=True, error_messages={"invalid": BAD_DAY})


class NoteIn(Schema):
    category = fields.String(required=True, metadata={"enum": [c.value for c in NoteCategory]})
    text = fields.String(required=True)


VisitPage = page_schema(VisitSchema, "VisitPage")
