"""Roles and the one decorator per route that declares who may use it.

Every view carries `qure_roles` (a frozenset of role names). The url_map test fails for a
route that declares none and is not in PUBLIC_ENDPOINTS.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from functools import wraps

from flask import abort, g, redirect, request, url_for
from flask_jwt_extended import get_current_user, verify_jwt_in_request
from flask_login import current_user

from qure.core.errors import Forbidden


class Role(enum.StrEnum):
    ADMIN = "ADMIN"
    DOCTOR = "DOCTOR"
    PHARMACIST = "PHARMACIST"
    RECEPTION = "RECEPTION"


ALL_ROLES = frozenset(Role)
ROLE_LABELS = {
    Role.ADMIN: "Administrator",
    Role.DOCTOR: "Doctor",
    Role.PHARMACIST: "Pharmacist",
    Role.RECEPTION: "Reception",
}

# Endpoints anyone may reach without signing in.
PUBLIC_ENDPOINTS = frozenset(
    {
        "static",
        "auth.login",
        "auth.index",
        "core.health",
        "core.api_docs",
        "api-docs.openapi_json",
        "api_auth.login",
        # The waiting-room board: opened with the display key, not a staff sign-in.
        "queue.board",
        "queue.board_key",
        "queue.board_data",
        "api_queue.display",
    }
)


def _mark(fn: Callable, roles: frozenset[str]) -> Callable:
    fn.qure_roles = roles
    return fn


def roles_required(*roles: Role) -> Callable:
    """HTML routes: signed-in staff of one of `roles` (all roles when none are named)."""
    allowed = frozenset(roles) or ALL_ROLES

    def decorator(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("auth.login", next=request.full_path))
            if current_user.role not in allowed:
                abort(403)
            g.actor = current_user._get_current_object()
            return fn(*args, **kwargs)

        return _mark(wrapper, allowed)

    return decorator


def api_roles(*roles: Role, refresh: bool = False) -> Callable:
    """API routes: a valid bearer token of an active user holding one of `roles`."""
    allowed = frozenset(roles) or ALL_ROLES

    def decorator(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request(refresh=refresh)
            user = get_current_user()
            if user.role not in allowed:
                raise Forbidden("Your role may not do this.", code="forbidden")
            g.actor = user
            return fn(*args, **kwargs)

        return _mark(wrapper, allowed)

    return decorator


def declared_roles(view: Callable) -> frozenset[str] | None:
    """The roles a view function declares, looking through decorators that wrap it."""
    seen = view
    while seen is not None:
        roles = getattr(seen, "qure_roles", None)
        if roles is not None:
            return roles
        seen = getattr(seen, "__wrapped__", None)
    return None
