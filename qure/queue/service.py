"""The day's queue: check-in, walk-in, call next, token moves, close-day.

Every change writes `queue_entries` (and the audit outbox) in the caller's transaction.
Redis follows: token numbers come from its per-day counter, a new or moved token is
published to it once the transaction commits, and Call next takes the first token there
atomically, then confirms it against the locked row (undoing the Redis side if the
database refuses or the transaction does not commit).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.db import after_commit, constraint_name, get_or_none, on_rollback
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.queue import store
from qure.queue.loading import card, display, ensure_loaded, reload
from qure.queue.models import (
    ACTIVE_TOKEN,
    TIER_ARRIVAL,
    TIER_ON_TIME,
    TIER_RECALLED,
    TIER_URGENT,
    QueueEntry,
    TokenKind,
    TokenStatus,
)
from qure.queue.store import QueueUnavailable
from qure.scheduling import appointments
from qure.scheduling.doctors import get_doctor, on_duty_doctor_ids
from qure.scheduling.models import ARRIVED, Appointment, AppointmentStatus
from qure.visits.models import Visit, VisitStatus

FRONT_DESK = (Role.ADMIN, Role.RECEPTION)  # check-in and walk-in
CALLERS = (Role.ADMIN, Role.DOCTOR)  # call next
MOVERS = (Role.ADMIN, Role.DOCTOR, Role.RECEPTION)  # token status
# Reception may skip, mark no-show and recall.
RECEPTION_MOVES = frozenset({TokenStatus.SKIPPED, TokenStatus.NO_SHOW, TokenStatus.WAITING})
MOVES = {
    TokenStatus.WAITING: frozenset(
        {TokenStatus.WITH_DOCTOR, TokenStatus.SKIPPED, TokenStatus.NO_SHOW}
    ),
    TokenStatus.WITH_DOCTOR: frozenset({TokenStatus.COMPLETED, TokenStatus.SKIPPED}),
    TokenStatus.SKIPPED: frozenset({TokenStatus.WAITING, TokenStatus.NO_SHOW}),
}
APPOINTMENT_AFTER = {
    TokenStatus.WITH_DOCTOR: AppointmentStatus.IN_CONSULTATION,
    TokenStatus.COMPLETED: AppointmentStatus.COMPLETED,
    TokenStatus.NO_SHOW: AppointmentStatus.NO_SHOW,
    TokenStatus.SKIPPED: AppointmentStatus.CHECKED_IN,
    TokenStatus.WAITING: AppointmentStatus.CHECKED_IN,
}
ACTION_OF = {
    TokenStatus.WITH_DOCTOR: "TOKEN_CALLED",
    TokenStatus.COMPLETED: "TOKEN_COMPLETED",
    TokenStatus.SKIPPED: "TOKEN_SKIPPED",
    TokenStatus.NO_SHOW: "TOKEN_NO_SHOW",
    TokenStatus.WAITING: "TOKEN_RECALLED",
}
# What the day's queue lists as done (a skipped token may still be recalled).
DONE = (TokenStatus.SKIPPED, TokenStatus.NO_SHOW, TokenStatus.COMPLETED)
MAX_TOKEN = 99_999
# What a token's page and answer show of it, loaded with it (the models raise on a lazy
# load): joined into the token's own statement (a locked read locks only `queue_entries`).
SHOWN = (
    joinedload(QueueEntry.patient, innerjoin=True),
    joinedload(QueueEntry.doctor, innerjoin=True),
)
ATTEMPTS = 6


# ---- small pieces --------------------------------------------------------------------------


def snapshot(entry: QueueEntry) -> dict[str, Any]:
    return {
        "token_number": entry.token_number,
        "day": entry.day.isoformat(),
        "doctor_id": entry.doctor_id,
        "patient_id": entry.patient_id,
        "appointment_id": entry.appointment_id,
        "kind": entry.kind,
        "urgent": entry.urgent,
        "urgent_reason": entry.urgent_reason,
        "status": entry.status,
    }


def _publish(day: date, entry: QueueEntry) -> None:
    """After the commit: show the token's new state in Redis."""
    shown, status, doctor_id = card(entry), entry.status, entry.doctor_id
    if status == TokenStatus.WAITING:
        after_commit(partial(store.enqueue, day, shown))
    else:
        after_commit(partial(store.set_status, day, doctor_id, shown.token_number, status))


