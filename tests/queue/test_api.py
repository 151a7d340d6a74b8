"""`/api/v1/queue`: every rule of the queue and every status code a client can meet."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from qure.auth import service as auth
from qure.core import clock
from qure.core.db import commit
from qure.core.errors import InvalidInput
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db, redis_store
from qure.patients import service as patients
from qure.queue import board
from qure.queue.models import QueueEntry
from qure.visits.models import Visit
from tests.helpers import (
    NOW,
    TODAY,
    bearer,
    count_statements,
    later,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
)

URL = "/api/v1/queue"
IST = ZoneInfo("Asia/Kolkata")
TOMORROW = TODAY + timedelta(days=1)
DISPLAY_KEY = "a-long-display-key-123"
STATEMENTS_OF_TODAY = 2  # the signed-in user, then the day's rows
STATUSES = ("WAITING", "WITH_DOCTOR", "SKIPPED", "NO_SHOW", "COMPLETED")
ALLOWED = {
    ("WAITING", "WITH_DOCTOR"),
    ("WAITING", "SKIPPED"),
    ("WAITING", "NO_SHOW"),
    ("WITH_DOCTOR", "COMPLETED"),
    ("WITH_DOCTOR", "SKIPPED"),
    ("SKIPPED", "WAITING"),
    ("SKIPPED", "NO_SHOW"),
}
TOKEN_KEYS = {
    "id",
    "token_number",
    "display",
    "date",
    "doctor",
    "patient",
    "appointment_id",
    "kind",
    "urgent",
    "status",
    "position",
    "checked_in_at",
    "called_at",
    "completed_at",
}

# A token in the day's queue: its date and doctor are the enclosing ones.
LEAN_KEYS = {
    "id",
    "token_number",
    "display",
    "kind",
    "status",
    "urgent",
    "patient",
    "checked_in_at",
}


# ---- helpers -------------------------------------------------------------------------------


def error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json["error"]
    if code is not None:
        assert body["code"] == code, body
    assert body["message"]
    return body


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json


def waiting_numbers(doctor_queue: dict) -> list[int]:
    return [t["token_number"] for t in doctor_queue["waiting"]]


def redis_waiting(doctor_id: int) -> list[int]:
    return [int(m) for m in redis_store.client.zrange(f"q:{TODAY}:wait:{doctor_id}", 0, -1)]


def redis_current(doctor_id: int) -> int | None:
    value = redis_store.client.get(f"q:{TODAY}:cur:{doctor_id}")
    return int(value) if value is not None else None


def stored(token_number: int) -> QueueEntry:
    db.session.expire_all()
    query = select(QueueEntry).where(
        QueueEntry.day == TODAY, QueueEntry.token_number == token_number
    )
    return db.session.scalars(query).one()


def actions() -> list[str]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [r.payload["action"] for r in rows]


class Desk:
    """The API as one signed-in user uses it."""

    def __init__(self, client, user):
        self.client = client
        self.user = user
        self.headers = bearer(client, user)

    def get(self, path: str, headers: dict | None = None, **kwargs):
        return self.client.get(URL + path, headers={**self.headers, **(headers or {})}, **kwargs)

    def post(self, path: str, body: dict | None = None):
        return self.client.post(URL + path, json=body or {}, headers=self.headers)

    def patch(self, path: str, body: dict):
        return self.client.patch(URL + path, json=body, headers=self.headers)

    def check_in(self, appointment, **extra):
        return self.post("/checkin", {"appointment_id": appointment.id, **extra})

    def walk_in(self, patient, doctor=None, **extra):
        body = {"patient_id": patient.id, **extra}
        if doctor is not None:
            body["doctor_id"] = doctor.id
        return self.post("/walk-in", body)

    def call(self, doctor_id: int | None = None, open_visit: bool = False):
        """Call next; the queue's tests call alone unless they ask for the visit too."""
        body = {} if doctor_id is None else {"doctor_id": doctor_id}
        return self.post("/next", body if open_visit else {**body, "open_visit": False})

    def move(self, token_number: int, status: str):
        return self.patch(f"/{token_number}/status", {"status": status})

    def today(self, doctor_id: int | None = None) -> dict:
        query = {} if doctor_id is None else {"doctor_id": doctor_id}
        return ok(self.get("/today", query_string=query))

    def queue_of(self, doctor) -> dict:
        (queue,) = self.today(doctor.id)["doctors"]
        return queue

    def appointment(self, appointment_id: int) -> dict:
        url = f"/api/v1/appointments/{appointment_id}"
        return ok(self.client.get(url, headers=self.headers))


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    """Every test runs at NOW (Monday 2030-01-07 10:00 clinic time)."""
    return clinic_now


@pytest.fixture
def desk(client, reception):
    return Desk(client, reception)


@pytest.fixture
def doc(client, doctor):
    return Desk(client, doctor)


@pytest.fixture
def boss(client, admin):
    return Desk(client, admin)


@pytest.fixture
def slots(doctor):
    """The doctor's slots today, 10:15 to 12:45 (10:00 has started at NOW)."""
    return make_slots(doctor)


@pytest.fixture
def book(reception, slots):
    def _book(index: int, **patient_fields):
        return make_appointment(make_patient(reception, **patient_fields), slots[index], reception)

    return _book


def new_patient(reception, **fields):
    return make_patient(reception, **fields)


# ---- check-in ------------------------------------------------------------------------------


def test_check_in_answers_the_token(desk, doctor, book):
    appointment = book(0, full_name="Asha Devi Sharma")
    body = ok(desk.check_in(appointment), 201)
    assert set(body) >= TOKEN_KEYS
    assert body["token_number"] == 1
    assert body["display"] == "001"
    assert body["date"] == "2030-01-07"
    assert body["doctor"] == {"id": doctor.id, "full_name": doctor.full_name}
    assert body["patient"] == {"id": appointment.patient_id, "full_name": "Asha Devi Sharma"}
    assert body["appointment_id"] == appointment.id
    assert body["kind"] == "APPOINTMENT"
    assert body["urgent"] is False
    assert body["status"] == "WAITING"
    assert body["position"] == 1
    assert datetime.fromisoformat(body["checked_in_at"]) == later(0)
    assert body["called_at"] is None
    assert body["completed_at"] is None

    assert desk.appointment(appointment.id)["status"] == "CHECKED_IN"
    row = stored(1)
    assert (row.id, row.status, row.appointment_id) == (body["id"], "WAITING", appointment.id)
    client = redis_store.client
    assert client.zrange(f"q:2030-01-07:wait:{doctor.id}", 0, -1) == [b"000001"]
    token = client.hgetall("q:2030-01-07:tok:000001")
    assert token[b"status"] == b"WAITING"
    assert token[b"display"] == b"001"
    assert token[b"initials"] == b"A.S."
    assert token[b"doctor"] == str(doctor.id).encode()
    assert client.get("q:2030-01-07:counter") == b"1"


