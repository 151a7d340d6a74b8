"""Several desks at once on one diary: real threads, real commits, real PostgreSQL."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import select, text

from qure.auth.models import User
from qure.core.errors import DomainError
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.scheduling import service
from qure.scheduling.models import ACTIVE_APPOINTMENT, Appointment, Slot
from tests.helpers import (
    NOW,
    TODAY,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
    run_together,
)

pytestmark = [pytest.mark.concurrency, pytest.mark.usefixtures("clinic_now")]

TOMORROW = TODAY + timedelta(days=1)


def all_slots(doctor_id: int | None = None) -> list[Slot]:
    db.session.rollback()
    db.session.expire_all()
    query = select(Slot).order_by(Slot.start_at, Slot.id)
    if doctor_id is not None:
        query = query.where(Slot.doctor_id == doctor_id)
    return list(db.session.scalars(query))


def all_appointments() -> list[Appointment]:
    db.session.rollback()
    db.session.expire_all()
    return list(db.session.scalars(select(Appointment).order_by(Appointment.id)))


def overlapping_pairs() -> int:
    db.session.rollback()
    return db.session.scalar(
        text(
            "SELECT count(*) FROM slots a JOIN slots b ON a.doctor_id = b.doctor_id "
            "AND a.id < b.id AND tstzrange(a.start_at, a.end_at) && tstzrange(b.start_at, b.end_at)"
        )
    )


def events(action: str) -> list[dict]:
    db.session.rollback()
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [r.payload for r in rows if r.payload["action"] == action]


def split(results: list) -> tuple[list, list]:
    """(successes, DomainErrors); anything else (a database error, a deadlock) fails."""
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    unexpected = [r for r in lost if not isinstance(r, DomainError)]
    assert not unexpected, [repr(r) for r in unexpected]
    return won, lost


def test_twenty_desks_book_one_slot_at_once(app, reception, doctor):
    (slot,) = make_slots(doctor, TOMORROW, "09:00", "09:30", 30)
    patient_ids = [make_patient(reception).id for _ in range(20)]

    def booking(patient_id: int):
        def job(actor):
            return service.book(actor, {"patient_id": patient_id, "slot_id": slot.id}).id

        return job

    results = run_together(app, reception.id, [booking(p) for p in patient_ids], now=NOW)
    won, lost = split(results)
    assert len(won) == 1, results
    assert len(lost) == 19, results
    assert {(e.status, e.code) for e in lost} == {(409, "slot_taken")}
    (appointment,) = all_appointments()
    assert appointment.id == won[0]
    assert appointment.slot_id == slot.id
    assert appointment.status == "SCHEDULED"
    assert patient_ids[results.index(won[0])] == appointment.patient_id
    assert [s.status for s in all_slots()] == ["BOOKED"]
    assert len(events("APPOINTMENT_BOOKED")) == 1


def test_one_patient_booked_with_ten_doctors_at_the_same_time(app, reception):
    doctors = [make_user(Role.DOCTOR) for _ in range(10)]
    slot_ids = [make_slots(d, TOMORROW, "09:00", "09:30", 30)[0].id for d in doctors]
    patient_id = make_patient(reception).id

    def booking(slot_id: int):
        def job(actor):
            return service.book(actor, {"patient_id": patient_id, "slot_id": slot_id}).id

        return job

    results = run_together(app, reception.id, [booking(s) for s in slot_ids], now=NOW)
    won, lost = split(results)
    assert len(won) == 1, results
    assert len(lost) == 9, results
    assert {(e.status, e.code) for e in lost} == {(409, "patient_double_booked")}
    assert all(e.details == {"appointment_id": won[0]} for e in lost), [e.details for e in lost]
    (appointment,) = all_appointments()
    assert appointment.id == won[0]
    assert appointment.patient_id == patient_id
    booked = [s.id for s in all_slots() if s.status == "BOOKED"]
    assert booked == [appointment.slot_id]
    assert sorted(s.status for s in all_slots()) == ["BOOKED"] + ["OPEN"] * 9


@pytest.mark.parametrize("durations", [(15, 15), (30, 30), (15, 30)])
def test_two_bulk_creations_for_one_doctor_at_once(app, doctor, durations):
    def bulk(minutes: int):
        def job(actor):
            result = service.bulk_create(
                actor,
                {
                    "start_date": TOMORROW,
                    "end_date": TOMORROW + timedelta(days=6),
                    "start_time": time(9, 0),
                    "end_time": time(17, 0),
                    "duration_minutes": minutes,
                    "breaks": [(time(13, 0), time(14, 0))],
                },
            )
            return result["created"], result["skipped"]

        return job

    results = run_together(app, doctor.id, [bulk(m) for m in durations], now=NOW)
    won, _ = split(results)
    assert len(won) == 2, results
    slots = all_slots(doctor.id)
    assert overlapping_pairs() == 0
    assert sum(created for created, _ in won) == len(slots)
    if durations[0] == durations[1]:
        # One creation's worth of slots: 7 days of 09:00-13:00 and 14:00-17:00.
        per_day = 7 * 60 // durations[0]
        assert len(slots) == 7 * per_day
        assert sorted(won) == [(0, 7 * per_day), (7 * per_day, 0)]
        assert len(events("SLOTS_CREATED")) == 1
    else:
        # Whichever went first, every minute of the working hours is covered exactly once.
        minutes = sum(s.duration_minutes for s in slots)
        assert minutes == 7 * 7 * 60
        assert len(events("SLOTS_CREATED")) in (1, 2)


def test_two_bulk_creations_repeated(app, doctor):
    """The race again and again from empty: the outcome never depends on who wins."""

    def bulk(actor):
        return service.bulk_create(
            actor,
            {
                "start_date": TOMORROW,
                "end_date": TOMORROW,
                "start_time": time(9, 0),
                "end_time": time(13, 0),
                "duration_minutes": 15,
            },
        )["created"]

    for _attempt in range(5):
        results = run_together(app, doctor.id, [bulk, bulk, bulk], now=NOW)
        won, _ = split(results)
        assert sorted(won) == [0, 0, 16], results
        assert len(all_slots(doctor.id)) == 16
        assert overlapping_pairs() == 0
        db.session.execute(OutboxEvent.__table__.delete())
        db.session.execute(Slot.__table__.delete())
        db.session.commit()


def test_two_appointments_rescheduled_into_one_slot_at_once(app, reception, doctor):
    slots = make_slots(doctor, TOMORROW, "09:00", "10:30", 30)
    first = make_appointment(make_patient(reception), slots[0], reception)
    second = make_appointment(make_patient(reception), slots[1], reception)
    target = slots[2]

    def move(appointment_id: int):
        def job(actor):
            return service.reschedule(actor, appointment_id, {"slot_id": target.id}).id

        return job

    results = run_together(app, reception.id, [move(first.id), move(second.id)], now=NOW)
    won, lost = split(results)
    assert len(won) == 1, results
    (refusal,) = lost
    assert refusal.code == "slot_taken"
    winner = won[0]
    loser = second.id if winner == first.id else first.id
    appointments = {a.id: a for a in all_appointments()}
    assert appointments[winner].slot_id == target.id
    assert appointments[loser].slot_id in (slots[0].id, slots[1].id)
    assert appointments[loser].slot_id == (slots[0].id if loser == first.id else slots[1].id)
    statuses = {s.id: s.status for s in all_slots()}
    freed = slots[0].id if winner == first.id else slots[1].id
    assert statuses[target.id] == "BOOKED"
    assert statuses[freed] == "OPEN"
    assert statuses[appointments[loser].slot_id] == "BOOKED"
    active = [a for a in appointments.values() if a.status in ACTIVE_APPOINTMENT]
    assert sorted(a.slot_id for a in active) == sorted([target.id, appointments[loser].slot_id])
    assert len(events("APPOINTMENT_RESCHEDULED")) == 1


def test_booking_and_blocking_one_slot_at_once(app, reception, doctor):
    """The front desk books while the doctor blocks: either the booking or the block wins,
    never a blocked slot with an appointment in it."""
    (slot,) = make_slots(doctor, TOMORROW, "09:00", "09:30", 30)
    patient_id = make_patient(reception).id
    doctor_id = doctor.id

    def book(actor):
        return service.book(actor, {"patient_id": patient_id, "slot_id": slot.id}).id

    def block(_actor):
        slot_doctor = db.session.get(User, doctor_id)
        return service.set_blocked(slot_doctor, slot.id, True, "Leave").status

    for _attempt in range(3):
        results = run_together(app, reception.id, [book, block], now=NOW)
        won, lost = split(results)
        assert len(won) == 1, results
        (refusal,) = lost
        assert refusal.code in ("slot_blocked", "slot_booked")
        (stored,) = all_slots()
        active = [a for a in all_appointments() if a.status in ACTIVE_APPOINTMENT]
        if refusal.code == "slot_booked":
            assert stored.status == "BOOKED"
            assert [a.id for a in active] == won
        else:
            assert stored.status == "BLOCKED"
            assert stored.block_reason == "Leave"
            assert active == []
        # Again from scratch: the race may go either way, the outcome may not.
        db.session.execute(Appointment.__table__.delete())
        db.session.execute(Slot.__table__.update().values(status="OPEN", block_reason=None))
        db.session.commit()