def _urgency(urgent: bool | None, reason: str | None) -> tuple[bool, str | None]:
    """Whether a token is urgent, and why: an urgent one needs its reason."""
    if not urgent:
        return False, None
    why = plain_text(reason, "urgent_reason", 200)
    if not why:
        raise InvalidInput(
            "urgent_reason: say why it is urgent",
            fields={"urgent_reason": "Say why the patient is urgent."},
        )
    return True, why


def _new_token_number(day: date) -> int:
    for _ in range(3):
        number = store.next_token(day)
        if number is not None:
            if number > MAX_TOKEN:
                raise Conflict("The day's token numbers are used up.", "tokens_exhausted")
            return number
        reload(day)
    raise QueueUnavailable("The live queue is unavailable for a moment; try again.")


def _lock_patient_day(patient_id: int, day: date) -> None:
    # One patient's check-ins and walk-ins go one at a time, so a second one is refused
    # before it spends a token number.
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"queue:{day.isoformat()}:{patient_id}"},
    )


def active_token(patient_id: int, day: date) -> QueueEntry | None:
    """The patient's token of the day still in the queue (waiting, with a doctor or
    skipped), if any."""
    query = select(QueueEntry).where(
        QueueEntry.day == day,
        QueueEntry.patient_id == patient_id,
        QueueEntry.status.in_(ACTIVE_TOKEN),
    )
    return db.session.scalars(query).first()


def token_for_appointment(appointment_id: int) -> QueueEntry | None:
    """The token an appointment was checked in with, if it was."""
    query = select(QueueEntry).where(QueueEntry.appointment_id == appointment_id)
    return db.session.scalars(query).first()


def _already_queued(entry: QueueEntry) -> Conflict:
    return Conflict(
        f"The patient already holds token {display(entry.token_number)} today.",
        "already_in_queue",
        details={"token_number": entry.token_number},
    )


def _issue(entry: QueueEntry, day: date) -> QueueEntry:
    """Give the entry the day's next number and insert it; a number PostgreSQL already
    holds (the counter fell behind during a reload) moves the counter on and tries again."""
    for _ in range(3):
        entry.token_number = _new_token_number(day)
        try:
            with db.session.begin_nested():
                db.session.add(entry)
            return entry
        except IntegrityError as exc:
            name = constraint_name(exc)
            if name == "uq_queue_day_token":
                highest = db.session.scalar(
                    select(func.max(QueueEntry.token_number)).where(QueueEntry.day == day)
                )
                store.raise_counter(day, highest or 0)
                continue
            if name == "uq_queue_patient_active":
                raise _already_queued(active_token(entry.patient_id, day)) from None
            if name == "uq_queue_appointment":
                raise Conflict(
                    "This appointment is already checked in.", "already_checked_in"
                ) from None
            raise
    raise QueueUnavailable("The live queue is unavailable for a moment; try again.")


# ---- check-in and walk-in -------------------------------------------------------------------