def test_check_ins_number_one_two_three(desk, book):
    bodies = [ok(desk.check_in(book(i)), 201) for i in range(3)]
    assert [b["token_number"] for b in bodies] == [1, 2, 3]
    assert [b["display"] for b in bodies] == ["001", "002", "003"]
    assert [b["position"] for b in bodies] == [1, 2, 3]
    assert redis_store.client.get("q:2030-01-07:counter") == b"3"


def test_check_in_refusals(desk, doctor, book, reception):
    appointment = book(0)
    ok(desk.check_in(appointment), 201)
    error(desk.check_in(appointment), 409, "already_checked_in")

    tomorrow = make_appointment(new_patient(reception), make_slots(doctor, TOMORROW)[0])
    body = error(desk.check_in(tomorrow), 409, "appointment_not_today")
    assert body["details"] == {"date": "2030-01-08"}

    cancelled = book(1)
    response = desk.client.delete(f"/api/v1/appointments/{cancelled.id}", headers=desk.headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    error(desk.check_in(cancelled), 409, "appointment_not_scheduled")

    error(desk.post("/checkin", {"appointment_id": 999_999}), 404)
    body = error(desk.post("/checkin", {}), 422, "invalid_input")
    assert "appointment_id" in body["fields"]
    body = error(desk.post("/checkin", {"appointment_id": "one"}), 422, "invalid_input")
    assert "appointment_id" in body["fields"]
    body = error(desk.check_in(book(2), urgent=True), 422)
    assert "urgent_reason" in body["fields"]
    # Nothing refused took a number.
    assert ok(desk.check_in(book(3)), 201)["token_number"] == 2


@pytest.mark.parametrize("role", [Role.DOCTOR, Role.PHARMACIST])
def test_only_the_front_desk_checks_in_or_walks_in(client, book, doctor, reception, role):
    other = Desk(client, make_user(role))
    appointment = book(0)
    error(other.check_in(appointment), 403, "forbidden")
    error(other.walk_in(new_patient(reception), doctor), 403, "forbidden")


def test_the_admin_may_check_in(boss, book):
    assert ok(boss.check_in(book(0)), 201)["token_number"] == 1


def test_the_queue_needs_a_token(client, book):
    appointment = book(0)
    error(client.post(f"{URL}/checkin", json={"appointment_id": appointment.id}), 401)
    error(client.post(f"{URL}/next", json={}), 401)
    error(client.get(f"{URL}/today"), 401)
    error(client.get(f"{URL}/today/summary"), 401)
    error(client.get(f"{URL}/1"), 401)
    error(client.patch(f"{URL}/1/status", json={"status": "SKIPPED"}), 401)


# ---- walk-in -------------------------------------------------------------------------------


def test_walk_in_with_a_doctor(desk, doctor, reception):
    patient = new_patient(reception)
    body = ok(desk.walk_in(patient, doctor, complaint="Fever"), 201)
    assert body["token_number"] == 1
    assert body["kind"] == "WALK_IN"
    assert body["appointment_id"] is None
    assert body["doctor"]["id"] == doctor.id
    assert body["patient"]["id"] == patient.id
    assert body["complaint"] == "Fever"
    assert body["position"] == 1
    assert redis_waiting(doctor.id) == [1]


def test_walk_in_without_a_doctor_goes_to_the_least_busy_doctor_on_duty(desk, reception):
    busy, quiet, absent = (make_user(Role.DOCTOR) for _ in range(3))
    make_slots(busy)
    make_slots(quiet)
    make_slots(absent, TOMORROW)
    for _ in range(2):
        ok(desk.walk_in(new_patient(reception), busy), 201)
    body = ok(desk.walk_in(new_patient(reception)), 201)
    assert body["doctor"]["id"] == quiet.id
    body = ok(desk.walk_in(new_patient(reception)), 201)
    assert body["doctor"]["id"] == quiet.id  # still one fewer waiting
    body = ok(desk.walk_in(new_patient(reception)), 201)
    assert body["doctor"]["id"] in (busy.id, quiet.id)  # two each: either will do
    assert absent.id not in {stored(n).doctor_id for n in range(1, 6)}


def test_walk_in_without_a_doctor_when_nobody_is_on_duty(desk, doctor, reception):
    make_slots(doctor, TOMORROW)
    error(desk.walk_in(new_patient(reception)), 409, "no_doctor_on_duty")


def test_walk_in_refusals(desk, doctor, reception, pharmacist):
    patient = new_patient(reception)
    ok(desk.walk_in(patient, doctor), 201)
    body = error(desk.walk_in(patient, doctor), 409, "already_in_queue")
    assert body["details"] == {"token_number": 1}
    other = new_patient(reception)
    body = error(desk.walk_in(other, doctor, urgent=True), 422, "invalid_input")
    assert "urgent_reason" in body["fields"]
    body = error(desk.walk_in(other, doctor, urgent=True, urgent_reason="  "), 422)
    assert "urgent_reason" in body["fields"]
    body = error(desk.post("/walk-in", {"patient_id": 999_999, "doctor_id": doctor.id}), 422)
    assert "patient_id" in body["fields"]
    body = error(desk.post("/walk-in", {"doctor_id": doctor.id}), 422)
    assert "patient_id" in body["fields"]
    body = error(desk.post("/walk-in", {"patient_id": other.id, "doctor_id": pharmacist.id}), 422)
    assert "doctor_id" in body["fields"]
    for bad in ({"patient_id": True}, {"patient_id": "x"}, {"doctor_id": "x"}, {"urgent": "maybe"}):
        body = error(desk.post("/walk-in", {"patient_id": other.id, **bad}), 422, "invalid_input")
        assert list(body["fields"]) == list(bad)
    assert ok(desk.walk_in(other, doctor), 201)["token_number"] == 2


def test_urgent_walk_in(desk, doctor, reception):
    ok(desk.walk_in(new_patient(reception), doctor), 201)
    body = ok(
        desk.walk_in(new_patient(reception), doctor, urgent=True, urgent_reason="Bleeding"), 201
    )
    assert body["urgent"] is True
    assert body["urgent_reason"] == "Bleeding"
    assert body["position"] == 1
    assert waiting_numbers(desk.queue_of(doctor)) == [2, 1]


# ---- order -------------------------------------------------------------------------------


def test_an_on_time_appointment_is_called_before_an_earlier_walk_in(desk, doc, doctor, book):
    """REQUIRED: a walk-in arrives first, then an appointment patient on time; the
    appointment patient is called first."""
    appointment = book(0)  # 10:15
    walker = ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 10:00
    with clock.fixed(later(10)):
        booked = ok(desk.check_in(appointment), 201)
        assert booked["position"] == 1
        assert waiting_numbers(desk.queue_of(doctor)) == [
            booked["token_number"],
            walker["token_number"],
        ]
        called = ok(doc.call())
    assert called["token_number"] == booked["token_number"]
    assert called["appointment_id"] == appointment.id


def test_appointments_are_called_in_slot_order(desk, doc, doctor, book):
    third, first, second = book(5), book(1), book(3)
    numbers = {}
    for minutes, appointment in enumerate((third, first, second)):
        with clock.fixed(later(minutes)):
            numbers[appointment.id] = ok(desk.check_in(appointment), 201)["token_number"]
    expected = [numbers[a.id] for a in (first, second, third)]
    assert waiting_numbers(desk.queue_of(doctor)) == expected
    called = []
    for number in expected:
        called.append(ok(doc.call())["token_number"])
        ok(doc.move(number, "COMPLETED"))
    assert called == expected
    error(doc.call(), 404, "queue_empty")


def test_a_late_appointment_patient_queues_behind_an_earlier_walk_in(desk, doc, doctor, book):
    late, on_time = book(0), book(1)  # 10:15 and 10:30
    with clock.fixed(later(25)):
        walker = ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    with clock.fixed(later(35)):  # 20 minutes after 10:15: late; 5 after 10:30: on time
        late_token = ok(desk.check_in(late), 201)
        on_time_token = ok(desk.check_in(on_time), 201)
        assert late_token["position"] == 2
        assert waiting_numbers(desk.queue_of(doctor)) == [
            on_time_token["token_number"],
            walker["token_number"],
            late_token["token_number"],
        ]
        assert ok(doc.call())["token_number"] == on_time_token["token_number"]


def test_marking_urgent_moves_a_token_ahead(desk, doc, doctor, book):
    ok(desk.check_in(book(0)), 201)  # 1
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 2
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 3
    assert waiting_numbers(desk.queue_of(doctor)) == [1, 2, 3]
    body = ok(desk.post("/3/urgent", {"reason": "Fainted in the hall"}))
    assert body["urgent"] is True
    assert body["urgent_reason"] == "Fainted in the hall"
    assert body["position"] == 1
    assert waiting_numbers(desk.queue_of(doctor)) == [3, 1, 2]
    assert ok(doc.call())["token_number"] == 3


def test_marking_urgent_refusals(desk, doc, doctor):
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    body = error(desk.post("/1/urgent", {}), 422, "invalid_input")
    assert "reason" in body["fields"]
    body = error(desk.post("/1/urgent", {"reason": " "}), 422, "invalid_input")
    # The field the client sent is `reason`.
    assert list(body["fields"]) == ["reason"], body
    error(doc.post("/1/urgent", {"reason": "Pain"}), 403, "forbidden")
    error(desk.post("/9/urgent", {"reason": "Pain"}), 404, "token_not_found")
    ok(desk.post("/1/urgent", {"reason": "Pain"}))
    error(desk.post("/1/urgent", {"reason": "Pain"}), 409, "already_urgent")
    ok(doc.call())
    error(desk.post("/1/urgent", {"reason": "Pain"}), 409, "invalid_transition")


def test_a_recalled_token_goes_to_the_head(desk, doctor, book):
    ok(desk.check_in(book(0)), 201)  # 1
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 2
    ok(desk.walk_in(new_patient(desk.user), doctor, urgent=True, urgent_reason="Pain"), 201)  # 3
    assert waiting_numbers(desk.queue_of(doctor)) == [3, 1, 2]
    ok(desk.move(2, "SKIPPED"))
    assert waiting_numbers(desk.queue_of(doctor)) == [3, 1]
    with clock.fixed(later(5)):
        body = ok(desk.move(2, "WAITING"))
    assert body["status"] == "WAITING"
    assert body["position"] == 1
    assert waiting_numbers(desk.queue_of(doctor)) == [2, 3, 1]
    assert redis_waiting(doctor.id) == [2, 3, 1]


# ---- call next ---------------------------------------------------------------------------


def test_call_next(desk, doc, doctor, book):
    appointment = book(0)
    ok(desk.check_in(appointment), 201)
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    with clock.fixed(later(9)):
        body = ok(doc.call())
    assert set(body) >= TOKEN_KEYS
    assert body["token_number"] == 1
    assert body["status"] == "WITH_DOCTOR"
    assert datetime.fromisoformat(body["called_at"]) == later(9)
    assert desk.appointment(appointment.id)["status"] == "IN_CONSULTATION"
    assert stored(1).status == "WITH_DOCTOR"
    assert redis_current(doctor.id) == 1
    queue = desk.queue_of(doctor)
    assert queue["current"]["token_number"] == 1
    assert waiting_numbers(queue) == [2]

    body = error(doc.call(), 409, "patient_with_doctor")
    assert body["details"] == {"token_number": 1}
    assert stored(2).status == "WAITING"
    assert redis_waiting(doctor.id) == [2]


def test_a_doctors_call_opens_the_visit_and_answers_its_id(desk, doc, boss, doctor, book):
    appointment = book(0)
    ok(desk.check_in(appointment), 201)
    body = ok(doc.call(open_visit=True))
    assert body["status"] == "WITH_DOCTOR"
    visit = db.session.get(Visit, body["visit_id"])
    assert (visit.status, visit.queue_entry_id) == ("IN_PROGRESS", body["id"])
    assert visit.appointment_id == appointment.id


def test_open_visit_false_calls_alone(desk, doc, boss, doctor):
    for _ in range(2):
        ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    body = ok(doc.call(open_visit=False))
    assert body["visit_id"] is None
    assert db.session.scalars(select(Visit)).all() == []
    ok(doc.move(body["token_number"], "COMPLETED"))
    # An admin's call opens no visit: only the doctor sees the patient.
    assert ok(boss.call(doctor.id, open_visit=True))["visit_id"] is None
    assert db.session.scalars(select(Visit)).all() == []


def test_open_visit_must_be_a_boolean(doc):
    body = error(doc.post("/next", {"open_visit": "maybe"}), 422, "invalid_input")
    assert "open_visit" in body["fields"]


def test_a_second_call_is_409_even_when_redis_forgot_the_current_token(desk, doc, doctor):
    for _ in range(2):
        ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    assert ok(doc.call())["token_number"] == 1
    redis_store.client.delete(f"q:{TODAY}:cur:{doctor.id}")
    body = error(doc.call(), 409, "patient_with_doctor")
    assert body["details"] == {"token_number": 1}
    assert stored(2).status == "WAITING"
    assert redis_waiting(doctor.id) == [2]


def test_calling_an_empty_queue_is_404(doc, boss, doctor):
    error(doc.call(), 404, "queue_empty")
    error(boss.call(doctor.id), 404, "queue_empty")


def test_who_may_call(client, desk, doc, boss, doctor, reception):
    ok(desk.walk_in(new_patient(reception), doctor), 201)
    other = Desk(client, make_user(Role.DOCTOR))
    error(other.call(doctor.id), 403, "not_your_queue")
    error(desk.call(doctor.id), 403, "forbidden")
    error(Desk(client, make_user(Role.PHARMACIST)).call(doctor.id), 403, "forbidden")
    body = error(boss.call(), 422, "invalid_input")
    assert "doctor_id" in body["fields"]
    body = error(boss.call(reception.id), 422, "invalid_input")
    assert "doctor_id" in body["fields"]
    error(other.call(), 404, "queue_empty")  # their own queue is empty
    assert ok(boss.call(doctor.id))["token_number"] == 1
    assert stored(1).status == "WITH_DOCTOR"
    error(doc.call(doctor.id), 409, "patient_with_doctor")


# ---- token status --------------------------------------------------------------------------


def bring_to(desk, doc, appointment, state: str) -> int:
    number = ok(desk.check_in(appointment), 201)["token_number"]
    if state in ("WITH_DOCTOR", "COMPLETED"):
        assert ok(doc.call())["token_number"] == number
    if state == "COMPLETED":
        ok(doc.move(number, "COMPLETED"))
    if state in ("SKIPPED", "NO_SHOW"):
        ok(desk.move(number, state))
    return number


@pytest.mark.parametrize(("before", "after"), sorted(ALLOWED))
@pytest.mark.parametrize("mover", ["boss", "doc"])
def test_every_allowed_move(request, desk, doc, doctor, book, before, after, mover):
    appointment = book(0)
    number = bring_to(desk, doc, appointment, before)
    with clock.fixed(later(20)):
        body = ok(request.getfixturevalue(mover).move(number, after))
    assert body["token_number"] == number
    assert body["status"] == after
    assert body["position"] == (1 if after == "WAITING" else None)
    assert stored(number).status == after
    expected = {
        "WITH_DOCTOR": "IN_CONSULTATION",
        "COMPLETED": "COMPLETED",
        "NO_SHOW": "NO_SHOW",
        "SKIPPED": "CHECKED_IN",
        "WAITING": "CHECKED_IN",
    }[after]
    assert desk.appointment(appointment.id)["status"] == expected
    if after == "COMPLETED":
        assert datetime.fromisoformat(body["completed_at"]) == later(20)
    assert (redis_current(doctor.id) == number) is (after == "WITH_DOCTOR")
    assert redis_waiting(doctor.id) == ([number] if after == "WAITING" else [])


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b in STATUSES for a in STATUSES if (b, a) not in ALLOWED],
)
def test_every_other_move_is_409(boss, desk, doc, book, before, after):
    number = bring_to(desk, doc, book(0), before)
    body = error(boss.move(number, after), 409, "invalid_transition")
    assert body["details"] == {"from": before, "to": after}
    assert stored(number).status == before


