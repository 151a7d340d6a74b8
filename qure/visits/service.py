"""Visits: start, vitals and findings, notes, complete.

Only the visit's doctor changes a visit; any doctor (and an admin) reads it. A completed
visit is read-only, and notes written after completion are addenda.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.db import constraint_name, get_or_raise
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.pagination import Page, cut_total, page_cut, page_params, paginate
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import Patient
from qure.prescriptions import service as prescriptions
from qure.queue import service as queue
from qure.queue.models import QueueEntry, TokenStatus
from qure.scheduling import appointments
from qure.scheduling.models import Appointment, AppointmentStatus
from qure.visits import icd10, vitals
from qure.visits.models import SHOWN, NoteCategory, Visit, VisitNote, VisitStatus

READERS = (Role.ADMIN, Role.DOCTOR)  # visits are read by admins and doctors
TEXT_FIELDS = {
    "chief_complaint": 500,
    "symptom_duration": 100,
    "diagnosis": 500,
    "treatment_plan": 5000,
}
BAD_DAY = "Use a date such as 02 Dec 2026 (or 2026-12-02)."
FIELDS = ("vitals", *TEXT_FIELDS, "icd10_code", "follow_up_date")
NOT_A_CODE = "Not a code in the WHO ICD-10 list: give one such as J06.9, or leave it empty."
DIAGNOSIS_NEEDED = "Record a diagnosis before completing the visit."


# ---- reading ---------------------------------------------------------------------------


def get_visit(visit_id: int, actor: User | None = None) -> Visit:
    """A visit; NotFound otherwise, Forbidden for roles that do not read visits."""
    if actor is not None and actor.role not in READERS:
        raise Forbidden("Only doctors and admins read visits.", "forbidden")
    return get_or_raise(Visit, visit_id, "No such visit.", "visit_not_found", options=SHOWN)


def in_progress_for(patient_id: int) -> Visit | None:
    """The patient's visit in progress, if any, with its doctor."""
    query = select(Visit).where(
        Visit.patient_id == patient_id, Visit.status == VisitStatus.IN_PROGRESS
    )
    return db.session.scalars(query.options(joinedload(Visit.doctor))).first()


def patient_visit_page(patient_id: int, page: int = 1, per_page: int = 50):
    """A patient's visits, newest first, a page at a time, with what the list shows of
    each (patient, doctor, notes and their authors) loaded in three more queries."""
    query = (
        select(Visit)
        .where(Visit.patient_id == patient_id)
        .order_by(Visit.started_at.desc(), Visit.id.desc())
        .options(
            joinedload(Visit.patient),
            joinedload(Visit.doctor),
            selectinload(Visit.notes).joinedload(VisitNote.author),
        )
    )
    return paginate(query, page, per_page)


def patient_visits(patient_id: int, limit: int = 50) -> list[Visit]:
    """A patient's latest visits, newest first."""
    query = (
        select(Visit)
        .where(Visit.patient_id == patient_id)
        .order_by(Visit.started_at.desc(), Visit.id.desc())
        .limit(limit)
        .options(joinedload(Visit.doctor))
    )
    return list(db.session.scalars(query))


def completed_page(excluded: Select, page: int = 1, per_page: int = 50) -> Page:
    """Completed visits, the latest completed first, without those whose ids `excluded`
    selects (billing leaves out the visits it has billed: a select it builds once), in
    one statement: the page is cut first (with the count of all), then only its rows are
    joined to their patient and doctor. Items are plain dicts: {id, patient: {id,
    full_name, mrn}, doctor: {id, full_name}, diagnosis, completed_at}."""
    completed, statement = _completed_statements(excluded)
    params = page_params(page, per_page)
    rows = db.session.execute(statement, params).all() if params else []
    items = [
        {
            "id": visit_id,
            "patient": {"id": patient_id, "full_name": patient_name, "mrn": mrn},
            "doctor": {"id": doctor_id, "full_name": doctor_name},
            "diagnosis": diagnosis,
            "completed_at": completed_at,
        }
        for (
            visit_id,
            patient_id,
            patient_name,
            mrn,
            doctor_id,
            doctor_name,
            diagnosis,
            completed_at,
            _total,
        ) in rows
    ]
    return Page(items, page, per_page, cut_total(completed, rows, page))


