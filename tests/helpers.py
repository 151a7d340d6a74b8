"""Factories and HTTP helpers shared by the tests."""

from __future__ import annotations

import re
from datetime import date

from qure.auth import service as users
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients

PASSWORD = "correct-horse-battery"

# ---- factories -------------------------------------------------------------------------

_counter = iter(range(1, 10_000_000))


def make_user(role: Role | str = Role.RECEPTION, **fields):
    n = next(_counter)
    role = Role(role)
    data = {
        "username": f"{role.value.lower()}{n}",
        "full_name": f"{role.value.title()} Person {n}",
        "email": f"{role.value.lower()}{n}@test.local",
        "role": role.value,
        "password": PASSWORD,
    }
    if role == Role.DOCTOR:
        data["registration_number"] = f"REG-{n:05d}"
    data.update(fields)
    user = users.create_user(None, data)
    db.session.commit()
    return user


def make_patient(actor=None, **fields):
    n = next(_counter)
    data = {
        "full_name": f"Test Patient {n}",
        "date_of_birth": date(1990, 1, 1 + n % 28),
        "sex": "F",
        "phone": f"+9198{n:08d}",
    }
    data.update(fields)
    patient = patients.register(actor, data, confirm_new=True)
    db.session.commit()
    return patient


# ---- HTTP helpers ----------------------------------------------------------------------

CSRF_RE = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)


def csrf_token(client, url: str) -> str:
    page = client.get(url)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return match.group(1) or match.group(2)


def form_post(client, url: str, data: dict, page: str | None = None, **kwargs):
    """POST a form the way a browser does: fetch the page first, send its CSRF token."""
    token = csrf_token(client, page or url)
    return client.post(url, data={**data, "csrf_token": token}, **kwargs)


def sign_in(client, user, password: str = PASSWORD):
    response = form_post(client, "/login", {"username": user.username, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def bearer(client, user, password: str = PASSWORD) -> dict:
    response = client.post(
        "/api/v1/auth/login", json={"username": user.username, "password": password}
    )
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}
