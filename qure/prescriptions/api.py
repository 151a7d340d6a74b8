"""`/api/v1/prescriptions`."""

from __future__ import annotations

from io import BytesIO

from flask import g, send_file, url_for
from flask_smorest import Blueprint

from qure.core.http import transactional
from qure.core.roles import Role, api_roles
from qure.core.schemas import ErrorSchema, listed_page, page_body
from qure.pharmacy import dispensing
from qure.prescriptions import service
from qure.prescriptions.schemas import (
    PrescriptionArgs,
    PrescriptionIn,
    PrescriptionPage,
    PrescriptionPatch,
    PrescriptionSchema,
    listed,
)

blp = Blueprint(
    "api_prescriptions", __name__, url_prefix="/api/v1/prescriptions", description="Prescriptions"
)


@blp.post("")
@api_roles(Role.DOCTOR)
@blp.arguments(PrescriptionIn)
@blp.response(201, PrescriptionSchema)
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="allergy_conflict (matches in details), prescription_exists, visit_completed",
)
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def create(body):
    """Write the visit's prescription; an allergy match needs `override_reason`."""
    prescription = service.create(g.actor, body)
    location = url_for("api_prescriptions.get_prescription", prescription_id=prescription.id)
    return prescription, 201, {"Location": location}


@blp.get("")
@api_roles()
@blp.arguments(PrescriptionArgs, location="query")
@blp.response(200, PrescriptionPage)
def list_prescriptions(args):
    """Prescriptions newest first, by patient and/or doctor; or, with
    `status=awaiting_dispense`, those the pharmacy has to dispense, oldest first."""
    if args.get("status") == "awaiting_dispense":
        # Items built as PrescriptionPage documents them (`listed`), not dumped again.
        found = dispensing.to_dispense(args["page"], args["per_page"])
        return listed_page(found, listed(found.items))
    page = service.list_prescriptions(
        args.get("patient_id"), args.get("doctor_id"), args["page"], args["per_page"]
    )
    return page_body(page)


@blp.get("/<int:prescription_id>")
@api_roles()
@blp.response(200, PrescriptionSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_prescription(prescription_id: int):
    """One prescription."""
    return service.get_prescription(prescription_id)


@blp.patch("/<int:prescription_id>")
@api_roles(Role.DOCTOR)
@blp.arguments(PrescriptionPatch)
@blp.response(200, PrescriptionSchema)
@blp.alt_response(409, schema=ErrorSchema)
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update(body, prescription_id: int):
    """Change items or notes while the visit is in progress."""
    prescription = service.update(g.actor, prescription_id, body)
    return prescription


@blp.get("/<int:prescription_id>/print")
@api_roles()
@blp.response(200, content_type="application/pdf", description="The A5 prescription")
@blp.alt_response(404, schema=ErrorSchema)
def print_prescription(prescription_id: int):
    """The printed prescription as a PDF."""
    pdf, name = service.print_pdf(prescription_id)
    return send_file(
        BytesIO(pdf), mimetype="application/pdf", download_name=name, as_attachment=True
    )
