"""Queue rules (SPEC section 4) through the service functions, against real PostgreSQL and
real Redis. Changes reach Redis once the transaction commits, so every helper commits the
way a view does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from qure.core import clock
from qure.core.db import commit
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db, redis_store
from qure.patients import service as patients
from qure.queue import board, loading, reports, service, store
from qure.queue.models import QueueEntry
from qure.scheduling import service as scheduling
from qure.scheduling.models import Appointment
from tests.helpers import (
    NOW,
    TODAY,
    later,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
)

IST = ZoneInfo("Asia/Kolkata")
TOMORROW = TODAY + timedelta(days=1)
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
APPOINTMENT_AFTER = {
    "WITH_DOCTOR": "IN_CONSULTATION",
    "COMPLETED": "COMPLETED",
    "NO_SHOW": "NO_SHOW",
    "SKIPPED": "CHECKED_IN",
    "WAITING": "CHECKED_IN",
}


# ---- Redis, as the store keeps it -------------------------------------------------------


def rc():
    return redis_store.client


def text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def redis_waiting(doctor_id: int, day: date = TODAY) -> list[int]:
    return [int(m) for m in rc().zrange(f"q:{day}:wait:{doctor_id}", 0, -1)]


def redis_scores(doctor_id: int, day: date = TODAY) -> list[tuple[int, float]]:
    members = rc().zrange(f"q:{day}:wait:{doctor_id}", 0, -1, withscores=True)
    return [(int(m), s) for m, s in members]


def redis_current(doctor_id: int, day: date = TODAY) -> int | None:
    value = rc().get(f"q:{day}:cur:{doctor_id}")
    return int(value) if value is not None else None


def redis_token(token_number: int, day: date = TODAY) -> dict[str, str]:
    raw = rc().hgetall(f"q:{day}:tok:{token_number:06d}")
    return {text(k): text(v) for k, v in raw.items()}


def redis_counter(day: date = TODAY) -> int | None:
    value = rc().get(f"q:{day}:counter")
    return int(value) if value is not None else None


# ---- acting as the views do ---------------------------------------------------------------


def check_in(actor, appointment, **data) -> QueueEntry:
    entry = service.check_in(actor, appointment.id, data or None)
    commit()
    return entry


def walk_in(actor, patient, doctor=None, **data) -> QueueEntry:
    body = {"patient_id": patient.id, **data}
    if doctor is not None:
        body["doctor_id"] = doctor.id
    entry = service.walk_in(actor, body)
    commit()
    return entry


def call_next(actor, doctor_id: int | None = None) -> QueueEntry:
    entry = service.call_next(actor, doctor_id)
    commit()
    return entry


def move(actor, token_number: int, status: str) -> QueueEntry:
    entry = service.set_status(actor, token_number, status)
    commit()
    return entry


def call_everyone(doctor) -> list[int]:
    """Call the doctor's queue to the end, completing each visit: the order of calling."""
    order = []
    while True:
        try:
            entry = call_next(doctor)
        except NotFound as exc:
            assert exc.code == "queue_empty"
            return order
        order.append(entry.token_number)
        move(doctor, entry.token_number, "COMPLETED")


def waiting_order(actor, doctor) -> list[int]:
    (queue,) = service.today(doctor.id)["doctors"]
    return [e.token_number for e in queue["waiting"]]


# ---- PostgreSQL, read afresh ---------------------------------------------------------------


def row(token_number: int, day: date = TODAY) -> QueueEntry:
    db.session.expire_all()
    query = select(QueueEntry).where(QueueEntry.day == day, QueueEntry.token_number == token_number)
    return db.session.scalars(query).one()


def appointment_status(appointment_id: int) -> str:
    db.session.expire_all()
    return db.session.get(Appointment, appointment_id).status


def outbox(action: str | None = None) -> list[dict]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [r.payload for r in rows if action is None or r.payload["action"] == action]


def tokens_in_db(day: date | None = None) -> int:
    query = select(func.count()).select_from(QueueEntry)
    if day is not None:
        query = query.where(QueueEntry.day == day)
    return db.session.scalar(query)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    """Every test starts at NOW (Monday 2030-01-07 10:00 clinic time)."""
    return clinic_now


@pytest.fixture
def slots(doctor):
    """The doctor's slots today from 10:15 (10:00 has started at NOW) to 12:45."""
    made = make_slots(doctor)
    assert made[0].start_at == later(15)
    return made


@pytest.fixture
def book(reception, slots):
    """book(slot_index, name=None): a new patient booked into one of the doctor's slots."""

    def _book(index: int, name: str | None = None) -> Appointment:
        patient = make_patient(reception, **({"full_name": name} if name else {}))
        return make_appointment(patient, slots[index], reception)

    return _book


@pytest.fixture
def patient(reception):
    return make_patient(reception)


# ---- check-in ------------------------------------------------------------------------------


def test_check_ins_number_the_days_tokens_from_one(reception, book):
    entries = [check_in(reception, book(i)) for i in range(3)]
    assert [e.token_number for e in entries] == [1, 2, 3]
    assert all(e.day == TODAY for e in entries)
    assert all(e.kind == "APPOINTMENT" and e.status == "WAITING" for e in entries)
    assert service.display(1) == "001"
    assert service.display(7) == "007"
    assert service.display(42) == "042"
    assert service.display(123) == "123"


def test_check_in_writes_the_row_and_redis_and_checks_the_appointment_in(reception, doctor, book):
    appointment = book(0, "Asha Devi Sharma")
    entry = check_in(reception, appointment)

    assert appointment_status(appointment.id) == "CHECKED_IN"
    db.session.expire_all()
    assert db.session.get(Appointment, appointment.id).checked_in_at == NOW
    stored = row(1)
    assert stored.id == entry.id
    assert stored.appointment_id == appointment.id
    assert stored.patient_id == appointment.patient_id
    assert stored.doctor_id == doctor.id
    assert stored.kind == "APPOINTMENT"
    assert stored.status == "WAITING"
    assert stored.checked_in_at == NOW
    assert stored.called_at is None
    assert stored.created_by_id == reception.id

    assert rc().zrange(f"q:{TODAY}:wait:{doctor.id}", 0, -1) == [b"000001"]
    assert rc().hgetall("q:2030-01-07:tok:000001") == {
        b"n": b"1",
        b"display": b"001",
        b"initials": b"A.S.",
        b"kind": b"APPOINTMENT",
        b"urgent": b"0",
        b"doctor": str(doctor.id).encode(),
        b"status": b"WAITING",
    }
    assert rc().get("q:2030-01-07:counter") == b"1"
    # Every key of the day expires (after two days).
    for key in rc().keys("q:2030-01-07:*"):
        assert 0 < rc().ttl(key) <= 2 * 24 * 3600, key


def test_redis_shows_a_token_only_once_the_transaction_commits(reception, doctor, book):
    first = book(0)
    service.check_in(reception, first.id)
    assert redis_waiting(doctor.id) == []  # not yet committed
    commit()
    assert redis_waiting(doctor.id) == [1]

    second = book(1)
    service.check_in(reception, second.id)
    db.session.rollback()
    assert redis_waiting(doctor.id) == [1]  # a rolled-back check-in never shows
    assert appointment_status(second.id) == "SCHEDULED"


