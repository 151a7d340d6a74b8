"""The owner's dashboard (/reports/dashboard) and the daily summary pages
(/reports/daily-summary), ADMIN only.

The dashboard shows today so far (live) and a range of days (7, 30 or 90 days up to
today, or a from/to of at most 366 days) as server-drawn SVG charts, each with a table of
the same numbers beside it (readable without JS, printable). MongoDB not answering gives
a 503 page that says analytics are unavailable and still shows today's live figures,
which need only PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from flask import render_template, request

from qure.billing.forms import METHOD_LABELS
from qure.billing.models import PaymentMethod
from qure.core import clock, money
from qure.core.documents import AnalyticsUnavailable
from qure.core.errors import InvalidInput
from qure.core.exports import csv_response, wants_csv
from qure.core.forms import small_int
from qure.core.roles import Role, roles_required
from qure.reports import charts, summary
from qure.reports import dashboard as service
from qure.reports.blueprints import bp
from qure.reports.charts import Point
from qure.reports.forms import RangeForm, SummaryForm

LINKS: tuple[tuple[str, str, str], ...] = (
    (
        "Dashboard",
        "reports.dashboard",
        "Today so far; visits, revenue, diagnoses, medicines and waits over a range, as charts.",
    ),
    (
        "Daily summary",
        "reports.daily_summary",
        "One day's figures, or one row per day over a range, as the daily job stored them.",
    ),
)


def _attach(form: RangeForm, error: InvalidInput) -> list[str]:
    """Put an InvalidInput's messages on the form's fields; returns those that name none."""
    fields = {f.name: f for f in form}
    left = []
    for name, message in (error.fields or {}).items():
        if name in fields:
            fields[name].errors = [*list(fields[name].errors), message]
        else:
            left.append(message)
    return left or ([] if error.fields else [error.message])


def _short(day: date) -> str:
    return day.strftime("%d %b")


def _rupees(value: float) -> str:
    return f"₹{value:,.0f}" if float(value).is_integer() else f"₹{value:,.2f}"


def _charts(found: dict[str, Any]) -> dict[str, Any]:
    """The range's charts, drawn from the same numbers as the tables beside them."""
    span = f"{clock.format_day(found['start'])} to {clock.format_day(found['end'])}"
    return {
        "visits": charts.bar_chart(
            [
                Point(
                    _short(d["date"]),
                    d["visits"],
                    f"{clock.weekday_day(d['date'])}: "
                    f"{d['visits']} visit{'' if d['visits'] == 1 else 's'}",
                )
                for d in found["visits_per_day"]
            ],
            f"Visits per day, {span}",
            whole=True,
        ),
        "revenue": charts.line_chart(
            [
                Point(
                    _short(d["date"]),
                    d["revenue"],
                    f"{clock.weekday_day(d['date'])}: ₹{d['revenue']:,.2f}",
                )
                for d in found["revenue_per_day"]
            ],
            f"Net revenue per day, {span}",
            text=_rupees,
        ),
        "diagnoses": charts.bar_chart(
            [
                Point(d["code"], d["visits"], f"{d['code']} {d['name']}: {d['visits']} visits")
                for d in found["top_diagnoses"]
            ],
            f"Top diagnoses by visits, {span}",
            whole=True,
        ),
        "medicines": charts.bar_chart(
            [
                Point(
                    m["medicine"]["name"][:12],
                    m["units"],
                    f"{m['medicine']['name']}: {m['units']} units",
                )
                for m in found["top_medicines"]
            ],
            f"Top medicines by units dispensed, {span}",
            whole=True,
        ),
        "waits": charts.bar_chart(
            [
                Point(
                    f"{h['hour']:02d}",
                    h["avg_wait_minutes"],
                    f"Checked in {h['hour']:02d}:00-{h['hour']:02d}:59: "
                    f"{h['avg_wait_minutes']} min average wait, {h['entries']} patients",
                )
                for h in found["wait_by_hour"]
            ],
            f"Average wait in minutes by hour of check-in, {span}",
        ),
    }


