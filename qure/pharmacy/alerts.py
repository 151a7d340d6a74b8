"""The morning's stock alerts: once a clinic day, after STOCK_ALERT_HOUR, the pharmacy's
alerts (low stock, expiring within 30 / 60 / 90 days, expired on the shelf) are counted,
kept as that day's `stock_alert_days` row, audited as STOCK_ALERTS_RAISED and told to each
active pharmacist through `core.notify` (the REMINDER_SENDER channel), each one recorded in
`stock_alert_told` (claimed before the send, committed after it: told once each).

The home pages keep showing the live counts (`stock.alert_counts`: two cheap queries,
always current); what the morning adds is what the live page cannot: the pharmacist is
told without opening the app (which medicines to reorder, which batches to pull), and the
audit trail records what was known each morning."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.notify import Message
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy import stock
from qure.pharmacy.models import Batch, StockAlertDay, StockAlertTold

LISTED = 10  # how many medicines or batches the message names per alert
COUNTS = ("low_stock", "expiring_30", "expiring_60", "expiring_90", "expired")


def due_day(now: datetime | None = None) -> date | None:
    """Today once the clinic-local STOCK_ALERT_HOUR has passed, else None."""
    local = (now or clock.now()).astimezone(clock.clinic_tz())
    if local.hour < int(current_app.config["STOCK_ALERT_HOUR"]):
        return None
    return local.date()


def counts() -> dict[str, int]:
    """Low stock, batches in stock expiring within 30 / 60 / 90 days (each window
    includes the shorter ones), and expired batches still in stock. Two statements."""
    today = clock.today()
    low = stock.alert_counts()["low_stock"]

    def within(days: int):
        return func.count(case((Batch.expiry_date <= today + timedelta(days=days), 1)))

    soon = Batch.expiry_date > today
    e30, e60, e90, gone = db.session.execute(
        select(
            within(30).filter(soon),
            within(60).filter(soon),
            within(90).filter(soon),
            func.count(case((Batch.expiry_date <= today, 1))),
        ).where(Batch.quantity > 0, Batch.expiry_date <= today + timedelta(days=90))
    ).one()
    return {
        "low_stock": low,
        "expiring_30": e30,
        "expiring_60": e60,
        "expiring_90": e90,
        "expired": gone,
    }


def raise_day(day: date) -> dict[str, int] | None:
    """Record `day`'s morning alerts, once: the day's row is inserted (ON CONFLICT DO
    NOTHING, so a second run, even at the same moment, inserts nothing) and, when any
    alert is up, audited as STOCK_ALERTS_RAISED. Returns the counts when this call raised
    them, None when the day's were raised before. Flushes."""
    found = counts()
    inserted = db.session.execute(
        insert(StockAlertDay)
        .values(day=day, raised_at=clock.now(), **found)
        .on_conflict_do_nothing(index_elements=["day"])
        .returning(StockAlertDay.day)
    ).first()
    if inserted is None:
        return None
    if any(found.values()):
        audit.record(None, "STOCK_ALERTS_RAISED", ("stock_alert", day.isoformat()), None, found)
    db.session.flush()
    return found


def raised(day: date) -> dict[str, Any] | None:
    """The alerts raised on `day` (counts and when), or None."""
    row = db.session.get(StockAlertDay, day)
    if row is None:
        return None
    return {**{k: getattr(row, k) for k in COUNTS}, "raised_at": row.raised_at}


def _lines(title: str, rows: list[str], total: int) -> list[str]:
    if not total:
        return []
    more = [f"  ... and {total - len(rows)} more"] if total > len(rows) else []
    return [f"{title} ({total}):", *(f"  - {r}" for r in rows), *more, ""]


def body(day: date, found: dict[str, int]) -> str:
    """The morning's message: the counts, and the first medicines and batches of each
    alert by name (stock names, no patient's)."""
    low = stock.low_stock(1, LISTED)
    expired = stock.expired(1, LISTED)
    expiring = stock.expiring(30, 1, LISTED)
    text = [f"Stock alerts for {clock.weekday_day(day)}", ""]
    text += _lines(
        "Low stock, to reorder",
        [
            f"{m['name']}: {m['usable_stock']} left (reorder at {m['reorder_level']})"
            for m in low.items
        ],
        found["low_stock"],
    )
    text += _lines(
        "Expired on the shelf, to pull",
        [
            f"{b.medicine.name}, batch {b.batch_number}: {b.quantity} "
            f"(expired {clock.format_day(b.expiry_date)})"
            for b in expired.items
        ],
        found["expired"],
    )
    text += _lines(
        "Expiring within 30 days",
        [
            f"{b.medicine.name}, batch {b.batch_number}: {b.quantity} "
            f"(expires {clock.format_day(b.expiry_date)})"
            for b in expiring.items
        ],
        found["expiring_30"],
    )
    text.append(
        f"Expiring within 60 days: {found['expiring_60']}; within 90 days: {found['expiring_90']}."
    )
    return "\n".join(text) + "\n"


def untold(day: date) -> list[tuple[int, str]]:
    """(id, e-mail) of the active pharmacists not told `day`'s alerts yet, by id."""
    told = select(StockAlertTold.user_id).where(StockAlertTold.day == day)
    query = (
        select(User.id, User.email)
        .where(User.role == Role.PHARMACIST, User.is_active.is_(True), User.id.not_in(told))
        .order_by(User.id)
    )
    return [(row.id, row.email) for row in db.session.execute(query)]


def messages(day: date, found: dict[str, int]) -> list[tuple[int, Message]]:
    """(pharmacist's id, message) for each active pharmacist not told `day`'s alerts yet
    (none when no alert is up)."""
    if not any(found.values()):
        return []
    pharmacists = untold(day)
    if not pharmacists:
        return []
    text = body(day, found)
    summary = (
        f"{found['low_stock']} low, {found['expired']} expired, "
        f"{found['expiring_30']} expiring within 30 days"
    )
    return [
        (
            user_id,
            Message(
                subject=f"Stock alerts {day.isoformat()}: {summary}",
                body=text,
                log_line=f"stock alerts {day.isoformat()} for pharmacist {user_id}: {summary}",
                email=email,
            ),
        )
        for user_id, email in pharmacists
    ]


def claim_told(day: date, user_id: int, channel: str) -> bool:
    """Record that the pharmacist is told `day`'s alerts (through `channel`), before the
    message goes out: the caller sends, then commits (or rolls back when the send fails,
    so the retry tells them). A second run at the same moment waits on this row and then
    finds it taken. Returns False when they were told already. Flushes."""
    claimed = db.session.execute(
        insert(StockAlertTold)
        .values(day=day, user_id=user_id, channel=channel, told_at=clock.now())
        .on_conflict_do_nothing(index_elements=["day", "user_id"])
        .returning(StockAlertTold.user_id)
    ).first()
    db.session.flush()
    return claimed is not None