def test_tomorrows_appointment_is_not_checked_in_today(reception, doctor, slots):
    tomorrow = make_slots(doctor, TOMORROW)
    appointment = make_appointment(make_patient(reception), tomorrow[0], reception)
    with pytest.raises(Conflict) as caught:
        service.check_in(reception, appointment.id)
    assert caught.value.code == "appointment_not_today"
    assert caught.value.details == {"date": TOMORROW.isoformat()}
    db.session.rollback()
    assert appointment_status(appointment.id) == "SCHEDULED"
    assert tokens_in_db() == 0


def test_checking_in_twice_is_refused(reception, book):
    appointment = book(0)
    check_in(reception, appointment)
    with pytest.raises(Conflict) as caught:
        service.check_in(reception, appointment.id)
    assert caught.value.code == "already_checked_in"
    db.session.rollback()
    assert tokens_in_db() == 1


def test_a_cancelled_appointment_is_not_checked_in(reception, book):
    appointment = book(0)
    scheduling.cancel(reception, appointment.id)
    commit()
    with pytest.raises(Conflict) as caught:
        service.check_in(reception, appointment.id)
    assert caught.value.code == "appointment_not_scheduled"


def test_an_unknown_appointment_is_not_found(reception, slots):
    with pytest.raises(NotFound):
        service.check_in(reception, 999_999)


def test_a_patient_holding_a_walk_in_token_cannot_check_in_too(reception, doctor, slots):
    person = make_patient(reception)
    appointment = make_appointment(person, slots[0], reception)
    token = walk_in(reception, person, doctor)
    with pytest.raises(Conflict) as caught:
        service.check_in(reception, appointment.id)
    assert caught.value.code == "already_in_queue"
    assert caught.value.details == {"token_number": token.token_number}
    db.session.rollback()
    # The refusal spent no token number.
    assert walk_in(reception, make_patient(reception), doctor).token_number == 2


def test_an_urgent_check_in_needs_a_reason(reception, book):
    appointment = book(0)
    with pytest.raises(InvalidInput) as caught:
        service.check_in(reception, appointment.id, {"urgent": True})
    assert "urgent_reason" in caught.value.fields
    entry = check_in(reception, appointment, urgent=True, urgent_reason="Chest pain")
    assert entry.urgent is True
    assert entry.urgent_reason == "Chest pain"


# ---- walk-in -------------------------------------------------------------------------------


def test_a_walk_in_with_a_doctor_joins_that_doctors_queue(reception, doctor, patient):
    entry = walk_in(reception, patient, doctor, complaint="  Fever   since Sunday ")
    stored = row(entry.token_number)
    assert stored.token_number == 1
    assert stored.kind == "WALK_IN"
    assert stored.appointment_id is None
    assert stored.doctor_id == doctor.id
    assert stored.patient_id == patient.id
    assert stored.complaint == "Fever since Sunday"
    assert stored.urgent is False
    assert stored.status == "WAITING"
    assert redis_waiting(doctor.id) == [1]
    assert redis_token(1)["kind"] == "WALK_IN"


def test_walk_ins_and_check_ins_share_one_sequence(reception, doctor, book):
    numbers = [
        walk_in(reception, make_patient(reception), doctor).token_number,
        check_in(reception, book(0)).token_number,
        walk_in(reception, make_patient(reception), doctor).token_number,
        check_in(reception, book(1)).token_number,
    ]
    assert numbers == [1, 2, 3, 4]
    assert redis_counter() == 4


def test_a_walk_in_without_a_doctor_goes_to_the_on_duty_doctor_with_fewest_waiting(
    reception,
):
    busy, quiet, absent, tomorrow_only = (make_user(Role.DOCTOR) for _ in range(4))
    make_slots(busy)
    make_slots(quiet)
    make_slots(tomorrow_only, TOMORROW)
    # busy: 2 waiting; quiet: 1 waiting; absent has no slots today (and nobody waiting).
    for _ in range(2):
        walk_in(reception, make_patient(reception), busy)
    walk_in(reception, make_patient(reception), quiet)

    entry = walk_in(reception, make_patient(reception))
    assert entry.doctor_id == quiet.id

    # Now 2 waiting each; busy calls one in: fewest WAITING wins even though busy has had
    # more patients today.
    call_next(busy)
    entry = walk_in(reception, make_patient(reception))
    assert entry.doctor_id == busy.id
    assert absent.id not in {row(n).doctor_id for n in range(1, 6)}
    assert tomorrow_only.id not in {row(n).doctor_id for n in range(1, 6)}


def test_a_walk_in_without_a_doctor_when_nobody_is_on_duty(reception, doctor):
    make_slots(doctor, TOMORROW)
    with pytest.raises(Conflict) as caught:
        service.walk_in(reception, {"patient_id": make_patient(reception).id})
    assert caught.value.code == "no_doctor_on_duty"


def test_a_patient_holds_one_active_token_a_day(reception, doctor, patient):
    first = walk_in(reception, patient, doctor)
    for status in ("WAITING", "WITH_DOCTOR", "SKIPPED"):
        if status == "WITH_DOCTOR":
            call_next(doctor)
        elif status == "SKIPPED":
            move(reception, first.token_number, "SKIPPED")
        with pytest.raises(Conflict) as caught:
            service.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor.id})
        assert caught.value.code == "already_in_queue", status
        assert caught.value.details == {"token_number": 1}
        db.session.rollback()
    move(reception, first.token_number, "NO_SHOW")
    # Once the token is over, the patient may come back the same day.
    again = walk_in(reception, patient, doctor)
    assert again.token_number == 2


def test_an_urgent_walk_in_needs_a_reason(reception, doctor, patient):
    for reason in (None, "", "   "):
        with pytest.raises(InvalidInput) as caught:
            service.walk_in(
                reception,
                {
                    "patient_id": patient.id,
                    "doctor_id": doctor.id,
                    "urgent": True,
                    "urgent_reason": reason,
                },
            )
        assert list(caught.value.fields) == ["urgent_reason"]
    assert tokens_in_db() == 0


def test_a_walk_in_for_an_unknown_or_archived_patient(admin, reception, doctor):
    for patient_id in (None, 999_999):
        with pytest.raises(InvalidInput) as caught:
            service.walk_in(reception, {"patient_id": patient_id, "doctor_id": doctor.id})
        assert "patient_id" in caught.value.fields
    archived = make_patient(reception)
    patients.archive(admin, archived.id)
    commit()
    with pytest.raises(InvalidInput) as caught:
        service.walk_in(reception, {"patient_id": archived.id, "doctor_id": doctor.id})
    assert "patient_id" in caught.value.fields


def test_a_walk_in_for_someone_who_is_not_a_doctor(reception, pharmacist, patient):
    for doctor_id in (pharmacist.id, 999_999):
        with pytest.raises(InvalidInput) as caught:
            service.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor_id})
        assert "doctor_id" in caught.value.fields


# ---- order of the queue ----------------------------------------------------------------


