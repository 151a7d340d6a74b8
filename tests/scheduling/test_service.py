"""Slots and appointments (SPEC section 3), through the service functions, against the real
database. The clock is pinned to Monday 2030-01-07 10:00 clinic time (tests/helpers.NOW)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from qure.core import clock
from qure.core.db import add_pending, constraint_name
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients
from qure.queue import service as queue
from qure.scheduling import service
from qure.scheduling.models import Appointment, Slot
from tests.helpers import NOW, TODAY, later, make_appointment, make_patient, make_slots, make_user

pytestmark = pytest.mark.usefixtures("clinic_now")

IST = ZoneInfo("Asia/Kolkata")
TOMORROW = TODAY + timedelta(days=1)  # Tuesday 2030-01-08
NEXT_MONDAY = TODAY + timedelta(days=7)  # 2030-01-14


# ---- helpers -----------------------------------------------------------------------------


def window(doctor, **changes) -> dict:
    """A bulk request: tomorrow 09:00-12:00 in 30-minute slots, with `changes`
    (a value of `...` leaves the key out)."""
    values = {
        "doctor_id": doctor.id,
        "start_date": TOMORROW,
        "end_date": TOMORROW,
        "start_time": "09:00",
        "end_time": "12:00",
        "duration_minutes": 30,
    }
    values.update(changes)
    return {k: typed(k, v) for k, v in values.items() if v is not ...}


def typed(key: str, value):
    """A window's value as the edge hands it to the service: times as `time`, breaks as
    (start, end) times (written here as HH:MM text, for reading)."""
    if key in ("start_time", "end_time") and isinstance(value, str):
        return time.fromisoformat(value)
    if key == "breaks":
        return [(time.fromisoformat(b["start"]), time.fromisoformat(b["end"])) for b in value]
    return value


def ranged(data: dict) -> dict:
    """A block-range request as the edge hands it over: start and end (ISO text here, for
    reading) as aware datetimes, clinic-local without an offset."""
    out = dict(data)
    for key in ("start", "end"):
        if isinstance(out.get(key), str):
            moment = datetime.fromisoformat(out[key])
            out[key] = moment if moment.tzinfo else moment.replace(tzinfo=IST)
    return out


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A clinic-local instant."""
    return datetime.combine(day, time(hour, minute), tzinfo=IST)


def local_times(slots) -> list[tuple[date, str]]:
    out = []
    for slot in slots:
        moment = slot.start_at.astimezone(IST)
        out.append((moment.date(), moment.strftime("%H:%M")))
    return out


def hhmm(slots) -> list[str]:
    return [t for _, t in local_times(slots)]


def slots_of(doctor) -> list[Slot]:
    db.session.expire_all()
    query = select(Slot).where(Slot.doctor_id == doctor.id).order_by(Slot.start_at)
    return list(db.session.scalars(query))


def slot_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Slot))


def overlapping_pairs() -> int:
    """Pairs of one doctor's slots whose times overlap: the database must keep this 0."""
    return db.session.scalar(
        text(
            "SELECT count(*) FROM slots a JOIN slots b ON a.doctor_id = b.doctor_id "
            "AND a.id < b.id AND tstzrange(a.start_at, a.end_at) && tstzrange(b.start_at, b.end_at)"
        )
    )


def events(action: str) -> list[dict]:
    add_pending()  # the rows this transaction writes at commit
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [r.payload for r in rows if r.payload["action"] == action]


def bad_bulk(actor, values: dict, code: str = "invalid_input") -> dict[str, str]:
    before = slot_count()
    with pytest.raises(InvalidInput) as caught:
        service.bulk_create(actor, values)
    assert caught.value.code == code
    assert slot_count() == before
    return caught.value.fields


def one_slot(doctor, day: date = TOMORROW, start: str = "09:00", minutes: int = 30) -> Slot:
    hour, minute = map(int, start.split(":"))
    end = (datetime.combine(day, time(hour, minute)) + timedelta(minutes=minutes)).strftime("%H:%M")
    (slot,) = make_slots(doctor, day, start, end, minutes)
    return slot


def refreshed(obj):
    db.session.refresh(obj)
    return obj


def book(actor, patient, slot, reason=None) -> Appointment:
    return service.book(actor, {"patient_id": patient.id, "slot_id": slot.id, "reason": reason})


# ---- bulk creation -------------------------------------------------------------------------


def test_bulk_creates_every_slot_of_the_window(doctor):
    result = service.bulk_create(doctor, window(doctor))
    assert result["created"] == 6
    assert result["skipped"] == 0
    assert hhmm(result["slots"]) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    stored = slots_of(doctor)
    assert [s.id for s in stored] == [s.id for s in result["slots"]]
    for slot in stored:
        assert slot.status == "OPEN"
        assert slot.block_reason is None
        assert slot.duration_minutes == 30
        assert slot.end_at - slot.start_at == timedelta(minutes=30)
        assert slot.created_by_id == doctor.id
        assert slot.start_at.astimezone(IST).date() == TOMORROW


def test_bulk_creates_fifteen_minute_slots(doctor):
    result = service.bulk_create(doctor, window(doctor, end_time="10:00", duration_minutes=15))
    assert result["created"] == 4
    assert hhmm(result["slots"]) == ["09:00", "09:15", "09:30", "09:45"]
    assert all(s.end_at - s.start_at == timedelta(minutes=15) for s in result["slots"])


def test_a_period_that_does_not_fit_before_the_end_time_is_not_made(doctor):
    result = service.bulk_create(doctor, window(doctor, end_time="10:20"))
    # 10:00-10:30 would run past 10:20.
    assert hhmm(result["slots"]) == ["09:00", "09:30"]
    assert result["skipped"] == 0


def test_times_are_clinic_local(doctor):
    result = service.bulk_create(doctor, window(doctor, end_time="09:30"))
    (slot,) = result["slots"]
    assert slot.start_at == datetime(2030, 1, 8, 3, 30, tzinfo=UTC)
    assert slot.end_at == datetime(2030, 1, 8, 4, 0, tzinfo=UTC)


def test_a_slot_just_after_midnight_belongs_to_its_clinic_day(doctor):
    result = service.bulk_create(doctor, window(doctor, start_time="00:00", end_time="00:30"))
    (slot,) = result["slots"]
    # 00:00 in Kolkata is 18:30 UTC the day before.
    assert slot.start_at == datetime(2030, 1, 7, 18, 30, tzinfo=UTC)
    assert [s.id for s in service.list_slots(day=TOMORROW).items] == [slot.id]
    assert service.list_slots(day=TODAY).items == []


def test_bulk_over_several_days_without_weekdays_makes_every_day(doctor):
    values = window(doctor, start_date=NEXT_MONDAY, end_date=NEXT_MONDAY + timedelta(days=6))
    result = service.bulk_create(doctor, {**values, "end_time": time(9, 30)})
    assert result["created"] == 7
    assert [d for d, _ in local_times(result["slots"])] == [
        NEXT_MONDAY + timedelta(days=i) for i in range(7)
    ]


