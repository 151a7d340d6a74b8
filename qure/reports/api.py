"""`/api/v1/reports`: the daily summary (ADMIN). Today's is computed live; a past day
comes from `daily_summaries`, or is computed live (`source: live`) when the daily job has
not stored it yet."""

from __future__ import annotations

from datetime import timedelta

from flask import jsonify
from marshmallow import Schema, fields, validate

from qure.core import clock
from qure.core.documents import reading
from qure.core.errors import InvalidInput
from qure.core.roles import Role, api_roles
from qure.core.schemas import ClinicDay, ErrorSchema
from qure.reports import summary
from qure.reports.blueprints import blp

MAX_DAYS = 366
MONEY = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "example": "1180.00"}


class SummaryArgs(Schema):
    date = ClinicDay(metadata={"description": "One day (default: today)"})
    from_ = ClinicDay(data_key="from", metadata={"description": "A range's first day"})
    to = ClinicDay(metadata={"description": "A range's last day (at most 366 days)"})


class SummaryDoctorRef(Schema):
    id = fields.Integer()
    name = fields.String()


class DoctorDaySummary(Schema):
    doctor = fields.Nested(SummaryDoctorRef)
    visits = fields.Integer()
    patients = fields.Integer()
    avg_wait_minutes = fields.Float(allow_none=True)
    avg_consultation_minutes = fields.Float(allow_none=True)


class DailySummarySchema(Schema):
    date = fields.Date()
    source = fields.String(
        validate=validate.OneOf(["live", "stored"]),
        metadata={"description": "live: computed now; stored: from daily_summaries"},
    )
    total_patients = fields.Integer()
    new_patients = fields.Integer()
    total_visits = fields.Integer()
    total_revenue = fields.Decimal(as_string=True, places=2, metadata=MONEY)
    revenue_by_method = fields.Dict(
        keys=fields.String(), values=fields.Decimal(as_string=True, places=2, metadata=MONEY)
    )
    medicines_dispensed = fields.Integer(metadata={"description": "Units handed over"})
    avg_wait_minutes = fields.Float(allow_none=True, metadata={"description": "Check-in to call"})
    avg_consultation_minutes = fields.Float(
        allow_none=True, metadata={"description": "Call to completion"}
    )
    by_doctor = fields.List(fields.Nested(DoctorDaySummary))


def _days(args) -> list:
    today = clock.today()
    one, start, end = args.get("date"), args.get("from_"), args.get("to")
    if one is not None and (start is not None or end is not None):
        raise InvalidInput.naming({"date": "Give a date, or from and to: not both."})
    if start is None and end is None:
        start = end = one or today
    start, end = start or end, end or start
    if start > end:
        raise InvalidInput.naming({"from": "The first day comes before the last."})
    if end > today:
        raise InvalidInput.naming({"to" if one is None else "date": "A day still to come."})
    if (end - start).days >= MAX_DAYS:
        raise InvalidInput.naming({"to": f"At most {MAX_DAYS} days at once."})
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def summaries(days: list) -> list[dict]:
    """Each day's summary: today's live, a past day's stored (live until stored)."""
    today = clock.today()
    past = [d for d in days if d < today]
    with reading():
        kept = summary.stored(past[0], past[-1]) if past else {}
    return [
        {**kept[d], "source": "stored"} if d in kept else {**summary.live(d), "source": "live"}
        for d in days
    ]


@blp.get("/daily-summary")
@api_roles(Role.ADMIN)
@blp.arguments(SummaryArgs, location="query")
@blp.response(200, DailySummarySchema)
@blp.alt_response(422, schema=ErrorSchema)
@blp.alt_response(503, schema=ErrorSchema, description="analytics_unavailable")
@blp.doc(
    responses={
        "200": {
            "description": "One day's summary; with from and to, {items: [one per day]}",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/DailySummary"},
                            {
                                "type": "object",
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/DailySummary"},
                                    }
                                },
                                "required": ["items"],
                            },
                        ]
                    }
                }
            },
        }
    }
)
def daily_summary(args):
    """A clinic day's summary (`date`, default today), or one per day from `from` to `to`:
    patients, new patients, visits, net revenue (payments less credit notes) by method,
    units dispensed, average wait and consultation minutes, and per doctor."""
    days = _days(args)
    found = summaries(days)
    if args.get("from_") is None and args.get("to") is None:
        return found[0]
    # A range is sent as it is (the response schema is the one day's).
    return jsonify({"items": DailySummarySchema(many=True).dump(found)})


from qure.reports import audit_api, listing_api  # noqa: E402,F401 - their routes join blp