def check_in(actor: User, appointment_id: int, data: dict[str, Any] | None = None) -> QueueEntry:
    """Check in today's SCHEDULED appointment and give the patient a token.

    An appointment patient who arrives no later than GRACE_MINUTES after the slot's start
    keeps the slot's place (slot order); a later one queues by arrival; `urgent` (with
    `urgent_reason`) goes first. Raises NotFound, Conflict `already_checked_in`,
    `appointment_not_scheduled`, `appointment_not_today`, `already_in_queue`.
    """
    data = data or {}
    urgent, urgent_reason = _urgency(data.get("urgent"), data.get("urgent_reason"))
    appointment = appointments.locked_appointment(appointment_id, with_people=True)
    if appointment.status in ARRIVED:
        raise Conflict("This appointment is already checked in.", "already_checked_in")
    if appointment.status != AppointmentStatus.SCHEDULED:
        raise Conflict(
            f"This appointment is {appointment.status.lower().replace('_', ' ')}.",
            "appointment_not_scheduled",
        )
    now = clock.now()
    day = clock.clinic_day(now)
    if clock.clinic_day(appointment.start_at) != day:
        raise Conflict(
            "Only today's appointments can be checked in.",
            "appointment_not_today",
            details={"date": clock.clinic_day(appointment.start_at).isoformat()},
        )
    _lock_patient_day(appointment.patient_id, day)
    held = active_token(appointment.patient_id, day)
    if held:
        raise _already_queued(held)
    grace = timedelta(minutes=int(_config("GRACE_MINUTES")))
    on_time = now <= appointment.start_at + grace
    if urgent:
        tier, sort_at = TIER_URGENT, now
    elif on_time:
        tier, sort_at = TIER_ON_TIME, appointment.start_at
    else:
        tier, sort_at = TIER_ARRIVAL, now
    entry = QueueEntry(
        day=day,
        doctor_id=appointment.doctor_id,
        doctor=appointment.doctor,
        patient_id=appointment.patient_id,
        patient=appointment.patient,
        appointment_id=appointment.id,
        kind=TokenKind.APPOINTMENT,
        urgent=urgent,
        urgent_reason=urgent_reason,
        complaint=appointment.reason,
        status=TokenStatus.WAITING,
        tier=tier,
        sort_at=sort_at,
        checked_in_at=now,
        status_changed_at=now,
        created_by_id=actor.id,
    )
    _issue(entry, day)
    appointments.move(
        actor,
        appointment,
        AppointmentStatus.CHECKED_IN,
        {"token_number": entry.token_number, "late": not on_time},
        checked_in_at=now,
    )
    audit.record(actor, "TOKEN_ISSUED", ("token", entry.id), None, snapshot(entry))
    _publish(day, entry)
    return entry


def _least_busy_doctor(day: date) -> int:
    on_duty = on_duty_doctor_ids(day)
    if not on_duty:
        raise Conflict("No doctor has slots today; choose a doctor.", "no_doctor_on_duty")
    rows = db.session.execute(
        select(QueueEntry.doctor_id, QueueEntry.status, func.count())
        .where(QueueEntry.day == day, QueueEntry.doctor_id.in_(on_duty))
        .group_by(QueueEntry.doctor_id, QueueEntry.status)
    ).all()
    waiting: Counter[int] = Counter()
    total: Counter[int] = Counter()
    for doctor_id, status, count in rows:
        total[doctor_id] += count
        if status == TokenStatus.WAITING:
            waiting[doctor_id] += count
    return min(on_duty, key=lambda d: (waiting[d], total[d], d))


def walk_in(actor: User, data: dict[str, Any]) -> QueueEntry:
    """Give a walk-in patient a token: {patient_id, doctor_id?, complaint?, urgent?,
    urgent_reason?}. Without a doctor the token goes to the on-duty doctor (one with slots
    today) with the fewest waiting. Raises InvalidInput (fields), Conflict
    `already_in_queue`, `no_doctor_on_duty`."""
    errors: dict[str, str] = {}
    patient = doctor = complaint = None
    urgent, urgent_reason = False, None
    for step in ("patient", "doctor", "complaint", "urgent"):
        try:
            if step == "patient":
                patient = appointments.bookable_patient(data.get("patient_id"))
            elif step == "doctor" and data.get("doctor_id") is not None:
                doctor = get_doctor(data.get("doctor_id"))
            elif step == "complaint":
                complaint = plain_text(data.get("complaint"), "complaint", 500)
            elif step == "urgent":
                urgent, urgent_reason = _urgency(data.get("urgent"), data.get("urgent_reason"))
        except InvalidInput as exc:
            errors.update(exc.fields)
    if errors:
        raise InvalidInput.naming(errors)
    now = clock.now()
    day = clock.clinic_day(now)
    _lock_patient_day(patient.id, day)
    held = active_token(patient.id, day)
    if held:
        raise _already_queued(held)
    if doctor is None:
        doctor = db.session.get(User, _least_busy_doctor(day))
    entry = QueueEntry(
        day=day,
        doctor_id=doctor.id,
        doctor=doctor,
        patient_id=patient.id,
        patient=patient,
        kind=TokenKind.WALK_IN,
        urgent=urgent,
        urgent_reason=urgent_reason,
        complaint=complaint,
        status=TokenStatus.WAITING,
        tier=TIER_URGENT if urgent else TIER_ARRIVAL,
        sort_at=now,
        checked_in_at=now,
        status_changed_at=now,
        created_by_id=actor.id,
    )
    _issue(entry, day)
    db.session.flush()
    audit.record(actor, "TOKEN_ISSUED", ("token", entry.id), None, snapshot(entry))
    _publish(day, entry)
    return entry


