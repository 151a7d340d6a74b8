"""RQ jobs of the pharmacy: the morning's stock alerts."""

from __future__ import annotations

from qure.core import jobs, notify
from qure.core.db import commit
from qure.pharmacy import alerts


@jobs.periodic(every="CLOSE_DAY_CHECK_SECONDS", name="stock-alerts")
def raise_morning_alerts() -> dict:
    """Once STOCK_ALERT_HOUR has passed, raise today's stock alerts and tell the
    pharmacists; later runs of the day find the day raised and do nothing. The messages
    go out before the commit: a channel that fails rolls the day back, and the retry (or
    the next run) raises and sends it again."""
    day = alerts.due_day()
    if day is None:
        return {"day": None, "raised": False, "told": 0}
    found = alerts.raise_day(day)
    if found is None:
        return {"day": day.isoformat(), "raised": False, "told": 0}
    sender = notify.sender()
    told = sum(sender.send(message) == notify.Sent.SENT for message in alerts.messages(day, found))
    commit()
    return {"day": day.isoformat(), "raised": True, "told": told, **found}