def test_reception_skips_marks_no_show_and_recalls(desk, doc, doctor, book):
    first = bring_to(desk, doc, book(0), "WAITING")
    second = bring_to(desk, doc, book(1), "WAITING")
    assert ok(desk.move(first, "SKIPPED"))["status"] == "SKIPPED"
    assert ok(desk.move(first, "WAITING"))["status"] == "WAITING"
    assert ok(desk.move(first, "SKIPPED"))["status"] == "SKIPPED"
    assert ok(desk.move(first, "NO_SHOW"))["status"] == "NO_SHOW"
    assert ok(desk.move(second, "NO_SHOW"))["status"] == "NO_SHOW"


def test_reception_may_not_complete_or_call(desk, doc, doctor, book):
    number = bring_to(desk, doc, book(0), "WAITING")
    error(desk.move(number, "WITH_DOCTOR"), 403, "forbidden")
    ok(doc.call())
    error(desk.move(number, "COMPLETED"), 403, "forbidden")
    assert stored(number).status == "WITH_DOCTOR"
    # Skipping the patient in the room is reception's to do.
    assert ok(desk.move(number, "SKIPPED"))["status"] == "SKIPPED"


def test_status_refusals(client, desk, doc, doctor):
    error(desk.move(1, "SKIPPED"), 404, "token_not_found")
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    body = error(desk.move(1, "GONE"), 422, "invalid_input")
    assert "status" in body["fields"]
    body = error(desk.patch("/1/status", {}), 422, "invalid_input")
    assert "status" in body["fields"]
    other = Desk(client, make_user(Role.DOCTOR))
    error(other.move(1, "SKIPPED"), 403, "not_your_queue")
    error(Desk(client, make_user(Role.PHARMACIST)).move(1, "SKIPPED"), 403, "forbidden")
    assert stored(1).status == "WAITING"
    response = desk.client.patch(
        f"{URL}/1/status", data="{", headers=desk.headers, content_type="application/json"
    )
    error(response, 400, "bad_request")


