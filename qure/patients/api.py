"""`/api/v1/patients`."""

from __future__ import annotations

from flask import g, jsonify, url_for
from flask_smorest import Blueprint

from qure.core.http import transactional
from qure.core.roles import Role, api_roles
from qure.core.schemas import ErrorSchema, page_body
from qure.patients import service
from qure.patients.schemas import (
    PatientCreateSchema,
    PatientInSchema,
    PatientPage,
    PatientSchema,
    PatientSearchArgs,
    listed,
)

blp = Blueprint("api_patients", __name__, url_prefix="/api/v1/patients", description="Patients")


@blp.get("")
@api_roles()
@blp.arguments(PatientSearchArgs, location="query")
@blp.response(200, PatientPage)
def search(args):
    """Find patients by name fragment, phone, MRN or id; best match first."""
    page = service.search(
        args["q"], args["page"], args["per_page"], args["include_archived"], g.actor
    )
    # Items built as PatientPage documents them (`listed`); a Response is sent as it is.
    return jsonify({**page_body(page), "items": listed(page.items)})


@blp.post("")
@api_roles(*service.EDITORS)
@blp.arguments(PatientCreateSchema)
@blp.response(201, PatientSchema)
@blp.alt_response(409, schema=ErrorSchema, description="possible_duplicate")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def register(body):
    """Register a patient. 409 `possible_duplicate` lists the candidates unless
    `confirm_new` is true."""
    confirm = body.pop("confirm_new", False)
    patient = service.register(g.actor, body, confirm_new=confirm)
    return (
        patient,
        201,
        {"Location": url_for("api_patients.get_patient", patient_id=patient.id)},
    )


@blp.get("/<int:patient_id>")
@api_roles()
@blp.response(200, PatientSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_patient(patient_id: int):
    """One patient (archived ones too: the record stays)."""
    return service.get_patient(patient_id)


@blp.patch("/<int:patient_id>")
@api_roles(*service.EDITORS)
@blp.arguments(PatientInSchema)
@blp.response(200, PatientSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="patient_archived")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update_patient(body, patient_id: int):
    """Change any subset of a patient's fields."""
    patient = service.update(g.actor, patient_id, body)
    return patient


@blp.delete("/<int:patient_id>")
@api_roles(Role.ADMIN)
@blp.response(200, PatientSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="already_archived")
@transactional
def archive_patient(patient_id: int):
    """Archive (the record is kept and can be restored by an ADMIN)."""
    patient = service.archive(g.actor, patient_id)
    return patient


@blp.post("/<int:patient_id>/restore")
@api_roles(Role.ADMIN)
@blp.response(200, PatientSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="not_archived")
@transactional
def restore_patient(patient_id: int):
    """Bring an archived patient back into search."""
    patient = service.restore(g.actor, patient_id)
    return patient
