"""JSON shapes of slots and appointments."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from qure.core.db import MAX_BIG_ID, MAX_ID
from qure.core.schemas import PageArgs, page_schema
from qure.scheduling import parsing
from qure.scheduling.models import AppointmentStatus, SlotStatus


class _Read(fields.Field):
    """A field read by one of `parsing`'s readers; its ValueError is the field's message."""

    reader = staticmethod(lambda value: value)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return self.reader(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class ClockTime(_Read):
    """A clinic-local time of day as HH:MM, read as a `time`."""

    reader = staticmethod(parsing.read_time)


class Weekdays(_Read):
    """Weekdays as 1 (Monday) to 7 (Sunday) or names, read as a set of ISO numbers."""

    reader = staticmethod(parsing.read_weekdays)


class Instant(_Read):
    """An ISO date and time, read as an aware `datetime` (clinic-local without an offset)."""

    reader = staticmethod(parsing.read_instant)


class Breaks(_Read):
    """[{start, end}] as HH:MM, read as a list of (start, end) times."""

    @staticmethod
    def reader(value):
        if not isinstance(value, list):
            raise ValueError(parsing.BAD_BREAK)
        if not all(isinstance(item, dict) for item in value):
            raise ValueError(parsing.BAD_BREAK)
        return [parsing.read_break(item.get("start"), item.get("end")) for item in value]


def _day(**kwargs) -> fields.Date:
    """A date as YYYY-MM-DD, with the schedule's own message for one that is not."""
    return fields.Date(error_messages={"invalid": parsing.BAD_DAY}, **kwargs)


class PersonRef(Schema):
    id = fields.Integer()
    full_name = fields.String()


class PatientRef(PersonRef):
    mrn = fields.String()


class SlotSchema(Schema):
    id = fields.Integer()
    doctor_id = fields.Integer()
    doctor = fields.Nested(PersonRef)
    start_at = fields.DateTime()
    end_at = fields.DateTime()
    duration_minutes = fields.Integer()
    status = fields.String(metadata={"enum": [s.value for s in SlotStatus]})
    block_reason = fields.String(allow_none=True)


class BreakSchema(Schema):
    start = fields.String(required=True, metadata={"example": "13:00"})
    end = fields.String(required=True, metadata={"example": "14:00"})


class BulkSlotsIn(Schema):
    doctor_id = fields.Integer(
        metadata={"description": "Required for an ADMIN; a DOCTOR may leave it out (own)."}
    )
    start_date = _day(required=True)
    end_date = _day(required=True)
    weekdays = Weekdays(
        metadata={
            "type": "array",
            "description": "1 (Monday) to 7 (Sunday), or MON..SUN; every day if absent",
        },
    )
    start_time = ClockTime(required=True, metadata={"type": "string", "example": "09:00"})
    end_time = ClockTime(required=True, metadata={"type": "string", "example": "17:00"})
    duration_minutes = fields.Integer(
        required=True,
        error_messages={"invalid": "Choose 15 or 30 minutes."},
        metadata={"enum": [15, 30]},
    )
    breaks = Breaks(metadata={"type": "array", "description": "[{start, end}] as HH:MM"})


class BulkSlotsOut(Schema):
    created = fields.Integer()
    skipped = fields.Integer()
    slots = fields.List(fields.Nested(SlotSchema))


class SlotArgs(PageArgs):
    doctor_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    date = fields.Date()
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    status = fields.String(validate=validate.OneOf([s.value for s in SlotStatus]))


class BlockIn(Schema):
    blocked = fields.Boolean(required=True)
    reason = fields.String(allow_none=True)


class BlockRangeIn(Schema):
    doctor_id = fields.Integer()
    start = Instant(required=True, metadata={"type": "string", "example": "2026-12-01T13:00"})
    end = Instant(required=True, metadata={"type": "string", "example": "2026-12-01T17:00"})
    reason = fields.String(required=True)


class BlockRangeOut(Schema):
    blocked = fields.List(fields.Nested(SlotSchema))
    left_booked = fields.List(fields.Nested(SlotSchema))


class AppointmentSchema(Schema):
    id = fields.Integer()
    patient_id = fields.Integer()
    patient = fields.Nested(PatientRef)
    slot_id = fields.Integer()
    doctor_id = fields.Integer()
    doctor = fields.Nested(PersonRef)
    start_at = fields.DateTime()
    end_at = fields.DateTime()
    reason = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": [s.value for s in AppointmentStatus]})
    created_at = fields.DateTime()
    checked_in_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)


class AppointmentIn(Schema):
    patient_id = fields.Integer(required=True)
    slot_id = fields.Integer(required=True)
    reason = fields.String(allow_none=True)


class CancelIn(Schema):
    reason = fields.String(
        allow_none=True, metadata={"description": "Why (up to 200 characters); optional"}
    )


class AppointmentPatch(Schema):
    slot_id = fields.Integer()
    reason = fields.String(allow_none=True)


class AppointmentArgs(PageArgs):
    date = fields.Date()
    doctor_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    patient_id = fields.Integer(validate=validate.Range(min=1, max=MAX_BIG_ID))
    status = fields.String(validate=validate.OneOf([s.value for s in AppointmentStatus]))


SlotPage = page_schema(SlotSchema, "SlotPage")
AppointmentPage = page_schema(AppointmentSchema, "AppointmentPage")
