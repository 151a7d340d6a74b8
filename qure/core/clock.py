"""Time: store UTC, reason in the clinic's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return datetime.now(UTC)


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def today() -> date:
    """Today's date in the clinic's time zone (not the server's, not UTC)."""
    return now().astimezone(clinic_tz()).date()


def age_on(born: date, on: date) -> int:
    """Whole years between `born` and `on`."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
