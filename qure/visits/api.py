"""`/api/v1/visits` and a patient's visit history."""

from __future__ import annotations

from flask import g, url_for
from flask_smorest import Blueprint

from qure.core.http import transactional
from qure.core.roles import Role, api_roles
from qure.core.schemas import ErrorSchema, PageArgs, page_body
from qure.patients import service as patients
from qure.visits import service
from qure.visits.schemas import (
    NoteIn,
    NoteSchema,
    VisitPage,
    VisitPatch,
    VisitSchema,
    VisitStartIn,
)

blp = Blueprint("api_visits", __name__, url_prefix="/api/v1", description="Visits")


@blp.post("/visits")
@api_roles(Role.DOCTOR)
@blp.arguments(VisitStartIn)
@blp.response(201, VisitSchema)
@blp.alt_response(409, schema=ErrorSchema, description="visit_in_progress, token_not_with_you")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def start_visit(body):
    """Start a visit for the called token, an appointment, or a patient (one of them)."""
    visit = service.start(g.actor, body)
    return visit, 201, {"Location": url_for("api_visits.get_visit", visit_id=visit.id)}


@blp.get("/visits/<int:visit_id>")
@api_roles(*service.READERS)
@blp.response(200, VisitSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_visit(visit_id: int):
    """One visit with its vitals (temperature in °C, BMI) and notes."""
    return service.get_visit(visit_id, g.actor)


@blp.patch("/visits/<int:visit_id>")
@api_roles(Role.DOCTOR)
@blp.arguments(VisitPatch)
@blp.response(200, VisitSchema)
@blp.alt_response(403, schema=ErrorSchema, description="not_your_visit")
@blp.alt_response(409, schema=ErrorSchema, description="visit_completed")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update_visit(body, visit_id: int):
    """Record vitals and findings (any subset; temperature with temperature_unit C or F)."""
    visit = service.update(g.actor, visit_id, body)
    return visit


@blp.post("/visits/<int:visit_id>/notes")
@api_roles(Role.DOCTOR)
@blp.arguments(NoteIn)
@blp.response(201, NoteSchema)
@blp.alt_response(403, schema=ErrorSchema)
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def add_note(body, visit_id: int):
    """Add a clinical note (an addendum once the visit is completed)."""
    note = service.add_note(g.actor, visit_id, body)
    return note, 201


@blp.get("/visits/<int:visit_id>/notes")
@api_roles(*service.READERS)
@blp.response(200, NoteSchema(many=True))
def list_notes(visit_id: int):
    """The visit's notes, oldest first."""
    return service.get_visit(visit_id, g.actor).notes


@blp.post("/visits/<int:visit_id>/complete")
@api_roles(Role.DOCTOR)
@blp.response(200, VisitSchema)
@blp.alt_response(409, schema=ErrorSchema, description="visit_completed")
@blp.alt_response(422, schema=ErrorSchema, description="diagnosis_required")
@transactional
def complete_visit(visit_id: int):
    """Complete: needs a diagnosis; completes the appointment and the token too."""
    visit = service.complete(g.actor, visit_id)
    return visit


@blp.get("/patients/<int:patient_id>/visits")
@api_roles(*service.READERS)
@blp.arguments(PageArgs, location="query")
@blp.response(200, VisitPage)
@blp.alt_response(404, schema=ErrorSchema)
def patient_visits(args, patient_id: int):
    """A patient's visits, newest first."""
    patients.get_patient(patient_id)
    return page_body(service.patient_visit_page(patient_id, args["page"], args["per_page"]))