@pytest.mark.parametrize("weekdays", [{1, 3, 5}, [5, 1, 3], [5, 5, 1, 3]])
def test_bulk_weekdays_as_iso_numbers(doctor, weekdays):
    values = window(
        doctor,
        start_date=NEXT_MONDAY,
        end_date=NEXT_MONDAY + timedelta(days=6),
        end_time="09:30",
        weekdays=weekdays,
    )
    result = service.bulk_create(doctor, values)
    days = [d for d, _ in local_times(result["slots"])]
    assert days == [date(2030, 1, 14), date(2030, 1, 16), date(2030, 1, 18)]
    assert [d.isoweekday() for d in days] == [1, 3, 5]
    assert result["created"] == 3
    # Days that are not chosen are not "skipped": nothing was asked for on them.
    assert result["skipped"] == 0


def test_bulk_weekday_seven_is_sunday(doctor):
    values = window(
        doctor,
        start_date=NEXT_MONDAY,
        end_date=NEXT_MONDAY + timedelta(days=6),
        end_time="09:30",
        weekdays={7, 6},
    )
    days = [d for d, _ in local_times(service.bulk_create(doctor, values)["slots"])]
    assert days == [date(2030, 1, 19), date(2030, 1, 20)]


def test_bulk_with_no_matching_weekday_creates_nothing(doctor):
    # Tomorrow is a Tuesday.
    result = service.bulk_create(doctor, window(doctor, weekdays={7}))
    assert result == {"created": 0, "skipped": 0, "slots": []}
    assert slots_of(doctor) == []
    assert events("SLOTS_CREATED") == []


def test_breaks_are_left_out(doctor):
    values = window(
        doctor,
        start_time="09:00",
        end_time="14:00",
        breaks=[{"start": "11:00", "end": "11:30"}, {"start": "12:30", "end": "13:30"}],
    )
    result = service.bulk_create(doctor, values)
    assert hhmm(result["slots"]) == ["09:00", "09:30", "10:00", "10:30", "11:30", "12:00", "13:30"]
    assert result["created"] == 7
    assert result["skipped"] == 0


def test_a_break_that_cuts_into_a_slot_removes_the_whole_slot(doctor):
    values = window(
        doctor,
        end_time="10:30",
        duration_minutes=15,
        breaks=[{"start": "09:40", "end": "09:50"}],
    )
    result = service.bulk_create(doctor, values)
    # 09:30-09:45 and 09:45-10:00 both touch the break.
    assert hhmm(result["slots"]) == ["09:00", "09:15", "10:00", "10:15"]


def test_a_break_that_only_touches_a_slot_keeps_it(doctor):
    values = window(doctor, end_time="11:00", breaks=[{"start": "10:00", "end": "10:30"}])
    assert hhmm(service.bulk_create(doctor, values)["slots"]) == ["09:00", "09:30", "10:30"]


@pytest.mark.parametrize("minutes", [0, 5, 10, 20, 45, 60, -15, None])
def test_only_fifteen_or_thirty_minute_slots(doctor, minutes):
    assert "duration_minutes" in bad_bulk(doctor, window(doctor, duration_minutes=minutes))


def test_duration_missing(doctor):
    assert "duration_minutes" in bad_bulk(doctor, window(doctor, duration_minutes=...))


@pytest.mark.parametrize(("start", "end"), [("12:00", "09:00"), ("09:00", "09:00")])
def test_the_day_must_end_after_it_starts(doctor, start, end):
    assert "end_time" in bad_bulk(doctor, window(doctor, start_time=start, end_time=end))


def test_end_date_before_start_date(doctor):
    fields = bad_bulk(doctor, window(doctor, end_date=TOMORROW - timedelta(days=1)))
    assert "end_date" in fields


def test_ninety_two_days_are_allowed(doctor):
    values = window(doctor, end_date=TOMORROW + timedelta(days=91), end_time="09:30")
    result = service.bulk_create(doctor, values)
    assert result["created"] == 92
    assert len({d for d, _ in local_times(result["slots"])}) == 92


def test_more_than_ninety_two_days_is_refused_naming_end_date(doctor):
    values = window(doctor, end_date=TOMORROW + timedelta(days=92), end_time="09:30")
    fields = bad_bulk(doctor, values)
    assert "end_date" in fields
    assert "92" in fields["end_date"]


def test_three_thousand_slots_are_allowed(doctor):
    # 09:00-21:30 in 15 minutes is 50 slots a day; 60 days make 3,000.
    values = window(
        doctor,
        end_date=TOMORROW + timedelta(days=59),
        start_time="09:00",
        end_time="21:30",
        duration_minutes=15,
    )
    result = service.bulk_create(doctor, values)
    assert result["created"] == 3000
    assert slot_count() == 3000


def test_more_than_three_thousand_slots_is_refused(doctor):
    values = window(
        doctor,
        end_date=TOMORROW + timedelta(days=60),
        start_time="09:00",
        end_time="21:30",
        duration_minutes=15,
    )
    fields = bad_bulk(doctor, values, code="too_many_slots")
    assert "end_date" in fields


def test_slots_already_in_the_past_are_skipped(doctor):
    values = window(
        doctor, start_date=TODAY, end_date=TOMORROW, start_time="09:00", end_time="17:00"
    )
    with clock.fixed(at(TOMORROW, 12, 0)):
        result = service.bulk_create(doctor, values)
    # Monday is wholly past (16 periods); Tuesday up to and including 12:00 (7 periods).
    assert result["skipped"] == 16 + 7
    assert result["created"] == 9
    assert local_times(result["slots"])[0] == (TOMORROW, "12:30")
    assert local_times(result["slots"])[-1] == (TOMORROW, "16:30")
    assert len(slots_of(doctor)) == 9


def test_a_slot_starting_this_very_minute_is_in_the_past(doctor):
    # The clock says Monday 10:00.
    result = service.bulk_create(
        doctor, window(doctor, start_date=TODAY, end_date=TODAY, start_time="09:30")
    )
    assert result["skipped"] == 2
    assert hhmm(result["slots"]) == ["10:30", "11:00", "11:30"]


def test_a_window_wholly_in_the_past_creates_nothing(doctor):
    yesterday = TODAY - timedelta(days=1)
    result = service.bulk_create(doctor, window(doctor, start_date=yesterday, end_date=yesterday))
    assert result == {"created": 0, "skipped": 6, "slots": []}
    assert events("SLOTS_CREATED") == []


