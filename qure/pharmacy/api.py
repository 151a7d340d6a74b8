"""`/api/v1/inventory/medicines`: the catalogue."""

from __future__ import annotations

from flask import g, url_for
from flask_smorest import Blueprint

from qure.core.http import transactional
from qure.core.roles import api_roles
from qure.core.schemas import ErrorSchema, page_body
from qure.pharmacy import service
from qure.pharmacy.schemas import (
    MedicineArgs,
    MedicineCreateSchema,
    MedicineInSchema,
    MedicinePage,
    MedicineSchema,
)

blp = Blueprint(
    "api_medicines",
    __name__,
    url_prefix="/api/v1/inventory/medicines",
    description="Medicine catalogue",
)


@blp.get("")
@api_roles()
@blp.arguments(MedicineArgs, location="query")
@blp.response(200, MedicinePage)
def list_medicines(args):
    """Find medicines by name, ingredient or class (every word must appear)."""
    page = service.search(args["q"], not args["include_inactive"], args["page"], args["per_page"])
    return page_body(page)


@blp.post("")
@api_roles(*service.EDITORS)
@blp.arguments(MedicineCreateSchema)
@blp.response(201, MedicineSchema)
@blp.alt_response(409, schema=ErrorSchema, description="medicine_exists")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def create_medicine(body):
    """Add a medicine (unique by name, strength and form)."""
    medicine = service.create(g.actor, body)
    location = url_for("api_medicines.get_medicine", medicine_id=medicine.id)
    return medicine, 201, {"Location": location}


@blp.get("/<int:medicine_id>")
@api_roles()
@blp.response(200, MedicineSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_medicine(medicine_id: int):
    """One medicine."""
    return service.get_medicine(medicine_id)


@blp.patch("/<int:medicine_id>")
@api_roles(*service.EDITORS)
@blp.arguments(MedicineInSchema)
@blp.response(200, MedicineSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="medicine_exists")
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update_medicine(body, medicine_id: int):
    """Change any subset of a medicine's fields (is_active false takes it off the list)."""
    medicine = service.update(g.actor, medicine_id, body)
    return medicine
