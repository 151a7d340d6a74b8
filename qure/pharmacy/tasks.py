"""RQ jobs of the pharmacy: the morning's stock alerts."""

from __future__ import annotations

from qure.core import jobs, notify
from qure.core.db import commit
from qure.extensions import db
from qure.pharmacy import alerts


@jobs.periodic(every="CLOSE_DAY_CHECK_SECONDS", name="stock-alerts")
def raise_morning_alerts() -> dict:
    """Once STOCK_ALERT_HOUR has passed, raise today's stock alerts and tell the
    pharmacists; later runs of the day find the day raised and tell only those not told
    yet (nobody, once all were). The day's row is committed first, then each pharmacist
    is claimed, sent to and committed on their own: a send that fails (the job retries)
    keeps the day and those already told, and the retry tells the rest. A pharmacist the
    channel cannot reach (no e-mail under smtp) is asked again by the next run."""
    day = alerts.due_day()
    if day is None:
        return {"day": None, "raised": False, "told": 0}
    sender = notify.sender()  # an unknown channel fails before anything is raised
    found = alerts.raise_day(day)
    commit()
    counts = found
    if counts is None:  # raised by an earlier run: tell whoever it did not reach
        kept = alerts.raised(day)
        counts = {k: kept[k] for k in alerts.COUNTS}
    told = 0
    for user_id, message in alerts.messages(day, counts):
        if not alerts.claim_told(day, user_id, sender.name):
            db.session.rollback()
            continue
        if sender.send(message) == notify.Sent.SENT:
            commit()
            told += 1
        else:
            db.session.rollback()
    if found is None:
        return {"day": day.isoformat(), "raised": False, "told": told}
    return {"day": day.isoformat(), "raised": True, "told": told, **found}