def test_the_same_bulk_twice_creates_nothing_the_second_time(doctor):
    first = service.bulk_create(doctor, window(doctor))
    second = service.bulk_create(doctor, window(doctor))
    assert first["created"] == 6
    assert second == {"created": 0, "skipped": 6, "slots": []}
    assert len(slots_of(doctor)) == 6
    assert len(events("SLOTS_CREATED")) == 1


def test_an_overlapping_bulk_fills_only_the_gaps(doctor):
    service.bulk_create(doctor, window(doctor, start_time="10:00", end_time="11:00"))
    result = service.bulk_create(doctor, window(doctor))
    assert hhmm(result["slots"]) == ["09:00", "09:30", "11:00", "11:30"]
    assert result["skipped"] == 2
    assert hhmm(slots_of(doctor)) == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]


def test_thirty_minute_slots_over_existing_fifteen_minute_ones(doctor):
    # 09:15 and 09:30 (15 min) exist; 30-minute periods from 09:00 overlap both.
    service.bulk_create(
        doctor, window(doctor, start_time="09:15", end_time="09:45", duration_minutes=15)
    )
    result = service.bulk_create(doctor, window(doctor, end_time="11:00"))
    assert hhmm(result["slots"]) == ["10:00", "10:30"]
    assert result["skipped"] == 2
    assert overlapping_pairs() == 0
    stored = slots_of(doctor)
    assert hhmm(stored) == ["09:15", "09:30", "10:00", "10:30"]
    assert [s.duration_minutes for s in stored] == [15, 15, 30, 30]


def test_fifteen_minute_slots_over_an_existing_thirty_minute_one(doctor):
    service.bulk_create(doctor, window(doctor, start_time="10:00", end_time="10:30"))
    result = service.bulk_create(
        doctor, window(doctor, start_time="09:30", end_time="11:00", duration_minutes=15)
    )
    assert hhmm(result["slots"]) == ["09:30", "09:45", "10:30", "10:45"]
    assert result["skipped"] == 2
    assert overlapping_pairs() == 0


def test_past_and_overlapping_are_both_counted_as_skipped(doctor):
    service.bulk_create(doctor, window(doctor, start_date=TODAY, end_date=TODAY))
    result = service.bulk_create(
        doctor, window(doctor, start_date=TODAY, end_date=TODAY, end_time="13:00")
    )
    # 09:00-10:00 are past (3 with 10:00), 10:30-11:30 exist (3), 12:00 and 12:30 are new.
    assert hhmm(result["slots"]) == ["12:00", "12:30"]
    assert result["skipped"] == 6


def test_another_doctors_slots_do_not_get_in_the_way(doctor):
    other = make_user(Role.DOCTOR)
    service.bulk_create(other, window(other))
    result = service.bulk_create(doctor, window(doctor))
    assert result["created"] == 6
    assert hhmm(slots_of(doctor)) == hhmm(slots_of(other))


def test_a_doctor_creates_their_own_slots_without_naming_themselves(doctor):
    result = service.bulk_create(doctor, window(doctor, doctor_id=...))
    assert result["created"] == 6
    assert all(s.doctor_id == doctor.id for s in result["slots"])


def test_a_doctor_may_not_create_another_doctors_slots(doctor):
    other = make_user(Role.DOCTOR)
    with pytest.raises(Forbidden) as caught:
        service.bulk_create(doctor, window(other))
    assert caught.value.code == "not_your_schedule"
    assert slot_count() == 0


def test_an_admin_creates_slots_for_the_doctor_named(admin, doctor):
    result = service.bulk_create(admin, window(doctor))
    assert result["created"] == 6
    assert all(s.doctor_id == doctor.id and s.created_by_id == admin.id for s in result["slots"])


def test_an_admin_must_name_the_doctor(admin):
    assert "doctor_id" in bad_bulk(admin, {**window(admin), "doctor_id": None})


@pytest.mark.parametrize("bad", [0, -1, 2**31, 99_999])
def test_an_admin_naming_no_valid_doctor(admin, bad):
    assert "doctor_id" in bad_bulk(admin, {**window(admin), "doctor_id": bad})


def test_an_admin_cannot_give_slots_to_someone_who_is_not_a_doctor(admin, reception):
    assert "doctor_id" in bad_bulk(admin, window(reception))


@pytest.mark.parametrize("role", ["reception", "pharmacist"])
def test_other_roles_may_not_create_slots(request, doctor, role):
    user = request.getfixturevalue(role)
    with pytest.raises(Forbidden):
        service.bulk_create(user, window(doctor))
    assert slot_count() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_time", None),
        ("end_time", None),
        ("start_date", None),
        ("start_date", date(1899, 12, 31)),
        ("end_date", date(2200, 1, 1)),
        ("weekdays", {0}),
        ("weekdays", {8}),
        ("weekdays", {1, 9}),
        ("breaks", [{"start": "14:00", "end": "13:00"}]),
        ("breaks", [{"start": "13:00", "end": "13:00"}]),
        ("breaks", [{"start": "13:00", "end": "13:15"}] * 11),
    ],
)
def test_bad_fields_are_named(doctor, field, value):
    """The rules on typed values; text that does not read as a time, date, weekday or
    break is refused by the schema and the form (see test_api and test_views)."""
    fields = bad_bulk(doctor, window(doctor, **{field: value}))
    assert field in fields
    assert fields[field]


def test_several_bad_fields_are_all_named(doctor):
    fields = bad_bulk(
        doctor, window(doctor, start_time=None, end_time=None, duration_minutes=20, weekdays={9})
    )
    assert {"start_time", "end_time", "duration_minutes", "weekdays"} <= set(fields)


def test_bulk_creation_is_audited(doctor, admin):
    result = service.bulk_create(admin, window(doctor))
    (event,) = events("SLOTS_CREATED")
    assert event["user"]["id"] == admin.id
    assert event["resource"] == {"type": "doctor", "id": doctor.id}
    new = event["changes"]["new"]
    assert new["created"] == 6
    assert new["skipped"] == 0
    assert new["duration_minutes"] == 30
    assert new["slot_ids"] == [s.id for s in result["slots"]]
    assert datetime.fromisoformat(new["first"]) == at(TOMORROW, 9, 0)
    assert datetime.fromisoformat(new["last"]) == at(TOMORROW, 11, 30)


# ---- the database itself -------------------------------------------------------------------


def insert_slot(doctor, start: datetime, minutes: int = 30, status: str = "OPEN") -> Slot:
    slot = Slot(
        doctor_id=doctor.id,
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
        duration_minutes=minutes,
        status=status,
        block_reason="held" if status == "BLOCKED" else None,
    )
    with db.session.begin_nested():
        db.session.add(slot)
    return slot


def refused(constraint: str, make) -> None:
    with pytest.raises(IntegrityError) as caught:
        make()
    assert constraint_name(caught.value) == constraint


