"""`/api/v1/queue`."""

from __future__ import annotations

from flask import current_app, g, request
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from flask_smorest import Blueprint

from qure.core.errors import Unauthorized
from qure.core.http import transaction, transactional
from qure.core.roles import api_roles
from qure.core.schemas import ErrorSchema
from qure.queue import board, overview, reports, service
from qure.queue.schemas import (
    BoardSchema,
    CalledSchema,
    CheckInIn,
    NextIn,
    QueueTokenSchema,
    StatusIn,
    SummarySchema,
    TodayArgs,
    TodaySchema,
    UrgentIn,
    WalkInIn,
)
from qure.visits import service as visits

JSON = "application/json"

blp = Blueprint("api_queue", __name__, url_prefix="/api/v1/queue", description="Queue")


def _placed(entry):
    entry.position = service.position(entry)
    return entry


@blp.post("/checkin")
@api_roles(*service.FRONT_DESK)
@blp.arguments(CheckInIn)
@blp.response(201, QueueTokenSchema)
@blp.alt_response(
    409,
    schema=ErrorSchema,
    description="already_checked_in, appointment_not_today, already_in_queue",
)
def check_in(body):
    """Check in today's SCHEDULED appointment: the patient gets the day's next token."""
    with transaction(catch=()):  # committed before the position is read
        entry = service.check_in(g.actor, body["appointment_id"], body)
    return _placed(entry)


@blp.post("/walk-in")
@api_roles(*service.FRONT_DESK)
@blp.arguments(WalkInIn)
@blp.response(201, QueueTokenSchema)
@blp.alt_response(409, schema=ErrorSchema, description="already_in_queue, no_doctor_on_duty")
@blp.alt_response(422, schema=ErrorSchema)
def walk_in(body):
    """A token for a patient without an appointment."""
    with transaction(catch=()):  # committed before the position is read
        entry = service.walk_in(g.actor, body)
    return _placed(entry)


@blp.post("/next")
@api_roles(*service.CALLERS)
@blp.arguments(NextIn)
@blp.response(200, CalledSchema)
@blp.alt_response(404, schema=ErrorSchema, description="queue_empty")
@blp.alt_response(409, schema=ErrorSchema, description="patient_with_doctor")
@transactional
def call_next(body):
    """Call the first waiting token: it becomes WITH_DOCTOR and the doctor's current one.
    A doctor's call opens the patient's visit too (`visit_id`), unless `open_visit` is
    false; both happen in one transaction."""
    entry, visit = visits.call_next(g.actor, body.get("doctor_id"), body["open_visit"])
    entry.visit_id = visit.id if visit else None
    return entry


@blp.patch("/<int:token>/status")
@api_roles(*service.MOVERS)
@blp.arguments(StatusIn)
@blp.response(200, QueueTokenSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema, description="invalid_transition, visit_open")
def set_status(body, token: int):
    """Move one of today's tokens (skip, no-show, recall, complete, call this one). A token
    whose visit is still open completes only by completing the visit (409 `visit_open`)."""
    with transaction(catch=()):  # committed before the position is read
        entry = service.set_status(g.actor, token, body["status"], body.get("reason"))
    return _placed(entry)


@blp.post("/<int:token>/urgent")
@api_roles(*service.FRONT_DESK)
@blp.arguments(UrgentIn)
@blp.response(200, QueueTokenSchema)
@blp.alt_response(404, schema=ErrorSchema)
@blp.alt_response(409, schema=ErrorSchema)
def mark_urgent(body, token: int):
    """Flag a waiting token urgent, with a reason: it goes ahead of the queue."""
    with transaction(catch=()):  # committed before the position is read
        entry = service.mark_urgent(g.actor, token, body["reason"])
    return _placed(entry)


@blp.get("/<int:token>")
@api_roles()
@blp.response(200, QueueTokenSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_token(token: int):
    """One of today's tokens."""
    return service.get_token(token)


@blp.get("/today")
@api_roles()
@blp.arguments(TodayArgs, location="query")
@blp.response(200, TodaySchema)
def today(args):
    """Today's queue per doctor: current token, waiting tokens in order, counts."""
    # Already JSON text (see `overview`): sent as it is, without a schema's pass over it.
    return current_app.response_class(overview.today_text(args.get("doctor_id")), mimetype=JSON)


@blp.get("/today/summary")
@api_roles()
@blp.response(200, SummarySchema)
def summary():
    """Counts per status and average wait and consultation minutes, per doctor."""
    return reports.summary()


@blp.get("/display")
@blp.response(200, BoardSchema)
@blp.alt_response(401, schema=ErrorSchema)
@blp.alt_response(429, schema=ErrorSchema, description="too_many_attempts (wrong keys)")
@blp.doc(security=[{"bearerAuth": []}, {"displayKey": []}])
def display():
    """Now serving and the next three per doctor on duty: token numbers and initials only.
    Open to staff tokens and to the display key in `X-Display-Key`; too many wrong keys
    from one address answer 429 `too_many_attempts` for a while."""
    state = board.board_state()
    given = request.headers.get("X-Display-Key")
    if not (state.display_digest and board.try_display_key(given, state.display_digest)):
        verify_jwt_in_request(optional=True)
        if get_current_user() is None:
            raise Unauthorized("Send X-Display-Key or a staff bearer token.", "unauthorized")
    response = current_app.response_class(mimetype=JSON)
    response.set_etag(state.version)
    if request.if_none_match.contains(state.version):
        return response.make_conditional(request)
    response.set_data(board.board_body(state))
    return response