# ---- calling and moving tokens --------------------------------------------------------------


def queue_doctor(actor: User, doctor_id: Any) -> User:
    """Whose queue `actor` works: a DOCTOR their own (Forbidden for another's), an ADMIN
    the doctor named (InvalidInput when none is)."""
    if actor.role == Role.DOCTOR:
        if doctor_id not in (None, actor.id):
            raise Forbidden("A doctor calls only their own queue.", "not_your_queue")
        return actor
    if actor.role != Role.ADMIN:
        raise Forbidden("Your role may not call patients.", "forbidden")
    if doctor_id is None:
        raise InvalidInput(
            "doctor_id: name the doctor", fields={"doctor_id": "Name the doctor whose queue."}
        )
    return get_doctor(doctor_id)


def _entry(day: date, token_number: int, lock: bool = False) -> QueueEntry:
    # The patient and doctor are inner-joined; a locked read locks the token's row only.
    query = (
        select(QueueEntry)
        .where(QueueEntry.day == day, QueueEntry.token_number == token_number)
        .options(*SHOWN)
    )
    if lock:
        query = query.with_for_update(of=QueueEntry).execution_options(populate_existing=True)
    entry = db.session.scalars(query).first() if 0 < token_number <= MAX_TOKEN else None
    if entry is None:
        raise NotFound(f"There is no token {token_number} today.", "token_not_found")
    return entry


def _find(day: date, token_number: int) -> QueueEntry | None:
    try:
        return _entry(day, token_number)
    except NotFound:
        return None


def _with_doctor(day: date, doctor_id: int) -> QueueEntry | None:
    query = select(QueueEntry).where(
        QueueEntry.day == day,
        QueueEntry.doctor_id == doctor_id,
        QueueEntry.status == TokenStatus.WITH_DOCTOR,
    )
    return db.session.scalars(query).first()


def _busy(current: QueueEntry) -> Conflict:
    return Conflict(
        f"Token {display(current.token_number)} is still with the doctor; complete or skip it "
        "first.",
        "patient_with_doctor",
        details={"token_number": current.token_number},
    )


def _requeue_missing(day: date, doctor_id: int) -> int:
    """Put back into Redis the doctor's WAITING tokens it lacks (a publish that never
    arrived); rows another call holds locked are left to that call. Returns how many."""
    rows = list(
        db.session.scalars(
            select(QueueEntry)
            .where(
                QueueEntry.day == day,
                QueueEntry.doctor_id == doctor_id,
                QueueEntry.status == TokenStatus.WAITING,
            )
            .with_for_update(skip_locked=True, read=True)
            .options(selectinload(QueueEntry.patient))
        )
    )
    for entry in rows:
        store.enqueue(day, card(entry))
    return len(rows)


