"""Time: store UTC, reason in the clinic's time zone.

`now()` is the one source of the current instant. `fixed(instant)` pins it for a block of
code (a test of what happens at 00:30 clinic time, a replay of a day); nothing else in the
app reads the system clock for domain decisions.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app

from qure.core.errors import InvalidInput

_fixed: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "qure_clock_fixed", default=None
)


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _fixed.get() or datetime.now(UTC)


@contextlib.contextmanager
def fixed(instant: datetime) -> Iterator[None]:
    """Within the block, `now()` answers `instant` (which must carry a time zone)."""
    if instant.tzinfo is None:
        raise ValueError("a fixed instant needs a time zone")
    token = _fixed.set(instant.astimezone(UTC))
    try:
        yield
    finally:
        _fixed.reset(token)


def clinic_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["CLINIC_TIMEZONE"])


def today() -> date:
    """Today's date in the clinic's time zone (not the server's, not UTC)."""
    return now().astimezone(clinic_tz()).date()


def clinic_day(instant: datetime) -> date:
    """The clinic date an instant falls on."""
    return instant.astimezone(clinic_tz()).date()


def at_clinic_time(day: date, clock_time: time) -> datetime:
    """The instant (UTC) of a clinic-local date and wall-clock time."""
    return datetime.combine(day, clock_time, tzinfo=clinic_tz()).astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where a clinic day starts and where the next one starts. The first
    and last days a date can hold (0001-01-01, 9999-12-31, which a typed filter may ask
    for) end at the earliest and latest instants: their midnights are past the calendar."""
    try:
        start = at_clinic_time(day, time(0, 0))
    except OverflowError:
        start = datetime.min.replace(tzinfo=UTC)
    if day == date.max:
        return start, datetime.max.replace(tzinfo=UTC)
    return start, at_clinic_time(date.fromordinal(day.toordinal() + 1), time(0, 0))


def age_on(born: date, on: date) -> int:
    """Whole years between `born` and `on`."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# How a date looks on every page and on paper: "02 Dec 2026", whatever the browser's locale.
DAY_FORMAT = "%d %b %Y"
_TYPED_DAY_FORMATS = (DAY_FORMAT, "%d %B %Y", "%d-%m-%Y", "%d/%m/%Y", "%d.%m.%Y", "%d-%b-%Y")


def weekday_day(day: date | None) -> str:
    """A date with its weekday, for headings ("Wed 02 Dec 2026")."""
    return day.strftime("%a " + DAY_FORMAT) if day else ""


def format_day(day: date | None) -> str:
    """A date as the clinic writes it ("02 Dec 2026"); empty for None."""
    return day.strftime(DAY_FORMAT) if day else ""


def parse_day(text: str) -> date:
    """A date as staff type it: "02 Dec 2026", "2 december 2026", "02-12-2026",
    "02/12/2026" (day first, as in India) or ISO "2026-12-02". Raises ValueError."""
    typed = " ".join(str(text or "").split())
    if not typed:
        raise ValueError("empty date")
    try:
        return date.fromisoformat(typed)
    except ValueError:
        pass
    for fmt in _TYPED_DAY_FORMATS:
        try:
            return datetime.strptime(typed, fmt).date()
        except ValueError:
            continue
    raise ValueError(f"not a date: {typed!r}")


def parse_day_time(text: str) -> datetime:
    """A clinic-local wall-clock moment as staff type it: a date as `parse_day` reads it
    and a time ("02 Dec 2026 13:00", "02/12/2026 1:30 pm"), or ISO "2026-12-02T13:00".
    Naive (no time zone): the caller places it in the clinic's. Raises ValueError."""
    typed = " ".join(str(text or "").split())
    try:
        return datetime.fromisoformat(typed).replace(tzinfo=None)
    except ValueError:
        pass
    found = _DAY_AND_TIME.fullmatch(typed)
    if not found:
        raise ValueError(f"not a date and time: {typed!r}")
    hour, minute = int(found["hour"]), int(found["minute"] or 0)
    meridiem = (found["meridiem"] or "").lower()
    if meridiem and not 1 <= hour <= 12:
        raise ValueError(f"not a time: {typed!r}")
    if meridiem:
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    return datetime.combine(parse_day(found["day"]), time(hour, minute))


_DAY_AND_TIME = re.compile(
    r"(?P<day>.+?),? (?P<hour>\d{1,2})(?::(?P<minute>\d{2}))? ?(?P<meridiem>[ap]m)?",
    re.IGNORECASE,
)


BACKWARDS = "The first day comes after the last."


def check_span(start: date | None, end: date | None, max_days: int | None = None) -> None:
    """Refuse a range of days that ends before it starts (InvalidInput naming `from`) or
    that holds more than `max_days` days, both ends counted (naming `to`)."""
    if start is None or end is None:
        return
    if start > end:
        raise InvalidInput.naming({"from": BACKWARDS})
    if max_days is not None and (end - start).days + 1 > max_days:
        raise InvalidInput.naming({"to": f"At most {max_days} days at once."})
