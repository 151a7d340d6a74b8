"""JSON shapes of tokens and the day's queue."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from qure.core.db import MAX_ID
from qure.queue.models import TokenKind, TokenStatus
from qure.scheduling.schemas import PersonRef


class QueueTokenSchema(Schema):
    id = fields.Integer()
    token_number = fields.Integer()
    display = fields.Function(lambda e: f"{e.token_number:03d}", metadata={"example": "007"})
    date = fields.Date(attribute="day")
    doctor = fields.Nested(PersonRef)
    patient = fields.Nested(PersonRef)
    appointment_id = fields.Integer(allow_none=True)
    kind = fields.String(metadata={"enum": [k.value for k in TokenKind]})
    urgent = fields.Boolean()
    urgent_reason = fields.String(allow_none=True)
    complaint = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": [s.value for s in TokenStatus]})
    no_show_reason = fields.String(allow_none=True)
    position = fields.Function(
        lambda e: getattr(e, "position", None),
        allow_none=True,
        metadata={"description": "1 = called next; only while WAITING"},
    )
    checked_in_at = fields.DateTime()
    called_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)


class CheckInIn(Schema):
    appointment_id = fields.Integer(required=True)
    urgent = fields.Boolean(load_default=False)
    urgent_reason = fields.String(allow_none=True)


class WalkInIn(Schema):
    patient_id = fields.Integer(required=True)
    doctor_id = fields.Integer(
        allow_none=True,
        metadata={"description": "Leave out for the on-duty doctor with the fewest waiting"},
    )
    complaint = fields.String(allow_none=True)
    urgent = fields.Boolean(load_default=False)
    urgent_reason = fields.String(allow_none=True)


class NextIn(Schema):
    doctor_id = fields.Integer(
        allow_none=True, metadata={"description": "An ADMIN names the doctor; a DOCTOR omits it"}
    )
    open_visit = fields.Boolean(
        load_default=True,
        metadata={
            "description": "A DOCTOR's call also opens the called patient's visit, in the "
            "same transaction; false calls alone"
        },
    )


class CalledSchema(QueueTokenSchema):
    visit_id = fields.Function(
        lambda e: getattr(e, "visit_id", None),
        allow_none=True,
        metadata={
            "description": "The visit opened for the called patient (or the doctor's visit "
            "already open for them); null when none was opened"
        },
    )


class StatusIn(Schema):
    status = fields.String(required=True, metadata={"enum": [s.value for s in TokenStatus]})
    reason = fields.String(
        allow_none=True,
        metadata={"description": "Why (up to 200 characters): audited; kept for a no-show"},
    )


class UrgentIn(Schema):
    reason = fields.String(required=True)


# The day's queue documents the answer `overview.today` builds: the view sends it as it
# is, so these schemas describe it and serialise nothing.


class TodayToken(Schema):
    """A token in the day's queue, lean: its date and doctor are the enclosing ones."""

    id = fields.Integer()
    token_number = fields.Integer()
    display = fields.String(metadata={"example": "007"})
    kind = fields.String(metadata={"enum": [k.value for k in TokenKind]})
    status = fields.String(metadata={"enum": [s.value for s in TokenStatus]})
    urgent = fields.Boolean()
    patient = fields.Nested(PersonRef)
    checked_in_at = fields.DateTime()
    position = fields.Integer(
        metadata={"description": "Waiting tokens only: 1 = called next"},
    )
    called_at = fields.DateTime(metadata={"description": "The current token only"})


class DoctorQueueSchema(Schema):
    doctor = fields.Nested(PersonRef)
    current = fields.Nested(
        TodayToken,
        allow_none=True,
        metadata={"description": "The token WITH_DOCTOR (with `called_at`), or null"},
    )
    waiting = fields.List(
        fields.Nested(TodayToken),
        metadata={"description": "WAITING tokens in queue order (each with `position`)"},
    )
    counts = fields.Dict(
        keys=fields.String(metadata={"enum": [s.value for s in TokenStatus]}),
        values=fields.Integer(),
        metadata={"description": "Tokens per status, every status listed"},
    )


class TodaySchema(Schema):
    date = fields.Date()
    doctors = fields.List(fields.Nested(DoctorQueueSchema))


class TodayArgs(Schema):
    doctor_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


class SummaryBlock(Schema):
    total = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    average_wait_minutes = fields.Float(allow_none=True)
    average_consultation_minutes = fields.Float(allow_none=True)


class DoctorSummary(SummaryBlock):
    doctor = fields.Nested(PersonRef)


class SummarySchema(SummaryBlock):
    date = fields.Date()
    doctors = fields.List(fields.Nested(DoctorSummary))


class BoardToken(Schema):
    token_number = fields.Integer()
    display = fields.String()
    initials = fields.String()
    status = fields.String(metadata={"enum": [s.value for s in TokenStatus]})
    urgent = fields.Boolean()


class BoardDoctor(Schema):
    doctor = fields.Dict()
    now_serving = fields.Nested(BoardToken, allow_none=True)
    next = fields.List(fields.Nested(BoardToken))


class BoardSchema(Schema):
    date = fields.String()
    version = fields.String()
    doctors = fields.List(fields.Nested(BoardDoctor))