def test_the_database_refuses_overlapping_slots_of_one_doctor(doctor):
    insert_slot(doctor, at(TOMORROW, 9, 0))
    refused("ex_slots_no_overlap", lambda: insert_slot(doctor, at(TOMORROW, 9, 15), 15))
    refused("ex_slots_no_overlap", lambda: insert_slot(doctor, at(TOMORROW, 8, 45)))
    refused("ex_slots_no_overlap", lambda: insert_slot(doctor, at(TOMORROW, 9, 0)))
    assert len(slots_of(doctor)) == 1


def test_the_database_refuses_a_slot_overlapping_a_blocked_one(doctor):
    insert_slot(doctor, at(TOMORROW, 9, 0), status="BLOCKED")
    refused("ex_slots_no_overlap", lambda: insert_slot(doctor, at(TOMORROW, 9, 15)))


def test_back_to_back_slots_do_not_overlap(doctor):
    insert_slot(doctor, at(TOMORROW, 9, 0))
    insert_slot(doctor, at(TOMORROW, 9, 30), 15)
    insert_slot(doctor, at(TOMORROW, 8, 30))
    assert hhmm(slots_of(doctor)) == ["08:30", "09:00", "09:30"]


def test_another_doctor_may_have_a_slot_at_the_same_time(doctor):
    other = make_user(Role.DOCTOR)
    insert_slot(doctor, at(TOMORROW, 9, 0))
    insert_slot(other, at(TOMORROW, 9, 0))
    assert slot_count() == 2


def test_the_database_checks_durations_and_block_reasons(doctor):
    def bad_duration():
        slot = Slot(
            doctor_id=doctor.id,
            start_at=at(TOMORROW, 9),
            end_at=at(TOMORROW, 9, 20),
            duration_minutes=20,
        )
        with db.session.begin_nested():
            db.session.add(slot)

    def blocked_without_reason():
        slot = Slot(
            doctor_id=doctor.id,
            start_at=at(TOMORROW, 9),
            end_at=at(TOMORROW, 9, 30),
            duration_minutes=30,
            status="BLOCKED",
        )
        with db.session.begin_nested():
            db.session.add(slot)

    refused("ck_slots_duration", bad_duration)
    refused("ck_slots_block_reason", blocked_without_reason)


# ---- reading slots -------------------------------------------------------------------------


def test_list_slots_filters(doctor):
    other = make_user(Role.DOCTOR)
    mine = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    later_mine = make_slots(doctor, TOMORROW + timedelta(days=1), "09:00", "10:00", 30)
    theirs = make_slots(other, TOMORROW, "09:00", "10:00", 30)
    service.set_blocked(doctor, mine[0].id, True, "Meeting")

    def ids(**kwargs):
        return [s.id for s in service.list_slots(**kwargs).items]

    assert ids(doctor_id=doctor.id) == [s.id for s in mine + later_mine]
    assert ids(day=TOMORROW) == [mine[0].id, theirs[0].id, mine[1].id, theirs[1].id]
    assert ids(doctor_id=other.id, day=TOMORROW) == [s.id for s in theirs]
    assert ids(start=TOMORROW + timedelta(days=1)) == [s.id for s in later_mine]
    assert ids(end=TOMORROW) == [mine[0].id, theirs[0].id, mine[1].id, theirs[1].id]
    assert ids(start=TODAY, end=TODAY) == []
    assert ids(status="BLOCKED") == [mine[0].id]
    assert ids(status="open", doctor_id=doctor.id) == [mine[1].id] + [s.id for s in later_mine]
    page = service.list_slots(page=2, per_page=4)
    assert (page.total, page.page, page.per_page, len(page.items)) == (6, 2, 4, 2)


def test_list_slots_unknown_status():
    with pytest.raises(InvalidInput) as caught:
        service.list_slots(status="FREE")
    assert "status" in caught.value.fields


# ---- blocking ------------------------------------------------------------------------------


def test_block_one_slot(doctor):
    slot = one_slot(doctor)
    blocked = service.set_blocked(doctor, slot.id, True, "  Ward   round ")
    assert blocked.status == "BLOCKED"
    assert refreshed(slot).block_reason == "Ward round"
    (event,) = events("SLOT_BLOCKED")
    assert event["resource"] == {"type": "slot", "id": slot.id}
    assert event["changes"] == {
        "old": {"status": "OPEN", "block_reason": None},
        "new": {"status": "BLOCKED", "block_reason": "Ward round"},
    }


@pytest.mark.parametrize("reason", [None, "", "   ", "x" * 201])
def test_blocking_needs_a_reason(doctor, reason):
    slot = one_slot(doctor)
    with pytest.raises(InvalidInput) as caught:
        service.set_blocked(doctor, slot.id, True, reason)
    assert "reason" in caught.value.fields
    assert refreshed(slot).status == "OPEN"


def test_a_booked_slot_cannot_be_blocked(doctor, reception):
    slot = one_slot(doctor)
    make_appointment(make_patient(reception), slot, reception)
    with pytest.raises(Conflict) as caught:
        service.set_blocked(doctor, slot.id, True, "Leave")
    assert caught.value.code == "slot_booked"
    assert refreshed(slot).status == "BOOKED"
    assert refreshed(slot).block_reason is None


def test_a_blocked_slot_cannot_be_blocked_again(doctor):
    slot = one_slot(doctor)
    service.set_blocked(doctor, slot.id, True, "Leave")
    with pytest.raises(Conflict) as caught:
        service.set_blocked(doctor, slot.id, True, "Other reason")
    assert caught.value.code == "already_blocked"
    assert refreshed(slot).block_reason == "Leave"


def test_unblocking_returns_the_slot_to_open(doctor, reception):
    slot = one_slot(doctor)
    service.set_blocked(doctor, slot.id, True, "Leave")
    opened = service.set_blocked(doctor, slot.id, False)
    assert opened.status == "OPEN"
    assert opened.block_reason is None
    (event,) = events("SLOT_UNBLOCKED")
    assert event["changes"]["new"] == {"status": "OPEN", "block_reason": None}
    # and it can be booked again
    appointment = book(reception, make_patient(reception), slot)
    assert appointment.slot_id == slot.id


def test_unblocking_an_open_slot_is_a_conflict(doctor):
    slot = one_slot(doctor)
    with pytest.raises(Conflict) as caught:
        service.set_blocked(doctor, slot.id, False)
    assert caught.value.code == "not_blocked"


def test_unblocking_never_reopens_a_booked_slot(doctor, reception):
    slot = one_slot(doctor)
    make_appointment(make_patient(reception), slot, reception)
    with pytest.raises(Conflict) as caught:
        service.set_blocked(doctor, slot.id, False)
    assert caught.value.code == "not_blocked"
    assert refreshed(slot).status == "BOOKED"


def test_a_doctor_may_not_block_another_doctors_slot(doctor):
    other = make_user(Role.DOCTOR)
    slot = one_slot(other)
    with pytest.raises(Forbidden):
        service.set_blocked(doctor, slot.id, True, "Not mine")
    assert refreshed(slot).status == "OPEN"


