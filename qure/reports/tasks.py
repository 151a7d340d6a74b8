"""RQ jobs of the reports: the daily summary, stored at closing time."""

from __future__ import annotations

from datetime import date, timedelta

from qure.core import clock, jobs
from qure.queue import service as queue
from qure.reports import rebuild, summary

BACKFILL_DAYS = 366  # how far back the job looks for active days it has not stored
BACKFILL_PER_RUN = 31  # at most this many of them a run (the job stays short)


@jobs.periodic(every="CLOSE_DAY_CHECK_SECONDS", name="daily-summary")
def store_due_summary() -> dict:
    """Store the summary of the clinic day that is due (today after closing time, else
    yesterday) in `daily_summaries`: safe to run every few minutes, each run replaces the
    day's one document with the same figures (a late payment or refund is counted by the
    next run)."""
    day = queue.closing_due()
    stored = summary.store(day)
    backfilled = store_missing(clock.today())
    return {
        "day": day.isoformat(),
        "visits": stored["total_visits"],
        "backfilled": [d.isoformat() for d in backfilled],
    }


def store_missing(today: date) -> list[date]:
    """Store the summaries of past days that `daily_summaries` lacks (the worker was
    stopped over a closing time, MongoDB was down, the embedded store started empty), from
    the clinic's first active day in the last BACKFILL_DAYS, quiet days included, the
    newest first and at most BACKFILL_PER_RUN a run; returns the days stored. A range on
    the dashboard then reads stored days instead of computing each one live."""
    since = today - timedelta(days=BACKFILL_DAYS)
    have = summary.stored_days(since, today)
    missing = [d for d in rebuild.clinic_days(today, since) if d not in have]
    chosen = missing[::-1][:BACKFILL_PER_RUN]
    for day in chosen:
        summary.store(day)
    return chosen


@jobs.job
def store_summary(day_iso: str) -> dict:
    """Store one day's summary on demand (`flask daily-summary --date`)."""
    stored = summary.store(date.fromisoformat(day_iso))
    return {"day": day_iso, "visits": stored["total_visits"]}
