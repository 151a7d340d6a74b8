"""The owner's dashboard: today so far, and a range of days as series for charts.

Today is always computed live (`summary.live`). A past day is read from
`daily_summaries`, one small document per day, so that 90 days cost one MongoDB query
rather than a scan of every visit; a past day the job has not stored yet is computed live
and marked `source: live`, as the API does. MongoDB not answering raises
AnalyticsUnavailable (503) for the range; today's figures need only PostgreSQL
(`today_so_far`), so a page can still show them.

A range's figures are sums of the days' (visits, revenue, units); the top diagnoses and
medicines are the top ten of the summed per-day counts (each day keeps all of its counts:
see summary.py, so the merge is exact); the wait by hour is each hour's average over the
range, weighted by the entries of each day (from averages kept to 0.1 minute, so within
0.05 minute of the exact figure)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from qure.billing.models import PaymentMethod
from qure.core import clock
from qure.core.documents import reading
from qure.core.errors import InvalidInput
from qure.reports import summary

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = summary.MAX_DAYS
TOP = 10


def choose_range(
    days: int | None = None, start: date | None = None, end: date | None = None
) -> tuple[date, date]:
    """The range a dashboard shows: from `start` to `end` when either is given (`end`
    alone: the DEFAULT_DAYS days up to it; `start` alone: up to today), else the last
    `days` days up to today (DEFAULT_DAYS by default). Raises InvalidInput naming `days`,
    `from` or `to` for a count outside 1..MAX_DAYS, a range that ends before it starts,
    ends after today or spans more than MAX_DAYS days. Returns (first day, last day)."""
    today = clock.today()
    if start is None and end is None:
        days = DEFAULT_DAYS if days is None else days
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput.naming({"days": f"Between 1 and {MAX_DAYS} days."})
        return today - timedelta(days=days - 1), today
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    clock.check_span(start, end, MAX_DAYS)
    if end > today:
        raise InvalidInput.naming({"to": "A day still to come."})
    return start, end


def today_so_far() -> dict[str, Any]:
    """Today's summary, live from PostgreSQL (needs no MongoDB)."""
    return {**summary.live(clock.today()), "source": "live"}


def days_of(start: date, end: date, today: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One summary per day from `start` to `end`: stored (`source: stored`), or live for
    today and for a past day not stored yet (`source: live`); `today` is today's summary
    when the caller has it already. Raises AnalyticsUnavailable when MongoDB does not
    answer (and a past day is asked)."""
    now = clock.today()
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    past = [d for d in days if d < now]
    with reading():
        kept = summary.stored(past[0], past[-1]) if past else {}
    found = []
    for day in days:
        if day in kept:
            found.append({**kept[day], "source": "stored"})
        elif day == now and today is not None:
            found.append(today)
        else:
            found.append({**summary.live(day), "source": "live"})
    return found


def over(days: list[dict[str, Any]]) -> dict[str, Any]:
    """A range's figures from its days' summaries (see the module's docstring): totals,
    the series per day, the top diagnoses and medicines, the wait by hour."""
    diagnoses: dict[str, dict[str, Any]] = {}
    medicines: dict[int, dict[str, Any]] = {}
    hours: dict[int, list[float]] = {}
    for day in days:
        for d in day.get("top_diagnoses", ()):
            code = diagnoses.setdefault(d["code"], {**d, "visits": 0})
            code["visits"] += d["visits"]
        for m in day.get("top_medicines", ()):
            medicine = medicines.setdefault(m["medicine"]["id"], {**m, "units": 0})
            medicine["units"] += m["units"]
        for h in day.get("wait_by_hour", ()):
            hour = hours.setdefault(h["hour"], [0, 0.0])
            hour[0] += h["entries"]
            hour[1] += h["entries"] * h["avg_wait_minutes"]
    entries = sum(e for e, _ in hours.values())
    waited = sum(m for _, m in hours.values())
    by_method = {m.value: Decimal("0.00") for m in PaymentMethod}
    for day in days:
        for method, amount in day["revenue_by_method"].items():
            by_method[method] = by_method.get(method, Decimal("0.00")) + amount
    return {
        "start": days[0]["date"],
        "end": days[-1]["date"],
        "totals": {
            "days": len(days),
            "visits": sum(d["total_visits"] for d in days),
            "patients": sum(d["total_patients"] for d in days),
            "new_patients": sum(d["new_patients"] for d in days),
            "revenue": sum((d["total_revenue"] for d in days), Decimal("0.00")),
            "revenue_by_method": by_method,
            "medicines_dispensed": sum(d["medicines_dispensed"] for d in days),
            "avg_wait_minutes": round(waited / entries, 1) if entries else None,
        },
        "visits_per_day": [{"date": d["date"], "visits": d["total_visits"]} for d in days],
        "revenue_per_day": [{"date": d["date"], "revenue": d["total_revenue"]} for d in days],
        "top_diagnoses": sorted(diagnoses.values(), key=lambda d: (-d["visits"], d["code"]))[:TOP],
        "top_medicines": sorted(
            medicines.values(), key=lambda m: (-m["units"], m["medicine"]["name"])
        )[:TOP],
        "wait_by_hour": [
            {"hour": h, "entries": e, "avg_wait_minutes": round(m / e, 1)}
            for h, (e, m) in sorted(hours.items())
            if e
        ],
        "missing": [d["date"] for d in days if d["source"] == "live" and d["date"] < clock.today()],
    }


def dashboard(start: date, end: date) -> dict[str, Any]:
    """The dashboard of the days from `start` to `end` (see `choose_range`): `today` (live)
    and `range` (`over` its days, with the days themselves). Raises AnalyticsUnavailable
    when MongoDB does not answer: call `today_so_far` for what can still be shown."""
    today = today_so_far()
    days = days_of(start, end, today)
    return {"today": today, "range": over(days), "days": days}