def test_an_admin_may_block_any_doctors_slot(admin, doctor):
    slot = one_slot(doctor)
    assert service.set_blocked(admin, slot.id, True, "Clinic closed").status == "BLOCKED"


@pytest.mark.parametrize("role", ["reception", "pharmacist"])
def test_other_roles_may_not_block(request, doctor, role):
    slot = one_slot(doctor)
    with pytest.raises(Forbidden):
        service.set_blocked(request.getfixturevalue(role), slot.id, True, "No")


def test_blocking_an_unknown_slot(doctor):
    with pytest.raises(NotFound) as caught:
        service.set_blocked(doctor, 999_999, True, "Leave")
    assert caught.value.code == "slot_not_found"


def test_block_a_range_leaves_booked_slots_alone(doctor, reception):
    slots = make_slots(doctor, TOMORROW, "09:00", "12:00", 30)
    appointment = make_appointment(make_patient(reception), slots[2], reception)  # 10:00
    service.set_blocked(doctor, slots[3].id, True, "Earlier block")  # 10:30
    result = service.block_range(
        doctor,
        ranged({"start": "2030-01-08T09:30", "end": "2030-01-08T11:00", "reason": "Surgery"}),
    )
    assert [s.id for s in result["blocked"]] == [slots[1].id]
    assert [s.id for s in result["left_booked"]] == [slots[2].id]
    states = [(s.status, s.block_reason) for s in slots_of(doctor)]
    assert states == [
        ("OPEN", None),  # 09:00 before the range
        ("BLOCKED", "Surgery"),  # 09:30
        ("BOOKED", None),  # 10:00
        ("BLOCKED", "Earlier block"),  # 10:30 kept its own reason
        ("OPEN", None),  # 11:00: the end is not included
        ("OPEN", None),
    ]
    assert refreshed(appointment).status == "SCHEDULED"
    (event,) = events("SLOTS_BLOCKED")
    assert event["resource"] == {"type": "doctor", "id": doctor.id}
    assert event["changes"]["new"]["slot_ids"] == [slots[1].id]
    assert event["changes"]["new"]["reason"] == "Surgery"


def test_block_a_range_with_an_offset_and_for_an_admin(admin, doctor):
    other = make_user(Role.DOCTOR)
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    theirs = make_slots(other, TOMORROW, "09:00", "10:00", 30)
    # 03:30 UTC is 09:00 in Kolkata.
    result = service.block_range(
        admin,
        ranged(
            {
                "doctor_id": doctor.id,
                "start": "2030-01-08T03:30:00+00:00",
                "end": "2030-01-08T04:00:00Z",
                "reason": "Leave",
            }
        ),
    )
    assert [s.id for s in result["blocked"]] == [slots[0].id]
    assert [s.status for s in slots_of(other)] == ["OPEN", "OPEN"]
    assert len(theirs) == 2


def test_block_a_range_with_nothing_in_it(doctor):
    result = service.block_range(
        doctor, ranged({"start": "2030-01-09T09:00", "end": "2030-01-09T12:00", "reason": "Leave"})
    )
    assert result == {"blocked": [], "left_booked": []}
    assert events("SLOTS_BLOCKED") == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": None}, "reason"),
        ({"start": None}, "start"),
        ({"start": "1899-12-31T09:00"}, "start"),
        ({"end": None}, "end"),
        ({"end": "2030-01-08T09:00"}, "end"),
        ({"end": "2030-01-08T08:00"}, "end"),
        ({"end": "2030-05-01T09:00"}, "end"),
    ],
)
def test_block_a_range_bad_fields(doctor, changes, field):
    data = {"start": "2030-01-08T09:00", "end": "2030-01-08T12:00", "reason": "Leave", **changes}
    with pytest.raises(InvalidInput) as caught:
        service.block_range(doctor, ranged(data))
    assert field in caught.value.fields


def test_block_a_range_of_another_doctor(doctor, admin):
    other = make_user(Role.DOCTOR)
    make_slots(other, TOMORROW, "09:00", "10:00", 30)
    data = {"start": "2030-01-08T09:00", "end": "2030-01-08T12:00", "reason": "Leave"}
    with pytest.raises(Forbidden):
        service.block_range(doctor, ranged({**data, "doctor_id": other.id}))
    with pytest.raises(InvalidInput) as caught:
        service.block_range(admin, ranged(data))
    assert "doctor_id" in caught.value.fields
    assert [s.status for s in slots_of(other)] == ["OPEN", "OPEN"]


# ---- booking -------------------------------------------------------------------------------


def test_book_an_open_slot(reception, doctor):
    slot = one_slot(doctor)
    patient = make_patient(reception)
    appointment = book(reception, patient, slot, reason="  Fever   and cough ")
    assert appointment.status == "SCHEDULED"
    assert appointment.patient_id == patient.id
    assert appointment.slot_id == slot.id
    assert appointment.doctor_id == doctor.id
    assert appointment.start_at == slot.start_at
    assert appointment.end_at == slot.end_at
    assert appointment.reason == "Fever and cough"
    assert appointment.created_by_id == reception.id
    assert refreshed(slot).status == "BOOKED"
    (event,) = events("APPOINTMENT_BOOKED")
    assert event["resource"] == {"type": "appointment", "id": appointment.id}
    assert event["changes"]["new"]["slot_id"] == slot.id
    assert event["changes"]["new"]["status"] == "SCHEDULED"


def test_booking_a_booked_slot_is_slot_taken(reception, doctor):
    slot = one_slot(doctor)
    first = make_appointment(make_patient(reception), slot, reception)
    with pytest.raises(Conflict) as caught:
        book(reception, make_patient(reception), slot)
    assert caught.value.code == "slot_taken"
    assert caught.value.details == {"slot_id": slot.id}
    assert db.session.scalars(select(Appointment.id)).all() == [first.id]


def test_booking_a_blocked_slot(reception, doctor):
    slot = one_slot(doctor)
    service.set_blocked(doctor, slot.id, True, "Leave")
    with pytest.raises(Conflict) as caught:
        book(reception, make_patient(reception), slot)
    assert caught.value.code == "slot_blocked"
    assert refreshed(slot).status == "BLOCKED"


def test_booking_a_slot_in_the_past(reception, doctor):
    slot = one_slot(doctor, TODAY, "10:30")
    with clock.fixed(later(31)), pytest.raises(InvalidInput) as caught:
        book(reception, make_patient(reception), slot)
    assert caught.value.code == "slot_in_past"
    assert "slot_id" in caught.value.fields
    assert refreshed(slot).status == "OPEN"