def test_an_on_time_appointment_is_called_before_an_earlier_walk_in(reception, doctor, book):
    """REQUIRED: walk-in first, then an appointment patient on time -> appointment first."""
    walker = walk_in(reception, make_patient(reception), doctor)  # 10:00
    appointment = book(0)  # 10:15 slot
    with clock.fixed(later(5)):
        booked = check_in(reception, appointment)
    assert walker.token_number == 1 and booked.token_number == 2
    assert waiting_order(reception, doctor) == [2, 1]
    assert redis_waiting(doctor.id) == [2, 1]
    with clock.fixed(later(6)):
        assert call_next(doctor).token_number == booked.token_number


def test_appointments_are_called_in_slot_order_whatever_the_arrival_order(reception, doctor, book):
    late_slot, early_slot, middle_slot = book(4), book(0), book(2)
    numbers = {}
    for minutes, appointment in ((0, late_slot), (2, early_slot), (4, middle_slot)):
        with clock.fixed(later(minutes)):
            numbers[appointment.id] = check_in(reception, appointment).token_number
    expected = [numbers[a.id] for a in (early_slot, middle_slot, late_slot)]
    assert expected == [2, 3, 1]
    assert waiting_order(reception, doctor) == expected
    with clock.fixed(later(5)):
        assert call_everyone(doctor) == expected


@pytest.mark.parametrize(
    ("arrival", "ahead_of_walk_in"),
    [(29, True), (30, True), (31, False), (90, False)],
    ids=["14-after", "15-after", "16-after", "late"],
)
def test_an_appointment_patient_later_than_the_grace_queues_by_arrival(
    reception, doctor, book, arrival, ahead_of_walk_in
):
    appointment = book(0)  # slot at 10:15, grace until 10:30
    with clock.fixed(later(20)):
        walker = walk_in(reception, make_patient(reception), doctor)
    with clock.fixed(later(arrival)):
        booked = check_in(reception, appointment)
        if ahead_of_walk_in:
            expected = [booked.token_number, walker.token_number]
        else:
            expected = [walker.token_number, booked.token_number]
        assert waiting_order(reception, doctor) == expected
        assert call_everyone(doctor) == expected
    event = outbox("APPOINTMENT_CHECKED_IN")[-1]
    assert event["changes"]["new"]["late"] is (not ahead_of_walk_in)


def test_late_arrivals_and_walk_ins_go_in_arrival_order(reception, doctor, book):
    late = book(0)
    with clock.fixed(later(40)):
        first = walk_in(reception, make_patient(reception), doctor)
    with clock.fixed(later(45)):
        second = check_in(reception, late)  # 30 minutes after its 10:15 slot
    with clock.fixed(later(50)):
        third = walk_in(reception, make_patient(reception), doctor)
    expected = [first.token_number, second.token_number, third.token_number]
    assert waiting_order(reception, doctor) == expected
    with clock.fixed(later(55)):
        assert call_everyone(doctor) == expected


def test_urgent_tokens_go_first(reception, doctor, book):
    on_time = check_in(reception, book(0))
    walker = walk_in(reception, make_patient(reception), doctor)
    with clock.fixed(later(3)):
        urgent = walk_in(
            reception, make_patient(reception), doctor, urgent=True, urgent_reason="Bleeding"
        )
    at_1100 = book(3)
    with clock.fixed(later(4)):
        urgent_booked = check_in(reception, at_1100, urgent=True, urgent_reason="Breathless")
    expected = [urgent, urgent_booked, on_time, walker]
    assert waiting_order(reception, doctor) == [e.token_number for e in expected]
    assert redis_token(urgent.token_number)["urgent"] == "1"
    with clock.fixed(later(5)):
        assert call_everyone(doctor) == [e.token_number for e in expected]


def test_marking_a_waiting_token_urgent_moves_it_ahead(reception, doctor, book):
    on_time = check_in(reception, book(0))
    first = walk_in(reception, make_patient(reception), doctor)
    second = walk_in(reception, make_patient(reception), doctor)
    with clock.fixed(later(2)):
        marked = service.mark_urgent(reception, second.token_number, "  Fainted  ")
        commit()
    assert marked.urgent is True
    assert marked.urgent_reason == "Fainted"
    expected = [second.token_number, on_time.token_number, first.token_number]
    assert waiting_order(reception, doctor) == expected
    assert redis_waiting(doctor.id) == expected
    assert redis_token(second.token_number)["urgent"] == "1"
    with clock.fixed(later(3)):
        assert call_everyone(doctor) == expected


def test_marking_urgent_is_refused_without_reason_twice_or_when_not_waiting(
    reception, doctor, patient
):
    token = walk_in(reception, patient, doctor).token_number
    with pytest.raises(InvalidInput) as caught:
        service.mark_urgent(reception, token, " ")
    assert caught.value.fields
    service.mark_urgent(reception, token, "Fits")
    commit()
    with pytest.raises(Conflict) as caught:
        service.mark_urgent(reception, token, "Fits again")
    assert caught.value.code == "already_urgent"
    call_next(doctor)
    with pytest.raises(Conflict) as caught:
        service.mark_urgent(reception, token, "Fits")
    assert caught.value.code == "invalid_transition"
    with pytest.raises(NotFound):
        service.mark_urgent(reception, 77, "Fits")


def test_a_recalled_token_goes_to_the_head_of_the_queue(reception, doctor, book):
    skipped = walk_in(reception, make_patient(reception), doctor)
    on_time = check_in(reception, book(0))
    walker = walk_in(reception, make_patient(reception), doctor)
    urgent = walk_in(reception, make_patient(reception), doctor, urgent=True, urgent_reason="Pain")
    with clock.fixed(later(1)):
        move(reception, skipped.token_number, "SKIPPED")
    assert skipped.token_number not in redis_waiting(doctor.id)
    with clock.fixed(later(10)):
        move(reception, skipped.token_number, "WAITING")
    expected = [skipped, urgent, on_time, walker]
    assert waiting_order(reception, doctor) == [e.token_number for e in expected]
    assert redis_waiting(doctor.id) == [e.token_number for e in expected]
    assert row(skipped.token_number).status == "WAITING"
    with clock.fixed(later(11)):
        assert call_everyone(doctor) == [e.token_number for e in expected]


# ---- call next -----------------------------------------------------------------------------


def test_call_next_puts_the_first_patient_with_the_doctor(reception, doctor, book):
    appointment = book(0)
    check_in(reception, appointment)
    walk_in(reception, make_patient(reception), doctor)
    with clock.fixed(later(7)):
        entry = call_next(doctor)
    assert entry.token_number == 1
    stored = row(1)
    assert stored.status == "WITH_DOCTOR"
    assert stored.called_at == later(7)
    assert appointment_status(appointment.id) == "IN_CONSULTATION"
    assert redis_current(doctor.id) == 1
    assert redis_waiting(doctor.id) == [2]
    assert redis_token(1)["status"] == "WITH_DOCTOR"