def test_completing_frees_the_doctor(desk, doc, doctor):
    for _ in range(2):
        ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    ok(doc.call())
    error(doc.call(), 409, "patient_with_doctor")
    with clock.fixed(later(15)):
        body = ok(doc.move(1, "COMPLETED"))
    assert body["status"] == "COMPLETED"
    assert datetime.fromisoformat(body["completed_at"]) == later(15)
    assert redis_current(doctor.id) is None
    assert ok(doc.call())["token_number"] == 2


def test_no_show_marks_the_appointment(desk, doc, book):
    appointment = book(0)
    number = bring_to(desk, doc, appointment, "WAITING")
    ok(desk.move(number, "NO_SHOW"))
    assert desk.appointment(appointment.id)["status"] == "NO_SHOW"
    error(doc.call(), 404, "queue_empty")


def test_a_token_whose_visit_is_open_is_completed_through_the_visit(desk, doc, doctor, book):
    appointment = book(0)
    number = ok(desk.check_in(appointment), 201)["token_number"]
    visit_id = ok(doc.call(open_visit=True))["visit_id"]
    assert visit_id is not None
    body = error(doc.move(number, "COMPLETED"), 409, "visit_open")
    assert body["details"] == {"visit_id": visit_id, "token_number": number}
    assert stored(number).status == "WITH_DOCTOR"
    assert redis_current(doctor.id) == number
    visit_url = f"/api/v1/visits/{visit_id}"
    ok(doc.client.patch(visit_url, json={"diagnosis": "Viral fever"}, headers=doc.headers))
    ok(doc.client.post(f"{visit_url}/complete", headers=doc.headers))
    assert ok(doc.get(f"/{number}"))["status"] == "COMPLETED"
    assert desk.appointment(appointment.id)["status"] == "COMPLETED"