def test_a_slot_that_has_just_started_cannot_be_booked(reception, doctor):
    slot = one_slot(doctor, TODAY, "10:30")
    with clock.fixed(later(30)), pytest.raises(InvalidInput) as caught:
        book(reception, make_patient(reception), slot)
    assert caught.value.code == "slot_in_past"
    with clock.fixed(later(29)):
        assert book(reception, make_patient(reception), slot).slot_id == slot.id


def test_a_patient_cannot_be_in_two_places_at_once(reception, doctor):
    other = make_user(Role.DOCTOR)
    patient = make_patient(reception)
    first = book(reception, patient, one_slot(doctor, start="09:00", minutes=30))
    clashing = one_slot(other, start="09:15", minutes=15)
    with pytest.raises(Conflict) as caught:
        book(reception, patient, clashing)
    assert caught.value.code == "patient_double_booked"
    assert caught.value.details == {"appointment_id": first.id}
    assert refreshed(clashing).status == "OPEN"


def test_back_to_back_appointments_are_fine(reception, doctor):
    other = make_user(Role.DOCTOR)
    patient = make_patient(reception)
    book(reception, patient, one_slot(doctor, start="09:00", minutes=30))
    second = book(reception, patient, one_slot(other, start="09:30", minutes=15))
    assert second.status == "SCHEDULED"


def test_a_cancelled_appointment_does_not_hold_the_patients_time(reception, doctor):
    other = make_user(Role.DOCTOR)
    patient = make_patient(reception)
    first = book(reception, patient, one_slot(doctor))
    service.cancel(reception, first.id)
    assert book(reception, patient, one_slot(other)).status == "SCHEDULED"


def test_two_patients_at_one_time_with_two_doctors(reception, doctor):
    other = make_user(Role.DOCTOR)
    book(reception, make_patient(reception), one_slot(doctor))
    assert book(reception, make_patient(reception), one_slot(other)).status == "SCHEDULED"


@pytest.mark.parametrize("patient_id", [None, 0, -1, 2**63, 987_654_321])
def test_booking_an_unknown_patient(reception, doctor, patient_id):
    slot = one_slot(doctor)
    with pytest.raises(InvalidInput) as caught:
        service.book(reception, {"patient_id": patient_id, "slot_id": slot.id})
    assert "patient_id" in caught.value.fields
    assert refreshed(slot).status == "OPEN"


@pytest.mark.parametrize("slot_id", [None, 0, 2**31, 987_654_321])
def test_booking_an_unknown_slot(reception, slot_id):
    patient = make_patient(reception)
    with pytest.raises(InvalidInput) as caught:
        service.book(reception, {"patient_id": patient.id, "slot_id": slot_id})
    assert "slot_id" in caught.value.fields


def test_an_archived_patient_cannot_be_booked(admin, reception, doctor):
    patient = make_patient(reception)
    patients.archive(admin, patient.id)
    slot = one_slot(doctor)
    with pytest.raises(InvalidInput) as caught:
        book(reception, patient, slot)
    assert "patient_id" in caught.value.fields
    assert refreshed(slot).status == "OPEN"


def test_a_reason_longer_than_500_characters(reception, doctor):
    with pytest.raises(InvalidInput) as caught:
        book(reception, make_patient(reception), one_slot(doctor), reason="x" * 501)
    assert "reason" in caught.value.fields


def insert_appointment(patient, slot, status="SCHEDULED") -> Appointment:
    appointment = Appointment(
        patient_id=patient.id,
        slot_id=slot.id,
        doctor_id=slot.doctor_id,
        start_at=slot.start_at,
        end_at=slot.end_at,
        status=status,
    )
    with db.session.begin_nested():
        db.session.add(appointment)
    return appointment


def test_the_database_allows_one_active_appointment_per_slot(reception, doctor):
    slot = one_slot(doctor)
    make_appointment(make_patient(reception), slot, reception)
    for status in ("SCHEDULED", "CHECKED_IN", "COMPLETED"):
        refused(
            "uq_appointments_active_slot",
            lambda s=status: insert_appointment(make_patient(reception), slot, s),
        )
    # Rows that no longer hold the slot may sit beside the active one.
    insert_appointment(make_patient(reception), slot, "CANCELLED")
    insert_appointment(make_patient(reception), slot, "NO_SHOW")
    active = select(func.count()).where(
        Appointment.slot_id == slot.id, Appointment.status == "SCHEDULED"
    )
    assert db.session.scalar(active) == 1


def test_the_database_refuses_a_patient_two_overlapping_appointments(reception, doctor):
    other = make_user(Role.DOCTOR)
    patient = make_patient(reception)
    make_appointment(patient, one_slot(doctor, start="09:00", minutes=30), reception)
    clashing = one_slot(other, start="09:15", minutes=15)
    refused("ex_appointments_patient_overlap", lambda: insert_appointment(patient, clashing))
    insert_appointment(patient, clashing, "CANCELLED")


def test_a_cancelled_appointment_does_not_block_a_new_booking(reception, doctor):
    slot = one_slot(doctor)
    first = make_appointment(make_patient(reception), slot, reception)
    service.cancel(reception, first.id)
    second = book(reception, make_patient(reception), slot)
    assert second.slot_id == slot.id
    assert refreshed(slot).status == "BOOKED"
    statuses = db.session.scalars(
        select(Appointment.status).where(Appointment.slot_id == slot.id).order_by(Appointment.id)
    ).all()
    assert statuses == ["CANCELLED", "SCHEDULED"]


# ---- reading appointments ------------------------------------------------------------------


@pytest.fixture
def diary(reception, doctor):
    """Two doctors, three patients, appointments over two days."""
    other = make_user(Role.DOCTOR)
    asha, bala, chitra = (make_patient(reception) for _ in range(3))
    mine = make_slots(doctor, TOMORROW, "09:00", "10:30", 30)
    theirs = make_slots(other, TOMORROW, "09:00", "10:00", 30)
    day_after = make_slots(doctor, TOMORROW + timedelta(days=1), "09:00", "09:30", 30)
    a1 = make_appointment(asha, mine[0], reception)
    b1 = make_appointment(bala, mine[1], reception)
    c1 = make_appointment(chitra, theirs[0], reception)
    a2 = make_appointment(asha, day_after[0], reception)
    cancelled = make_appointment(chitra, theirs[1], reception)
    service.cancel(reception, cancelled.id)
    return {
        "other": other,
        "patients": (asha, bala, chitra),
        "a1": a1,
        "b1": b1,
        "c1": c1,
        "a2": a2,
        "cancelled": cancelled,
    }


def listed(actor, **kwargs) -> list[int]:
    return [a.id for a in service.list_appointments(actor, **kwargs).items]