def test_a_second_call_while_a_patient_is_with_the_doctor_is_refused(reception, doctor):
    for _ in range(2):
        walk_in(reception, make_patient(reception), doctor)
    call_next(doctor)
    with pytest.raises(Conflict) as caught:
        service.call_next(doctor)
    assert caught.value.code == "patient_with_doctor"
    assert caught.value.details == {"token_number": 1}
    db.session.rollback()
    assert row(2).status == "WAITING"
    assert redis_waiting(doctor.id) == [2]
    assert redis_current(doctor.id) == 1


def test_calling_an_empty_queue(doctor):
    with pytest.raises(NotFound) as caught:
        service.call_next(doctor)
    assert caught.value.code == "queue_empty"


def test_who_may_call_whose_queue(reception, admin, pharmacist, doctor, patient):
    other = make_user(Role.DOCTOR)
    walk_in(reception, patient, doctor)
    with pytest.raises(Forbidden) as caught:
        service.call_next(other, doctor.id)
    assert caught.value.code == "not_your_queue"
    with pytest.raises(InvalidInput) as caught:
        service.call_next(admin)
    assert "doctor_id" in caught.value.fields
    with pytest.raises(InvalidInput) as caught:
        service.call_next(admin, pharmacist.id)
    assert "doctor_id" in caught.value.fields
    for role_user in (reception, pharmacist):
        with pytest.raises(Forbidden):
            service.call_next(role_user, doctor.id)
    # A doctor naming their own queue, or an ADMIN naming the doctor, may call.
    assert call_next(admin, doctor.id).token_number == 1
    move(doctor, 1, "COMPLETED")
    walk_in(reception, make_patient(reception), doctor)
    assert call_next(doctor, doctor.id).token_number == 2


# ---- token moves ---------------------------------------------------------------------------


def token_in_state(reception, doctor, appointment, state: str) -> int:
    """Check the appointment in and bring its token to `state`."""
    number = check_in(reception, appointment).token_number
    if state in ("WITH_DOCTOR", "COMPLETED"):
        assert call_next(doctor).token_number == number
    if state == "COMPLETED":
        move(doctor, number, "COMPLETED")
    if state in ("SKIPPED", "NO_SHOW"):
        move(reception, number, state)
    assert row(number).status == state
    return number


@pytest.mark.parametrize(("before", "after"), sorted(ALLOWED))
def test_every_allowed_move(admin, reception, doctor, book, before, after):
    appointment = book(0)
    number = token_in_state(reception, doctor, appointment, before)
    with clock.fixed(later(20)):
        entry = move(admin, number, after)
    assert entry.status == after
    stored = row(number)
    assert stored.status == after
    assert stored.status_changed_at == later(20)
    assert appointment_status(appointment.id) == APPOINTMENT_AFTER[after]
    assert redis_token(number)["status"] == after
    assert (number in redis_waiting(doctor.id)) is (after == "WAITING")
    assert (redis_current(doctor.id) == number) is (after == "WITH_DOCTOR")
    if after == "COMPLETED":
        assert stored.completed_at == later(20)
    if after == "WITH_DOCTOR":
        assert stored.called_at == later(20)


@pytest.mark.parametrize(
    ("before", "after"),
    [(b, a) for b in STATUSES for a in STATUSES if (b, a) not in ALLOWED],
)
def test_every_other_move_is_an_invalid_transition(admin, reception, doctor, book, before, after):
    appointment = book(0)
    number = token_in_state(reception, doctor, appointment, before)
    with pytest.raises(Conflict) as caught:
        service.set_status(admin, number, after)
    assert caught.value.code == "invalid_transition"
    assert caught.value.details == {"from": before, "to": after}
    db.session.rollback()
    assert row(number).status == before


@pytest.mark.parametrize("status", ["SKIPPED", "NO_SHOW"])
def test_reception_may_skip_and_mark_no_show(reception, doctor, patient, status):
    number = walk_in(reception, patient, doctor).token_number
    assert move(reception, number, status).status == status


def test_reception_may_recall_and_skip_a_patient_with_the_doctor(reception, doctor, patient):
    number = walk_in(reception, patient, doctor).token_number
    call_next(doctor)
    move(reception, number, "SKIPPED")
    assert redis_current(doctor.id) is None
    move(reception, number, "WAITING")
    assert redis_waiting(doctor.id) == [number]
    move(reception, number, "SKIPPED")
    assert move(reception, number, "NO_SHOW").status == "NO_SHOW"


def test_reception_may_not_complete_or_call(reception, doctor, patient):
    number = walk_in(reception, patient, doctor).token_number
    with pytest.raises(Forbidden):
        service.set_status(reception, number, "WITH_DOCTOR")
    call_next(doctor)
    with pytest.raises(Forbidden):
        service.set_status(reception, number, "COMPLETED")
    db.session.rollback()
    assert row(number).status == "WITH_DOCTOR"


def test_a_doctor_moves_only_their_own_queues_tokens(reception, doctor, pharmacist, patient):
    other = make_user(Role.DOCTOR)
    number = walk_in(reception, patient, doctor).token_number
    with pytest.raises(Forbidden) as caught:
        service.set_status(other, number, "SKIPPED")
    assert caught.value.code == "not_your_queue"
    with pytest.raises(Forbidden):
        service.set_status(pharmacist, number, "SKIPPED")
    assert move(doctor, number, "SKIPPED").status == "SKIPPED"


def test_an_unknown_token_or_status(admin, reception, doctor, patient):
    with pytest.raises(NotFound) as caught:
        service.set_status(admin, 1, "SKIPPED")
    assert caught.value.code == "token_not_found"
    number = walk_in(reception, patient, doctor).token_number
    for status in ("LOST", "", None, "done"):
        with pytest.raises(InvalidInput) as caught:
            service.set_status(admin, number, status)
        assert "status" in caught.value.fields
    # Lower case is understood.
    assert move(admin, number, "skipped").status == "SKIPPED"


def test_a_token_of_another_day_is_not_todays(reception, doctor, patient):
    with clock.fixed(NOW - timedelta(days=1)):
        walk_in(reception, patient, doctor)
    with pytest.raises(NotFound):
        service.set_status(reception, 1, "SKIPPED")
    with pytest.raises(NotFound):
        service.get_token(1)


def test_completing_frees_the_doctor_for_the_next_call(reception, doctor, book):
    appointment = book(0)
    check_in(reception, appointment)
    walk_in(reception, make_patient(reception), doctor)
    call_next(doctor)
    with clock.fixed(later(25)):
        move(doctor, 1, "COMPLETED")
    assert appointment_status(appointment.id) == "COMPLETED"
    assert row(1).completed_at == later(25)
    assert redis_current(doctor.id) is None
    assert call_next(doctor).token_number == 2
    assert redis_current(doctor.id) == 2


def test_skipping_the_patient_with_the_doctor_frees_the_doctor(reception, doctor):
    for _ in range(2):
        walk_in(reception, make_patient(reception), doctor)
    call_next(doctor)
    move(doctor, 1, "SKIPPED")
    assert call_next(doctor).token_number == 2


