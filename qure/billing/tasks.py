"""RQ jobs of billing: a day's receipts as one PDF (made by `bundle_receipts`, asked for
with `submit_bundle`, followed with `bundle_progress`)."""

from __future__ import annotations

from datetime import date

from redis.exceptions import RedisError

from qure.billing import bundles
from qure.core import jobs
from qure.core.db import commit

# How long the bundle job may run: a receipt renders in well under a second, so these
# leave room for a loaded worker. Scaled to the day rather than core's 30 minutes: a
# worker killed outright leaves its job "started" until RQ gives up on it after its
# timeout, and until then the day's bundle cannot be asked for again.
BUNDLE_BASE_SECONDS = 300
BUNDLE_SECONDS_PER_RECEIPT = 3


def bundle_timeout(receipts: int) -> int:
    """Seconds the bundle job of a day of `receipts` receipts may run."""
    return BUNDLE_BASE_SECONDS + BUNDLE_SECONDS_PER_RECEIPT * receipts


@jobs.job
def bundle_receipts(day_iso: str) -> dict:
    """Make the day's receipts bundle, reporting progress per receipt (safe to run twice:
    the second replaces the day's bundle with the same pages). The bundle is written in
    the one commit at the end: a run killed or failing before it keeps the old bundle (or
    none) as it was, and the next run starts again from the first receipt."""
    made = bundles.make(date.fromisoformat(day_iso), progress=jobs.report_progress)
    receipts = made.receipts
    commit()
    return {"day": day_iso, "receipts": receipts}


def submit_bundle(day: date) -> str:
    """Queue the job that makes `day`'s bundle (once: a day already queued or being made
    is not queued again). Raises Conflict `no_receipts` for a day nothing was paid on,
    JobsUnavailable when Redis does not answer. Returns the job's id."""
    receipts = bundles.receipt_count(day)
    if not receipts:
        raise bundles.no_receipts(day)
    try:
        return jobs.submit(
            bundle_receipts,
            day.isoformat(),
            job_id=bundles.job_id(day),
            timeout=bundle_timeout(receipts),
        )
    except RedisError:
        raise jobs.JobsUnavailable() from None


def bundle_progress(day: date) -> dict:
    """Where the day's bundle stands: {state: none | queued | working | ready | failed,
    done, total, receipts?, made_at?, error?, last_failed} (from the job when one is
    known, and the kept bundle). A re-make that failed leaves the older bundle `ready`
    with `last_failed` true and the `error`. Raises JobsUnavailable when Redis does not
    answer."""
    try:
        status = jobs.status(bundles.job_id(day))
    except RedisError:
        raise jobs.JobsUnavailable() from None
    kept = bundles.made(day)
    answer: dict = {"state": "none", "done": 0, "total": 0, "last_failed": False}
    if status is not None and status.status in {"queued", "deferred", "scheduled"}:
        answer.update(state="queued", done=status.done, total=status.total)
    elif status is not None and status.status == "started":
        answer.update(state="working", done=status.done, total=status.total)
    elif status is not None and status.status == "failed":
        # The last line of the exception (no traceback, no patient data: ids and days).
        line = status.error or "no error was recorded"
        answer.update(last_failed=True)
        if kept is None:
            answer.update(state="failed", error=f"The receipts could not be put together ({line}).")
        else:
            answer.update(
                error=f"The last attempt to put them together again failed ({line}); "
                "the receipts below are the earlier ones."
            )
    if answer["state"] == "none" and kept is not None:
        answer.update(state="ready", done=kept["receipts"], total=kept["receipts"], **kept)
    return answer
