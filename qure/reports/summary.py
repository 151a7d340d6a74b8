"""A clinic day's summary: patients, visits, net revenue by payment method, medicines
dispensed, average wait and consultation minutes, and the same per doctor.

Computed live from PostgreSQL (`live`), the one definition of every figure: today's
summary is always live, and the daily job (`tasks.py`) stores the same computation of a
past day in MongoDB's `daily_summaries`, one document per day (upserted: running the job
twice gives one document), so that the stored figures equal the live ones.

- Visits: visits started on the day; patients: the distinct patients of those visits;
  new patients: patients registered on the day.
- Revenue: the day's takings, payments (there is one only for a PAID invoice) less
  credit notes, per method (`billing.service.takings`, the day close's figures).
- Medicines dispensed: units handed over by the day's dispensings.
- Wait: check-in to call; consultation: call to completion, from the queue entries of
  the day (`queue_entries` timestamps), in minutes with one decimal."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, extract, func, select

from qure.auth.models import User
from qure.billing import service as billing
from qure.core import clock, documents
from qure.extensions import db, mongo
from qure.patients.models import Patient
from qure.pharmacy.models import DispensedItem, Dispensing
from qure.queue.models import QueueEntry
from qure.visits.models import Visit

COLLECTION = "daily_summaries"
documents.index(COLLECTION, ("date", 1), unique=True)


def _minutes(seconds: float | Decimal | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 60, 1)


def live(day: date) -> dict[str, Any]:
    """The summary of clinic day `day`, computed now from PostgreSQL (plain values:
    amounts as Decimal)."""
    start, end = clock.day_bounds(day)
    visits = (
        select(
            Visit.doctor_id,
            func.count(Visit.id),
            func.count(distinct(Visit.patient_id)),
        )
        .where(Visit.started_at >= start, Visit.started_at < end)
        .group_by(Visit.doctor_id)
    )
    per_doctor: dict[int, dict[str, Any]] = {}
    for doctor_id, count, patients in db.session.execute(visits):
        per_doctor[doctor_id] = {"visits": count, "patients": patients}
    total_visits, total_patients = db.session.execute(
        select(func.count(Visit.id), func.count(distinct(Visit.patient_id))).where(
            Visit.started_at >= start, Visit.started_at < end
        )
    ).one()
    new_patients = db.session.scalar(
        select(func.count(Patient.id)).where(Patient.created_at >= start, Patient.created_at < end)
    )
    wait = extract("epoch", QueueEntry.called_at - QueueEntry.checked_in_at)
    consult = extract("epoch", QueueEntry.completed_at - QueueEntry.called_at)
    timing = (
        select(QueueEntry.doctor_id, func.avg(wait), func.avg(consult))
        .where(QueueEntry.day == day, QueueEntry.called_at.is_not(None))
        .group_by(QueueEntry.doctor_id)
    )
    both = select(func.avg(wait), func.avg(consult)).where(
        QueueEntry.day == day, QueueEntry.called_at.is_not(None)
    )
    for doctor_id, waited, consulted in db.session.execute(timing):
        row = per_doctor.setdefault(doctor_id, {"visits": 0, "patients": 0})
        row.update(avg_wait_minutes=_minutes(waited), avg_consultation_minutes=_minutes(consulted))
    avg_wait, avg_consult = db.session.execute(both).one()
    dispensed = db.session.scalar(
        select(func.coalesce(func.sum(DispensedItem.quantity), 0))
        .join(Dispensing, Dispensing.id == DispensedItem.dispensing_id)
        .where(Dispensing.dispensed_at >= start, Dispensing.dispensed_at < end)
    )
    names = dict(
        db.session.execute(
            select(User.id, User.full_name).where(User.id.in_(list(per_doctor)))
        ).all()
    )
    takings = billing.takings(day)
    return {
        "date": day,
        "total_patients": total_patients,
        "new_patients": new_patients or 0,
        "total_visits": total_visits,
        "total_revenue": takings["net"],
        "revenue_by_method": dict(takings["by_method"]),
        "medicines_dispensed": int(dispensed or 0),
        "avg_wait_minutes": _minutes(avg_wait),
        "avg_consultation_minutes": _minutes(avg_consult),
        "by_doctor": [
            {
                "doctor": {"id": doctor_id, "name": names.get(doctor_id, "")},
                "visits": row["visits"],
                "patients": row["patients"],
                "avg_wait_minutes": row.get("avg_wait_minutes"),
                "avg_consultation_minutes": row.get("avg_consultation_minutes"),
            }
            for doctor_id, row in sorted(per_doctor.items(), key=lambda kv: names.get(kv[0], ""))
        ],
    }


# ---- stored in MongoDB ---------------------------------------------------------------------


def _bson_day(day: date) -> datetime:
    """A day as BSON can hold it: its midnight, UTC."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def to_document(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as `daily_summaries` stores it: the day a BSON date, amounts as text with
    two decimals (exact, as the API answers them)."""
    return {
        **summary,
        "date": _bson_day(summary["date"]),
        "total_revenue": f"{summary['total_revenue']:.2f}",
        "revenue_by_method": {m: f"{v:.2f}" for m, v in summary["revenue_by_method"].items()},
    }


def from_document(document: dict[str, Any]) -> dict[str, Any]:
    """A stored summary as `live` gives it."""
    found = {k: v for k, v in document.items() if k != "_id"}
    found["date"] = document["date"].date()
    found["total_revenue"] = Decimal(document["total_revenue"])
    found["revenue_by_method"] = {m: Decimal(v) for m, v in document["revenue_by_method"].items()}
    return found


def store(day: date) -> dict[str, Any]:
    """Compute `day` and upsert it into `daily_summaries` (one document per day: safe to
    run twice, the second replaces the first with the same figures)."""
    summary = live(day)
    mongo.db[COLLECTION].replace_one({"date": _bson_day(day)}, to_document(summary), upsert=True)
    return summary


def stored(start: date, end: date) -> dict[date, dict[str, Any]]:
    """The stored summaries of the days from `start` to `end`, both included."""
    documents = mongo.db[COLLECTION].find(
        {"date": {"$gte": _bson_day(start), "$lte": _bson_day(end)}}
    )
    return {d["date"].date(): from_document(d) for d in documents}
