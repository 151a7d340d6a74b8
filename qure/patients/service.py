"""Patient records: register, find, edit, archive, restore."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, text, true

from qure.auth.models import User
from qure.core import audit, clock
from qure.core import phone as phones
from qure.core.db import get_or_none, get_or_raise
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.pagination import Page, check_bounds
from qure.core.roles import Role
from qure.core.text import like_escape
from qure.extensions import db
from qure.patients import search as name_search
from qure.patients.models import BLOOD_GROUPS, SEXES, Patient

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MRN_RE = re.compile(r"^QC-?(\d{1,12})$", re.IGNORECASE)
MAX_AGE = 130
# With its country code (E.164 digits); the column's CHECK constraint holds the same rule.
MIN_PHONE_DIGITS = 10
EDITORS = (Role.ADMIN, Role.RECEPTION)  # who may register and edit patients
LIST_ITEM_MAX = 100
LIST_MAX = 50
FIELDS = (
    "full_name",
    "date_of_birth",
    "age_years",
    "sex",
    "phone",
    "email",
    "address",
    "blood_group",
    "allergies",
    "chronic_conditions",
    "emergency_contact",
)


# ---- normalisation -------------------------------------------------------------------


def normalise_name(value: str) -> str:
    """Lower-case, accents off Latin letters, single spaces: the searchable form of a name.

    Marks on non-Latin scripts (Devanagari vowel signs) are kept: they are letters there.
    """
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    out: list[str] = []
    for char in decomposed:
        if unicodedata.category(char) == "Mn" and out and out[-1] < "\u0250":
            continue
        out.append(char)
    return " ".join(unicodedata.normalize("NFKC", "".join(out)).split())


def phone_digits(value: str) -> str:
    """The ASCII digits of a text. Of a stored (E.164) phone, they are what
    `Patient.phone_digits` holds: country code and number, e.g. 919876543210."""
    return re.sub(r"[^0-9]", "", value)


def _whole_number_digits(value: str) -> str | None:
    """The stored digits of a text typed as a whole phone number (any common way), or
    None when it is not one (a fragment, an id, an MRN)."""
    try:
        return phones.normalize(value)[1:]
    except ValueError:
        return None


# ---- validation ----------------------------------------------------------------------


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _clean_list(value: Any, field: str, errors: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[,\n;]", value)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors[field] = "Give a list of words or phrases."
        return []
    items: list[str] = []
    for raw in value:
        item = " ".join(raw.split())
        if item and item.casefold() not in {i.casefold() for i in items}:
            items.append(item)
    if len(items) > LIST_MAX or any(len(i) > LIST_ITEM_MAX for i in items):
        errors[field] = f"At most {LIST_MAX} entries of {LIST_ITEM_MAX} characters each."
    return items


def _clean_phone(value: Any, field: str, errors: dict[str, str]) -> str:
    """The E.164 form of a typed number; on a bad one, the reason goes to `errors`."""
    typed = str(value or "")
    try:
        number = phones.normalize(typed)
    except ValueError as exc:
        errors[field] = str(exc)
        return typed
    if len(number) - 1 < MIN_PHONE_DIGITS:
        errors[field] = f"Numbers of fewer than {MIN_PHONE_DIGITS} digits cannot be kept."
    return number


def _clean_contact(value: Any, errors: dict[str, str]) -> dict | None:
    if value in (None, {}):
        return None
    if not isinstance(value, dict):
        errors["emergency_contact"] = "Give name, phone and relation."
        return None
    contact = {k: " ".join(str(value.get(k) or "").split()) for k in ("name", "phone", "relation")}
    if not any(contact.values()):
        return None
    if not contact["name"] or len(contact["name"]) > 120:
        errors["emergency_contact.name"] = "Give the contact's name."
    contact["phone"] = _clean_phone(contact["phone"], "emergency_contact.phone", errors)
    if len(contact["relation"]) > 40:
        errors["emergency_contact.relation"] = "At most 40 characters."
    return contact


def _clean_birth(data: dict[str, Any], errors: dict[str, str], today: date) -> dict[str, Any]:
    dob, age = data.get("date_of_birth"), data.get("age_years")
    if dob is not None and age is not None:
        errors["date_of_birth"] = "Give a date of birth or an approximate age, not both."
        return {}
    if dob is not None:  # a `date`: the schema and form read it
        if dob > today:
            errors["date_of_birth"] = "The date of birth cannot be in the future."
        elif clock.age_on(dob, today) > MAX_AGE:
            errors["date_of_birth"] = f"That makes the patient older than {MAX_AGE}."
        return {"date_of_birth": dob, "dob_estimated": False}
    if age is not None:
        if not 0 <= age <= MAX_AGE:  # an int: the schema and form read it
            errors["age_years"] = f"A whole number of years from 0 to {MAX_AGE}."
            return {}
        day = min(today.day, 28) if today.month == 2 else today.day
        return {
            "date_of_birth": date(today.year - age, today.month, day),
            "dob_estimated": True,
        }
    errors["date_of_birth"] = "Give a date of birth, or an approximate age if it is unknown."
    return {}


def clean(data: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """Validate patient fields (all of them, or the subset given when `partial`).

    Returns model values; raises InvalidInput naming every bad field. An approximate age
    becomes an estimated date of birth (today's day and month, that many years ago) flagged
    `dob_estimated`, so the computed age equals the age given.
    """
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    unknown = sorted(set(data) - set(FIELDS))
    for key in unknown:
        errors[key] = "Unknown field."
    for key in sorted(set(data) & set(FIELDS)):
        if _has_nul(data[key]):
            # PostgreSQL text cannot hold NUL: refuse it here rather than fail on insert.
            errors[key] = "Contains a character that is not allowed."

    def given(key: str) -> bool:
        return not partial or key in data

    if given("full_name"):
        name = " ".join(str(data.get("full_name") or "").split())
        if not 2 <= len(name) <= 120:
            errors["full_name"] = "Give the patient's full name (2 to 120 characters)."
        out["full_name"] = name
        out["name_search"] = normalise_name(name)
    if not partial or "date_of_birth" in data or "age_years" in data:
        out.update(_clean_birth(data, errors, clock.today()))
    if given("sex"):
        sex = str(data.get("sex") or "").upper()
        if sex not in SEXES:
            errors["sex"] = "Choose F, M or O."
        out["sex"] = sex
    if given("phone"):
        out["phone"] = _clean_phone(data.get("phone"), "phone", errors)
        out["phone_digits"] = phone_digits(out["phone"])
    if "email" in data:
        email = str(data.get("email") or "").strip().lower() or None
        if email and (not EMAIL_RE.match(email) or len(email) > 254):
            errors["email"] = "Give a valid email address, or leave it empty."
        out["email"] = email
    if "address" in data:
        address = str(data.get("address") or "").strip() or None
        if address and len(address) > 500:
            errors["address"] = "At most 500 characters."
        out["address"] = address
    if "blood_group" in data:
        group = str(data.get("blood_group") or "").strip().upper() or None
        if group and group not in BLOOD_GROUPS:
            errors["blood_group"] = "One of " + ", ".join(BLOOD_GROUPS) + "."
        out["blood_group"] = group
    for key in ("allergies", "chronic_conditions"):
        if key in data:
            out[key] = _clean_list(data.get(key), key, errors)
    if "emergency_contact" in data:
        out["emergency_contact"] = _clean_contact(data.get("emergency_contact"), errors)
    if errors:
        raise InvalidInput.naming(errors)
    return out


# ---- reading -------------------------------------------------------------------------


def snapshot(patient: Patient) -> dict[str, Any]:
    """The audited view of a patient record."""
    return {
        "mrn": patient.mrn,
        "full_name": patient.full_name,
        "date_of_birth": patient.date_of_birth.isoformat(),
        "dob_estimated": patient.dob_estimated,
        "sex": patient.sex,
        "phone": patient.phone,
        "email": patient.email,
        "address": patient.address,
        "blood_group": patient.blood_group,
        "allergies": list(patient.allergies or []),
        "chronic_conditions": list(patient.chronic_conditions or []),
        "emergency_contact": patient.emergency_contact,
        "archived_at": patient.archived_at.isoformat() if patient.archived_at else None,
    }


def age(patient: Patient) -> int:
    """The patient's age in whole years today (clinic date)."""
    return clock.age_on(patient.date_of_birth, clock.today())


def age_label(patient: Patient) -> str:
    """The age as pages show it: "58 y", or "58 y (estimated)" when only an age or a year
    was given (the date of birth is an estimate)."""
    label = f"{age(patient)} y"
    return f"{label} (estimated)" if patient.dob_estimated else label


def get_patient(patient_id: int, include_archived: bool = True) -> Patient:
    """The patient with this id; NotFound otherwise (or when archived and not included)."""
    patient = get_or_raise(Patient, patient_id, "No such patient.", "patient_not_found")
    if patient.archived_at and not include_archived:
        raise NotFound("No such patient.", "patient_not_found")
    return patient


def on_file(patient_id: int | None) -> Patient | None:
    """The patient with this id if they are on file (not archived), else None: for pages
    where a patient is being chosen."""
    patient = get_or_none(Patient, patient_id)
    return patient if patient is not None and not patient.archived_at else None


def _all_digits(q: str) -> bool:
    """Whether the text is a number once phone separators are set aside (ASCII digits)."""
    compact = re.sub(r"[\s()+-]", "", q)
    return compact.isascii() and compact.isdigit()


def _search_conditions(q: str):
    """WHERE clause and ranking expression for one search text."""
    digits = phone_digits(q)
    mrn = MRN_RE.match(q.strip())
    if mrn:
        number = int(mrn.group(1))
        value = f"QC-{number:06d}"
        return Patient.mrn == value, literal(0)
    if _all_digits(q):
        conds = []
        rank = []
        if len(digits) <= 18:
            conds.append(Patient.id == int(digits))
            rank.append((Patient.id == int(digits), 0))
            mrn_value = f"QC-{int(digits):06d}"
            conds.append(Patient.mrn == mrn_value)
            rank.append((Patient.mrn == mrn_value, 0))
        whole = _whole_number_digits(q)
        if whole:
            # "09876543210", "0091 98765 43210": typed forms whose digits are not a part
            # of the stored ones.
            conds.append(Patient.phone_digits == whole)
            rank.append((Patient.phone_digits == whole, 1))
        if len(digits) >= 3:
            conds.append(Patient.phone_digits.like(f"%{digits}%"))
            rank.append((Patient.phone_digits.like(f"%{digits}"), 2))
        return or_(*conds), case(*rank, else_=3)
    name = normalise_name(q)
    words = name.split()[:6]
    conds = [Patient.name_search.like(f"%{like_escape(w)}%") for w in words]
    escaped = like_escape(name)
    rank = case(
        (Patient.name_search == name, 0),
        (Patient.name_search.like(f"{escaped}%"), 1),
        (Patient.name_search.like(f"% {escaped}%"), 2),
        else_=3,
    )
    return and_(*conds), rank


def _is_number(q: str) -> bool:
    return bool(MRN_RE.match(q)) or _all_digits(q)


LISTED = tuple(getattr(Patient, name) for name in name_search.COLUMNS)


def _capped_count(where):
    """How many patients match, counting no further than search.CAP + 1."""
    matching = select(Patient.id).where(where).limit(name_search.CAP + 1).subquery()
    return select(func.count()).select_from(matching).scalar_subquery()


def search(
    q: str | None,
    page: int = 1,
    per_page: int = 20,
    include_archived: bool = False,
    actor: User | None = None,
) -> Page:
    """Find patients by a name fragment (case- and accent-insensitive), phone digits, MRN
    or id, best match first. Names: the whole name starting with the text, then a word
    starting with it, then the text anywhere (see `qure.patients.search`). Numbers: exact
    id/MRN, then the phone number when the text is a whole one (typed any common way: it
    is compared in its stored E.164 form), then phones ending with, then containing the
    digits (the last digits of a number find it). With no text, the most recent first.
    Totals stop at search.CAP with `total_capped` set.

    The page's items are rows of the columns `PatientSchema` shows (`search.COLUMNS`,
    read as attributes, as a Patient's are), not Patient objects: a list is read, never
    changed.

    Raises InvalidInput for page bounds and Forbidden when anyone but an ADMIN asks for
    archived patients.
    """
    check_bounds(page, per_page)
    if include_archived and (actor is None or actor.role != Role.ADMIN):
        raise Forbidden("Only an admin may search archived patients.", "forbidden")
    q = (q or "").replace("\x00", "").strip()[:120]
    offset = (page - 1) * per_page
    name = normalise_name(q)
    if name and not include_archived and not _is_number(q):
        rows, total, capped = name_search.find(name, offset, per_page)
        return Page(rows, page, per_page, total, capped)
    where = true() if include_archived else Patient.archived_at.is_(None)
    query = select(*LISTED)
    if q:
        condition, rank = _search_conditions(q)
        where = and_(condition, where)
        similarity = func.similarity(Patient.name_search, name)
        query = query.order_by(rank, similarity.desc(), Patient.full_name, Patient.id)
        # Ranking sorts every match anyway: counting them there reads the index once.
        counted = func.count().over()
    else:
        query = query.order_by(Patient.id.desc())
        counted = _capped_count(where)  # the newest first need not read every row
    rows = []
    # The count rides on the page's rows; past the cap there is no page (and a huge
    # offset would overflow BIGINT); a later page with no rows says nothing of the count.
    if offset < name_search.CAP:
        page_query = query.add_columns(counted.label("_total")).where(where)
        rows = db.session.execute(page_query.limit(per_page).offset(offset)).all()
    if rows:
        found = rows[0]._total
    elif offset == 0:
        found = 0
    else:
        found = db.session.scalar(select(_capped_count(where))) or 0
    total, capped = min(found, name_search.CAP), found > name_search.CAP
    return Page(list(rows), page, per_page, total, capped)


def recent(limit: int = 8) -> list[Patient]:
    """The most recently registered patients still on file (no count: a short list)."""
    query = select(Patient).where(Patient.archived_at.is_(None)).order_by(Patient.id.desc())
    return list(db.session.scalars(query.limit(limit)))


def count_on_file() -> int:
    """How many patients are on file (not archived)."""
    query = select(func.count()).select_from(Patient).where(Patient.archived_at.is_(None))
    return db.session.scalar(query) or 0


def find_duplicates(phone: str, born: date, exclude_id: int | None = None) -> list[Patient]:
    """Patients with the same phone digits and date of birth, archived ones too (a patient
    who comes back is restored, not registered a second time)."""
    query = select(Patient).where(
        Patient.phone_digits == phone_digits(phone),
        Patient.date_of_birth == born,
    )
    if exclude_id:
        query = query.where(Patient.id != exclude_id)
    return list(db.session.scalars(query.order_by(Patient.id).limit(10)))


# ---- changing ------------------------------------------------------------------------


def register(actor: User, data: dict[str, Any], confirm_new: bool = False) -> Patient:
    """Register a patient and return it (with its MRN).

    Raises InvalidInput for bad fields and Conflict `possible_duplicate` (with the
    candidates in `details`) when the phone and date of birth match a patient already
    registered, unless `confirm_new`. Two simultaneous registrations of the same person
    are serialised, so only one gets through without confirmation.
    """
    values = clean(data)
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
        {"key": f"patient:{values['phone_digits']}:{values['date_of_birth']}"},
    )
    if not confirm_new:
        matches = find_duplicates(values["phone"], values["date_of_birth"])
        if matches:
            raise Conflict(
                "A patient with this phone number and date of birth is already registered.",
                "possible_duplicate",
                details={
                    "candidates": [
                        {
                            "id": p.id,
                            "mrn": p.mrn,
                            "full_name": p.full_name,
                            "date_of_birth": p.date_of_birth.isoformat(),
                            "archived": p.archived_at is not None,
                        }
                        for p in matches
                    ]
                },
            )
    patient = Patient(**values, created_by_id=actor.id if actor else None)
    db.session.add(patient)
    db.session.flush()  # INSERT ... RETURNING fills mrn and the timestamps
    audit.record(actor, "PATIENT_CREATED", ("patient", patient.id), None, snapshot(patient))
    return patient


