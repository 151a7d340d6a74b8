"""Known devices: a browser (or API client keeping cookies) that a user signed in from.

After a successful sign-in the answer sets a signed cookie naming the usernames signed in
from that browser (a shared front-desk computer holds several). A sign-in naming one of
them is never held back by that username's failure delay (qure.auth.service.authenticate),
so that someone guessing a password from elsewhere cannot keep the real user out of their
usual browser. The cookie grants nothing else: the password is still checked, and the
address limit still applies.
"""

from __future__ import annotations

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "qure_device"
MAX_AGE = 90 * 24 * 3600  # a browser unused for three months is a stranger again
MAX_USERS = 8


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="qure.known-device")


def _known() -> list[str]:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return []
    try:
        names = _serializer().loads(raw, max_age=MAX_AGE)
    except BadSignature:  # also an expired one
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def is_known(username: str | None) -> bool:
    """Whether this request's browser signed in as `username` before."""
    return (username or "").strip().lower() in _known()


def remember(response, username: str):
    """Mark the browser as known for `username` (most recent first). Returns `response`."""
    name = username.strip().lower()
    names = [name, *[n for n in _known() if n != name]][:MAX_USERS]
    response.set_cookie(
        COOKIE,
        _serializer().dumps(names),
        max_age=MAX_AGE,
        secure=current_app.config.get("SESSION_COOKIE_SECURE", False),
        httponly=True,
        samesite="Lax",
        path="/",
    )
    return response