def _move(actor: User | None, entry: QueueEntry, wanted: str, why: str | None = None) -> None:
    """The one place a token's status changes: `wanted` must be a move MOVES allows from
    the current status (Conflict `invalid_transition` otherwise). Stamps the move's times,
    moves the token's appointment along (through scheduling) and writes the audit
    record; publishing to Redis is the caller's (a call has already taken the token there).

    A call is made inside a savepoint: the partial unique index of one current token per
    doctor may refuse it (IntegrityError), and that must not end the whole transaction."""
    if wanted not in MOVES.get(entry.status, frozenset()):
        raise _cannot_move(entry.status, wanted)
    before = snapshot(entry)
    now = clock.now()
    if wanted == TokenStatus.WITH_DOCTOR:
        # begin_nested() flushes what is pending before it starts, so the change is made
        # inside it.
        with db.session.begin_nested():
            entry.status, entry.called_at, entry.status_changed_at = wanted, now, now
            db.session.flush()
    else:
        entry.status, entry.status_changed_at = wanted, now
    if wanted == TokenStatus.COMPLETED:
        entry.completed_at = now
    if wanted == TokenStatus.WAITING:
        entry.tier, entry.sort_at = TIER_RECALLED, now
    if wanted == TokenStatus.NO_SHOW and why:
        entry.no_show_reason = why
    db.session.flush()
    old, new = audit.diff(before, snapshot(entry))
    audit.record(
        actor, ACTION_OF[wanted], ("token", entry.id), old, {**new, "reason": why} if why else new
    )
    if entry.appointment_id is not None:
        appointments.move(actor, entry.appointment_id, APPOINTMENT_AFTER[wanted])


def call_next(actor: User, doctor_id: int | None = None, token_number: int | None = None):
    """Call the first waiting token of a doctor's queue (or the token named): it becomes
    WITH_DOCTOR and the doctor's current token. Returns the entry.

    Redis hands out the token atomically; the locked row confirms it. Of two calls at the
    same moment one gets the token and the other Conflict `patient_with_doctor`. Raises
    Forbidden (another doctor's queue), NotFound `queue_empty`, Conflict
    `patient_with_doctor` / `invalid_transition`.
    """
    doctor = queue_doctor(actor, doctor_id)
    day = clock.today()
    # One call at a time per doctor: a second call waits for the first to commit, then
    # finds its patient with the doctor (409), and never reads a current token that the
    # database does not show yet as gone.
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"call:{day.isoformat()}:{doctor.id}"},
    )
    ensure_loaded(day)
    healed = False
    for _ in range(ATTEMPTS):
        result = store.call(day, doctor.id, token_number)
        if result.outcome == "unbuilt":
            reload(day)
            continue
        if result.outcome == "busy":
            current = _with_doctor(day, doctor.id)
            if current is not None:
                raise _busy(current)
            named = _find(day, result.token_number)
            store.clear_current(
                day, doctor.id, result.token_number, named.status if named else "GONE"
            )
            if named is not None and named.status == TokenStatus.WAITING:
                # A call that never reached the database: the token goes back in its place.
                store.enqueue(day, card(named))
            continue
        if result.outcome in ("empty", "missing"):
            if token_number is not None:
                wanted = _entry(day, token_number)
                if wanted.status != TokenStatus.WAITING or wanted.doctor_id != doctor.id:
                    raise _cannot_move(wanted.status, TokenStatus.WITH_DOCTOR)
            if not healed and _requeue_missing(day, doctor.id):
                healed = True
                continue
            raise NotFound("Nobody is waiting for this doctor.", "queue_empty")
        entry = _confirm_call(actor, day, doctor, result)
        if entry is not None:
            return entry
    raise QueueUnavailable("The queue is busy; try again.", "queue_busy")


def _confirm_call(actor: User, day: date, doctor: User, result: store.CallResult):
    """Make the token Redis handed out WITH_DOCTOR in PostgreSQL; None when the row says
    the token was not waiting after all (Redis is corrected and the caller tries again)."""
    try:
        entry = _entry(day, result.token_number, lock=True)
    except NotFound:
        store.uncall(day, doctor.id, result, restore=False)
        return None
    if entry.status != TokenStatus.WAITING or entry.doctor_id != doctor.id:
        store.uncall(day, doctor.id, result, restore=False)
        if entry.status != TokenStatus.WAITING:
            store.set_status(day, entry.doctor_id, entry.token_number, entry.status)
        return None
    # Registered before the change: whatever refuses it from here on (the index of one
    # current token per doctor, the appointment's move, a later step of the same request)
    # ends with the token back in its place in Redis.
    on_rollback(partial(store.uncall, day, doctor.id, result))
    try:
        _move(actor, entry, TokenStatus.WITH_DOCTOR)
    except IntegrityError as exc:
        # Undone at once too: a caller may carry on after the Conflict and commit (running
        # the undo twice on a rollback is harmless, the call lock keeps others out).
        store.uncall(day, doctor.id, result)
        if constraint_name(exc) == "uq_queue_doctor_current":
            current = _with_doctor(day, doctor.id)
            if current is not None:
                raise _busy(current) from None
        raise
    return entry


