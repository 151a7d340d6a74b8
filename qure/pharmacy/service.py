"""The medicine catalogue: add, edit, find by name or ingredient."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import IntegrityError

from qure.auth.models import User
from qure.core import audit
from qure.core.db import constraint_name, get_or_raise
from qure.core.errors import Conflict, InvalidInput
from qure.core.money import parse_money
from qure.core.pagination import Page, paginate
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy.models import DOSAGE_FORMS, GST_RATES, DrugSchedule, Medicine

EDITORS = (Role.ADMIN, Role.PHARMACIST)  # who manages the catalogue
FIELDS = (
    "name",
    "generic_name",
    "drug_class",
    "dosage_form",
    "strength",
    "manufacturer",
    "unit_price",
    "gst_rate",
    "hsn_code",
    "reorder_level",
    "is_active",
    "schedule",
)
HSN_RE = re.compile(r"^[0-9]{4,8}$")


def _text(value: Any, field: str, errors: dict[str, str], low: int, high: int) -> str | None:
    cleaned = " ".join(str(value or "").split())
    if "\x00" in cleaned or not low <= len(cleaned) <= high:
        errors[field] = (
            f"Give {low} to {high} characters." if low else f"At most {high} characters."
        )
    return cleaned or None


def search_form(*parts: str | None) -> str:
    """The lower-case, accent-free text a medicine is found by."""
    joined = " ".join(p for p in parts if p)
    decomposed = unicodedata.normalize("NFKD", joined.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def ingredients_of(generic_name: str) -> list[str]:
    """`Amoxicillin + Clavulanic Acid` -> ["Amoxicillin", "Clavulanic Acid"]."""
    return [" ".join(p.split()) for p in generic_name.split("+") if p.strip()]


def clean(data: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """Validate catalogue fields (all required ones, or the subset given when `partial`).

    Returns model values (with `ingredients` split out of `generic_name`); raises
    InvalidInput naming every bad field."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key in sorted(set(data) - set(FIELDS)):
        errors[key] = "Unknown field."

    def given(key: str) -> bool:
        return not partial or key in data

    if given("name"):
        out["name"] = _text(data.get("name"), "name", errors, 2, 120)
    if given("generic_name"):
        generic = _text(data.get("generic_name"), "generic_name", errors, 2, 400) or ""
        parts = ingredients_of(generic)
        if generic and (not parts or len(parts) > 10 or any(len(p) > 120 for p in parts)):
            errors["generic_name"] = "Give the ingredients joined by +, at most 10."
        out["generic_name"] = " + ".join(parts)
        out["ingredients"] = parts
    if given("strength"):
        out["strength"] = _text(data.get("strength"), "strength", errors, 1, 60)
    if given("dosage_form"):
        form = str(data.get("dosage_form") or "").strip().upper()
        if form not in DOSAGE_FORMS:
            errors["dosage_form"] = "One of " + ", ".join(DOSAGE_FORMS) + "."
        out["dosage_form"] = form
    if given("unit_price"):
        try:
            out["unit_price"] = parse_money(data.get("unit_price"), "unit_price")
        except InvalidInput as exc:
            errors.update(exc.fields)
    if given("gst_rate"):
        rate = data.get("gst_rate")  # an int: the schema and form read it
        if rate not in GST_RATES:
            errors["gst_rate"] = "One of 0, 5, 12, 18 or 28 (per cent)."
        out["gst_rate"] = rate
    for key, limit in (("drug_class", 80), ("manufacturer", 120)):
        if key in data:
            out[key] = _text(data.get(key), key, errors, 0, limit)
    if "hsn_code" in data:
        code = str(data.get("hsn_code") or "").strip() or None
        if code and not HSN_RE.match(code):
            errors["hsn_code"] = "4 to 8 digits, or leave it empty."
        out["hsn_code"] = code
    if "reorder_level" in data:
        level = data.get("reorder_level")
        if level is None or not 0 <= level <= 10**6:
            errors["reorder_level"] = "A whole number from 0 to 1,000,000."
        out["reorder_level"] = level
    if "schedule" in data:
        schedule = str(data.get("schedule") or "").strip().upper()
        if schedule not in set(DrugSchedule):
            errors["schedule"] = "One of " + ", ".join(DrugSchedule) + "."
        out["schedule"] = schedule
    if "is_active" in data:
        if data.get("is_active") is None:
            errors["is_active"] = "true or false."
        out["is_active"] = data.get("is_active")
    if errors:
        raise InvalidInput.naming(errors)
    return out


