"""`/api/v1/slots` and `/api/v1/appointments`: every status code a client can meet.
The clock is pinned to Monday 2030-01-07 10:00 clinic time (tests/helpers.NOW)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients
from qure.queue import service as queue
from qure.scheduling.models import Appointment, Slot
from tests.helpers import (
    TODAY,
    bearer,
    error,
    later,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
)

pytestmark = pytest.mark.usefixtures("clinic_now")

SLOTS = "/api/v1/slots"
BULK = "/api/v1/slots/bulk"
BLOCK_RANGE = "/api/v1/slots/block"
APPOINTMENTS = "/api/v1/appointments"
IST = ZoneInfo("Asia/Kolkata")
TOMORROW = TODAY + timedelta(days=1)  # Tuesday 2030-01-08
NEXT_MONDAY = TODAY + timedelta(days=7)


# ---- helpers -----------------------------------------------------------------------------


def names_field(body: dict, field: str) -> bool:
    """The error's `fields` name `field` (a list item's error is `field.0`)."""
    return any(key.split(".")[0] == field for key in body.get("fields", {}))


def bulk_body(doctor=None, **changes) -> dict:
    """Tomorrow 09:00-12:00 in 30-minute slots (a value of `...` leaves the key out)."""
    values = {
        "start_date": TOMORROW.isoformat(),
        "end_date": TOMORROW.isoformat(),
        "start_time": "09:00",
        "end_time": "12:00",
        "duration_minutes": 30,
    }
    if doctor is not None:
        values["doctor_id"] = doctor.id
    values.update(changes)
    return {k: v for k, v in values.items() if v is not ...}


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=IST)


def instant(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None, f"{value} carries no offset"
    return moment


def local(value: str) -> tuple[str, str]:
    moment = instant(value).astimezone(IST)
    return moment.date().isoformat(), moment.strftime("%H:%M")


def hhmm(items: list[dict]) -> list[str]:
    return [local(item["start_at"])[1] for item in items]


def slot_count(doctor=None) -> int:
    db.session.expire_all()
    query = select(func.count()).select_from(Slot)
    if doctor is not None:
        query = query.where(Slot.doctor_id == doctor.id)
    return db.session.scalar(query)


def stored_slot(slot_id: int) -> Slot:
    db.session.expire_all()
    return db.session.get(Slot, slot_id)


def stored_appointment(appointment_id: int) -> Appointment:
    db.session.expire_all()
    return db.session.get(Appointment, appointment_id)


def appointment_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Appointment))


def events(action: str) -> list[dict]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [r.payload for r in rows if r.payload["action"] == action]


def one_slot(doctor, day: date = TOMORROW, start: str = "09:00", minutes: int = 30) -> Slot:
    hour, minute = map(int, start.split(":"))
    end = datetime.combine(day, time(hour, minute)) + timedelta(minutes=minutes)
    (slot,) = make_slots(doctor, day, start, end.strftime("%H:%M"), minutes)
    return slot


def ids(response) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.json["items"]]


# ---- bulk creation -------------------------------------------------------------------------


def test_a_doctor_creates_their_own_slots(client, doctor):
    response = client.post(BULK, json=bulk_body(), headers=bearer(client, doctor))
    assert response.status_code == 201, response.json
    assert response.json["created"] == 6
    assert response.json["skipped"] == 0
    slots = response.json["slots"]
    assert hhmm(slots) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    first = slots[0]
    assert first["doctor_id"] == doctor.id
    assert first["doctor"] == {"id": doctor.id, "full_name": doctor.full_name}
    assert first["duration_minutes"] == 30
    assert first["status"] == "OPEN"
    assert first["block_reason"] is None
    assert instant(first["end_at"]) - instant(first["start_at"]) == timedelta(minutes=30)
    assert slot_count(doctor) == 6


def test_slot_times_are_clinic_local(client, doctor):
    response = client.post(BULK, json=bulk_body(end_time="09:30"), headers=bearer(client, doctor))
    (slot,) = response.json["slots"]
    # 09:00 in Asia/Kolkata (UTC+05:30) is 03:30 UTC.
    assert instant(slot["start_at"]) == datetime(2030, 1, 8, 3, 30, tzinfo=UTC)
    assert local(slot["start_at"]) == ("2030-01-08", "09:00")
    assert stored_slot(slot["id"]).start_at == datetime(2030, 1, 8, 3, 30, tzinfo=UTC)


def test_an_admin_creates_slots_for_a_named_doctor(client, admin, doctor):
    response = client.post(BULK, json=bulk_body(doctor), headers=bearer(client, admin))
    assert response.status_code == 201, response.json
    assert {s["doctor_id"] for s in response.json["slots"]} == {doctor.id}
    assert slot_count(doctor) == 6


def test_a_doctor_may_name_themselves(client, doctor):
    response = client.post(BULK, json=bulk_body(doctor), headers=bearer(client, doctor))
    assert response.status_code == 201
    assert response.json["created"] == 6


@pytest.mark.parametrize(
    "weekdays", [[1, 3, 5], ["MON", "WED", "FRI"], ["mon", "wed", "fri"], ["1", "WED", 5]]
)
def test_bulk_on_chosen_weekdays(client, doctor, weekdays):
    body = bulk_body(
        start_date=NEXT_MONDAY.isoformat(),
        end_date=(NEXT_MONDAY + timedelta(days=6)).isoformat(),
        end_time="09:30",
        weekdays=weekdays,
    )
    response = client.post(BULK, json=body, headers=bearer(client, doctor))
    assert response.status_code == 201, response.json
    days = [local(s["start_at"])[0] for s in response.json["slots"]]
    assert days == ["2030-01-14", "2030-01-16", "2030-01-18"]


def test_bulk_leaves_out_breaks(client, doctor):
    body = bulk_body(end_time="13:00", breaks=[{"start": "10:00", "end": "11:00"}])
    response = client.post(BULK, json=body, headers=bearer(client, doctor))
    assert response.status_code == 201, response.json
    assert hhmm(response.json["slots"]) == ["09:00", "09:30", "11:00", "11:30", "12:00", "12:30"]


def test_bulk_skips_slots_already_in_the_past(client, doctor):
    headers = bearer(client, doctor)
    body = bulk_body(end_time="17:00")
    with clock.fixed(at(TOMORROW, 12, 0)):
        response = client.post(BULK, json=body, headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["skipped"] == 7  # 09:00 to 12:00 inclusive
    assert response.json["created"] == 9
    assert hhmm(response.json["slots"])[0] == "12:30"
    assert slot_count(doctor) == 9


def test_the_same_bulk_twice(client, doctor):
    headers = bearer(client, doctor)
    first = client.post(BULK, json=bulk_body(), headers=headers)
    second = client.post(BULK, json=bulk_body(), headers=headers)
    assert first.json["created"] == 6
    assert second.status_code == 201
    assert second.json == {"created": 0, "skipped": 6, "slots": []}
    assert slot_count(doctor) == 6
    assert len(events("SLOTS_CREATED")) == 1


def test_a_bulk_of_another_duration_skips_what_overlaps(client, doctor):
    headers = bearer(client, doctor)
    client.post(
        BULK, json=bulk_body(start_time="10:00", end_time="10:30"), headers=headers
    )  # 10:00-10:30
    body = bulk_body(start_time="09:30", end_time="11:00", duration_minutes=15)
    response = client.post(BULK, json=body, headers=headers)
    assert response.status_code == 201
    assert hhmm(response.json["slots"]) == ["09:30", "09:45", "10:30", "10:45"]
    assert response.json["skipped"] == 2
    assert slot_count(doctor) == 5


def test_bulk_over_ninety_two_days_names_end_date(client, doctor):
    body = bulk_body(end_date=(TOMORROW + timedelta(days=92)).isoformat(), end_time="09:30")
    body = error(client.post(BULK, json=body, headers=bearer(client, doctor)), 422, "invalid_input")
    assert names_field(body, "end_date")
    assert slot_count() == 0


def test_bulk_of_more_than_three_thousand_slots(client, doctor):
    body = bulk_body(
        end_date=(TOMORROW + timedelta(days=60)).isoformat(),
        end_time="21:30",
        duration_minutes=15,
    )
    response = client.post(BULK, json=body, headers=bearer(client, doctor))
    body = error(response, 422, "too_many_slots")
    assert names_field(body, "end_date")
    assert slot_count() == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"duration_minutes": 20}, "duration_minutes"),
        ({"duration_minutes": 60}, "duration_minutes"),
        ({"duration_minutes": "half an hour"}, "duration_minutes"),
        ({"duration_minutes": ...}, "duration_minutes"),
        ({"duration_minutes": True}, "duration_minutes"),
        ({"duration_minutes": None}, "duration_minutes"),
        ({"start_time": "9am"}, "start_time"),
        ({"start_time": "24:00"}, "start_time"),
        ({"start_time": "09:60"}, "start_time"),
        ({"start_time": ""}, "start_time"),
        ({"start_time": None}, "start_time"),
        ({"start_time": 900}, "start_time"),
        ({"end_time": "17.00"}, "end_time"),
        ({"end_time": "1700"}, "end_time"),
        ({"start_date": "2030/01/08"}, "start_date"),
        ({"start_date": "1899-12-31"}, "start_date"),
        ({"end_date": "tomorrow"}, "end_date"),
        ({"weekdays": [1, "funday"]}, "weekdays"),
        ({"weekdays": [True]}, "weekdays"),
        ({"breaks": [{"start": "lunch", "end": "13:00"}]}, "breaks"),
        ({"breaks": "lunch"}, "breaks"),
        ({"breaks": [{"start": "13:00", "end": "13:15"}] * 11}, "breaks"),
        ({"start_time": ...}, "start_time"),
        ({"end_time": "08:00"}, "end_time"),
        ({"end_time": "09:00"}, "end_time"),
        ({"start_date": "08/01/2030"}, "start_date"),
        ({"start_date": ...}, "start_date"),
        ({"end_date": "2030-01-07"}, "end_date"),
        ({"end_date": "soon"}, "end_date"),
        ({"weekdays": [8]}, "weekdays"),
        ({"weekdays": [0]}, "weekdays"),
        ({"weekdays": ["MOON"]}, "weekdays"),
        ({"weekdays": "MON"}, "weekdays"),
        ({"breaks": [{"start": "13:00"}]}, "breaks"),
        ({"breaks": [{"start": "14:00", "end": "13:00"}]}, "breaks"),
        ({"breaks": ["13:00-14:00"]}, "breaks"),
        ({"doctor_id": "me"}, "doctor_id"),
        ({"doctor_id": True}, "doctor_id"),
    ],
)
def test_bulk_bad_fields_are_named(client, doctor, changes, field):
    response = client.post(BULK, json=bulk_body(**changes), headers=bearer(client, doctor))
    body = error(response, 422, "invalid_input")
    assert names_field(body, field), body
    assert slot_count() == 0


def test_bulk_with_a_body_that_is_not_json(client, doctor):
    response = client.post(
        BULK, data="{not json", content_type="application/json", headers=bearer(client, doctor)
    )
    error(response, 400, "bad_request")


def test_a_doctor_may_not_create_another_doctors_slots(client, doctor):
    other = make_user(Role.DOCTOR)
    response = client.post(BULK, json=bulk_body(other), headers=bearer(client, doctor))
    error(response, 403, "not_your_schedule")
    assert slot_count() == 0


def test_an_admin_must_name_a_doctor(client, admin, reception):
    headers = bearer(client, admin)
    body = error(client.post(BULK, json=bulk_body(), headers=headers), 422, "invalid_input")
    assert names_field(body, "doctor_id")
    response = client.post(BULK, json=bulk_body(reception), headers=headers)
    body = error(response, 422, "invalid_input")
    assert names_field(body, "doctor_id")
    assert slot_count() == 0


@pytest.mark.parametrize("role", ["reception", "pharmacist"])
def test_other_roles_may_not_create_slots(client, request, doctor, role):
    user = request.getfixturevalue(role)
    response = client.post(BULK, json=bulk_body(doctor), headers=bearer(client, user))
    error(response, 403, "forbidden")
    assert slot_count() == 0


def test_bulk_without_a_token(client, doctor):
    error(client.post(BULK, json=bulk_body(doctor)), 401, "unauthorized")


def test_bulk_creation_is_audited(client, admin, doctor):
    response = client.post(BULK, json=bulk_body(doctor), headers=bearer(client, admin))
    (event,) = events("SLOTS_CREATED")
    assert event["user"]["id"] == admin.id
    assert event["resource"] == {"type": "doctor", "id": doctor.id}
    assert event["changes"]["new"]["created"] == 6
    assert event["changes"]["new"]["slot_ids"] == [s["id"] for s in response.json["slots"]]
    assert event["request_id"]


# ---- reading slots -------------------------------------------------------------------------


@pytest.fixture
def week(doctor, reception):
    """Slots of two doctors tomorrow and the day after; one blocked, one booked."""
    other = make_user(Role.DOCTOR)
    mine = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    mine_later = make_slots(doctor, TOMORROW + timedelta(days=1), "00:00", "00:30", 30)
    theirs = make_slots(other, TOMORROW, "09:00", "10:00", 30)
    from qure.scheduling import service

    service.set_blocked(doctor, mine[1].id, True, "Meeting")
    make_appointment(make_patient(reception), theirs[0], reception)
    db.session.commit()
    return {"other": other, "mine": mine, "mine_later": mine_later, "theirs": theirs}


@pytest.mark.parametrize("role", ["admin", "reception", "doctor", "pharmacist"])
def test_every_role_may_list_slots(client, request, week, role):
    response = client.get(SLOTS, headers=bearer(client, request.getfixturevalue(role)))
    assert response.status_code == 200
    assert set(response.json) >= {"items", "page", "per_page", "total"}
    assert response.json["total"] == 5
    assert response.json["page"] == 1
    assert response.json["per_page"] == 50


def test_slot_filters(client, reception, doctor, week):
    mine, later_, theirs = week["mine"], week["mine_later"], week["theirs"]
    other = week["other"]
    headers = bearer(client, reception)

    def get(**query):
        return ids(client.get(SLOTS, query_string=query, headers=headers))

    assert get() == [mine[0].id, theirs[0].id, mine[1].id, theirs[1].id, later_[0].id]
    assert get(doctor_id=doctor.id) == [mine[0].id, mine[1].id, later_[0].id]
    assert get(doctor_id=other.id) == [s.id for s in theirs]
    assert get(date="2030-01-08") == [mine[0].id, theirs[0].id, mine[1].id, theirs[1].id]
    # 00:00 on the 9th in Kolkata is still the 8th in UTC: it belongs to the 9th.
    assert get(date="2030-01-09") == [later_[0].id]
    assert get(date="2030-01-07") == []
    assert get(doctor_id=doctor.id, date="2030-01-08") == [mine[0].id, mine[1].id]
    assert get(**{"from": "2030-01-09"}) == [later_[0].id]
    assert get(to="2030-01-08") == [mine[0].id, theirs[0].id, mine[1].id, theirs[1].id]
    assert get(**{"from": "2030-01-08", "to": "2030-01-09"}) == get()
    assert get(**{"from": "2030-01-10"}) == []
    assert get(status="BLOCKED") == [mine[1].id]
    assert get(status="BOOKED") == [theirs[0].id]
    assert get(status="OPEN", doctor_id=doctor.id) == [mine[0].id, later_[0].id]


def test_slot_list_pagination(client, reception, week):
    headers = bearer(client, reception)
    response = client.get(SLOTS, query_string={"page": 2, "per_page": 2}, headers=headers)
    assert response.status_code == 200
    body = response.json
    assert {k: body[k] for k in ("page", "per_page", "total")} == {
        "page": 2,
        "per_page": 2,
        "total": 5,
    }
    assert len(body["items"]) == 2
    response = client.get(SLOTS, query_string={"page": 9, "per_page": 2}, headers=headers)
    assert response.json["items"] == []
    assert response.json["total"] == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "FREE"}, "status"),
        ({"date": "tomorrow"}, "date"),
        ({"from": "2030-13-01"}, "from"),
        ({"doctor_id": "x"}, "doctor_id"),
        ({"per_page": 201}, "per_page"),
        ({"page": 0}, "page"),
    ],
)
def test_slot_list_bad_query(client, reception, query, field):
    response = client.get(SLOTS, query_string=query, headers=bearer(client, reception))
    body = error(response, 422, "invalid_input")
    assert names_field(body, field), body


def test_slot_list_without_a_token(client):
    error(client.get(SLOTS), 401, "unauthorized")


def test_get_one_slot(client, reception, doctor):
    slot = one_slot(doctor)
    headers = bearer(client, reception)
    response = client.get(f"{SLOTS}/{slot.id}", headers=headers)
    assert response.status_code == 200
    assert response.json["id"] == slot.id
    assert response.json["status"] == "OPEN"
    error(client.get(f"{SLOTS}/987654", headers=headers), 404, "slot_not_found")


# ---- blocking ------------------------------------------------------------------------------


def block(client, slot_id, headers, **body):
    return client.patch(f"{SLOTS}/{slot_id}/block", json=body, headers=headers)


def test_block_and_unblock_a_slot(client, doctor):
    slot = one_slot(doctor)
    headers = bearer(client, doctor)
    response = block(client, slot.id, headers, blocked=True, reason="Ward round")
    assert response.status_code == 200, response.json
    assert response.json["status"] == "BLOCKED"
    assert response.json["block_reason"] == "Ward round"
    assert stored_slot(slot.id).status == "BLOCKED"
    (event,) = events("SLOT_BLOCKED")
    assert event["resource"] == {"type": "slot", "id": slot.id}
    assert event["changes"]["new"] == {"status": "BLOCKED", "block_reason": "Ward round"}

    response = block(client, slot.id, headers, blocked=False)
    assert response.status_code == 200
    assert response.json["status"] == "OPEN"
    assert response.json["block_reason"] is None
    assert stored_slot(slot.id).status == "OPEN"
    assert len(events("SLOT_UNBLOCKED")) == 1


@pytest.mark.parametrize("reason", [..., None, "", "   ", "x" * 201])
def test_blocking_needs_a_reason(client, doctor, reason):
    slot = one_slot(doctor)
    body = {"blocked": True} if reason is ... else {"blocked": True, "reason": reason}
    response = block(client, slot.id, bearer(client, doctor), **body)
    assert names_field(error(response, 422, "invalid_input"), "reason")
    assert stored_slot(slot.id).status == "OPEN"


@pytest.mark.parametrize("body", [{}, {"reason": "x"}, {"blocked": "perhaps", "reason": "x"}])
def test_blocking_needs_blocked(client, doctor, body):
    slot = one_slot(doctor)
    response = block(client, slot.id, bearer(client, doctor), **body)
    assert names_field(error(response, 422, "invalid_input"), "blocked")


def test_a_booked_slot_cannot_be_blocked(client, doctor, reception):
    slot = one_slot(doctor)
    make_appointment(make_patient(reception), slot, reception)
    response = block(client, slot.id, bearer(client, doctor), blocked=True, reason="Leave")
    error(response, 409, "slot_booked")
    assert stored_slot(slot.id).status == "BOOKED"


def test_a_blocked_slot_cannot_be_blocked_again(client, doctor):
    slot = one_slot(doctor)
    headers = bearer(client, doctor)
    block(client, slot.id, headers, blocked=True, reason="Leave")
    error(block(client, slot.id, headers, blocked=True, reason="Again"), 409, "already_blocked")
    assert stored_slot(slot.id).block_reason == "Leave"


def test_unblocking_an_open_slot(client, doctor):
    slot = one_slot(doctor)
    error(block(client, slot.id, bearer(client, doctor), blocked=False), 409, "not_blocked")


def test_unblocking_a_booked_slot_does_not_reopen_it(client, doctor, reception):
    slot = one_slot(doctor)
    make_appointment(make_patient(reception), slot, reception)
    error(block(client, slot.id, bearer(client, doctor), blocked=False), 409, "not_blocked")
    assert stored_slot(slot.id).status == "BOOKED"


def test_a_doctor_may_not_block_another_doctors_slot(client, doctor):
    other = make_user(Role.DOCTOR)
    slot = one_slot(other)
    response = block(client, slot.id, bearer(client, doctor), blocked=True, reason="Mine now")
    error(response, 403, "not_your_schedule")
    assert stored_slot(slot.id).status == "OPEN"


def test_an_admin_may_block_any_slot(client, admin, doctor):
    slot = one_slot(doctor)
    response = block(client, slot.id, bearer(client, admin), blocked=True, reason="Closed")
    assert response.status_code == 200
    assert stored_slot(slot.id).status == "BLOCKED"


@pytest.mark.parametrize("role", ["reception", "pharmacist"])
def test_other_roles_may_not_block(client, request, doctor, role):
    slot = one_slot(doctor)
    headers = bearer(client, request.getfixturevalue(role))
    error(block(client, slot.id, headers, blocked=True, reason="No"), 403, "forbidden")
    response = client.post(
        BLOCK_RANGE,
        json={
            "doctor_id": doctor.id,
            "start": "2030-01-08T09:00",
            "end": "2030-01-08T12:00",
            "reason": "No",
        },
        headers=headers,
    )
    error(response, 403, "forbidden")
    assert stored_slot(slot.id).status == "OPEN"


def test_blocking_an_unknown_slot(client, doctor):
    response = block(client, 987654, bearer(client, doctor), blocked=True, reason="Leave")
    error(response, 404, "slot_not_found")


def test_block_a_range(client, doctor, reception):
    slots = make_slots(doctor, TOMORROW, "09:00", "12:00", 30)
    make_appointment(make_patient(reception), slots[2], reception)  # 10:00
    body = {"start": "2030-01-08T09:30", "end": "2030-01-08T11:00", "reason": "Surgery"}
    response = client.post(BLOCK_RANGE, json=body, headers=bearer(client, doctor))
    assert response.status_code == 200, response.json
    assert [s["id"] for s in response.json["blocked"]] == [slots[1].id, slots[3].id]
    assert all(s["status"] == "BLOCKED" for s in response.json["blocked"])
    assert all(s["block_reason"] == "Surgery" for s in response.json["blocked"])
    assert [s["id"] for s in response.json["left_booked"]] == [slots[2].id]
    assert response.json["left_booked"][0]["status"] == "BOOKED"
    statuses = [stored_slot(s.id).status for s in slots]
    assert statuses == ["OPEN", "BLOCKED", "BOOKED", "BLOCKED", "OPEN", "OPEN"]
    (event,) = events("SLOTS_BLOCKED")
    assert event["changes"]["new"]["slot_ids"] == [slots[1].id, slots[3].id]


def test_block_a_range_for_a_doctor_as_admin(client, admin, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    body = {
        "doctor_id": doctor.id,
        "start": "2030-01-08T03:30:00+00:00",
        "end": "2030-01-08T04:00:00+00:00",
        "reason": "Leave",
    }
    response = client.post(BLOCK_RANGE, json=body, headers=bearer(client, admin))
    assert response.status_code == 200
    assert [s["id"] for s in response.json["blocked"]] == [slots[0].id]
    assert response.json["left_booked"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": ...}, "reason"),
        ({"reason": ""}, "reason"),
        ({"start": ...}, "start"),
        ({"start": "8 Jan 9am"}, "start"),
        ({"end": "2030-01-08T08:00"}, "end"),
    ],
)
def test_block_a_range_bad_fields(client, doctor, changes, field):
    make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    body = {"start": "2030-01-08T09:00", "end": "2030-01-08T12:00", "reason": "Leave", **changes}
    body = {k: v for k, v in body.items() if v is not ...}
    response = client.post(BLOCK_RANGE, json=body, headers=bearer(client, doctor))
    assert names_field(error(response, 422, "invalid_input"), field)
    assert events("SLOTS_BLOCKED") == []


def test_block_a_range_of_another_doctor(client, doctor, admin):
    other = make_user(Role.DOCTOR)
    slots = make_slots(other, TOMORROW, "09:00", "10:00", 30)
    body = {"start": "2030-01-08T09:00", "end": "2030-01-08T12:00", "reason": "Leave"}
    response = client.post(
        BLOCK_RANGE, json={**body, "doctor_id": other.id}, headers=bearer(client, doctor)
    )
    error(response, 403, "not_your_schedule")
    response = client.post(BLOCK_RANGE, json=body, headers=bearer(client, admin))
    assert names_field(error(response, 422, "invalid_input"), "doctor_id")
    assert [stored_slot(s.id).status for s in slots] == ["OPEN", "OPEN"]


# ---- booking -------------------------------------------------------------------------------


def post_booking(client, headers, patient, slot, **extra):
    body = {"patient_id": patient.id, "slot_id": slot.id, **extra}
    return client.post(APPOINTMENTS, json=body, headers=headers)


@pytest.mark.parametrize("role", ["reception", "admin"])
def test_book_an_appointment(client, request, doctor, role):
    user = request.getfixturevalue(role)
    slot = one_slot(doctor)
    patient = make_patient(user)
    headers = bearer(client, user)
    response = post_booking(client, headers, patient, slot, reason="Fever")
    assert response.status_code == 201, response.json
    body = response.json
    assert response.headers["Location"].endswith(f"{APPOINTMENTS}/{body['id']}")
    assert body["status"] == "SCHEDULED"
    assert body["patient_id"] == patient.id
    assert body["patient"]["mrn"] == patient.mrn
    assert body["slot_id"] == slot.id
    assert body["doctor_id"] == doctor.id
    assert body["reason"] == "Fever"
    assert instant(body["start_at"]) == slot.start_at
    assert instant(body["end_at"]) == slot.end_at
    assert body["checked_in_at"] is None
    assert body["cancelled_at"] is None
    assert client.get(f"{SLOTS}/{slot.id}", headers=headers).json["status"] == "BOOKED"
    assert client.get(response.headers["Location"], headers=headers).json["id"] == body["id"]
    assert stored_appointment(body["id"]).status == "SCHEDULED"
    (event,) = events("APPOINTMENT_BOOKED")
    assert event["resource"] == {"type": "appointment", "id": body["id"]}


def test_booking_a_booked_slot(client, reception, doctor):
    slot = one_slot(doctor)
    make_appointment(make_patient(reception), slot, reception)
    response = post_booking(client, bearer(client, reception), make_patient(reception), slot)
    body = error(response, 409, "slot_taken")
    assert body["details"] == {"slot_id": slot.id}
    assert appointment_count() == 1


def test_booking_a_blocked_slot(client, reception, doctor):
    slot = one_slot(doctor)
    block(client, slot.id, bearer(client, doctor), blocked=True, reason="Leave")
    response = post_booking(client, bearer(client, reception), make_patient(reception), slot)
    error(response, 409, "slot_blocked")
    assert appointment_count() == 0
    assert stored_slot(slot.id).status == "BLOCKED"


def test_booking_a_slot_in_the_past(client, reception, doctor):
    slot = one_slot(doctor, TODAY, "10:30")
    patient = make_patient(reception)
    headers = bearer(client, reception)
    with clock.fixed(later(40)):
        response = post_booking(client, headers, patient, slot)
    body = error(response, 422, "slot_in_past")
    assert names_field(body, "slot_id")
    assert appointment_count() == 0
    assert stored_slot(slot.id).status == "OPEN"


def test_booking_a_patient_twice_at_one_time(client, reception, doctor):
    other = make_user(Role.DOCTOR)
    patient = make_patient(reception)
    first = make_appointment(patient, one_slot(doctor, start="09:00", minutes=30), reception)
    clashing = one_slot(other, start="09:15", minutes=15)
    response = post_booking(client, bearer(client, reception), patient, clashing)
    body = error(response, 409, "patient_double_booked")
    assert body["details"] == {"appointment_id": first.id}
    assert stored_slot(clashing.id).status == "OPEN"
    assert appointment_count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"patient_id": 987654}, "patient_id"),
        ({"patient_id": "abc"}, "patient_id"),
        ({"patient_id": True}, "patient_id"),
        ({"slot_id": True}, "slot_id"),
        ({"slot_id": 2**31}, "slot_id"),
        ({"patient_id": ...}, "patient_id"),
        ({"slot_id": 987654}, "slot_id"),
        ({"slot_id": None}, "slot_id"),
        ({"slot_id": ...}, "slot_id"),
        ({"reason": "x" * 501}, "reason"),
    ],
)
def test_booking_bad_fields(client, reception, doctor, body, field):
    slot = one_slot(doctor)
    patient = make_patient(reception)
    data = {"patient_id": patient.id, "slot_id": slot.id, **body}
    data = {k: v for k, v in data.items() if v is not ...}
    response = client.post(APPOINTMENTS, json=data, headers=bearer(client, reception))
    assert names_field(error(response, 422, "invalid_input"), field)
    assert appointment_count() == 0
    assert stored_slot(slot.id).status == "OPEN"


def test_booking_an_archived_patient(client, admin, reception, doctor):
    patient = make_patient(reception)
    patients.archive(admin, patient.id)
    db.session.commit()
    slot = one_slot(doctor)
    response = post_booking(client, bearer(client, reception), patient, slot)
    assert names_field(error(response, 422, "invalid_input"), "patient_id")
    assert appointment_count() == 0


@pytest.mark.parametrize("role", ["pharmacist", "doctor"])
def test_only_the_front_desk_and_admin_book(client, request, doctor, role):
    user = request.getfixturevalue(role)
    slot = one_slot(doctor)
    patient = make_patient(None)
    error(post_booking(client, bearer(client, user), patient, slot), 403, "forbidden")
    assert appointment_count() == 0
    assert stored_slot(slot.id).status == "OPEN"


def test_booking_without_a_token(client, reception, doctor):
    slot = one_slot(doctor)
    body = {"patient_id": make_patient(reception).id, "slot_id": slot.id}
    error(client.post(APPOINTMENTS, json=body), 401, "unauthorized")


def test_a_cancelled_appointment_does_not_block_a_new_booking(client, reception, doctor):
    slot = one_slot(doctor)
    headers = bearer(client, reception)
    first = post_booking(client, headers, make_patient(reception), slot).json
    assert client.delete(f"{APPOINTMENTS}/{first['id']}", headers=headers).status_code == 200
    response = post_booking(client, headers, make_patient(reception), slot)
    assert response.status_code == 201, response.json
    assert stored_slot(slot.id).status == "BOOKED"
    assert stored_appointment(first["id"]).status == "CANCELLED"


# ---- reading appointments ------------------------------------------------------------------


@pytest.fixture
def diary(reception, doctor):
    other = make_user(Role.DOCTOR)
    asha, bala = make_patient(reception), make_patient(reception)
    mine = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    theirs = make_slots(other, TOMORROW, "10:00", "10:30", 30)
    day_after = make_slots(doctor, TOMORROW + timedelta(days=1), "09:00", "09:30", 30)
    a1 = make_appointment(asha, mine[0], reception)
    b1 = make_appointment(bala, mine[1], reception)
    a_other = make_appointment(asha, theirs[0], reception)
    b2 = make_appointment(bala, day_after[0], reception)
    from qure.scheduling import service

    service.cancel(reception, b2.id)
    db.session.commit()
    return {
        "other": other,
        "asha": asha,
        "bala": bala,
        "a1": a1.id,
        "b1": b1.id,
        "a_other": a_other.id,
        "b2": b2.id,
    }


def test_list_appointments_with_filters(client, reception, doctor, diary):
    d = diary
    headers = bearer(client, reception)

    def get(**query):
        return ids(client.get(APPOINTMENTS, query_string=query, headers=headers))

    assert get() == [d["a1"], d["b1"], d["a_other"], d["b2"]]
    assert get(date="2030-01-08") == [d["a1"], d["b1"], d["a_other"]]
    assert get(date="2030-01-09") == [d["b2"]]
    assert get(date="2030-01-07") == []
    assert get(doctor_id=d["other"].id) == [d["a_other"]]
    assert get(patient_id=d["asha"].id) == [d["a1"], d["a_other"]]
    assert get(status="CANCELLED") == [d["b2"]]
    assert get(status="SCHEDULED", doctor_id=doctor.id) == [d["a1"], d["b1"]]
    response = client.get(APPOINTMENTS, query_string={"per_page": 3, "page": 2}, headers=headers)
    assert {k: response.json[k] for k in ("page", "per_page", "total")} == {
        "page": 2,
        "per_page": 3,
        "total": 4,
    }
    assert [a["id"] for a in response.json["items"]] == [d["b2"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "BOOKED"}, "status"),
        ({"date": "08/01/2030"}, "date"),
        ({"patient_id": "x"}, "patient_id"),
        ({"per_page": 500}, "per_page"),
    ],
)
def test_list_appointments_bad_query(client, reception, query, field):
    response = client.get(APPOINTMENTS, query_string=query, headers=bearer(client, reception))
    assert names_field(error(response, 422, "invalid_input"), field)


def test_a_doctor_sees_only_their_own_appointments(client, doctor, diary):
    d = diary
    headers = bearer(client, doctor)
    assert ids(client.get(APPOINTMENTS, headers=headers)) == [d["a1"], d["b1"], d["b2"]]
    response = client.get(APPOINTMENTS, query_string={"doctor_id": doctor.id}, headers=headers)
    assert ids(response) == [d["a1"], d["b1"], d["b2"]]
    response = client.get(APPOINTMENTS, query_string={"patient_id": d["asha"].id}, headers=headers)
    assert ids(response) == [d["a1"]]
    response = client.get(APPOINTMENTS, query_string={"doctor_id": d["other"].id}, headers=headers)
    error(response, 403, "forbidden")


def test_get_one_appointment(client, reception, doctor, diary):
    d = diary
    headers = bearer(client, reception)
    response = client.get(f"{APPOINTMENTS}/{d['a_other']}", headers=headers)
    assert response.status_code == 200
    assert response.json["doctor_id"] == d["other"].id
    assert response.json["patient"]["id"] == d["asha"].id
    error(client.get(f"{APPOINTMENTS}/987654", headers=headers), 404, "appointment_not_found")
    doctor_headers = bearer(client, doctor)
    assert client.get(f"{APPOINTMENTS}/{d['a1']}", headers=doctor_headers).status_code == 200
    error(client.get(f"{APPOINTMENTS}/{d['a_other']}", headers=doctor_headers), 403, "forbidden")


def test_listing_appointments_without_a_token(client):
    error(client.get(APPOINTMENTS), 401, "unauthorized")


# ---- rescheduling and cancelling -----------------------------------------------------------


def test_reschedule(client, reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    headers = bearer(client, reception)
    response = client.patch(
        f"{APPOINTMENTS}/{appointment.id}", json={"slot_id": slots[1].id}, headers=headers
    )
    assert response.status_code == 200, response.json
    assert response.json["slot_id"] == slots[1].id
    assert instant(response.json["start_at"]) == slots[1].start_at
    assert response.json["status"] == "SCHEDULED"
    assert stored_slot(slots[0].id).status == "OPEN"
    assert stored_slot(slots[1].id).status == "BOOKED"
    assert stored_appointment(appointment.id).slot_id == slots[1].id
    (event,) = events("APPOINTMENT_RESCHEDULED")
    assert event["resource"] == {"type": "appointment", "id": appointment.id}
    assert event["changes"]["old"]["slot_id"] == slots[0].id
    assert event["changes"]["new"]["slot_id"] == slots[1].id


def test_reschedule_to_a_taken_slot_changes_nothing(client, reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception, reason="Old")
    make_appointment(make_patient(reception), slots[1], reception)
    response = client.patch(
        f"{APPOINTMENTS}/{appointment.id}",
        json={"slot_id": slots[1].id, "reason": "New"},
        headers=bearer(client, reception),
    )
    error(response, 409, "slot_taken")
    stored = stored_appointment(appointment.id)
    assert (stored.slot_id, stored.reason, stored.status) == (slots[0].id, "Old", "SCHEDULED")
    assert [stored_slot(s.id).status for s in slots] == ["BOOKED", "BOOKED"]
    assert events("APPOINTMENT_RESCHEDULED") == []


def test_reschedule_to_a_blocked_slot(client, reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    block(client, slots[1].id, bearer(client, doctor), blocked=True, reason="Leave")
    response = client.patch(
        f"{APPOINTMENTS}/{appointment.id}",
        json={"slot_id": slots[1].id},
        headers=bearer(client, reception),
    )
    error(response, 409, "slot_blocked")
    assert stored_slot(slots[0].id).status == "BOOKED"


def test_reschedule_to_an_unknown_slot(client, reception, doctor):
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    response = client.patch(
        f"{APPOINTMENTS}/{appointment.id}",
        json={"slot_id": 987654},
        headers=bearer(client, reception),
    )
    assert names_field(error(response, 422, "invalid_input"), "slot_id")
    assert stored_slot(appointment.slot_id).status == "BOOKED"


def test_change_only_the_reason(client, reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception, reason="Fever")
    response = client.patch(
        f"{APPOINTMENTS}/{appointment.id}",
        json={"reason": "Follow-up"},
        headers=bearer(client, reception),
    )
    assert response.status_code == 200
    assert response.json["reason"] == "Follow-up"
    assert response.json["slot_id"] == slot.id
    assert stored_appointment(appointment.id).reason == "Follow-up"
    assert len(events("APPOINTMENT_UPDATED")) == 1


def test_cancel(client, reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception)
    headers = bearer(client, reception)
    response = client.delete(f"{APPOINTMENTS}/{appointment.id}", headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["status"] == "CANCELLED"
    assert response.json["cancelled_at"] is not None
    assert stored_appointment(appointment.id).status == "CANCELLED"
    assert stored_slot(slot.id).status == "OPEN"
    assert len(events("APPOINTMENT_CANCELLED")) == 1
    again = client.delete(f"{APPOINTMENTS}/{appointment.id}", headers=headers)
    error(again, 409, "appointment_not_scheduled")
    response = client.patch(
        f"{APPOINTMENTS}/{appointment.id}", json={"reason": "x"}, headers=headers
    )
    error(response, 409, "appointment_not_scheduled")


def test_cancel_may_say_why(client, reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception)
    headers = bearer(client, reception)
    url = f"{APPOINTMENTS}/{appointment.id}"
    body = error(
        client.delete(url, json={"reason": "x" * 201}, headers=headers), 422, "invalid_input"
    )
    assert "reason" in body["fields"]
    assert stored_appointment(appointment.id).status == "SCHEDULED"
    response = client.delete(url, json={"reason": "Patient travelling"}, headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["cancel_reason"] == "Patient travelling"
    assert stored_appointment(appointment.id).cancel_reason == "Patient travelling"
    (event,) = events("APPOINTMENT_CANCELLED")
    assert event["changes"]["new"]["reason"] == "Patient travelling"


def test_no_cancel_or_reschedule_after_check_in(client, reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    with clock.fixed(at(TOMORROW, 8, 50)):
        queue.check_in(reception, appointment.id)
        db.session.commit()
    headers = bearer(client, reception)
    url = f"{APPOINTMENTS}/{appointment.id}"
    error(client.delete(url, headers=headers), 409, "already_checked_in")
    response = client.patch(url, json={"slot_id": slots[1].id}, headers=headers)
    error(response, 409, "already_checked_in")
    assert stored_appointment(appointment.id).status == "CHECKED_IN"
    assert [stored_slot(s.id).status for s in slots] == ["BOOKED", "OPEN"]


@pytest.mark.parametrize("role", ["pharmacist", "doctor"])
def test_only_the_front_desk_and_admin_change_appointments(client, request, doctor, role):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(None), slots[0])
    headers = bearer(client, request.getfixturevalue(role))
    url = f"{APPOINTMENTS}/{appointment.id}"
    error(client.patch(url, json={"slot_id": slots[1].id}, headers=headers), 403, "forbidden")
    error(client.delete(url, headers=headers), 403, "forbidden")
    assert stored_appointment(appointment.id).status == "SCHEDULED"
    assert stored_appointment(appointment.id).slot_id == slots[0].id


def test_an_admin_reschedules_and_cancels(client, admin, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(None), slots[0])
    headers = bearer(client, admin)
    url = f"{APPOINTMENTS}/{appointment.id}"
    assert client.patch(url, json={"slot_id": slots[1].id}, headers=headers).status_code == 200
    assert client.delete(url, headers=headers).status_code == 200
    assert [stored_slot(s.id).status for s in slots] == ["OPEN", "OPEN"]


def test_changing_an_unknown_appointment(client, reception):
    headers = bearer(client, reception)
    url = f"{APPOINTMENTS}/987654"
    error(client.patch(url, json={"reason": "x"}, headers=headers), 404, "appointment_not_found")
    error(client.delete(url, headers=headers), 404, "appointment_not_found")


# ---- input never produces a 500 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "start_time"),
    [("9999-12-31", "09:00"), ("0001-01-01", "09:00"), ("0001-01-01", "00:00")],
)
def test_bulk_at_the_edges_of_the_calendar(client, doctor, day, start_time):
    body = bulk_body(start_date=day, end_date=day, start_time=start_time)
    response = client.post(BULK, json=body, headers=bearer(client, doctor))
    assert response.status_code in (201, 422), response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("url", "query"),
    [
        (SLOTS, {"date": "9999-12-31"}),
        (SLOTS, {"date": "0001-01-01"}),
        (SLOTS, {"from": "0001-01-01"}),
        (SLOTS, {"to": "9999-12-31"}),
        (APPOINTMENTS, {"date": "9999-12-31"}),
        (APPOINTMENTS, {"date": "0001-01-01"}),
    ],
)
def test_listing_at_the_edges_of_the_calendar(client, reception, url, query):
    response = client.get(url, query_string=query, headers=bearer(client, reception))
    assert response.status_code in (200, 422), response.get_data(as_text=True)
    if response.status_code == 200:
        assert response.json["items"] == []


@pytest.mark.parametrize(
    ("start", "end"),
    [("0001-01-01T00:00", "0001-01-02T00:00"), ("9999-12-30T00:00", "9999-12-31T23:59")],
)
def test_block_a_range_at_the_edges_of_the_calendar(client, doctor, start, end):
    body = {"start": start, "end": end, "reason": "Leave"}
    response = client.post(BLOCK_RANGE, json=body, headers=bearer(client, doctor))
    assert response.status_code in (200, 422), response.get_data(as_text=True)


def test_a_nul_character_in_a_reason_is_refused(client, reception, doctor):
    slot = one_slot(doctor)
    response = block(client, slot.id, bearer(client, doctor), blocked=True, reason="Le\x00ave")
    error(response, 422, "invalid_input")
    assert stored_slot(slot.id).status == "OPEN"
    response = post_booking(
        client, bearer(client, reception), make_patient(reception), slot, reason="Fe\x00ver"
    )
    error(response, 422, "invalid_input")
    assert appointment_count() == 0


# ---- weekday names and who reads appointments --------------------------------------------


@pytest.mark.parametrize(
    ("weekdays", "created"),
    [(["Tuesday"], 6), (["tue"], 6), (["WEDNESDAY"], 0), ([2], 6)],
)
def test_weekdays_by_number_short_or_full_name(client, doctor, weekdays, created):
    response = client.post(
        BULK, json=bulk_body(doctor, weekdays=weekdays), headers=bearer(client, doctor)
    )
    assert response.status_code == 201, response.json
    assert response.json["created"] == created


@pytest.mark.parametrize("word", ["MONKEY", "Sunshine", "8", "0"])
def test_a_word_that_only_starts_like_a_weekday_is_refused(client, doctor, word):
    response = client.post(
        BULK, json=bulk_body(doctor, weekdays=[word]), headers=bearer(client, doctor)
    )
    body = error(response, 422, "invalid_input")
    assert names_field(body, "weekdays")
    assert db.session.scalar(select(func.count()).select_from(Slot)) == 0


def test_a_pharmacist_cannot_read_appointments(client, doctor, reception, pharmacist):
    appointment = make_appointment(make_patient(), make_slots(doctor)[0], reception)
    headers = bearer(client, pharmacist)
    error(client.get(APPOINTMENTS, headers=headers), 403, "forbidden")
    error(client.get(f"{APPOINTMENTS}/{appointment.id}", headers=headers), 403, "forbidden")
    assert client.get(APPOINTMENTS, headers=bearer(client, reception)).json["total"] == 1


@pytest.mark.parametrize("start", ["0001-01-01T00:00", "9999-12-31T23:00"])
def test_blocking_a_range_at_the_edges_of_the_calendar_is_a_field_error(client, doctor, start):
    body = {"start": start, "end": "9999-12-31T23:30", "reason": "Leave"}
    response = client.post(BLOCK_RANGE, json=body, headers=bearer(client, doctor))
    assert names_field(error(response, 422, "invalid_input"), "start")