def test_a_no_show_may_say_why(desk, doc, doctor, book):
    appointment = book(0)
    number = ok(desk.check_in(appointment), 201)["token_number"]
    body = error(desk.patch(f"/{number}/status", {"status": "NO_SHOW", "reason": "x" * 201}), 422)
    assert "reason" in body["fields"]
    body = ok(desk.patch(f"/{number}/status", {"status": "NO_SHOW", "reason": "Left early"}))
    assert (body["status"], body["no_show_reason"]) == ("NO_SHOW", "Left early")
    assert stored(number).no_show_reason == "Left early"


def test_calling_a_named_token(boss, desk, doctor):
    for _ in range(3):
        ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    body = ok(boss.move(2, "WITH_DOCTOR"))
    assert body["status"] == "WITH_DOCTOR"
    assert redis_current(doctor.id) == 2
    assert waiting_numbers(desk.queue_of(doctor)) == [1, 3]
    error(boss.move(3, "WITH_DOCTOR"), 409, "patient_with_doctor")


# ---- reading -------------------------------------------------------------------------------


def test_today(client, desk, doc, doctor, book):
    other = make_user(Role.DOCTOR)
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 1
    ok(desk.check_in(book(1)), 201)  # 2
    ok(desk.check_in(book(0)), 201)  # 3
    ok(desk.walk_in(new_patient(desk.user), other), 201)  # 4
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 5
    ok(doc.call())  # 3
    ok(desk.move(5, "SKIPPED"))

    body = Desk(client, make_user(Role.PHARMACIST)).today()
    assert body["date"] == "2030-01-07"
    queues = {q["doctor"]["id"]: q for q in body["doctors"]}
    assert set(queues) == {doctor.id, other.id}
    mine = queues[doctor.id]
    assert mine["doctor"] == {"id": doctor.id, "full_name": doctor.full_name}
    assert mine["current"]["token_number"] == 3
    assert mine["current"]["status"] == "WITH_DOCTOR"
    assert waiting_numbers(mine) == [2, 1]
    assert [t["position"] for t in mine["waiting"]] == [1, 2]
    assert all(set(t) == LEAN_KEYS | {"position"} for t in mine["waiting"])
    assert set(mine["current"]) == LEAN_KEYS | {"called_at"}
    assert mine["counts"] == {
        "WAITING": 2,
        "WITH_DOCTOR": 1,
        "SKIPPED": 1,
        "NO_SHOW": 0,
        "COMPLETED": 0,
    }
    assert queues[other.id]["current"] is None
    assert waiting_numbers(queues[other.id]) == [4]

    only = desk.today(other.id)
    assert [q["doctor"]["id"] for q in only["doctors"]] == [other.id]
    body = error(desk.get("/today", query_string={"doctor_id": desk.user.id}), 422)
    assert "doctor_id" in body["fields"]
    error(desk.get("/today", query_string={"doctor_id": "x"}), 422, "invalid_input")


def test_today_tokens_say_what_the_desk_needs(desk, doc, doctor, book):
    appointment = book(0, full_name="Asha Devi Sharma")
    ok(desk.check_in(appointment), 201)  # 1
    walker = new_patient(desk.user, full_name="Ravi Kumar")
    ok(desk.walk_in(walker, doctor, urgent=True, urgent_reason="Chest pain"), 201)  # 2
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 3
    ok(doc.call())  # 2, urgent, goes first
    ok(desk.move(3, "NO_SHOW"))

    queue = desk.queue_of(doctor)
    first, second = stored(1), stored(2)
    assert queue["waiting"] == [
        {
            "id": first.id,
            "token_number": 1,
            "display": "001",
            "kind": "APPOINTMENT",
            "status": "WAITING",
            "urgent": False,
            "patient": {"id": appointment.patient_id, "full_name": "Asha Devi Sharma"},
            "checked_in_at": first.checked_in_at.isoformat(),
            "position": 1,
        }
    ]
    assert queue["current"] == {
        "id": second.id,
        "token_number": 2,
        "display": "002",
        "kind": "WALK_IN",
        "status": "WITH_DOCTOR",
        "urgent": True,
        "patient": {"id": walker.id, "full_name": "Ravi Kumar"},
        "checked_in_at": second.checked_in_at.isoformat(),
        "called_at": second.called_at.isoformat(),
    }
    assert datetime.fromisoformat(queue["current"]["called_at"]) == NOW
    assert queue["counts"] == {
        "WAITING": 1,
        "WITH_DOCTOR": 1,
        "SKIPPED": 0,
        "NO_SHOW": 1,
        "COMPLETED": 0,
    }


