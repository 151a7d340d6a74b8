"""Template globals and filters: the role's navigation, ages, clinic-time dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Flask, request
from flask_login import current_user

from qure.core import clock
from qure.core.roles import ALL_ROLES, Role


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    roles: frozenset
    active: bool = False


NAV = (
    NavItem("Home", "auth.home", ALL_ROLES),
    NavItem("Patients", "patients.index", ALL_ROLES),
    NavItem("Register patient", "patients.register", frozenset({Role.ADMIN, Role.RECEPTION})),
    NavItem("Users", "admin.user_list", frozenset({Role.ADMIN})),
    NavItem("API docs", "core.api_docs", frozenset({Role.ADMIN})),
)


def nav_items() -> list[NavItem]:
    """The navigation entries the signed-in user's role may use."""
    if not current_user.is_authenticated:
        return []
    return [
        NavItem(i.label, i.endpoint, i.roles, request.endpoint == i.endpoint)
        for i in NAV
        if current_user.role in i.roles
    ]


def clinic_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(clock.clinic_tz()).strftime("%d %b %Y, %H:%M")


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(nav_items=nav_items)
    app.jinja_env.filters["clinic_datetime"] = clinic_datetime