def _locked(patient_id: int) -> Patient:
    # populate_existing: a row loaded earlier in this request is re-read under the lock.
    return get_or_raise(Patient, patient_id, "No such patient.", "patient_not_found", lock=True)


def update(actor: User, patient_id: int, data: dict[str, Any]) -> Patient:
    """Change some fields of a patient. Raises NotFound, InvalidInput, and Conflict
    `patient_archived` (restore it first). Returns the patient."""
    values = clean(data, partial=True)
    patient = _locked(patient_id)
    if patient.archived_at:
        raise Conflict("This patient is archived; restore them first.", "patient_archived")
    if values.get("date_of_birth") == patient.date_of_birth and data.get("age_years") is None:
        # The same date sent back (an edit form re-saved) keeps an estimate an estimate.
        values.pop("dob_estimated", None)
    before = snapshot(patient)
    for key, value in values.items():
        setattr(patient, key, value)
    db.session.flush()
    old, new = audit.diff(before, snapshot(patient))
    if new:
        audit.record(actor, "PATIENT_UPDATED", ("patient", patient.id), old, new)
    return patient


def archive(actor: User, patient_id: int) -> Patient:
    """Archive a patient (the record stays; it leaves search). Conflict when archived."""
    patient = _locked(patient_id)
    if patient.archived_at:
        raise Conflict("This patient is already archived.", "already_archived")
    patient.archived_at = clock.now()
    db.session.flush()
    audit.record(
        actor,
        "PATIENT_ARCHIVED",
        ("patient", patient.id),
        {"archived_at": None},
        {"archived_at": patient.archived_at.isoformat()},
    )
    return patient


def restore(actor: User, patient_id: int) -> Patient:
    """Bring an archived patient back. Conflict `not_archived` when it is not archived."""
    patient = _locked(patient_id)
    if not patient.archived_at:
        raise Conflict("This patient is not archived.", "not_archived")
    before = patient.archived_at.isoformat()
    patient.archived_at = None
    db.session.flush()
    audit.record(
        actor,
        "PATIENT_RESTORED",
        ("patient", patient.id),
        {"archived_at": before},
        {"archived_at": None},
    )
    return patient