def test_list_appointments_filters(reception, doctor, diary):
    d = diary
    asha = d["patients"][0]
    everything = [d["a1"].id, d["c1"].id, d["b1"].id, d["cancelled"].id, d["a2"].id]
    assert listed(reception) == everything
    assert listed(reception, day=TOMORROW) == everything[:4]
    assert listed(reception, day=TODAY) == []
    assert listed(reception, doctor_id=d["other"].id) == [d["c1"].id, d["cancelled"].id]
    assert listed(reception, patient_id=asha.id) == [d["a1"].id, d["a2"].id]
    assert listed(reception, status="CANCELLED") == [d["cancelled"].id]
    assert listed(reception, status="scheduled", doctor_id=doctor.id, day=TOMORROW) == [
        d["a1"].id,
        d["b1"].id,
    ]
    page = service.list_appointments(reception, page=2, per_page=2)
    assert (page.total, page.page, page.per_page) == (5, 2, 2)
    assert [a.id for a in page.items] == everything[2:4]


def test_list_appointments_unknown_status(reception):
    with pytest.raises(InvalidInput) as caught:
        service.list_appointments(reception, status="BOOKED")
    assert "status" in caught.value.fields


def test_a_doctor_lists_only_their_own_appointments(doctor, diary):
    d = diary
    assert listed(doctor) == [d["a1"].id, d["b1"].id, d["a2"].id]
    assert listed(doctor, doctor_id=doctor.id) == [d["a1"].id, d["b1"].id, d["a2"].id]
    assert listed(d["other"]) == [d["c1"].id, d["cancelled"].id]
    with pytest.raises(Forbidden):
        service.list_appointments(doctor, doctor_id=d["other"].id)


def test_get_one_appointment(reception, doctor, diary):
    d = diary
    assert service.get_appointment(d["a1"].id, reception).id == d["a1"].id
    assert service.get_appointment(d["a1"].id, doctor).id == d["a1"].id
    with pytest.raises(Forbidden):
        service.get_appointment(d["c1"].id, doctor)
    with pytest.raises(NotFound) as caught:
        service.get_appointment(987_654, reception)
    assert caught.value.code == "appointment_not_found"


# ---- rescheduling --------------------------------------------------------------------------