def _cannot_move(current: str, wanted: str) -> Conflict:
    return Conflict(
        f"A {current.lower().replace('_', ' ')} token cannot become "
        f"{wanted.lower().replace('_', ' ')}.",
        "invalid_transition",
        details={"from": current, "to": wanted},
    )


def set_status(actor: User, token_number: int, status: Any, reason: Any = None) -> QueueEntry:
    """Move one of today's tokens: WAITING -> WITH_DOCTOR | SKIPPED |
    NO_SHOW; WITH_DOCTOR -> COMPLETED | SKIPPED; SKIPPED -> WAITING (recall: to the head
    of the queue) | NO_SHOW. Reception may skip, mark no-show and recall; a doctor moves
    only their own queue's tokens. A token whose visit is still open completes only
    through the visit (which needs a diagnosis). `reason` (optional, up to 200
    characters) goes into the audit, and a no-show's is kept on the token.

    Raises InvalidInput (unknown status, reason too long), NotFound, Forbidden, Conflict
    `invalid_transition` / `patient_with_doctor` / `visit_open` (the visit's id in
    `details`)."""
    wanted = str(status or "").upper()
    if wanted not in tuple(TokenStatus):
        raise InvalidInput(
            "status: unknown", fields={"status": "One of " + ", ".join(TokenStatus) + "."}
        )
    why = plain_text(reason, "reason", 200)
    day = clock.today()
    # A call takes the doctor's call lock before any row lock (see call_next), so the row
    # is not locked here for that move: call_next confirms the token under its own lock.
    entry = _entry(day, token_number, lock=wanted != TokenStatus.WITH_DOCTOR)
    if actor.role == Role.RECEPTION and wanted not in RECEPTION_MOVES:
        raise Forbidden("Reception may skip, mark no-show or recall.", "forbidden")
    if actor.role == Role.DOCTOR and entry.doctor_id != actor.id:
        raise Forbidden("A doctor moves only their own queue's tokens.", "not_your_queue")
    if actor.role not in MOVERS:
        raise Forbidden("Your role may not move tokens.", "forbidden")
    if wanted not in MOVES.get(entry.status, frozenset()):
        raise _cannot_move(entry.status, wanted)
    if wanted == TokenStatus.WITH_DOCTOR:
        return call_next(actor, entry.doctor_id, entry.token_number)
    if wanted == TokenStatus.COMPLETED:
        _no_open_visit(entry)
    _move(actor, entry, wanted, why)
    _publish(day, entry)
    return entry


def open_visit_ids(entries: list[QueueEntry]) -> dict[int, int]:
    """The visit still in progress for each of these tokens: {entry id: visit id}, in one
    query (through the index of open visits per patient).

    The one place the queue reads another domain's rows, on purpose: visits depends on
    the queue (its service asks for tokens and completes them), so the queue cannot ask
    the visits service without an import circle; it reads only the visits model, which
    imports nothing of the queue. The refusal belongs here, beside the token's
    transition table, so that every caller of `set_status` gets it."""
    if not entries:
        return {}
    rows = db.session.execute(
        select(Visit.queue_entry_id, Visit.id).where(
            Visit.patient_id.in_({e.patient_id for e in entries}),
            Visit.status == VisitStatus.IN_PROGRESS,
            Visit.queue_entry_id.in_([e.id for e in entries]),
        )
    )
    return {entry_id: visit_id for entry_id, visit_id in rows}