@lru_cache(maxsize=4)
def _completed_statements(excluded: Select) -> tuple[Select, Select]:
    """The completed visits but `excluded`, latest first (ids), and the statement of one
    page of them (`page_cut`) with what the list shows: built once for each `excluded`."""
    completed = (
        select(Visit.id, Visit.completed_at)
        .where(Visit.status == VisitStatus.COMPLETED, Visit.id.not_in(excluded))
        .order_by(Visit.completed_at.desc(), Visit.id.desc())
    )
    cut = page_cut(completed)
    statement = (
        select(
            cut.c.id,
            Patient.id,
            Patient.full_name,
            Patient.mrn,
            User.id,
            User.full_name,
            Visit.diagnosis,
            cut.c.completed_at,
            cut.c.total,
        )
        .select_from(cut)
        .join(Visit, Visit.id == cut.c.id)
        .join(Patient, Patient.id == Visit.patient_id)
        .join(User, User.id == Visit.doctor_id)
        .order_by(cut.c.completed_at.desc(), cut.c.id.desc())
    )
    return completed, statement


# ---- starting --------------------------------------------------------------------------


def _own_token(actor: User, token_number: int) -> QueueEntry:
    try:
        entry = queue.get_token(token_number)
    except NotFound:
        raise InvalidInput(
            "token_number: no such token",
            fields={"token_number": "No such token."},  # nosec B105
        ) from None
    if entry.doctor_id != actor.id or entry.status != TokenStatus.WITH_DOCTOR:
        raise Conflict(
            "Call the patient first: the token is not with you.",
            "token_not_with_you",
            details={"token_number": entry.token_number, "status": entry.status},
        )
    return entry


def _own_appointment(actor: User, appointment_id: int) -> Appointment:
    try:
        appointment = appointments.get_appointment(appointment_id)
    except NotFound:
        raise InvalidInput(
            "appointment_id: no such appointment",
            fields={"appointment_id": "No such appointment."},
        ) from None
    if appointment.doctor_id != actor.id:
        raise Forbidden("This appointment is with another doctor.", "not_your_appointment")
    if appointment.status not in (
        AppointmentStatus.SCHEDULED,
        AppointmentStatus.CHECKED_IN,
        AppointmentStatus.IN_CONSULTATION,
    ):
        raise Conflict(
            f"This appointment is {appointment.status.lower().replace('_', ' ')}.",
            "appointment_not_open",
        )
    return appointment


