"""RQ jobs of the reports: the daily summary, stored at closing time."""

from __future__ import annotations

from datetime import date

from qure.core import jobs
from qure.queue import service as queue
from qure.reports import summary


@jobs.periodic(every="CLOSE_DAY_CHECK_SECONDS", name="daily-summary")
def store_due_summary() -> dict:
    """Store the summary of the clinic day that is due (today after closing time, else
    yesterday) in `daily_summaries`: safe to run every few minutes, each run replaces the
    day's one document with the same figures (a late payment or refund is counted by the
    next run)."""
    day = queue.closing_due()
    stored = summary.store(day)
    return {"day": day.isoformat(), "visits": stored["total_visits"]}


@jobs.job
def store_summary(day_iso: str) -> dict:
    """Store one day's summary on demand (`flask daily-summary --date`)."""
    stored = summary.store(date.fromisoformat(day_iso))
    return {"day": day_iso, "visits": stored["total_visits"]}