def _no_open_visit(entry: QueueEntry) -> None:
    visit_id = open_visit_ids([entry]).get(entry.id)
    if visit_id is not None:
        raise Conflict(
            f"Token {display(entry.token_number)}'s visit is still open: complete the visit "
            "(it needs a diagnosis) and the token completes with it.",
            "visit_open",
            details={"visit_id": visit_id, "token_number": entry.token_number},
        )


def complete_for_visit(actor: User, entry_id: int) -> QueueEntry | None:
    """Completing a visit completes its token (and the token's appointment) when the
    token is still WITH_DOCTOR; any other state is left as it is. Returns the entry."""
    entry = get_or_none(QueueEntry, entry_id, lock=True, options=SHOWN)
    if entry is None or entry.status != TokenStatus.WITH_DOCTOR:
        return entry
    _move(actor, entry, TokenStatus.COMPLETED)
    _publish(entry.day, entry)
    return entry


def mark_urgent(actor: User, token_number: int, reason: Any) -> QueueEntry:
    """Flag a WAITING token urgent (with a reason): it moves ahead of everyone but the
    recalled. Raises InvalidInput, NotFound, Conflict `invalid_transition`."""
    try:
        _, why = _urgency(True, reason)
    except InvalidInput:
        raise InvalidInput(
            "reason: say why it is urgent", fields={"reason": "Say why the patient is urgent."}
        ) from None
    day = clock.today()
    entry = _entry(day, token_number, lock=True)
    if entry.status != TokenStatus.WAITING:
        raise Conflict(
            "Only a waiting token can be marked urgent.",
            "invalid_transition",
            details={"from": entry.status},
        )
    if entry.urgent:
        raise Conflict("This token is already urgent.", "already_urgent")
    before = snapshot(entry)
    entry.urgent, entry.urgent_reason = True, why
    if entry.tier > TIER_URGENT:
        entry.tier, entry.sort_at = TIER_URGENT, clock.now()
    db.session.flush()
    old, new = audit.diff(before, snapshot(entry))
    audit.record(actor, "TOKEN_MARKED_URGENT", ("token", entry.id), old, new)
    _publish(day, entry)
    return entry


# ---- reading --------------------------------------------------------------------------------


def position(entry: QueueEntry) -> int | None:
    """1 for the next patient to be called; None unless the token is WAITING. Read from
    the live order in Redis, or counted in PostgreSQL when Redis does not list it."""
    if entry.status != TokenStatus.WAITING:
        return None
    live = store.rank(entry.day, entry.doctor_id, entry.token_number)
    if live is not None:
        return live
    ahead = db.session.scalar(
        select(func.count()).where(
            QueueEntry.day == entry.day,
            QueueEntry.doctor_id == entry.doctor_id,
            QueueEntry.status == TokenStatus.WAITING,
            tuple_(QueueEntry.tier, QueueEntry.sort_at, QueueEntry.token_number)
            < tuple_(entry.tier, entry.sort_at, entry.token_number),
        )
    )
    return (ahead or 0) + 1


def doctors_of_day(day: date) -> list[User]:
    """The doctors of a clinic day: on duty (with slots) or holding tokens, by name."""
    ids = set(on_duty_doctor_ids(day))
    ids.update(
        db.session.scalars(
            select(QueueEntry.doctor_id).where(QueueEntry.day == day).group_by(QueueEntry.doctor_id)
        )
    )
    if not ids:
        return []
    query = select(User).where(User.id.in_(ids)).order_by(User.full_name, User.id)
    return list(db.session.scalars(query))