def start(actor: User, data: dict[str, Any]) -> Visit:
    """Start a visit for the patient the doctor called (`token_number`), for an
    appointment (`appointment_id`) or for a patient (`patient_id`): exactly one of them.

    Raises Forbidden (not a doctor; another doctor's appointment), InvalidInput, Conflict
    `token_not_with_you`, `appointment_not_open` and `visit_in_progress` (the patient's
    open visit is in `details`). Returns the visit."""
    if actor.role != Role.DOCTOR:
        raise Forbidden("Only a doctor starts a visit.", "forbidden")
    given = [k for k in ("token_number", "appointment_id", "patient_id") if data.get(k) is not None]
    if len(given) != 1:
        raise InvalidInput(
            "give one of token_number, appointment_id or patient_id",
            fields={"patient_id": "Give exactly one of token_number, appointment_id, patient_id."},
        )
    entry = appointment = None
    if given[0] == "token_number":
        entry = _own_token(actor, data["token_number"])
        patient_id, appointment_id = entry.patient_id, entry.appointment_id
    elif given[0] == "appointment_id":
        appointment = _own_appointment(actor, data["appointment_id"])
        patient_id, appointment_id = appointment.patient_id, appointment.id
        entry = queue.token_for_appointment(appointment.id)
        _not_waiting(actor, entry)
    else:
        patient_id, appointment_id = data["patient_id"], None
        entry = _todays_token(patient_id)
        if entry is not None and entry.doctor_id == actor.id:
            _not_waiting(actor, entry)
            appointment_id = entry.appointment_id
        else:
            entry = None  # with another doctor, or no token: a visit outside the queue
    patient = patients.on_file(patient_id)
    if patient is None:
        raise InvalidInput("patient_id: no such patient", fields={"patient_id": "No such patient."})
    open_visit = in_progress_for(patient.id)
    if open_visit is not None:
        raise _in_progress(open_visit)
    visit = Visit(
        patient_id=patient.id,
        patient=patient,
        doctor_id=actor.id,
        doctor=actor,
        notes=[],
        appointment_id=appointment_id,
        queue_entry_id=entry.id if entry else None,
        status=VisitStatus.IN_PROGRESS,
        started_at=clock.now(),
        chief_complaint=(entry.complaint if entry else None)
        or (appointment.reason if appointment else None),
    )
    try:
        with db.session.begin_nested():
            db.session.add(visit)
    except IntegrityError as exc:
        if constraint_name(exc) == "uq_visits_patient_in_progress":
            raise _in_progress(in_progress_for(patient.id)) from None
        raise
    audit.record(actor, "VISIT_STARTED", ("visit", visit.id), None, snapshot(visit))
    return visit


def _todays_token(patient_id: int) -> QueueEntry | None:
    return queue.active_token(patient_id, clock.today())


def _not_waiting(actor: User, entry: QueueEntry | None) -> None:
    """A patient who holds a token is seen once called: the queue knows who is with whom."""
    if entry is None or entry.status in (TokenStatus.COMPLETED, TokenStatus.NO_SHOW):
        return
    if entry.status != TokenStatus.WITH_DOCTOR or entry.doctor_id != actor.id:
        raise Conflict(
            f"The patient holds token {entry.token_number:03d}: call them first.",
            "token_not_with_you",
            details={"token_number": entry.token_number, "status": entry.status},
        )


def start_or_open(actor: User, data: dict[str, Any]) -> Visit:
    """`start`, except that the doctor's own visit already open for the patient is
    returned instead of Conflict `visit_in_progress`. Raises as `start` otherwise."""
    try:
        return start(actor, data)
    except Conflict as exc:
        open_id = exc.details.get("visit_id")
        if exc.code == "visit_in_progress" and open_id:
            existing = get_visit(open_id)
            if existing.doctor_id == actor.id:
                return existing
        raise


def open_for_token(actor: User, token_number: int) -> Visit | None:
    """The visit for the token the doctor just called: started now, or the doctor's visit
    already open for that patient with the token tied to it. None when the patient's open
    visit is another doctor's (the doctor then sees the patient's page)."""
    try:
        visit = start_or_open(actor, {"token_number": token_number})
    except Conflict:
        return None
    if visit.queue_entry_id is None:
        visit = attach_token(actor, visit.id, token_number)
    return visit


def call_next(
    actor: User, doctor_id: int | None = None, open_visit: bool = True
) -> tuple[QueueEntry, Visit | None]:
    """Call the first waiting token of the doctor's queue and, when `open_visit` and the
    caller is the doctor, open its visit (`open_for_token`): one transaction, flushed
    only, so that the view's single commit makes both or neither (a refusal while opening
    the visit undoes the call, in Redis too). An admin's call opens no visit.

    Raises as `queue.call_next`, and as `start` for what it does not answer with None.
    Returns the token and its visit (None when no visit was opened)."""
    entry = queue.call_next(actor, doctor_id)
    if not open_visit or actor.role != Role.DOCTOR:
        return entry, None
    if entry.patient.archived_at is not None:
        # The record was archived after the patient took a token: they are here and
        # called all the same (refusing would put them back at the head, and every later
        # call would fail on them); no visit opens on an archived record.
        return entry, None
    return entry, open_for_token(actor, entry.token_number)