def test_reschedule_moves_the_appointment_to_the_new_slot(reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    moved = service.reschedule(reception, appointment.id, {"slot_id": slots[1].id})
    assert moved.slot_id == slots[1].id
    assert moved.start_at == slots[1].start_at
    assert moved.end_at == slots[1].end_at
    assert moved.status == "SCHEDULED"
    assert [s.status for s in slots_of(doctor)] == ["OPEN", "BOOKED"]
    (event,) = events("APPOINTMENT_RESCHEDULED")
    assert event["resource"] == {"type": "appointment", "id": appointment.id}
    assert event["changes"]["old"]["slot_id"] == slots[0].id
    assert event["changes"]["new"]["slot_id"] == slots[1].id
    # The freed slot can be booked by someone else.
    assert book(reception, make_patient(reception), slots[0]).slot_id == slots[0].id


def test_reschedule_to_another_doctor(reception, doctor):
    other = make_user(Role.DOCTOR)
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    target = one_slot(other, TOMORROW + timedelta(days=1), "11:00", 15)
    moved = service.reschedule(reception, appointment.id, {"slot_id": target.id})
    assert moved.doctor_id == other.id
    assert moved.end_at - moved.start_at == timedelta(minutes=15)
    assert refreshed(target).status == "BOOKED"
    assert [s.status for s in slots_of(doctor)] == ["OPEN"]


def test_reschedule_to_an_overlapping_slot_of_another_doctor(reception, doctor):
    # The appointment does not clash with itself.
    other = make_user(Role.DOCTOR)
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    target = one_slot(other, start="09:15", minutes=15)
    moved = service.reschedule(reception, appointment.id, {"slot_id": target.id})
    assert moved.slot_id == target.id


def test_reschedule_to_a_taken_slot_changes_nothing(reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    make_appointment(make_patient(reception), slots[1], reception)
    with pytest.raises(Conflict) as caught:
        service.reschedule(reception, appointment.id, {"slot_id": slots[1].id, "reason": "New"})
    assert caught.value.code == "slot_taken"
    assert refreshed(appointment).slot_id == slots[0].id
    assert appointment.reason is None
    assert [s.status for s in slots_of(doctor)] == ["BOOKED", "BOOKED"]
    assert events("APPOINTMENT_RESCHEDULED") == []


def test_reschedule_to_a_blocked_slot(reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    service.set_blocked(doctor, slots[1].id, True, "Leave")
    with pytest.raises(Conflict) as caught:
        service.reschedule(reception, appointment.id, {"slot_id": slots[1].id})
    assert caught.value.code == "slot_blocked"
    assert [s.status for s in slots_of(doctor)] == ["BOOKED", "BLOCKED"]


def test_reschedule_to_a_slot_in_the_past(reception, doctor):
    past = one_slot(doctor, TODAY, "10:30")
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    with clock.fixed(later(45)), pytest.raises(InvalidInput) as caught:
        service.reschedule(reception, appointment.id, {"slot_id": past.id})
    assert caught.value.code == "slot_in_past"
    assert refreshed(appointment).slot_id != past.id


def test_reschedule_into_the_patients_other_appointment_time(reception, doctor):
    other = make_user(Role.DOCTOR)
    patient = make_patient(reception)
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(patient, slots[0], reception)
    elsewhere = make_appointment(patient, one_slot(other, start="11:00"), reception)
    target = one_slot(doctor, start="11:00")
    with pytest.raises(Conflict) as caught:
        service.reschedule(reception, appointment.id, {"slot_id": target.id})
    assert caught.value.code == "patient_double_booked"
    assert caught.value.details == {"appointment_id": elsewhere.id}
    assert refreshed(target).status == "OPEN"
    assert refreshed(slots[0]).status == "BOOKED"


def test_reschedule_to_an_unknown_slot(reception, doctor):
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    with pytest.raises(InvalidInput) as caught:
        service.reschedule(reception, appointment.id, {"slot_id": 987_654})
    assert "slot_id" in caught.value.fields
    assert db.session.get(Slot, appointment.slot_id).status == "BOOKED"


def test_reschedule_an_unknown_appointment(reception):
    with pytest.raises(NotFound):
        service.reschedule(reception, 987_654, {"reason": "x"})


def test_changing_only_the_reason(reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception, reason="Fever")
    changed = service.reschedule(reception, appointment.id, {"reason": "Follow-up"})
    assert changed.reason == "Follow-up"
    assert changed.slot_id == slot.id
    assert refreshed(slot).status == "BOOKED"
    (event,) = events("APPOINTMENT_UPDATED")
    assert event["changes"] == {"old": {"reason": "Fever"}, "new": {"reason": "Follow-up"}}
    assert events("APPOINTMENT_RESCHEDULED") == []


def test_rescheduling_to_the_same_slot_changes_nothing(reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception)
    same = service.reschedule(reception, appointment.id, {"slot_id": slot.id})
    assert same.slot_id == slot.id
    assert refreshed(slot).status == "BOOKED"
    assert events("APPOINTMENT_RESCHEDULED") == []


# ---- cancelling and check-in ---------------------------------------------------------------


def test_cancel_frees_the_slot(reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception)
    cancelled = service.cancel(reception, appointment.id)
    assert cancelled.status == "CANCELLED"
    assert cancelled.cancelled_at == NOW
    assert refreshed(slot).status == "OPEN"
    assert cancelled.cancel_reason is None
    (event,) = events("APPOINTMENT_CANCELLED")
    assert event["changes"] == {
        "old": {"status": "SCHEDULED"},
        "new": {"status": "CANCELLED", "slot_id": slot.id},
    }


def test_cancel_keeps_the_reason_and_audits_it(reception, doctor):
    slot = one_slot(doctor)
    appointment = make_appointment(make_patient(reception), slot, reception)
    with pytest.raises(InvalidInput) as caught:
        service.cancel(reception, appointment.id, "x" * 201)
    assert "reason" in caught.value.fields
    assert refreshed(appointment).status == "SCHEDULED"
    cancelled = service.cancel(reception, appointment.id, " Patient  travelling ")
    assert cancelled.cancel_reason == "Patient travelling"
    (event,) = events("APPOINTMENT_CANCELLED")
    assert event["changes"]["new"]["reason"] == "Patient travelling"


def test_cancel_twice(reception, doctor):
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    service.cancel(reception, appointment.id)
    with pytest.raises(Conflict) as caught:
        service.cancel(reception, appointment.id)
    assert caught.value.code == "appointment_not_scheduled"
    with pytest.raises(Conflict) as caught:
        service.reschedule(reception, appointment.id, {"reason": "x"})
    assert caught.value.code == "appointment_not_scheduled"


def test_cancel_an_unknown_appointment(reception):
    with pytest.raises(NotFound):
        service.cancel(reception, 987_654)


def test_after_check_in_no_cancel_and_no_reschedule(reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:00", 30)
    appointment = make_appointment(make_patient(reception), slots[0], reception)
    with clock.fixed(at(TOMORROW, 8, 50)):
        queue.check_in(reception, appointment.id)
        for attempt in (
            lambda: service.cancel(reception, appointment.id),
            lambda: service.reschedule(reception, appointment.id, {"slot_id": slots[1].id}),
            lambda: service.reschedule(reception, appointment.id, {"reason": "x"}),
        ):
            with pytest.raises(Conflict) as caught:
                attempt()
            assert caught.value.code == "already_checked_in"
    assert refreshed(appointment).status == "CHECKED_IN"
    assert [s.status for s in slots_of(doctor)] == ["BOOKED", "OPEN"]


def test_a_no_show_cannot_be_cancelled(reception, doctor):
    appointment = make_appointment(make_patient(reception), one_slot(doctor), reception)
    service.mark_day_no_shows(TOMORROW)
    with pytest.raises(Conflict) as caught:
        service.cancel(reception, appointment.id)
    assert caught.value.code == "appointment_not_scheduled"


# ---- the edges of the calendar -------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "start_time"),
    [(date.max, "09:00"), (date.min, "00:00"), (date.min, "09:00")],
)
def test_bulk_at_the_edges_of_the_calendar(doctor, day, start_time):
    """A date a person can type is refused or handled, never an unexpected exception."""
    values = window(doctor, start_date=day, end_date=day, start_time=start_time)
    try:
        result = service.bulk_create(doctor, values)
    except InvalidInput as exc:
        assert {"start_date", "end_date"} & set(exc.fields)
        return
    assert result["created"] + result["skipped"] == 6


@pytest.mark.parametrize(
    "kwargs",
    [{"day": date.max}, {"day": date.min}, {"start": date.min}, {"end": date.max}],
)
def test_listing_slots_at_the_edges_of_the_calendar(kwargs):
    try:
        page = service.list_slots(**kwargs)
    except InvalidInput:
        return
    assert page.items == []


@pytest.mark.parametrize("day", [date.max, date.min])
def test_listing_appointments_at_the_edges_of_the_calendar(reception, day):
    try:
        page = service.list_appointments(reception, day=day)
    except InvalidInput:
        return
    assert page.items == []


# ---- an appointment's status has one owner ---------------------------------------------------

APPOINTMENT_MOVES = {
    ("SCHEDULED", "CHECKED_IN"),
    ("SCHEDULED", "CANCELLED"),
    ("SCHEDULED", "NO_SHOW"),
    ("SCHEDULED", "COMPLETED"),
    ("CHECKED_IN", "IN_CONSULTATION"),
    ("CHECKED_IN", "NO_SHOW"),
    ("CHECKED_IN", "COMPLETED"),
    ("IN_CONSULTATION", "CHECKED_IN"),
    ("IN_CONSULTATION", "COMPLETED"),
    ("NO_SHOW", "COMPLETED"),
}
APPOINTMENT_STATES = ("SCHEDULED", "CHECKED_IN", "IN_CONSULTATION", "COMPLETED", "NO_SHOW")


def appointment_in(reception, doctor, status: str) -> Appointment:
    appointment = book(reception, make_patient(reception), one_slot(doctor))
    db.session.execute(
        Appointment.__table__.update().where(Appointment.id == appointment.id).values(status=status)
    )
    db.session.expire_all()
    return appointment


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b, a)
        for b in (*APPOINTMENT_STATES, "CANCELLED")
        for a in (*APPOINTMENT_STATES, "CANCELLED")
        if a != b and (b, a) not in APPOINTMENT_MOVES
    ],
)
def test_every_appointment_move_outside_the_table_is_refused(reception, doctor, before, after):
    appointment = appointment_in(reception, doctor, before)
    written = len(events(f"APPOINTMENT_{after}"))
    with pytest.raises(Conflict) as caught:
        service.move(reception, appointment.id, after)
    assert caught.value.code == "appointment_invalid_transition"
    assert caught.value.details == {"appointment_id": appointment.id, "from": before, "to": after}
    assert refreshed(appointment).status == before
    assert len(events(f"APPOINTMENT_{after}")) == written


@pytest.mark.parametrize(("before", "after"), sorted(APPOINTMENT_MOVES))
def test_every_appointment_move_in_the_table_is_made_and_audited(reception, doctor, before, after):
    appointment = appointment_in(reception, doctor, before)
    service.move(doctor, appointment.id, after)
    assert refreshed(appointment).status == after
    (record,) = [
        e
        for e in events(service.APPOINTMENT_ACTIONS[after]) + events("APPOINTMENT_RETURNED")
        if e["resource"] == {"type": "appointment", "id": appointment.id}
    ]
    assert record["changes"] == {"old": {"status": before}, "new": {"status": after}}
    assert record["user"]["id"] == doctor.id
