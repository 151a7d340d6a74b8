"""RQ jobs of the queue: closing the day at closing time."""

from __future__ import annotations

from qure.core import jobs
from qure.core.db import commit
from qure.queue import service


@jobs.periodic(every="CLOSE_DAY_CHECK_SECONDS", name="close-day")
def close_due_day() -> dict:
    """Close the clinic day that is due (today after closing time, else yesterday): safe
    to run every few minutes, a closed day has nothing left to close."""
    day = service.closing_due()
    counts = service.close_day(None, day)
    commit()
    return {"day": day.isoformat(), **counts}