@bp.get("/dashboard")
@roles_required(Role.ADMIN)
def dashboard():
    """Today's tiles and per-doctor table, and the range's charts with their tables."""
    form = RangeForm(request.args)
    days_text = request.args.get("days")
    problems: list[str] = []
    chosen = None
    if form.validate():
        days = small_int(days_text) if days_text else None
        try:
            if days_text and days is None:
                raise InvalidInput.naming({"days": "Give a number of days, like 30."})
            chosen = service.choose_range(days, form.start.data, form.end.data)
        except InvalidInput as error:
            problems = _attach(form, error)
    page = {
        "form": form,
        "problems": problems,
        "presets": service.PRESETS,
        "active": None,
        "methods": METHOD_LABELS,
    }
    if chosen is None:
        return render_template("reports/dashboard.html", today=service.today_so_far(), **page), 422
    start, end = chosen
    form.start.data, form.end.data = start, end
    form.start.raw_data = form.end.raw_data = None
    span = (end - start).days + 1
    page["active"] = span if end == clock.today() and span in service.PRESETS else None
    try:
        found = service.dashboard(start, end)
    except AnalyticsUnavailable as error:
        today = service.today_so_far()
        return render_template(
            "reports/dashboard.html", today=today, unavailable=error.message, **page
        ), 503
    return render_template(
        "reports/dashboard.html",
        today=found["today"],
        found=found["range"],
        charts=_charts(found["range"]),
        **page,
    )


CSV_HEADER = (
    "Date",
    "Source",
    "Patients",
    "New patients",
    "Visits",
    "Net revenue",
    *(METHOD_LABELS[m] for m in PaymentMethod),
    "Units dispensed",
    "Average wait (min)",
    "Average consultation (min)",
)


def _csv_rows(days: list[dict[str, Any]]):
    for d in days:
        by = d["revenue_by_method"]
        yield (
            d["date"].isoformat(),
            d["source"],
            d["total_patients"],
            d["new_patients"],
            d["total_visits"],
            money.round_money(d["total_revenue"]),
            *(money.round_money(Decimal(by.get(m, 0))) for m in PaymentMethod),
            d["medicines_dispensed"],
            "" if d["avg_wait_minutes"] is None else d["avg_wait_minutes"],
            "" if d["avg_consultation_minutes"] is None else d["avg_consultation_minutes"],
        )


@bp.get("/daily-summary")
@roles_required(Role.ADMIN)
def daily_summary():
    """A day's summary (`date`, default today: live), from `daily_summaries` for a past
    day (computed live and labelled so when not stored yet); or with from and to, one row
    per day and the totals (`?format=csv` downloads the rows)."""
    form = SummaryForm(request.args)
    problems: list[str] = []
    days = None
    if form.validate():
        try:
            days = summary.days_asked(form.day.data, form.start.data, form.end.data)
        except InvalidInput as error:
            problems = _attach(form, error)
    page = {"form": form, "problems": problems, "today": clock.today(), "methods": METHOD_LABELS}
    if days is None:
        return render_template("reports/daily_summary.html", **page), 422
    ranged = form.start.data is not None or form.end.data is not None
    try:
        found = service.days_of(days[0], days[-1])
    except AnalyticsUnavailable as error:
        return render_template("reports/daily_summary.html", unavailable=error.message, **page), 503
    if ranged and wants_csv():
        name = f"daily-summary-{days[0].isoformat()}-{days[-1].isoformat()}.csv"
        return csv_response(name, CSV_HEADER, _csv_rows(found))
    if ranged:
        form.start.data, form.end.data = days[0], days[-1]
        form.start.raw_data = form.end.raw_data = None
        return render_template(
            "reports/daily_summary.html",
            rows=found,
            totals=service.over(found)["totals"],
            span={"from": days[0].isoformat(), "to": days[-1].isoformat()},
            **page,
        )
    form.day.data = days[0]
    return render_template("reports/daily_summary.html", one=found[0], **page)
