"""RQ jobs of scheduling: the day-before appointment reminders."""

from __future__ import annotations

from datetime import date

from qure.core import jobs, notify
from qure.core.db import commit
from qure.extensions import db
from qure.scheduling import reminders


@jobs.periodic(every="REMINDER_CHECK_SECONDS", name="appointment-reminders")
def send_due_reminders() -> dict:
    """Send tomorrow's reminders once the clinic-local REMINDER_HOUR has passed (every
    few minutes after that, each run sends only what no run sent yet)."""
    day = reminders.due_day()
    if day is None:
        return {"day": None, "sent": 0, "no_address": 0}
    return send_reminders(day.isoformat())


@jobs.job
def send_reminders(day_iso: str) -> dict:
    """Send the reminders of clinic day `day_iso` that have not gone out, through the
    REMINDER_SENDER channel. Each one is claimed (row locked), sent, marked and committed
    on its own, so two runs at once never send one twice and a channel failing half-way
    keeps what was sent (the retry sends the rest). A patient the channel cannot reach (no
    e-mail under smtp) is skipped and counted, and asked again by the next run."""
    day = date.fromisoformat(day_iso)
    sender = notify.sender()
    sent = no_address = 0
    for appointment_id in reminders.to_remind(day):
        appointment = reminders.claim(appointment_id, day)
        if appointment is None:
            db.session.rollback()
            continue
        outcome = sender.send(reminders.message(appointment))
        if outcome == notify.Sent.SENT:
            reminders.mark_reminded(appointment, sender.name)
            sent += 1
        else:
            no_address += 1
        commit()
    return {"day": day_iso, "sent": sent, "no_address": no_address}