def test_today_follows_the_live_order(desk, doctor, book):
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 1, walk-in at 10:00
    ok(desk.check_in(book(1)), 201)  # 2, the 10:30 slot
    ok(desk.check_in(book(0)), 201)  # 3, the 10:15 slot
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 4
    ok(desk.post("/4/urgent", {"reason": "Fainted"}))
    ok(desk.move(1, "SKIPPED"))
    ok(desk.move(1, "WAITING"))  # recalled: the head of the queue

    queue = desk.queue_of(doctor)
    assert waiting_numbers(queue) == [1, 4, 3, 2] == redis_waiting(doctor.id)
    assert [t["position"] for t in queue["waiting"]] == [1, 2, 3, 4]
    assert [t["urgent"] for t in queue["waiting"]] == [False, True, False, False]
    assert queue["current"] is None
    assert queue["counts"]["WAITING"] == 4


def test_today_lists_the_doctors_of_the_day_by_name(client, desk, doctor, book):
    on_duty = make_user(Role.DOCTOR, full_name="Aarti Bose")  # slots, no token yet
    make_slots(on_duty)
    holding = make_user(Role.DOCTOR, full_name="Zubin Shah")  # a token, no slot
    make_user(Role.DOCTOR, full_name="Meera Iyer")  # neither: not of the day
    ok(desk.walk_in(new_patient(desk.user), holding), 201)
    ok(desk.check_in(book(0)), 201)

    body = desk.today()
    names = [q["doctor"]["full_name"] for q in body["doctors"]]
    assert names == sorted([on_duty.full_name, holding.full_name, doctor.full_name])
    (idle,) = [q for q in body["doctors"] if q["doctor"]["id"] == on_duty.id]
    assert idle == {
        "doctor": {"id": on_duty.id, "full_name": "Aarti Bose"},
        "current": None,
        "waiting": [],
        "counts": dict.fromkeys(STATUSES, 0),
    }
    assert desk.today(on_duty.id)["doctors"] == [idle]


def test_today_of_one_doctor(desk, doctor, book):
    other = make_user(Role.DOCTOR)
    ok(desk.walk_in(new_patient(desk.user), other), 201)  # 1
    ok(desk.check_in(book(0)), 201)  # 2
    ok(desk.walk_in(new_patient(desk.user), other), 201)  # 3

    (queue,) = desk.today(other.id)["doctors"]
    assert queue["doctor"]["id"] == other.id
    assert waiting_numbers(queue) == [1, 3]
    assert queue["counts"]["WAITING"] == 2
    (mine,) = desk.today(doctor.id)["doctors"]
    assert waiting_numbers(mine) == [2]
    # A doctor with neither slots nor tokens today has no queue to show.
    assert desk.today(make_user(Role.DOCTOR).id) == {"date": "2030-01-07", "doctors": []}
    for wrong in (desk.user.id, 2_000_000_000):
        body = error(desk.get("/today", query_string={"doctor_id": wrong}), 422, "invalid_input")
        assert "doctor_id" in body["fields"]


def test_today_of_an_empty_day(desk):
    assert desk.today() == {"date": "2030-01-07", "doctors": []}


def test_the_openapi_document_describes_today(client, desk, doc, doctor, book):
    ok(desk.check_in(book(0)), 201)
    ok(desk.check_in(book(1)), 201)
    ok(doc.call())
    (queue,) = desk.today()["doctors"]
    shapes = client.get("/api/v1/openapi.json").json["components"]["schemas"]
    token = set(shapes["TodayToken"]["properties"])
    assert token == LEAN_KEYS | {"position", "called_at"}
    assert set(queue["current"]) | set(queue["waiting"][0]) == token
    assert set(shapes["DoctorQueue"]["properties"]) == set(queue)
    assert set(shapes["Today"]["properties"]) == {"date", "doctors"}


def test_today_reads_in_as_many_statements_for_40_tokens_as_for_1(app, desk, doctor, book):
    """The signed-in user, the stamp of the day's doctors and names, then (when the
    answer is not cached for this version) the day's rows: whatever their number."""

    def statements() -> tuple[int, int]:
        # After a change (the last walk-in) the answer is built; asked again, it is cached.
        db.session.expire_all()
        built = count_statements(app, lambda: ok(desk.get("/today")))
        db.session.expire_all()
        return built, count_statements(app, lambda: ok(desk.get("/today")))

    other = make_user(Role.DOCTOR)
    ok(desk.check_in(book(0)), 201)
    few = statements()
    for i in range(39):
        ok(desk.walk_in(new_patient(desk.user), other if i % 2 else doctor), 201)
    many = statements()
    assert sum(len(q["waiting"]) for q in desk.today()["doctors"]) == 40
    assert many == few == (STATEMENTS_OF_TODAY + 1, STATEMENTS_OF_TODAY)


