"""Rebuilding MongoDB's read models from PostgreSQL (`flask rebuild-analytics`), into the
store as it is or into an empty one:

- `audit_logs`, `visit_history`, `stock_movements`: from the outbox journal (the source
  of truth, in PostgreSQL): what is pending is relayed (chained and shipped), then every
  journalled record the store lacks is copied. A record already there is never modified
  or deleted: `audit_logs` is append-only, and `outbox.verify` judges what it holds.
- `daily_summaries`: every past clinic day from the first that had activity (a patient
  registered, a queue token, a visit, a payment or refund, a dispensing), quiet days
  included, is computed again from PostgreSQL and upserted (`summary.store`), exactly as
  the closing-time job stores it.
  Today is not stored: its summary is always computed live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Date, cast, func, select, union

from qure.billing.models import CreditNote, Payment
from qure.core import clock, documents, outbox
from qure.extensions import db
from qure.patients.models import Patient
from qure.pharmacy.models import Dispensing
from qure.queue.models import QueueEntry
from qure.reports import summary
from qure.visits.models import Visit


@dataclass
class Rebuilt:
    relayed: int = 0  # pending records relayed first
    copied: int = 0  # journalled records checked into the store (those it had are kept)
    days: list[date] = field(default_factory=list)  # daily summaries stored again
    error: str | None = None  # MongoDB did not answer: nothing rebuilt


def active_days(before: date, since: date | None = None) -> list[date]:
    """The clinic days before `before` (and from `since`) that had any activity, oldest
    first (one statement; each table is filtered on its own indexed column)."""
    zone = clock.clinic_tz().key
    end = clock.day_bounds(before)[0]
    start = clock.day_bounds(since)[0] if since is not None else None

    def local_day(column):
        return cast(func.timezone(zone, column), Date)

    def instants(column):
        query = select(local_day(column)).where(column < end)
        return query.where(column >= start) if start is not None else query

    def days(column):
        query = select(column).where(column < before)
        return query.where(column >= since) if since is not None else query

    found = union(
        instants(Patient.created_at),
        days(QueueEntry.day),
        instants(Visit.started_at),
        days(Payment.paid_on),
        days(CreditNote.issued_on),
        instants(Dispensing.dispensed_at),
    ).subquery()
    (column,) = found.c
    return list(db.session.scalars(select(column).order_by(column)))


def clinic_days(before: date, since: date | None = None) -> list[date]:
    """Every day from the clinic's first active day (or `since`, when later) to the day
    before `before`, quiet days included: the days a summary is stored for (a quiet day
    stored is a range the dashboard reads rather than computes)."""
    active = active_days(before, since)
    if not active:
        return []
    return [active[0] + timedelta(days=n) for n in range((before - active[0]).days)]


def rebuild(progress: Callable[[int, int], None] | None = None) -> Rebuilt:
    """Rebuild every read model from PostgreSQL into the current document store (see the
    module's docstring); `progress(done, total)` after each day's summary. A MongoDB
    that does not answer is reported in `error`, never raised, and nothing is marked
    shipped."""
    result = Rebuilt()
    relayed = outbox.relay()
    if relayed.error:
        result.error = relayed.error
        return result
    result.relayed = relayed.shipped
    documents.ensure_indexes()  # an empty store has none yet
    result.copied = outbox.refill()
    result.days = clinic_days(clock.today())
    for done, day in enumerate(result.days, 1):
        summary.store(day)
        if progress is not None:
            progress(done, len(result.days))
    db.session.rollback()  # summaries only read PostgreSQL
    return result
