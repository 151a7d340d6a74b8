"""What the day's queue adds up to: counts per status and average wait and consultation
times, per doctor and for the clinic (`GET /api/v1/queue/today/summary`)."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from qure.core import clock
from qure.extensions import db
from qure.queue.models import QueueEntry, TokenStatus
from qure.queue.service import doctors_of_day


def _minutes(deltas: list[timedelta]) -> float | None:
    if not deltas:
        return None
    return round(sum(d.total_seconds() for d in deltas) / len(deltas) / 60, 1)


def summary(day: date | None = None) -> dict[str, Any]:
    """Counts per status, average wait (check-in to call) and consultation (call to
    completion) in minutes, per doctor and for the clinic."""
    day = day or clock.today()
    entries = list(db.session.scalars(select(QueueEntry).where(QueueEntry.day == day)))
    doctors = {d.id: d for d in doctors_of_day(day)}

    def block(rows: list[QueueEntry]) -> dict[str, Any]:
        counts = Counter(e.status for e in rows)
        waits = [e.called_at - e.checked_in_at for e in rows if e.called_at]
        consults = [e.completed_at - e.called_at for e in rows if e.completed_at and e.called_at]
        return {
            "total": len(rows),
            "counts": {s: counts.get(s, 0) for s in TokenStatus},
            "average_wait_minutes": _minutes(waits),
            "average_consultation_minutes": _minutes(consults),
        }

    per_doctor = [
        {"doctor": doctor, **block([e for e in entries if e.doctor_id == doctor.id])}
        for doctor in doctors.values()
    ]
    return {"date": day, **block(entries), "doctors": per_doctor}
