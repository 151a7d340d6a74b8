"""`/api/v1/reports`: the daily summary (ADMIN). Today's is computed live; a past day
comes from `daily_summaries`, or is computed live (`source: live`) when the daily job has
not stored it yet."""

from __future__ import annotations

from flask import jsonify
from marshmallow import Schema, fields, validate

from qure.core.roles import Role, api_roles
from qure.core.schemas import ClinicDay, ErrorSchema
from qure.reports import dashboard, summary
from qure.reports.blueprints import blp

MAX_DAYS = summary.MAX_DAYS
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


class PlainList(fields.List):
    """A list of plain JSON values (dicts of ints, floats and strings, as `summary` makes
    them), sent as it is and documented by its inner schema: a 90-day range carries
    thousands of such rows, and dumping each through a nested schema cost most of the
    answer's time (bench/reports.py)."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else list(value)


class DiagnosisCount(Schema):
    code = fields.String(metadata={"description": "ICD-10 code", "example": "J06.9"})
    name = fields.String(metadata={"description": "The WHO table's description"})
    visits = fields.Integer()


class SummaryMedicineRef(Schema):
    id = fields.Integer()
    name = fields.String()


class MedicineUnits(Schema):
    medicine = fields.Nested(SummaryMedicineRef)
    units = fields.Integer(metadata={"description": "Units handed over"})


class HourWait(Schema):
    hour = fields.Integer(
        validate=validate.Range(0, 23), metadata={"description": "Clinic-time hour of check-in"}
    )
    entries = fields.Integer(metadata={"description": "Queue entries called"})
    avg_wait_minutes = fields.Float(metadata={"description": "Check-in to call"})


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
    top_diagnoses = PlainList(
        fields.Nested(DiagnosisCount),
        metadata={"description": "Every ICD-10 code of the day's visits, most visits first"},
    )
    top_medicines = PlainList(
        fields.Nested(MedicineUnits),
        metadata={"description": "Every medicine handed over that day, most units first"},
    )
    wait_by_hour = PlainList(
        fields.Nested(HourWait),
        metadata={"description": "Called queue entries by hour of check-in (hours with any)"},
    )


def _days(args) -> list:
    return summary.days_asked(args.get("date"), args.get("from_"), args.get("to"))


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
    units dispensed, average wait and consultation minutes, per doctor; and for charts the
    day's visits per ICD-10 code, units per medicine and the wait by hour of check-in."""
    days = _days(args)
    found = dashboard.days_of(days[0], days[-1])
    if args.get("from_") is None and args.get("to") is None:
        return found[0]
    # A range is sent as it is (the response schema is the one day's).
    return jsonify({"items": DailySummarySchema(many=True).dump(found)})


from qure.reports import audit_api, listing_api  # noqa: E402,F401 - their routes join blp