def test_calling_a_token_by_number(admin, reception, doctor):
    for _ in range(3):
        walk_in(reception, make_patient(reception), doctor)
    assert move(admin, 3, "WITH_DOCTOR").token_number == 3
    assert redis_current(doctor.id) == 3
    assert redis_waiting(doctor.id) == [1, 2]
    with pytest.raises(Conflict) as caught:
        service.set_status(admin, 2, "WITH_DOCTOR")
    assert caught.value.code == "patient_with_doctor"


def test_no_show_marks_the_appointment_no_show(reception, doctor, book):
    appointment = book(0)
    number = check_in(reception, appointment).token_number
    move(reception, number, "NO_SHOW")
    assert appointment_status(appointment.id) == "NO_SHOW"
    assert redis_waiting(doctor.id) == []
    with pytest.raises(NotFound):
        service.call_next(doctor)


def test_a_no_show_keeps_its_reason_and_audits_it(reception, doctor, book):
    appointment = book(0)
    number = check_in(reception, appointment).token_number
    service.set_status(reception, number, "NO_SHOW", "  Called twice,\n not here ")
    commit()
    assert row(number).no_show_reason == "Called twice, not here"
    (event,) = outbox("TOKEN_NO_SHOW")
    assert event["changes"]["new"] == {"status": "NO_SHOW", "reason": "Called twice, not here"}


def test_a_reason_is_optional_and_at_most_200_characters(reception, doctor, patient):
    number = walk_in(reception, patient, doctor).token_number
    with pytest.raises(InvalidInput) as caught:
        service.set_status(reception, number, "NO_SHOW", "x" * 201)
    assert "reason" in caught.value.fields
    assert row(number).status == "WAITING"
    move(reception, number, "NO_SHOW")
    assert row(number).no_show_reason is None
    (event,) = outbox("TOKEN_NO_SHOW")
    assert "reason" not in event["changes"]["new"]


def test_a_token_whose_visit_is_open_completes_only_through_the_visit(reception, doctor, book):
    from qure.visits import service as visits

    appointment = book(0)
    number = check_in(reception, appointment).token_number
    call_next(doctor)
    visit = visits.open_for_token(doctor, number)
    commit()
    with pytest.raises(Conflict) as caught:
        service.set_status(doctor, number, "COMPLETED")
    assert caught.value.code == "visit_open"
    assert caught.value.details == {"visit_id": visit.id, "token_number": number}
    assert "complete the visit" in caught.value.message
    db.session.rollback()
    assert row(number).status == "WITH_DOCTOR"
    assert redis_current(doctor.id) == number
    assert appointment_status(appointment.id) == "IN_CONSULTATION"

    visits.update(doctor, visit.id, {"diagnosis": "Viral fever"})
    visits.complete(doctor, visit.id)
    commit()
    assert row(number).status == "COMPLETED"
    assert appointment_status(appointment.id) == "COMPLETED"
    assert redis_current(doctor.id) is None


def test_a_token_without_a_visit_still_completes_from_the_queue(admin, reception, doctor):
    from qure.visits import service as visits

    patient = make_patient(reception)
    number = walk_in(reception, patient, doctor).token_number
    call_next(admin, doctor.id)  # an admin's call opens no visit
    assert visits.in_progress_for(patient.id) is None
    assert move(doctor, number, "COMPLETED").status == "COMPLETED"


def test_open_visit_ids_reads_many_tokens_in_one_query(reception, doctor):
    from qure.visits import service as visits

    other = make_user(Role.DOCTOR)
    first = walk_in(reception, make_patient(reception), doctor)
    second = walk_in(reception, make_patient(reception), other)
    call_next(doctor)
    call_next(other)
    visit = visits.open_for_token(doctor, first.token_number)
    commit()
    assert service.open_visit_ids([first, second]) == {first.id: visit.id}
    assert service.open_visit_ids([]) == {}


# ---- reading -------------------------------------------------------------------------------


def test_today_lists_waiting_in_order_with_positions_current_and_counts(
    admin, reception, doctor, book
):
    other = make_user(Role.DOCTOR, full_name="Zed Other")
    walk_in(reception, make_patient(reception), doctor)  # 1
    check_in(reception, book(1))  # 2, 10:30 slot
    check_in(reception, book(0))  # 3, 10:15 slot
    walk_in(reception, make_patient(reception), doctor)  # 4
    walk_in(reception, make_patient(reception), other)  # 5
    walk_in(reception, make_patient(reception), doctor)  # 6
    call_next(doctor)  # 3
    move(reception, 4, "SKIPPED")

    result = service.today()
    assert result["date"] == TODAY
    mine = next(d for d in result["doctors"] if d["doctor"].id == doctor.id)
    assert mine["current"].token_number == 3
    assert [e.token_number for e in mine["waiting"]] == [2, 1, 6]
    assert [e.position for e in mine["waiting"]] == [1, 2, 3]
    assert [e.token_number for e in mine["done"]] == [4]
    assert mine["counts"] == {
        "WAITING": 3,
        "WITH_DOCTOR": 1,
        "SKIPPED": 1,
        "NO_SHOW": 0,
        "COMPLETED": 0,
    }
    theirs = next(d for d in result["doctors"] if d["doctor"].id == other.id)
    assert theirs["current"] is None
    assert [e.token_number for e in theirs["waiting"]] == [5]

    only = service.today(doctor.id)
    assert [d["doctor"].id for d in only["doctors"]] == [doctor.id]
    assert service.get_token(6).position == 3
    assert service.get_token(2).position == 1
    assert service.get_token(3).position is None
    with pytest.raises(NotFound):
        service.get_token(99)


def test_summary_counts_and_average_minutes(admin, reception, doctor, patient):
    other = make_user(Role.DOCTOR)
    walk_in(reception, patient, doctor)  # checked in 10:00
    with clock.fixed(later(5)):
        walk_in(reception, make_patient(reception), doctor)  # checked in 10:05
        walk_in(reception, make_patient(reception), other)
    with clock.fixed(later(12)):
        call_next(doctor)  # waited 12 minutes
    with clock.fixed(later(20)):
        move(doctor, 1, "COMPLETED")  # 8 minutes with the doctor
    with clock.fixed(later(25)):
        call_next(doctor)  # waited 20 minutes

    result = reports.summary()
    assert result["date"] == TODAY
    assert result["total"] == 3
    assert result["counts"] == {
        "WAITING": 1,
        "WITH_DOCTOR": 1,
        "SKIPPED": 0,
        "NO_SHOW": 0,
        "COMPLETED": 1,
    }
    assert result["average_wait_minutes"] == 16.0
    assert result["average_consultation_minutes"] == 8.0
    blocks = {b["doctor"].id: b for b in result["doctors"]}
    assert blocks[doctor.id]["average_wait_minutes"] == 16.0
    assert blocks[doctor.id]["total"] == 2
    assert blocks[other.id]["average_wait_minutes"] is None
    assert blocks[other.id]["average_consultation_minutes"] is None
    assert blocks[other.id]["counts"]["WAITING"] == 1


# ---- Redis loses its keys ------------------------------------------------------------------


