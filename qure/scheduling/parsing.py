"""Reading what people type about time for the schedule: clinic-local times, weekdays,
breaks and instants. The schemas and forms read with these (each raises ValueError with
the message to show beside the field), so the services receive `time`, `date`,
`datetime` and ISO weekday numbers; the calendar's range is a rule the services check
with `in_calendar`. Pure: no database."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, time
from typing import Any

from qure.core import clock
from qure.core.errors import InvalidInput

WEEKDAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
FULL_NAMES = {name.upper(): i for i, name in enumerate(calendar.day_name)}
BAD_TIME = "Use a clinic-local time as HH:MM (24-hour)."
BAD_DAY = "Use a date as YYYY-MM-DD."
OUT_OF_CALENDAR = "Use a date between 1900 and 2199."
BAD_WEEKDAYS = "Give weekdays as 1 (Monday) to 7 (Sunday) or MON to SUN."
BAD_BREAK = "Give each break as a start and an end time, such as 13:00-14:00."
BAD_INSTANT = "Use a date and time such as 2026-12-01T09:00 (clinic time)."


TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def read_time(value: Any) -> time:
    """A clinic-local time of day from HH:MM text (24-hour)."""
    match = TIME_RE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(BAD_TIME)
    return time(int(match.group(1)), int(match.group(2)))


FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def in_calendar(day: date) -> bool:
    """Whether a date is one the clinic can schedule on (1900 to 2199): the far ends of
    Python's calendar cannot be turned into clinic-time instants."""
    return FIRST_DAY <= day <= LAST_DAY


def check_days(**days: date | None) -> None:
    """InvalidInput naming each given date outside 1900-2199."""
    errors = {
        field: OUT_OF_CALENDAR
        for field, day in days.items()
        if day is not None and not in_calendar(day)
    }
    if errors:
        raise InvalidInput.naming(errors)


def read_weekdays(value: Any) -> set[int]:
    """ISO weekday numbers (1 = Monday ... 7 = Sunday) from a list of numbers or names
    (MON ... SUN, or in full)."""
    if not isinstance(value, list):
        raise ValueError(BAD_WEEKDAYS)
    days: set[int] = set()
    for item in value:
        text = str(item).strip().upper()
        if text in WEEKDAY_NAMES:
            days.add(WEEKDAY_NAMES.index(text) + 1)
        elif text in FULL_NAMES:
            days.add(FULL_NAMES[text] + 1)
        elif text in {"1", "2", "3", "4", "5", "6", "7"}:
            days.add(int(text))
        else:
            raise ValueError(BAD_WEEKDAYS)
    return days


def read_break(start: Any, end: Any) -> tuple[time, time]:
    """A break as (start, end) clinic-local times; whether it ends after it starts is the
    service's rule."""
    try:
        return read_time(start), read_time(end)
    except ValueError:
        raise ValueError(BAD_BREAK) from None


def read_break_lines(text: str) -> list[tuple[time, time]]:
    """Breaks typed one per line, such as 13:00-14:00 (an en dash also separates)."""
    breaks = []
    for line in text.splitlines():
        if line.strip():
            start, _, end = line.replace("\u2013", "-").partition("-")
            breaks.append(read_break(start, end))
    return breaks


def read_instant(value: Any) -> datetime:
    """A datetime from ISO text; one without an offset is read as clinic-local time."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError(BAD_INSTANT) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.clinic_tz())
    return moment