def snapshot(medicine: Medicine) -> dict[str, Any]:
    """The audited view of a catalogue entry."""
    return {key: getattr(medicine, key) for key in FIELDS}


def get_medicine(medicine_id: int) -> Medicine:
    """The medicine with this id; NotFound otherwise."""
    return get_or_raise(Medicine, medicine_id, "No such medicine.", "medicine_not_found")


def find_medicine(name: str, strength: str, dosage_form: str) -> Medicine | None:
    """The catalogue's medicine of this name, strength and form in any case (the key of
    its unique index; give the values as `clean` returns them); None when it has none."""
    return db.session.scalar(
        select(Medicine).where(
            func.lower(Medicine.name) == name.lower(),
            func.lower(Medicine.strength) == strength.lower(),
            Medicine.dosage_form == dosage_form,
        )
    )


def search_query(q: str | None = None, active_only: bool = True):
    """The query of `search` (to page, or to join more to)."""
    query, ordering = search_parts(q, active_only)
    return query.order_by(*ordering)


def search_parts(q: str | None = None, active_only: bool = True):
    """`search`'s query without its order, and the order (names starting with the text
    first, then by name): for a query that numbers its rows in that order."""
    words = search_form((q or "").replace("\x00", "")[:120]).split()[:6]
    query = select(Medicine)
    ordering = []
    if active_only:
        query = query.where(Medicine.is_active.is_(True))
    if words:
        query = query.where(
            and_(*(Medicine.search_text.contains(w, autoescape=True) for w in words))
        )
        # search_text begins with the accent-free name.
        starts = Medicine.search_text.startswith(" ".join(words), autoescape=True)
        ordering.append(case((starts, 0), else_=1))
    return query, [*ordering, func.lower(Medicine.name), Medicine.strength, Medicine.id]


def search(
    q: str | None = None,
    active_only: bool = True,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Medicines whose name, ingredients or class contain every word typed (any case,
    accents ignored); names starting with the text first, then by name."""
    return paginate(search_query(q, active_only), page, per_page)


def _save(medicine: Medicine, values: dict[str, Any]) -> None:
    """Apply `values` and write them inside a savepoint (begin_nested() flushes what is
    pending before it starts, so the changes must be made inside it), turning the unique
    index's refusal into the friendly answer."""
    try:
        with db.session.begin_nested():
            for key, value in values.items():
                setattr(medicine, key, value)
            medicine.search_text = search_form(
                medicine.name, medicine.generic_name, medicine.drug_class
            )[:700]
            db.session.add(medicine)
    except IntegrityError as exc:
        if constraint_name(exc) == "uq_medicines_name_strength_form":
            raise Conflict(
                "This medicine is already in the catalogue with that strength and form.",
                "medicine_exists",
                fields={"name": "Already in the catalogue with this strength and form."},
            ) from None
        raise


def create(actor: User, data: dict[str, Any]) -> Medicine:
    """Add a medicine. Raises InvalidInput (fields) and Conflict `medicine_exists` (same
    name, strength and form, in any case)."""
    values = clean(data)
    medicine = Medicine(created_by_id=actor.id if actor else None)
    _save(medicine, values)
    audit.record(actor, "MEDICINE_CREATED", ("medicine", medicine.id), None, snapshot(medicine))
    return medicine


def update(actor: User, medicine_id: int, data: dict[str, Any]) -> Medicine:
    """Change some fields of a medicine (deactivate with is_active false). Raises NotFound,
    InvalidInput and Conflict `medicine_exists`."""
    values = clean(data, partial=True)
    medicine = get_or_raise(
        Medicine, medicine_id, "No such medicine.", "medicine_not_found", lock=True
    )
    before = snapshot(medicine)
    _save(medicine, values)
    old, new = audit.diff(before, snapshot(medicine))
    if new:
        audit.record(actor, "MEDICINE_UPDATED", ("medicine", medicine.id), old, new)
    return medicine