def a_busy_morning(reception, doctor, book) -> dict[str, list[int]]:
    """Tokens of every kind and place: returns the live order and current token."""
    at_1030, at_1045, at_1015 = book(1), book(2), book(0)
    walk_in(reception, make_patient(reception), doctor)  # 1 walk-in
    check_in(reception, at_1045)  # 2 on time
    check_in(reception, at_1015)  # 3 on time -> called
    with clock.fixed(later(1)):
        walk_in(reception, make_patient(reception), doctor, urgent=True, urgent_reason="Pain")  # 4
    assert call_next(doctor).token_number == 4
    move(doctor, 4, "COMPLETED")
    assert call_next(doctor).token_number == 3
    with clock.fixed(later(50)):
        check_in(reception, at_1030)  # 5 late
    with clock.fixed(later(51)):
        move(reception, 1, "SKIPPED")
    with clock.fixed(later(52)):
        move(reception, 1, "WAITING")  # recalled: head of the queue
    return {"waiting": [1, 2, 5], "current": [3]}


def test_the_queue_survives_redis_losing_its_keys(admin, reception, doctor, book):
    expected = a_busy_morning(reception, doctor, book)
    scores = redis_scores(doctor.id)
    assert waiting_order(admin, doctor) == expected["waiting"]

    rc().flushall()

    (queue,) = service.today(doctor.id)["doctors"]
    assert [e.token_number for e in queue["waiting"]] == expected["waiting"]
    assert [e.position for e in queue["waiting"]] == [1, 2, 3]
    assert queue["current"].token_number == 3
    assert redis_scores(doctor.id) == scores
    assert redis_current(doctor.id) == 3
    # The sequence continues after the highest number PostgreSQL holds.
    with clock.fixed(later(53)):
        assert walk_in(reception, make_patient(reception), doctor).token_number == 6
    assert redis_counter() == 6
    # The doctor is still busy, then carries on in the same order.
    with pytest.raises(Conflict) as caught:
        service.call_next(doctor)
    assert caught.value.code == "patient_with_doctor"
    db.session.rollback()
    move(doctor, 3, "COMPLETED")
    with clock.fixed(later(54)):
        assert call_everyone(doctor) == [*expected["waiting"], 6]


def test_calling_next_after_redis_lost_its_keys(reception, doctor, book):
    walk_in(reception, make_patient(reception), doctor)
    check_in(reception, book(0))
    rc().flushall()
    assert call_next(doctor).token_number == 2
    rc().flushall()
    with pytest.raises(Conflict) as caught:
        service.call_next(doctor)
    assert caught.value.code == "patient_with_doctor"


def test_a_check_in_after_redis_lost_its_keys_continues_the_sequence(reception, doctor, book):
    for _ in range(4):
        walk_in(reception, make_patient(reception), doctor)
    rc().flushall()
    assert check_in(reception, book(0)).token_number == 5
    assert redis_waiting(doctor.id) == [5, 1, 2, 3, 4]


def test_reload_rebuilds_the_day_exactly(reception, doctor, book):
    a_busy_morning(reception, doctor, book)
    keys = sorted(
        text(k)
        for k in rc().keys("q:2030-01-07:*")
        if not text(k).endswith(("ver", "built")) and ":board:" not in text(k)
    )
    before = {
        "scores": redis_scores(doctor.id),
        "current": redis_current(doctor.id),
        "counter": redis_counter(),
        "tokens": {n: redis_token(n) for n in (1, 2, 3, 5)},
    }
    rc().flushall()
    assert loading.reload(TODAY) == 4  # three waiting and the one with the doctor
    after = {
        "scores": redis_scores(doctor.id),
        "current": redis_current(doctor.id),
        "counter": redis_counter(),
        "tokens": {n: redis_token(n) for n in (1, 2, 3, 5)},
    }
    assert after == before
    assert rc().exists("q:2030-01-07:built")
    rebuilt = sorted(
        text(k)
        for k in rc().keys("q:2030-01-07:*")
        if not text(k).endswith(("ver", "built")) and ":board:" not in text(k)
    )
    # Finished tokens (4 completed) need no key; everything live is back.
    assert set(rebuilt) <= set(keys)
    assert set(keys) - set(rebuilt) <= {"q:2030-01-07:tok:000004"}
    # Reloading an intact day changes nothing.
    assert loading.reload(TODAY) == 4
    assert redis_scores(doctor.id) == before["scores"]


def test_reload_of_an_empty_day(reception, doctor, patient):
    assert loading.reload(TODAY) == 0
    assert redis_counter() in (None, 0)
    assert rc().exists("q:2030-01-07:built")
    assert walk_in(reception, patient, doctor).token_number == 1


# ---- the database refuses after Redis moved --------------------------------------------


def test_a_call_rolled_back_puts_the_token_back_in_its_place(reception, doctor, book):
    walk_in(reception, make_patient(reception), doctor)  # 1
    check_in(reception, book(0))  # 2, called first
    walk_in(reception, make_patient(reception), doctor)  # 3
    scores = redis_scores(doctor.id)
    assert [n for n, _ in scores] == [2, 1, 3]

    entry = service.call_next(doctor)
    assert entry.token_number == 2
    assert redis_current(doctor.id) == 2  # Redis moved ahead of the commit
    db.session.rollback()  # the transaction does not commit

    assert redis_scores(doctor.id) == scores
    assert redis_current(doctor.id) is None
    assert rc().get(f"q:{TODAY}:cur:{doctor.id}") is None
    assert redis_token(2)["status"] == "WAITING"
    assert row(2).status == "WAITING"
    assert row(2).called_at is None
    assert call_next(doctor).token_number == 2
    assert redis_current(doctor.id) == 2
    assert redis_waiting(doctor.id) == [1, 3]


def test_a_call_rolled_back_restores_nothing_else(reception, doctor):
    for _ in range(2):
        walk_in(reception, make_patient(reception), doctor)
    call_next(doctor)
    move(doctor, 1, "COMPLETED")
    entry = service.call_next(doctor)
    assert entry.token_number == 2
    db.session.rollback()
    assert redis_waiting(doctor.id) == [2]
    assert redis_current(doctor.id) is None
    assert redis_token(1)["status"] == "COMPLETED"


def test_a_token_redis_thinks_is_waiting_but_the_database_does_not(reception, doctor):
    for _ in range(3):
        walk_in(reception, make_patient(reception), doctor)
    # Token 1 changed in PostgreSQL without reaching Redis (a lost publish).
    db.session.execute(
        update(QueueEntry).where(QueueEntry.token_number == 1).values(status="NO_SHOW")
    )
    commit()
    assert redis_waiting(doctor.id) == [1, 2, 3]
    assert call_next(doctor).token_number == 2
    assert redis_waiting(doctor.id) == [3]
    assert redis_token(1)["status"] == "NO_SHOW"
    assert row(1).status == "NO_SHOW"


def test_a_waiting_token_missing_from_redis_is_still_called(reception, doctor):
    walk_in(reception, make_patient(reception), doctor)
    rc().zrem(f"q:{TODAY}:wait:{doctor.id}", "000001")  # a publish that never arrived
    assert call_next(doctor).token_number == 1


