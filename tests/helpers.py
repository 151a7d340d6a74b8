"""Factories and HTTP helpers shared by the tests."""

from __future__ import annotations

import html
import re
import threading
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import event

from qure.auth import service as users
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients

PASSWORD = "correct-horse-battery"
# A Monday, 10:00 in the clinic's time zone: the `clinic_now` fixture pins the clock here.
NOW = datetime(2030, 1, 7, 10, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
TODAY = NOW.date()
TIMEOUT = 60

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


def make_slots(doctor, day: date | None = None, start="10:00", end="13:00", minutes=15):
    """Create a doctor's slots on a clinic day through the service; returns them in order."""
    from qure.scheduling import service as scheduling

    day = day or TODAY
    result = scheduling.bulk_create(
        doctor,
        {
            "doctor_id": doctor.id,
            "start_date": day,
            "end_date": day,
            "start_time": time.fromisoformat(start),
            "end_time": time.fromisoformat(end),
            "duration_minutes": minutes,
        },
    )
    db.session.commit()
    return result["slots"]


def make_appointment(patient, slot, actor=None, reason=None):
    """Book `patient` into `slot` through the service (as a new RECEPTION user if no actor)."""
    from qure.scheduling import service as scheduling

    actor = actor or make_user(Role.RECEPTION)
    appointment = scheduling.book(
        actor, {"patient_id": patient.id, "slot_id": slot.id, "reason": reason}
    )
    db.session.commit()
    return appointment


def later(minutes: int) -> datetime:
    """NOW plus some minutes."""
    return NOW + timedelta(minutes=minutes)


def run_together(app, user_id: int, jobs: list, now: datetime | None = None) -> list:
    """Run each job (a function of the acting user) in its own thread and app context,
    released together by a barrier; commit each. With `now`, the clock is pinned there in
    every thread. Returns one result per job: the job's return value or the exception it
    raised."""
    from qure.auth.models import User
    from qure.core import clock

    barrier = threading.Barrier(len(jobs), timeout=TIMEOUT)
    results: list = [None] * len(jobs)

    def worker(index: int, job) -> None:
        with app.app_context():
            try:
                actor = db.session.get(User, user_id)
                db.session.commit()  # start the job with no transaction open
                barrier.wait()
                if now is None:
                    value = job(actor)
                else:
                    with clock.fixed(now):
                        value = job(actor)
                db.session.commit()
                results[index] = value
            except Exception as exc:  # reported to the test thread
                db.session.rollback()
                results[index] = exc

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    return results


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


# ---- what a response says ----------------------------------------------------------------


def error(response, status: int, code: str) -> dict:
    """The API error body of `response`, after checking its status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json["error"]
    assert body["code"] == code
    assert body["message"]
    return body


def page_text(response) -> str:
    """A page's HTML with entities decoded, as a person reads it."""
    return html.unescape(response.get_data(as_text=True))


def flashes(page: str) -> list[str]:
    """The flashed messages on a page."""
    return re.findall(r'<p class="flash flash-\w+" role="\w+">(.*?)</p>', page, re.S)


def count_statements(app, action) -> int:
    """How many SQL statements `action` sends (the tests' own savepoints left out)."""
    return len(statements(app, action))


def statements(app, action, savepoints: bool = False) -> list[str]:
    """The SQL statements `action` sends; savepoints left out unless `savepoints` (the
    tests' own are among them, except in tests that commit for real)."""
    seen = []

    def count(_conn, _cursor, statement, *_args):
        if savepoints or "SAVEPOINT" not in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        action()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return seen


def dead_redis() -> redis.Redis:
    """A Redis client with nothing behind it, made from a URL as the app makes its own: a
    refused connection is one error at once (`Redis(host=, port=)` retries it with growing
    pauses, about 4 s a call)."""
    return redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
