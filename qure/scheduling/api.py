"""`/api/v1/slots` and `/api/v1/appointments`."""

from __future__ import annotations

from flask import g, url_for
from flask_smorest import Blueprint

from qure.core.http import transactional
from qure.core.roles import api_roles
from qure.core.schemas import ErrorSchema, page_body
from qure.scheduling import service
from qure.scheduling.schemas import (
    AppointmentArgs,
    AppointmentIn,
    AppointmentPage,
    AppointmentPatch,
    AppointmentSchema,
    BlockIn,
    BlockRangeIn,
    BlockRangeOut,
    BulkSlotsIn,
    BulkSlotsOut,
    CancelIn,
    SlotArgs,
    SlotPage,
    SlotSchema,
)

slots_blp = Blueprint("api_slots", __name__, url_prefix="/api/v1/slots", description="Slots")
appointments_blp = Blueprint(
    "api_appointments", __name__, url_prefix="/api/v1/appointments", description="Appointments"
)


@slots_blp.post("/bulk")
@api_roles(*service.SCHEDULERS)
@slots_blp.arguments(BulkSlotsIn)
@slots_blp.response(201, BulkSlotsOut)
@slots_blp.alt_response(403, schema=ErrorSchema)
@slots_blp.alt_response(422, schema=ErrorSchema)
@transactional
def bulk_create(body):
    """Create every slot in a window that is not in the past and overlaps nothing; at most
    92 days and 3,000 slots. A DOCTOR creates only their own."""
    result = service.bulk_create(g.actor, body)
    return result


@slots_blp.get("")
@api_roles()
@slots_blp.arguments(SlotArgs, location="query")
@slots_blp.response(200, SlotPage)
def list_slots(args):
    """Slots in time order, by doctor, clinic date or date range (`from`/`to`), status."""
    page = service.list_slots(
        args.get("doctor_id"),
        args.get("date"),
        args.get("from_"),
        args.get("to"),
        args.get("status"),
        args["page"],
        args["per_page"],
    )
    return page_body(page)


@slots_blp.get("/<int:slot_id>")
@api_roles()
@slots_blp.response(200, SlotSchema)
@slots_blp.alt_response(404, schema=ErrorSchema)
def get_slot(slot_id: int):
    """One slot."""
    return service.get_slot(slot_id)


@slots_blp.patch("/<int:slot_id>/block")
@api_roles(*service.SCHEDULERS)
@slots_blp.arguments(BlockIn)
@slots_blp.response(200, SlotSchema)
@slots_blp.alt_response(404, schema=ErrorSchema)
@slots_blp.alt_response(409, schema=ErrorSchema, description="slot_booked, already_blocked")
@transactional
def block_slot(body, slot_id: int):
    """Block an OPEN slot (a reason is required) or unblock a BLOCKED one."""
    slot = service.set_blocked(g.actor, slot_id, body["blocked"], body.get("reason"))
    return slot


@slots_blp.post("/block")
@api_roles(*service.SCHEDULERS)
@slots_blp.arguments(BlockRangeIn)
@slots_blp.response(200, BlockRangeOut)
@slots_blp.alt_response(422, schema=ErrorSchema)
@transactional
def block_range(body):
    """Block every OPEN slot starting in [start, end); booked ones are listed, untouched.
    Times without an offset are clinic-local."""
    result = service.block_range(g.actor, body)
    return result


@appointments_blp.post("")
@api_roles(*service.BOOKERS)
@appointments_blp.arguments(AppointmentIn)
@appointments_blp.response(201, AppointmentSchema)
@appointments_blp.alt_response(
    409, schema=ErrorSchema, description="slot_taken, slot_blocked, patient_double_booked"
)
@appointments_blp.alt_response(422, schema=ErrorSchema, description="slot_in_past, fields")
@transactional
def book(body):
    """Book a patient into an open slot."""
    appointment = service.book(g.actor, body)
    location = url_for("api_appointments.get_appointment", appointment_id=appointment.id)
    return appointment, 201, {"Location": location}


@appointments_blp.get("")
@api_roles(*service.READERS)
@appointments_blp.arguments(AppointmentArgs, location="query")
@appointments_blp.response(200, AppointmentPage)
def list_appointments(args):
    """Appointments by clinic date, doctor, patient, status. A DOCTOR sees their own."""
    page = service.list_appointments(
        g.actor,
        args.get("date"),
        args.get("doctor_id"),
        args.get("patient_id"),
        args.get("status"),
        args["page"],
        args["per_page"],
    )
    return page_body(page)


@appointments_blp.get("/<int:appointment_id>")
@api_roles(*service.READERS)
@appointments_blp.response(200, AppointmentSchema)
@appointments_blp.alt_response(404, schema=ErrorSchema)
def get_appointment(appointment_id: int):
    """One appointment (a DOCTOR: their own)."""
    return service.get_appointment(appointment_id, g.actor)


@appointments_blp.patch("/<int:appointment_id>")
@api_roles(*service.BOOKERS)
@appointments_blp.arguments(AppointmentPatch)
@appointments_blp.response(200, AppointmentSchema)
@appointments_blp.alt_response(404, schema=ErrorSchema)
@appointments_blp.alt_response(409, schema=ErrorSchema)
@appointments_blp.alt_response(422, schema=ErrorSchema)
@transactional
def reschedule(body, appointment_id: int):
    """Move to another slot (the old one is freed in the same transaction) or change the
    reason; only before check-in."""
    appointment = service.reschedule(g.actor, appointment_id, body)
    return appointment


@appointments_blp.delete("/<int:appointment_id>")
@api_roles(*service.BOOKERS)
@appointments_blp.arguments(CancelIn, required=False)
@appointments_blp.response(200, AppointmentSchema)
@appointments_blp.alt_response(404, schema=ErrorSchema)
@appointments_blp.alt_response(409, schema=ErrorSchema, description="already_checked_in")
@transactional
def cancel(body, appointment_id: int):
    """Cancel (only before check-in): the slot opens again. An optional JSON body
    `{reason}` says why; it is kept on the appointment and audited."""
    appointment = service.cancel(g.actor, appointment_id, (body or {}).get("reason"))
    return appointment