def test_today_asked_again_shows_every_change(desk, doctor, book, admin):
    """The answer is cached until the queue, or what it shows of doctors and patients,
    changes: each change shows at once."""
    ok(desk.check_in(book(0, full_name="Asha Devi Sharma")), 201)  # 1
    first = desk.today()
    assert desk.today() == first
    patient_id = first["doctors"][0]["waiting"][0]["patient"]["id"]

    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 2
    assert waiting_numbers(desk.queue_of(doctor)) == [1, 2]
    ok(desk.post("/2/urgent", {"reason": "Fainted"}))
    assert waiting_numbers(desk.queue_of(doctor)) == [2, 1]

    patients.update(desk.user, patient_id, {"full_name": "Asha D. Sharma"})
    commit()
    assert desk.queue_of(doctor)["waiting"][1]["patient"]["full_name"] == "Asha D. Sharma"

    auth.update_user(admin, doctor.id, {"full_name": "Dr Renamed"})
    commit()
    assert desk.queue_of(doctor)["doctor"]["full_name"] == "Dr Renamed"

    newcomer = make_user(Role.DOCTOR)
    make_slots(newcomer)
    assert {q["doctor"]["id"] for q in desk.today()["doctors"]} == {doctor.id, newcomer.id}
    auth.update_user(admin, newcomer.id, {"is_active": False})
    commit()
    assert [q["doctor"]["id"] for q in desk.today()["doctors"]] == [doctor.id]

    # A change the database holds before Redis hears of it (a call commits after its
    # Redis move) shows at once too.
    db.session.execute(
        update(QueueEntry).where(QueueEntry.token_number == 1).values(status="NO_SHOW")
    )
    commit()
    assert desk.queue_of(doctor)["counts"]["NO_SHOW"] == 1

    # One cached answer per choice of doctors, replaced by each new version.
    cached = {k.decode() for k in redis_store.client.keys(f"q:{TODAY}:today:*")}
    assert cached == {f"q:{TODAY}:today:all", f"q:{TODAY}:today:{doctor.id}"}

    redis_store.client.flushdb()  # Redis lost the day: the answer is built again
    assert waiting_numbers(desk.queue_of(doctor)) == [2]
    assert redis_waiting(doctor.id) == [2]


def test_one_token(desk, doc, doctor, book):
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    ok(desk.check_in(book(0)), 201)
    body = ok(doc.get("/1"))
    assert set(body) >= TOKEN_KEYS
    assert body["token_number"] == 1
    assert body["position"] == 2
    assert ok(doc.get("/2"))["position"] == 1
    ok(doc.call())
    assert ok(doc.get("/2"))["position"] is None
    assert ok(doc.get("/1"))["position"] == 1
    error(doc.get("/3"), 404, "token_not_found")
    error(doc.get("/0"), 404)


def test_summary(desk, doc, doctor):
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 10:00
    with clock.fixed(later(10)):
        ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 10:10
    with clock.fixed(later(15)):
        ok(doc.call())  # 1 waited 15 minutes
    with clock.fixed(later(27)):
        ok(doc.move(1, "COMPLETED"))  # 12 minutes with the doctor
    with clock.fixed(later(35)):
        ok(doc.call())  # 2 waited 25 minutes
    body = ok(desk.get("/today/summary"))
    assert body["date"] == "2030-01-07"
    assert body["total"] == 2
    assert body["counts"] == {
        "WAITING": 0,
        "WITH_DOCTOR": 1,
        "SKIPPED": 0,
        "NO_SHOW": 0,
        "COMPLETED": 1,
    }
    assert body["average_wait_minutes"] == 20.0
    assert body["average_consultation_minutes"] == 12.0
    (mine,) = body["doctors"]
    assert mine["doctor"]["id"] == doctor.id
    assert mine["average_wait_minutes"] == 20.0


def test_summary_of_an_empty_day(desk):
    body = ok(desk.get("/today/summary"))
    assert body["total"] == 0
    assert body["average_wait_minutes"] is None
    assert body["doctors"] == []


# ---- the waiting-room display --------------------------------------------------------------


def crowd(desk, doctor, book) -> list:
    """Five patients with full names and phones the board must not show."""
    people = []
    for i, name in enumerate(
        ["Asha Devi Sharma", "Rohan Kapoor", "Meera Nair", "Vikram Iyer", "Zoya Khan"]
    ):
        appointment = book(i, full_name=name, phone=f"+91 98450 1234{i}")
        ok(desk.check_in(appointment), 201)
        people.append(appointment.patient)
    return people


def test_display_with_a_staff_token(client, doc, desk, doctor, book):
    people = crowd(desk, doctor, book)
    ok(doc.call())
    pharmacist = Desk(client, make_user(Role.PHARMACIST))
    response = pharmacist.get("/display")
    assert response.status_code == 200
    body = response.json
    assert body["date"] == "2030-01-07"
    (board,) = body["doctors"]
    assert board["doctor"]["id"] == doctor.id
    assert board["now_serving"]["token_number"] == 1
    assert board["now_serving"]["display"] == "001"
    assert board["now_serving"]["initials"] == "A.S."
    assert [t["display"] for t in board["next"]] == ["002", "003", "004"]
    assert [t["initials"] for t in board["next"]] == ["R.K.", "M.N.", "V.I."]
    text = response.get_data(as_text=True)
    for person in people:
        assert person.full_name not in text
        assert person.phone not in text
        assert person.phone[-10:] not in text
        assert person.mrn not in text
        for word in person.full_name.split():
            assert word not in text


def test_display_with_the_display_key(client, admin, desk, doctor, book):
    crowd(desk, doctor, book)
    error(client.get(f"{URL}/display", headers={"X-Display-Key": DISPLAY_KEY}), 401)
    board.set_display_key(admin, DISPLAY_KEY)
    commit()
    response = client.get(f"{URL}/display", headers={"X-Display-Key": DISPLAY_KEY})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [t["token_number"] for t in response.json["doctors"][0]["next"]] == [1, 2, 3]
    text = response.get_data(as_text=True)
    assert "Asha" not in text and "Sharma" not in text
    error(client.get(f"{URL}/display", headers={"X-Display-Key": "not-the-right-key-0"}), 401)
    error(client.get(f"{URL}/display"), 401)
    error(client.get(f"{URL}/display", headers={"Authorization": "Bearer nonsense"}), 401)


