"""Template globals and filters: the role's navigation, ages, clinic-time dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import Flask, current_app, request
from flask_login import current_user

from qure.core import clock, phone
from qure.core.roles import PUBLIC_ENDPOINTS, declared_roles


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    active: bool = False


NAV = (
    ("Home", "auth.home"),
    ("Patients", "patients.index"),
    ("Register patient", "patients.register"),
    ("Today", "queue.today"),
    ("Book", "scheduling.book"),
    ("Queue", "queue.index"),
    ("My queue", "queue.doctor_queue"),
    ("Schedule", "scheduling.week"),
    ("Dispense", "dispensing.queue"),
    ("Stock", "pharmacy.inventory"),
    ("Medicines", "pharmacy.medicines"),
    ("Billing", "billing.index"),
    ("Reports", "reports.index"),
    ("Users", "admin.user_list"),
)


def can(endpoint: str) -> bool:
    """Whether the signed-in user's role may use `endpoint`, read from the route's own
    role declaration (so a page never offers what the route would refuse)."""
    if endpoint in PUBLIC_ENDPOINTS:
        return True
    if not current_user.is_authenticated:
        return False
    view = current_app.view_functions.get(endpoint)
    roles = declared_roles(view) if view else None
    return roles is not None and current_user.role in roles


def nav_items() -> list[NavItem]:
    """The navigation entries the signed-in user's role may use."""
    return [
        NavItem(label, endpoint, request.endpoint == endpoint)
        for label, endpoint in NAV
        if can(endpoint)
    ]


def clinic_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(clock.clinic_tz()).strftime("%d %b %Y, %H:%M")


def clinic_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(clock.clinic_tz()).strftime("%H:%M")


def clinic_date(value: datetime | date | str | None) -> str:
    """A day as the clinic writes it ("02 Dec 2026"); an instant falls on a clinic day, and
    an ISO string (as error details carry dates) is read first."""
    if isinstance(value, str):
        value = date.fromisoformat(value) if value else None
    if isinstance(value, datetime):
        value = clock.clinic_day(value)
    return clock.format_day(value)


def clinic_iso_date(value: datetime | None) -> str:
    """The clinic day of an instant as ISO, for links (`?week=2026-12-02`)."""
    return clock.clinic_day(value).isoformat() if value else ""


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(nav_items=nav_items, can=can)
    app.jinja_env.filters["clinic_datetime"] = clinic_datetime
    app.jinja_env.filters["clinic_time"] = clinic_time
    app.jinja_env.filters["clinic_date"] = clinic_date
    app.jinja_env.filters["clinic_iso_date"] = clinic_iso_date
    app.jinja_env.filters["weekday_date"] = clock.weekday_day
    app.jinja_env.filters["phone"] = phone.display
