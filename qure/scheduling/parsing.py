"""Reading what people type about time for the schedule: dates, clinic-local times,
weekdays, breaks and instants, with a field error for each bad one. Pure: no database."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time
from typing import Any

from qure.core import clock
from qure.core.errors import InvalidInput

WEEKDAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_time(value: Any, field: str, errors: dict[str, str]) -> time | None:
    if isinstance(value, time):
        return value
    match = TIME_RE.match(str(value or "").strip())
    if not match:
        errors[field] = "Use a clinic-local time as HH:MM (24-hour)."
        return None
    return time(int(match.group(1)), int(match.group(2)))


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def in_calendar(day: date) -> bool:
    """Whether a date is one the clinic can schedule on (1900 to 2199): the far ends of
    Python's calendar cannot be turned into clinic-time instants."""
    return FIRST_DAY <= day <= LAST_DAY


def check_days(**days: date | None) -> None:
    """InvalidInput naming each given date outside 1900-2199."""
    errors = {
        field: "Use a date between 1900 and 2199."
        for field, day in days.items()
        if day is not None and not in_calendar(day)
    }
    if errors:
        raise InvalidInput.naming(errors)


def parse_date(value: Any, field: str, errors: dict[str, str]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = date.fromisoformat(str(value or "").strip())
        except ValueError:
            errors[field] = "Use a date as YYYY-MM-DD."
            return None
    if not in_calendar(parsed):
        errors[field] = "Use a date between 1900 and 2199."
        return None
    return parsed


def parse_weekdays(value: Any, errors: dict[str, str]) -> set[int]:
    """Weekdays as ISO numbers (1 = Monday ... 7 = Sunday) or names (MON ... SUN, or in
    full);
    every day when none are given. Returns Python weekday numbers (0 = Monday)."""
    if value in (None, [], ""):
        return set(range(7))
    if not isinstance(value, list):
        value = [value]
    days: set[int] = set()
    for item in value:
        text = str(item).strip().upper()
        full = {name.upper(): i for i, name in enumerate(calendar.day_name)}
        if text in WEEKDAY_NAMES:
            days.add(WEEKDAY_NAMES.index(text))
        elif text in full:
            days.add(full[text])
        elif text in {"1", "2", "3", "4", "5", "6", "7"}:
            days.add(int(text) - 1)
        else:
            errors["weekdays"] = "Give weekdays as 1 (Monday) to 7 (Sunday) or MON to SUN."
            return set()
    return days


def parse_breaks(value: Any, errors: dict[str, str]) -> list[tuple[time, time]]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > 10:
        errors["breaks"] = "Give at most 10 breaks, each {start, end} as HH:MM."
        return []
    breaks = []
    for item in value:
        if not isinstance(item, dict):
            errors["breaks"] = "Give each break as a start and an end time, such as 13:00-14:00."
            return []
        start = parse_time(item.get("start"), "breaks", errors)
        end = parse_time(item.get("end"), "breaks", errors)
        if start is None or end is None:
            errors["breaks"] = "Give each break as a start and an end time, such as 13:00-14:00."
            return []
        if end <= start:
            errors["breaks"] = "A break must end after it starts."
            return []
        breaks.append((start, end))
    return breaks


def parse_instant(value: Any, field: str, errors: dict[str, str]) -> datetime | None:
    """A datetime from ISO text; one without an offset is read as clinic-local time."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value or "").strip())
        except ValueError:
            errors[field] = "Use a date and time such as 2026-12-01T09:00 (clinic time)."
            return None
    if not in_calendar(moment.date()):
        errors[field] = "Use a date between 1900 and 2199."
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.clinic_tz())
    return moment