def test_a_call_when_redis_forgot_who_is_with_the_doctor_is_refused(reception, doctor):
    """Redis lost the doctor's current token (evicted, or a race): the database's one
    WITH_DOCTOR per doctor must turn the second call into 409 patient_with_doctor."""
    for _ in range(2):
        walk_in(reception, make_patient(reception), doctor)
    assert call_next(doctor).token_number == 1
    rc().delete(f"q:{TODAY}:cur:{doctor.id}")
    with pytest.raises(Conflict) as caught:
        service.call_next(doctor)
    assert caught.value.code == "patient_with_doctor"
    assert caught.value.details == {"token_number": 1}
    db.session.rollback()
    assert row(1).status == "WITH_DOCTOR"
    assert row(2).status == "WAITING"
    assert redis_waiting(doctor.id) == [2]


def test_a_slow_reload_does_not_put_a_called_token_back(reception, doctor):
    """Two requests reload the day after Redis lost it; the slower one read the rows before
    the other called token 1. Its load must not make token 1 wait again."""
    for _ in range(2):
        walk_in(reception, make_patient(reception), doctor)
    rc().flushall()
    db.session.expire_all()
    read_before_the_call = [
        loading.card(e)
        for e in db.session.scalars(
            select(QueueEntry).options(*service.SHOWN).order_by(QueueEntry.token_number)
        )
    ]
    assert call_next(doctor).token_number == 1  # reloads the day itself, then calls
    store.install(TODAY, 2, read_before_the_call, [])  # the slower reload lands
    assert redis_current(doctor.id) == 1
    assert redis_token(1)["status"] == "WITH_DOCTOR"
    assert redis_waiting(doctor.id) == [2]


# ---- clinic days -------------------------------------------------------------------------


def test_tokens_start_again_at_one_on_the_next_clinic_day(reception, doctor, patient):
    for _ in range(3):
        walk_in(reception, make_patient(reception), doctor)
    late_evening = datetime(2030, 1, 7, 23, 59, tzinfo=IST)
    with clock.fixed(late_evening):
        assert walk_in(reception, patient, doctor).day == TODAY
    after_midnight = datetime(2030, 1, 8, 0, 30, tzinfo=IST)
    assert after_midnight == datetime(2030, 1, 7, 19, 0, tzinfo=UTC)  # still the 7th in UTC
    with clock.fixed(after_midnight):
        entry = walk_in(reception, make_patient(reception), doctor)
        # A token held yesterday does not stop a patient today.
        again = walk_in(reception, patient, doctor)
        (queue,) = service.today(doctor.id)["doctors"]
    assert entry.day == date(2030, 1, 8)
    assert entry.token_number == 1
    assert again.token_number == 2
    assert row(1, date(2030, 1, 8)).id == entry.id
    assert [e.token_number for e in queue["waiting"]] == [1, 2]
    assert redis_counter(date(2030, 1, 8)) == 2
    assert redis_counter(TODAY) == 4
    assert tokens_in_db(TODAY) == 4
    assert tokens_in_db(date(2030, 1, 8)) == 2


def test_a_token_number_is_found_by_the_clinic_day(reception, doctor):
    walk_in(reception, make_patient(reception), doctor)
    with clock.fixed(datetime(2030, 1, 8, 0, 30, tzinfo=IST)):
        walk_in(reception, make_patient(reception), doctor)
        assert service.get_token(1).day == date(2030, 1, 8)
        assert call_next(doctor).day == date(2030, 1, 8)
    assert row(1, TODAY).status == "WAITING"


# ---- closing the day -----------------------------------------------------------------------


def test_close_day_turns_the_unseen_into_no_shows(admin, reception, doctor, book, slots):
    waiting = book(0)
    skipped = book(1)
    with_doctor = book(2)
    completed = book(3)
    never_came = book(4)
    cancelled = book(5)
    tomorrow = make_appointment(make_patient(reception), make_slots(doctor, TOMORROW)[0])
    scheduling.cancel(reception, cancelled.id)
    commit()
    numbers = {a.id: check_in(reception, a).token_number for a in (waiting, skipped)}
    numbers[with_doctor.id] = check_in(reception, with_doctor).token_number
    numbers[completed.id] = check_in(reception, completed).token_number
    walker = walk_in(reception, make_patient(reception), doctor).token_number
    move(admin, numbers[completed.id], "WITH_DOCTOR")
    move(doctor, numbers[completed.id], "COMPLETED")
    move(admin, numbers[with_doctor.id], "WITH_DOCTOR")
    move(reception, numbers[skipped.id], "SKIPPED")
    events = len(outbox())

    with clock.fixed(datetime(2030, 1, 7, 21, 5, tzinfo=IST)):
        result = service.close_day(None, TODAY)
        commit()
    assert result == {"tokens": 3, "appointments": 1}
    assert row(numbers[waiting.id]).status == "NO_SHOW"
    assert row(numbers[skipped.id]).status == "NO_SHOW"
    assert row(walker).status == "NO_SHOW"
    assert row(numbers[with_doctor.id]).status == "WITH_DOCTOR"
    assert row(numbers[completed.id]).status == "COMPLETED"
    assert appointment_status(waiting.id) == "NO_SHOW"
    assert appointment_status(skipped.id) == "NO_SHOW"
    assert appointment_status(never_came.id) == "NO_SHOW"
    assert appointment_status(with_doctor.id) == "IN_CONSULTATION"
    assert appointment_status(completed.id) == "COMPLETED"
    assert appointment_status(cancelled.id) == "CANCELLED"
    assert appointment_status(tomorrow.id) == "SCHEDULED"
    assert len(outbox("TOKEN_NO_SHOW")) == 3
    # The two tokens' appointments and the one nobody checked in.
    assert len(outbox("APPOINTMENT_NO_SHOW")) == 3
    assert all(e["user"] is None for e in outbox("TOKEN_NO_SHOW"))
    assert redis_waiting(doctor.id) == []
    after_first = len(outbox())
    assert after_first == events + 6

    with clock.fixed(datetime(2030, 1, 7, 21, 10, tzinfo=IST)):
        assert service.close_day(None, TODAY) == {"tokens": 0, "appointments": 0}
        commit()
    assert len(outbox()) == after_first
    assert row(numbers[with_doctor.id]).status == "WITH_DOCTOR"
    assert appointment_status(tomorrow.id) == "SCHEDULED"
    # The doctor still finishes with the patient in the room.
    assert move(doctor, numbers[with_doctor.id], "COMPLETED").status == "COMPLETED"


def test_close_day_also_closes_an_earlier_day_left_open(reception, doctor, patient):
    with clock.fixed(NOW - timedelta(days=1)):
        walk_in(reception, patient, doctor)
    with clock.fixed(NOW + timedelta(hours=12)):
        assert service.close_day(None, TODAY) == {"tokens": 1, "appointments": 0}
        commit()
    assert row(1, TODAY - timedelta(days=1)).status == "NO_SHOW"


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        (datetime(2030, 1, 7, 21, 0, tzinfo=IST), TODAY),
        (datetime(2030, 1, 7, 23, 59, tzinfo=IST), TODAY),
        (datetime(2030, 1, 7, 15, 30, tzinfo=UTC), TODAY),  # 21:00 in the clinic
        (datetime(2030, 1, 7, 20, 59, tzinfo=IST), TODAY - timedelta(days=1)),
        (datetime(2030, 1, 7, 10, 0, tzinfo=IST), TODAY - timedelta(days=1)),
        (datetime(2030, 1, 8, 0, 30, tzinfo=IST), TODAY),  # 19:00 UTC on the 7th
    ],
)
def test_closing_due_is_today_after_closing_time_else_yesterday(app, instant, day):
    assert service.closing_due(instant) == day


