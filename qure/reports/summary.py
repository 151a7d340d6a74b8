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
  the day (`queue_entries` timestamps), in minutes with one decimal.

What the dashboard's charts need, so that a range of days is answered from one small
document per day rather than by reading every visit again:

- `top_diagnoses` [{code, name, visits}]: the day's visits by ICD-10 code (visits with no
  code are not counted), most first; the name is the WHO table's description.
- `top_medicines` [{medicine {id, name}, units}]: units handed over per medicine, most
  first.
- `wait_by_hour` [{hour, entries, avg_wait_minutes}]: the day's called queue entries by
  the clinic-time hour of their check-in (0-23), hours with none left out.

The two "top" lists hold every diagnosis and medicine of the day, not a day's top ten: a
top ten merged over days would miss a code that is eleventh every day yet first over the
month. A clinic sees a bounded number of distinct diagnoses and medicines in a day (tens;
at most one per visit or dispensed item), so the document stays small, and a range's
counts are exact sums (`dashboard.py` cuts them to the range's top ten)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import distinct, extract, func, select

from qure.auth.models import User
from qure.billing import service as billing
from qure.core import clock, documents
from qure.core.errors import InvalidInput
from qure.extensions import db, mongo
from qure.patients.models import Patient
from qure.pharmacy.models import Batch, DispensedItem, Dispensing, Medicine
from qure.queue.models import QueueEntry
from qure.visits import icd10
from qure.visits.models import Visit

COLLECTION = "daily_summaries"
documents.index(COLLECTION, ("date", 1), unique=True)
MAX_DAYS = 366  # the longest range asked at once


def days_asked(one: date | None, start: date | None, end: date | None) -> list[date]:
    """The days a summary is asked for: `one` day (today when nothing is given), or the
    days from `start` to `end` (either alone is that one day). Raises InvalidInput
    (naming `date`, `from` or `to`) for both kinds at once, a range that ends before it
    starts, a day still to come, or more than MAX_DAYS days."""
    today = clock.today()
    if one is not None and (start is not None or end is not None):
        raise InvalidInput.naming({"date": "Give a date, or from and to: not both."})
    if start is None and end is None:
        start = end = one or today
    start, end = start or end, end or start
    clock.check_span(start, end, MAX_DAYS)
    if end > today:
        raise InvalidInput.naming({"to" if one is None else "date": "A day still to come."})
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


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
    medicines = _medicines(start, end)
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
        "medicines_dispensed": sum(m["units"] for m in medicines),
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
        "top_diagnoses": _diagnoses(start, end),
        "top_medicines": medicines,
        "wait_by_hour": _wait_by_hour(day),
    }


def _diagnoses(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The visits started from `start` to `end` by ICD-10 code, most first (then by code)."""
    visits = func.count(Visit.id)
    query = (
        select(Visit.icd10_code, visits)
        .where(Visit.started_at >= start, Visit.started_at < end, Visit.icd10_code.is_not(None))
        .group_by(Visit.icd10_code)
        .order_by(visits.desc(), Visit.icd10_code)
    )
    found = []
    for code, count in db.session.execute(query):
        entry = icd10.lookup(code)
        found.append({"code": code, "name": entry.description if entry else "", "visits": count})
    return found


def _medicines(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Units handed over from `start` to `end` per medicine, most first (then by name)."""
    units = func.sum(DispensedItem.quantity)
    query = (
        select(Medicine.id, Medicine.name, units)
        .select_from(DispensedItem)
        .join(Dispensing, Dispensing.id == DispensedItem.dispensing_id)
        .join(Batch, Batch.id == DispensedItem.batch_id)
        .join(Medicine, Medicine.id == Batch.medicine_id)
        .where(Dispensing.dispensed_at >= start, Dispensing.dispensed_at < end)
        .group_by(Medicine.id, Medicine.name)
        .order_by(units.desc(), Medicine.name, Medicine.id)
    )
    return [
        {"medicine": {"id": id_, "name": name}, "units": int(count)}
        for id_, name, count in db.session.execute(query)
    ]


def _wait_by_hour(day: date) -> list[dict[str, Any]]:
    """The day's called queue entries by the clinic-time hour of their check-in: how many,
    and their average wait (check-in to call) in minutes."""
    local = func.timezone(clock.clinic_tz().key, QueueEntry.checked_in_at)
    hour = extract("hour", local).label("hour")
    wait = extract("epoch", QueueEntry.called_at - QueueEntry.checked_in_at)
    # Grouped by the label: the zone is a bound parameter, and two parameters (one in the
    # select list, one in GROUP BY) are not the same expression to PostgreSQL.
    query = (
        select(hour, func.count(QueueEntry.id), func.avg(wait))
        .where(QueueEntry.day == day, QueueEntry.called_at.is_not(None))
        .group_by("hour")
        .order_by("hour")
    )
    return [
        {"hour": int(h), "entries": count, "avg_wait_minutes": _minutes(waited)}
        for h, count, waited in db.session.execute(query)
    ]


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


def stored_days(start: date, end: date) -> set[date]:
    """The days from `start` to `end` that `daily_summaries` holds (their dates only)."""
    documents = mongo.db[COLLECTION].find(
        {"date": {"$gte": _bson_day(start), "$lte": _bson_day(end)}}, {"date": 1, "_id": 0}
    )
    return {d["date"].date() for d in documents}


def stored(start: date, end: date) -> dict[date, dict[str, Any]]:
    """The stored summaries of the days from `start` to `end`, both included."""
    documents = mongo.db[COLLECTION].find(
        {"date": {"$gte": _bson_day(start), "$lte": _bson_day(end)}}
    )
    return {d["date"].date(): from_document(d) for d in documents}
