"""RQ jobs of billing: a day's receipts as one PDF (made by `bundle_receipts`, asked for
with `submit_bundle`, followed with `bundle_progress`)."""

from __future__ import annotations

from datetime import date

from redis.exceptions import RedisError

from qure.billing import bundles
from qure.core import jobs
from qure.core.db import commit
from qure.core.errors import Unavailable


@jobs.job
def bundle_receipts(day_iso: str) -> dict:
    """Make the day's receipts bundle, reporting progress per receipt (safe to run twice:
    the second replaces the day's bundle with the same pages)."""
    made = bundles.make(date.fromisoformat(day_iso), progress=jobs.report_progress)
    receipts = made.receipts
    commit()
    return {"day": day_iso, "receipts": receipts}


def submit_bundle(day: date) -> str:
    """Queue the job that makes `day`'s bundle (once: a day already queued or being made
    is not queued again). Raises Conflict `no_receipts` for a day nothing was paid on,
    Unavailable `jobs_unavailable` when Redis does not answer. Returns the job's id."""
    if not bundles.receipt_count(day):
        raise bundles.no_receipts(day)
    try:
        return jobs.submit(bundle_receipts, day.isoformat(), job_id=bundles.job_id(day))
    except RedisError:
        raise Unavailable(
            "Background jobs are unavailable just now: try again in a few minutes.",
            "jobs_unavailable",
        ) from None


def bundle_progress(day: date) -> dict:
    """Where the day's bundle stands: {state: none | queued | working | ready | failed,
    done, total, receipts?, made_at?, error?} (from the job when one is known, and the
    kept bundle)."""
    status = jobs.status(bundles.job_id(day))
    kept = bundles.made(day)
    answer: dict = {"state": "none", "done": 0, "total": 0}
    if status is not None and status.status in {"queued", "deferred", "scheduled"}:
        answer.update(state="queued", done=status.done, total=status.total)
    elif status is not None and status.status == "started":
        answer.update(state="working", done=status.done, total=status.total)
    elif status is not None and status.status == "failed" and kept is None:
        answer.update(state="failed", error="The receipts could not be put together.")
    if answer["state"] == "none" and kept is not None:
        answer.update(state="ready", done=kept["receipts"], total=kept["receipts"], **kept)
    return answer