def today(doctor_id: int | None = None, day: date | None = None) -> dict[str, Any]:
    """The day's queue per doctor: {date, doctors: [{doctor, current, waiting (in queue
    order, each with its position), done (skipped, no-show, completed), counts}]}. The
    waiting order is the live order in Redis."""
    day = day or clock.today()
    doctors = doctors_of_day(day)
    if doctor_id is not None:
        doctors = [d for d in doctors if d.id == doctor_id]
        if not doctors:
            get_doctor(doctor_id)  # an unknown doctor is a field error
    ensure_loaded(day)
    entries = list(
        db.session.scalars(
            select(QueueEntry)
            .where(QueueEntry.day == day, QueueEntry.doctor_id.in_([d.id for d in doctors]))
            .options(joinedload(QueueEntry.patient))
            .order_by(QueueEntry.tier, QueueEntry.sort_at, QueueEntry.token_number)
        )
    )
    order = store.waiting_order(day, [d.id for d in doctors])
    result = []
    for doctor in doctors:
        mine = [e for e in entries if e.doctor_id == doctor.id]
        waiting = [e for e in mine if e.status == TokenStatus.WAITING]
        rank = {n: i for i, n in enumerate(order.get(doctor.id, []))}
        # Redis gives the live order; a row it does not list yet keeps the database order.
        waiting.sort(key=lambda e: (e.token_number not in rank, rank.get(e.token_number, 0)))
        for i, e in enumerate(waiting, start=1):
            e.position = i
        current = next((e for e in mine if e.status == TokenStatus.WITH_DOCTOR), None)
        counts = Counter(e.status for e in mine)
        result.append(
            {
                "doctor": doctor,
                "current": current,
                "waiting": waiting,
                "done": [e for e in mine if e.status in DONE],
                "counts": {s: counts.get(s, 0) for s in TokenStatus},
            }
        )
    return {"date": day, "doctors": result}


def front_desk(day: date | None = None) -> dict[str, Any]:
    """What the front desk shows of a day: {appointments: {doctor: [appointment, ...]},
    token_of: {appointment id: its token}, walk_ins: [tokens in number order]}, with
    patients and doctors loaded in the same two queries."""
    day = day or clock.today()
    by_doctor: dict[User, list[Appointment]] = {}
    for appointment in appointments.day_appointments(day):
        by_doctor.setdefault(appointment.doctor, []).append(appointment)
    entries = db.session.scalars(
        select(QueueEntry)
        .where(QueueEntry.day == day)
        .options(joinedload(QueueEntry.patient), joinedload(QueueEntry.doctor))
        .order_by(QueueEntry.token_number)
    ).all()
    return {
        "appointments": by_doctor,
        "token_of": {e.appointment_id: e for e in entries if e.appointment_id},
        "walk_ins": [e for e in entries if e.kind == TokenKind.WALK_IN],
    }


def get_token(token_number: int, day: date | None = None) -> QueueEntry:
    entry = _entry(day or clock.today(), token_number)
    entry.position = position(entry)
    return entry


# ---- closing the day --------------------------------------------------------------------


def close_day(actor: User | None, day: date | None = None) -> dict[str, int]:
    """End a clinic day (and any earlier day left open): WAITING and SKIPPED tokens become
    NO_SHOW with their appointments, and SCHEDULED appointments nobody checked in become
    NO_SHOW. Safe to run twice. Returns {tokens, appointments} counted."""
    day = day or clock.today()
    entries = list(
        db.session.scalars(
            select(QueueEntry)
            .where(
                QueueEntry.day <= day,
                QueueEntry.status.in_((TokenStatus.WAITING, TokenStatus.SKIPPED)),
            )
            .order_by(QueueEntry.day, QueueEntry.token_number)
            .with_for_update()
        )
    )
    days: set[date] = set()
    for entry in entries:
        _move(actor, entry, TokenStatus.NO_SHOW)
        days.add(entry.day)
    missed = appointments.mark_day_no_shows(day, actor)
    for closed in days:
        after_commit(partial(store.forget_day, closed))
    return {"tokens": len(entries), "appointments": len(missed)}


def closing_due(now: datetime | None = None) -> date | None:
    """The clinic day to close now: today once closing time has passed, else yesterday."""
    now = now or clock.now()
    local = now.astimezone(clock.clinic_tz())
    hours, minutes = (int(p) for p in str(_config("CLINIC_CLOSING_TIME")).split(":"))
    if (local.hour, local.minute) >= (hours, minutes):
        return local.date()
    return local.date() - timedelta(days=1)


def _config(name: str):
    return current_app.config[name]