def attach_token(actor: User, visit_id: int, token_number: int) -> Visit:
    """Tie the doctor's open visit to the token just called for the same patient (a visit
    started from the patient's page before the call), so that completing it completes the
    token and its appointment. Raises as `start`."""
    visit = _locked_own(actor, visit_id)
    entry = _own_token(actor, token_number)
    if entry.patient_id != visit.patient_id or visit.status != VisitStatus.IN_PROGRESS:
        raise Conflict("This token is for another visit.", "token_not_with_you")
    if visit.queue_entry_id != entry.id:
        visit.queue_entry_id = entry.id
        visit.appointment_id = visit.appointment_id or entry.appointment_id
        db.session.flush()
        audit.record(
            actor,
            "VISIT_UPDATED",
            ("visit", visit.id),
            None,
            {"token_number": entry.token_number, "appointment_id": visit.appointment_id},
        )
    return visit


def _in_progress(visit: Visit | None) -> Conflict:
    return Conflict(
        "This patient already has a visit in progress.",
        "visit_in_progress",
        details={"visit_id": visit.id} if visit else {},
    )


# ---- changing --------------------------------------------------------------------------


def _locked_own(actor: User, visit_id: int) -> Visit:
    visit = get_or_raise(
        Visit, visit_id, "No such visit.", "visit_not_found", lock=True, options=SHOWN
    )
    if visit.doctor_id != actor.id:
        raise Forbidden("Only the visit's doctor changes it.", "not_your_visit")
    return visit


def clean(data: dict[str, Any]) -> dict[str, Any]:
    """Validate a visit update (any subset of FIELDS). Returns model values; raises
    InvalidInput naming each bad field."""
    out, errors = _clean(data)
    if errors:
        raise InvalidInput.naming(errors)
    return out