def test_display_answers_304_until_something_changes(client, doc, desk, doctor, book):
    crowd(desk, doctor, book)
    first = desk.get("/display")
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag
    again = desk.get("/display", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.get_data() == b""
    # Reading the queue changes nothing.
    desk.today()
    assert desk.get("/display", headers={"If-None-Match": etag}).status_code == 304

    ok(doc.call())
    changed = desk.get("/display", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json["doctors"][0]["now_serving"]["token_number"] == 1
    assert changed.get_data() != first.get_data()
    assert first.json["doctors"][0]["now_serving"] is None
    new_etag = changed.headers["ETag"]
    assert desk.get("/display", headers={"If-None-Match": new_etag}).status_code == 304


def test_display_after_redis_lost_its_keys(client, doc, desk, doctor, book):
    crowd(desk, doctor, book)
    ok(doc.call())
    before = desk.get("/display")
    redis_store.client.flushall()
    after = desk.get("/display", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert after.json["doctors"] == before.json["doctors"]
    assert after.headers["ETag"] != before.headers["ETag"]


# ---- Redis loses its keys ------------------------------------------------------------------


def test_the_queue_comes_back_after_redis_loses_its_keys(desk, doc, doctor, book):
    slot_at_1030, slot_at_1015 = book(1), book(0)
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 1
    ok(desk.check_in(slot_at_1030), 201)  # 2
    ok(desk.check_in(slot_at_1015), 201)  # 3
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)  # 4
    assert ok(doc.call())["token_number"] == 3
    before = desk.queue_of(doctor)
    assert waiting_numbers(before) == [2, 1, 4]

    redis_store.client.flushall()

    after = desk.queue_of(doctor)
    assert waiting_numbers(after) == [2, 1, 4]
    assert [t["position"] for t in after["waiting"]] == [1, 2, 3]
    assert after["current"]["token_number"] == 3
    assert after["counts"] == before["counts"]
    assert redis_waiting(doctor.id) == [2, 1, 4]
    assert redis_current(doctor.id) == 3

    redis_store.client.flushall()
    assert ok(desk.walk_in(new_patient(desk.user), doctor), 201)["token_number"] == 5
    error(doc.call(), 409, "patient_with_doctor")
    ok(doc.move(3, "COMPLETED"))
    assert ok(doc.call())["token_number"] == 2


# ---- clinic days and audit ---------------------------------------------------------------


def test_just_after_midnight_is_a_new_clinic_day(desk, doctor):
    for _ in range(2):
        ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    with clock.fixed(datetime(2030, 1, 8, 0, 30, tzinfo=IST)):
        body = ok(desk.walk_in(new_patient(desk.user), doctor), 201)
        assert desk.today()["date"] == "2030-01-08"
    assert body["date"] == "2030-01-08"
    assert body["token_number"] == 1
    assert body["display"] == "001"


def test_the_api_audits_each_step(desk, doc, doctor, book):
    ok(desk.check_in(book(0)), 201)
    ok(desk.walk_in(new_patient(desk.user), doctor), 201)
    ok(desk.post("/2/urgent", {"reason": "Pain"}))
    ok(doc.call())
    ok(doc.move(2, "SKIPPED"))
    ok(desk.move(2, "WAITING"))
    ok(doc.call())
    ok(doc.move(2, "COMPLETED"))
    ok(desk.move(1, "NO_SHOW"))
    queue_actions = [
        a for a in actions() if a.startswith("TOKEN_") or a == "APPOINTMENT_CHECKED_IN"
    ]
    assert queue_actions == [
        "APPOINTMENT_CHECKED_IN",
        "TOKEN_ISSUED",
        "TOKEN_ISSUED",
        "TOKEN_MARKED_URGENT",
        "TOKEN_CALLED",
        "TOKEN_SKIPPED",
        "TOKEN_RECALLED",
        "TOKEN_CALLED",
        "TOKEN_COMPLETED",
        "TOKEN_NO_SHOW",
    ]
    db.session.expire_all()
    called = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.payload["action"].astext == "TOKEN_CALLED")
    ).first()
    assert called.payload["user"]["id"] == doc.user.id
    assert called.payload["request_id"]


# ---- guessing the display key --------------------------------------------------------------


def display_from(client, address: str, key: str):
    return client.get(
        f"{URL}/display", headers={"X-Display-Key": key}, environ_base={"REMOTE_ADDR": address}
    )


def test_wrong_display_keys_are_throttled_per_address(app, client, admin):
    board.set_display_key(admin, DISPLAY_KEY)
    commit()
    guesses = [display_from(client, "203.0.113.9", f"guess-{n:08d}") for n in range(200)]
    statuses = [response.status_code for response in guesses]
    limit = app.config["DISPLAY_KEY_MAX_FAILURES"]
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    # the right key from there is refused too: a guess cannot be told apart by its answer
    response = display_from(client, "203.0.113.9", DISPLAY_KEY)
    body = error(response, 429, "too_many_attempts")
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert body["details"]["retry_after"] == int(response.headers["Retry-After"])
    # the waiting room's own screen, at its own address, goes on
    assert display_from(client, "198.51.100.20", DISPLAY_KEY).status_code == 200


def test_the_display_key_hold_ends_with_its_window(app, client, admin):
    board.set_display_key(admin, DISPLAY_KEY)
    commit()
    app.config["DISPLAY_KEY_WINDOW_SECONDS"], window = 1, app.config["DISPLAY_KEY_WINDOW_SECONDS"]
    try:
        for n in range(app.config["DISPLAY_KEY_MAX_FAILURES"]):
            display_from(client, "203.0.113.9", f"guess-{n:08d}")
        error(display_from(client, "203.0.113.9", DISPLAY_KEY), 429, "too_many_attempts")
        time.sleep(1.1)
        assert display_from(client, "203.0.113.9", DISPLAY_KEY).status_code == 200
    finally:
        app.config["DISPLAY_KEY_WINDOW_SECONDS"] = window


def test_right_keys_do_not_count_against_the_address(app, client, admin):
    board.set_display_key(admin, DISPLAY_KEY)
    commit()
    for _ in range(app.config["DISPLAY_KEY_MAX_FAILURES"] + 5):
        assert display_from(client, "198.51.100.20", DISPLAY_KEY).status_code == 200


def test_a_twelve_character_display_key_opens_the_board(client, admin):
    with pytest.raises(InvalidInput):
        board.set_display_key(admin, "k" * 11)
    board.set_display_key(admin, "tv-screen-12")
    commit()
    assert display_from(client, "198.51.100.20", "tv-screen-12").status_code == 200