def test_closing_due_reads_the_clock():
    assert service.closing_due() == TODAY - timedelta(days=1)
    with clock.fixed(datetime(2030, 1, 7, 21, 1, tzinfo=IST)):
        assert service.closing_due() == TODAY


# ---- audit ---------------------------------------------------------------------------------


def test_every_step_of_a_token_is_audited(reception, doctor, book):
    appointment = book(0)
    entry = check_in(reception, appointment)
    number = entry.token_number
    service.mark_urgent(reception, number, "Chest pain")
    commit()
    call_next(doctor)
    move(doctor, number, "SKIPPED")
    move(reception, number, "WAITING")
    call_next(doctor)
    move(doctor, number, "COMPLETED")
    walker = walk_in(reception, make_patient(reception), doctor)
    move(reception, walker.token_number, "NO_SHOW")

    token_events = [
        (e["action"], e["user"]["id"])
        for e in outbox()
        if e["resource"] == {"type": "token", "id": entry.id}
    ]
    assert token_events == [
        ("TOKEN_ISSUED", reception.id),
        ("TOKEN_MARKED_URGENT", reception.id),
        ("TOKEN_CALLED", doctor.id),
        ("TOKEN_SKIPPED", doctor.id),
        ("TOKEN_RECALLED", reception.id),
        ("TOKEN_CALLED", doctor.id),
        ("TOKEN_COMPLETED", doctor.id),
    ]
    (checked_in,) = outbox("APPOINTMENT_CHECKED_IN")
    assert checked_in["resource"] == {"type": "appointment", "id": appointment.id}
    assert checked_in["changes"]["old"] == {"status": "SCHEDULED"}
    assert checked_in["changes"]["new"]["status"] == "CHECKED_IN"
    assert checked_in["changes"]["new"]["token_number"] == number
    issued = outbox("TOKEN_ISSUED")
    assert [e["changes"]["new"]["kind"] for e in issued] == ["APPOINTMENT", "WALK_IN"]
    assert issued[0]["changes"]["new"]["token_number"] == number
    assert issued[0]["changes"]["old"] is None
    called = outbox("TOKEN_CALLED")[0]
    assert called["changes"] == {"old": {"status": "WAITING"}, "new": {"status": "WITH_DOCTOR"}}
    urgent = outbox("TOKEN_MARKED_URGENT")[0]
    assert urgent["changes"]["new"] == {"urgent": True, "urgent_reason": "Chest pain"}
    (no_show,) = outbox("TOKEN_NO_SHOW")
    assert no_show["resource"] == {"type": "token", "id": walker.id}
    assert no_show["changes"] == {"old": {"status": "WAITING"}, "new": {"status": "NO_SHOW"}}


def test_the_queue_moves_the_appointment_through_scheduling_with_an_audit_record(
    reception, doctor, book
):
    appointment = book(0)
    number = check_in(reception, appointment).token_number
    call_next(doctor)
    move(doctor, number, "SKIPPED")
    move(reception, number, "WAITING")
    call_next(doctor)
    move(doctor, number, "COMPLETED")
    missed = book(1)
    missed_number = check_in(reception, missed).token_number
    service.set_status(reception, missed_number, "NO_SHOW", "Left before the call")
    commit()

    events = [
        (e["action"], e["changes"]["old"]["status"], e["changes"]["new"]["status"], e["user"]["id"])
        for e in outbox()
        if e["resource"] == {"type": "appointment", "id": appointment.id}
        and e["action"] != "APPOINTMENT_BOOKED"
    ]
    assert events[1:] == [
        ("APPOINTMENT_IN_CONSULTATION", "CHECKED_IN", "IN_CONSULTATION", doctor.id),
        ("APPOINTMENT_RETURNED", "IN_CONSULTATION", "CHECKED_IN", doctor.id),
        ("APPOINTMENT_IN_CONSULTATION", "CHECKED_IN", "IN_CONSULTATION", doctor.id),
        ("APPOINTMENT_COMPLETED", "IN_CONSULTATION", "COMPLETED", doctor.id),
    ]
    (no_show,) = outbox("APPOINTMENT_NO_SHOW")
    assert no_show["resource"] == {"type": "appointment", "id": missed.id}
    assert no_show["changes"] == {"old": {"status": "CHECKED_IN"}, "new": {"status": "NO_SHOW"}}


def test_a_refused_act_leaves_no_audit_record(reception, doctor, patient):
    walk_in(reception, patient, doctor)
    before = len(outbox())
    with pytest.raises(Conflict):
        service.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor.id})
    with pytest.raises(NotFound):
        service.set_status(reception, 9, "SKIPPED")
    db.session.rollback()
    assert len(outbox()) == before


# ---- the board is built once per change ------------------------------------------------


def test_a_poll_waits_for_the_board_another_poll_is_building(reception, doctor):
    make_slots(doctor)
    service.walk_in(reception, {"patient_id": make_patient().id, "doctor_id": doctor.id})
    commit()
    state = board.board_state()
    assert state.cached is None
    assert store.claim_board_build(TODAY, state.version)  # another screen is building it
    redis_store.client.set(f"q:{TODAY}:board:{state.version}", '{"built":"elsewhere"}')

    assert board.board_body(state) == '{"built":"elsewhere"}'


def test_a_poll_builds_the_board_itself_when_the_other_builder_never_finishes(reception, doctor):
    make_slots(doctor)
    service.walk_in(reception, {"patient_id": make_patient().id, "doctor_id": doctor.id})
    commit()
    state = board.board_state()
    assert store.claim_board_build(TODAY, state.version)

    body = board.board_body(state)

    assert '"display":"001"' in body
    assert store.probe(TODAY).board == body


def test_a_call_lost_before_the_database_puts_the_token_back_in_its_place(reception, doctor):
    """Redis handed out token 1 but the request died before PostgreSQL heard of it: the
    next call finds the doctor 'busy' in Redis only, puts token 1 back, and calls it."""
    make_slots(doctor)
    first = service.walk_in(reception, {"patient_id": make_patient().id, "doctor_id": doctor.id})
    commit()
    second = service.walk_in(reception, {"patient_id": make_patient().id, "doctor_id": doctor.id})
    commit()
    lost = store.call(TODAY, doctor.id)  # the half-done call
    assert lost.token_number == first.token_number

    called = service.call_next(doctor)
    commit()

    assert called.token_number == first.token_number
    waiting = redis_store.client.zrange(f"q:{TODAY}:wait:{doctor.id}", 0, -1)
    assert [int(m) for m in waiting] == [second.token_number]