def _clean(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The good values and the field errors of `clean`."""
    errors = {k: "Unknown field." for k in data if k not in FIELDS}
    out: dict[str, Any] = {}
    if "vitals" in data and data["vitals"] is not None:
        values, vital_errors = vitals.check(data["vitals"])
        out.update(values)
        errors.update(vital_errors)
    for key, limit in TEXT_FIELDS.items():
        if key in data:
            value = str(data.get(key) or "").strip()
            if "\x00" in value or len(value) > limit:
                errors[key] = f"At most {limit} characters of plain text."
            out[key] = value or None
    if "icd10_code" in data:
        typed = str(data.get("icd10_code") or "")
        code = icd10.normalise(typed)
        if code and icd10.lookup(code) is None:
            hint = icd10.did_you_mean(typed)
            errors["icd10_code"] = f"{NOT_A_CODE} {hint}" if hint else NOT_A_CODE
        out["icd10_code"] = code
    if "follow_up_date" in data:
        when = data.get("follow_up_date")  # a `date` or None: the schema and form read it
        today = clock.today()
        if when is not None and not today < when <= today + timedelta(days=730):
            errors["follow_up_date"] = "A date after today, within two years."
        out["follow_up_date"] = when
    return out, errors


def snapshot(visit: Visit) -> dict[str, Any]:
    """The audited view of a visit's own fields."""
    keys = ("patient_id", "doctor_id", "appointment_id", "status", *vitals.VITAL_RANGES)
    return {
        **{k: getattr(visit, k) for k in keys},
        **{k: getattr(visit, k) for k in (*TEXT_FIELDS, "icd10_code", "follow_up_date")},
    }


def update(actor: User, visit_id: int, data: dict[str, Any]) -> Visit:
    """Record vitals and findings (any subset). Raises NotFound, Forbidden
    `not_your_visit`, Conflict `visit_completed`, InvalidInput (fields; systolic must be
    above diastolic)."""
    values = clean(data)
    visit = _locked_own(actor, visit_id)
    if visit.status != VisitStatus.IN_PROGRESS:
        raise Conflict("This visit is completed; add an addendum note instead.", "visit_completed")
    bp_errors = _pressure_errors(values, visit)
    if bp_errors:
        raise InvalidInput("vitals.bp_systolic: must be above the diastolic", fields=bp_errors)
    before = snapshot(visit)
    for key, value in values.items():
        setattr(visit, key, value)
    db.session.flush()
    old, new = audit.diff(before, snapshot(visit))
    if new:
        audit.record(actor, "VISIT_UPDATED", ("visit", visit.id), old, new)
    return visit


def _pressure_errors(values: dict[str, Any], visit: Visit) -> dict[str, str]:
    systolic = values.get("bp_systolic", visit.bp_systolic)
    diastolic = values.get("bp_diastolic", visit.bp_diastolic)
    if systolic is not None and diastolic is not None and systolic <= diastolic:
        return {"vitals.bp_systolic": "The systolic pressure must be above the diastolic."}
    return {}


def _note_errors(data: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    errors: dict[str, str] = {}
    category = str(data.get("category") or "").strip().upper()
    if category not in tuple(NoteCategory):
        errors["category"] = "One of " + ", ".join(NoteCategory) + "."
    body = str(data.get("text") or "").strip()
    if not body or len(body) > 5000 or "\x00" in body:
        errors["text"] = "Write the note (up to 5,000 characters)."
    return category, body, errors


def add_note(actor: User, visit_id: int, data: dict[str, Any]) -> VisitNote:
    """A clinical note by the visit's doctor; after completion it is an addendum.
    Raises NotFound, Forbidden, InvalidInput (category, text)."""
    category, body, errors = _note_errors(data)
    if errors:
        raise InvalidInput.naming(errors)
    visit = _locked_own(actor, visit_id)
    note = VisitNote(
        visit_id=visit.id,
        category=category,
        text=body,
        author_id=actor.id,
        author=actor,
        is_addendum=visit.status == VisitStatus.COMPLETED,
        created_at=clock.now(),
    )
    db.session.add(note)
    db.session.flush()
    action = "VISIT_ADDENDUM_ADDED" if note.is_addendum else "VISIT_NOTE_ADDED"
    audit.record(
        actor, action, ("visit", visit.id), None, {"note_id": note.id, "category": category}
    )
    return note


def history_snapshot(visit: Visit) -> dict[str, Any]:
    """Everything about a completed visit, for the `visit_history` read model."""
    patient, doctor = visit.patient, visit.doctor
    prescription = prescriptions.for_visit(visit.id, prescriptions.ITEMS)
    return {
        "visit_id": visit.id,
        "timestamp": visit.completed_at.isoformat() if visit.completed_at else None,
        "patient": {
            "id": patient.id,
            "mrn": patient.mrn,
            "full_name": patient.full_name,
            "date_of_birth": patient.date_of_birth.isoformat(),
            "sex": patient.sex,
            "allergies": list(patient.allergies or []),
        },
        "doctor": {
            "id": doctor.id,
            "full_name": doctor.full_name,
            "registration_number": doctor.registration_number,
        },
        "started_at": visit.started_at.isoformat(),
        "vitals": {
            **{k: getattr(visit, k) for k in vitals.VITAL_RANGES},
            "bmi": vitals.bmi(visit),
        },
        **{k: getattr(visit, k) for k in (*TEXT_FIELDS, "icd10_code", "follow_up_date")},
        "notes": [
            {
                "category": n.category,
                "text": n.text,
                "author": n.author.full_name,
                "created_at": n.created_at.isoformat(),
                "is_addendum": n.is_addendum,
            }
            for n in visit.notes
        ],
        "prescription": prescriptions.plain(prescription) if prescription else None,
    }


def complete(actor: User, visit_id: int) -> Visit:
    """Complete the visit: it needs a diagnosis; the visit, its appointment and its token
    become COMPLETED (the doctor's queue moves on), and a full snapshot goes to
    `visit_history` through the outbox. Raises NotFound, Forbidden, Conflict
    `visit_completed`, InvalidInput `diagnosis`."""
    visit = _locked_own(actor, visit_id)
    if visit.status != VisitStatus.IN_PROGRESS:
        raise Conflict("This visit is already completed.", "visit_completed")
    if not visit.diagnosis:
        raise InvalidInput(
            "Record a diagnosis before completing the visit.",
            "diagnosis_required",
            fields={"diagnosis": "Record a diagnosis before completing the visit."},
        )
    visit.status, visit.completed_at = VisitStatus.COMPLETED, clock.now()
    token = queue.complete_for_visit(actor, visit.queue_entry_id) if visit.queue_entry_id else None
    followed = (
        token is not None
        and token.status == TokenStatus.COMPLETED
        and token.appointment_id == visit.appointment_id
    )
    if visit.appointment_id and not followed:
        # Usually completed with its token just now; a visit outside the queue moves it here.
        appointments.complete_seen(actor, visit.appointment_id)
    db.session.flush()
    audit.record(
        actor,
        "VISIT_COMPLETED",
        ("visit", visit.id),
        {"status": VisitStatus.IN_PROGRESS},
        {"status": VisitStatus.COMPLETED, "diagnosis": visit.diagnosis},
    )
    audit.publish("visit_history", history_snapshot(visit))
    return visit


def save_workspace(
    actor: User, visit_id: int, data: dict[str, Any], complete_it: bool = False
) -> Visit:
    """Apply the doctor's whole workspace in one go. `data` holds the visit's fields as
    `update` takes them, plus `note` ({category, text}; added when it has text) and
    `advice` (the prescription's notes). Every section is checked first and every bad
    field named in one InvalidInput (`note.text`, `advice`, ...), so that nothing is
    written unless everything is right; then `update`, `add_note` and the prescription's
    `update` write it. With `complete_it` the visit is then completed, which needs a
    diagnosis typed now or saved before (InvalidInput `diagnosis_required`).

    Raises NotFound, Forbidden `not_your_visit`, Conflict `visit_completed`, InvalidInput.
    Returns the visit."""
    visit = _locked_own(actor, visit_id)
    if visit.status != VisitStatus.IN_PROGRESS:
        raise Conflict("This visit is completed; add an addendum note instead.", "visit_completed")
    fields = {k: v for k, v in data.items() if k not in ("note", "advice")}
    note = data.get("note") or {}
    prescription = prescriptions.for_visit(visit.id)
    values, errors = _checked(fields, visit)
    if str(note.get("text") or "").strip():
        errors.update({f"note.{k}": v for k, v in _note_errors(note)[2].items()})
    advice = _checked_advice(data, prescription, errors)
    if complete_it and not values.get("diagnosis", visit.diagnosis):
        errors.setdefault("diagnosis", DIAGNOSIS_NEEDED)
    if errors:
        if errors == {"diagnosis": DIAGNOSIS_NEEDED}:
            raise InvalidInput(DIAGNOSIS_NEEDED, "diagnosis_required", fields=errors)
        raise InvalidInput.naming(errors)
    update(actor, visit.id, fields)
    if str(note.get("text") or "").strip():
        add_note(actor, visit.id, note)
    if prescription is not None and advice != prescription.notes:
        prescriptions.update(actor, prescription.id, {"notes": advice})
    return complete(actor, visit.id) if complete_it else visit


def _checked(fields: dict[str, Any], visit: Visit) -> tuple[dict[str, Any], dict[str, str]]:
    """The visit's cleaned values and every field error, systolic against diastolic too."""
    values, errors = _clean(fields)
    return values, {**errors, **_pressure_errors(values, visit)}


def _checked_advice(data: dict[str, Any], prescription, errors: dict[str, str]) -> str | None:
    if "advice" not in data:
        return prescription.notes if prescription is not None else None
    try:
        advice = plain_text(data["advice"], "advice", 1000)
    except InvalidInput as exc:
        errors.update(exc.fields)
        return None
    if advice and prescription is None:
        errors["advice"] = "Add a medicine first: the advice is printed on the prescription."
    return advice
