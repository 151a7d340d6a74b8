"""Prescriptions: written by the visit's doctor, checked against the
patient's allergies, printed as a PDF."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from qure.admin import settings as clinic_settings
from qure.auth.models import User
from qure.billing.invoiced import invoice_for_prescription
from qure.core import audit, clock
from qure.core.db import MAX_ID, constraint_name, get_or_none, get_or_raise
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.pagination import paginate
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import SEX_LABELS
from qure.pharmacy.models import Medicine
from qure.prescriptions import dosing
from qure.prescriptions.allergy import allergy_matches
from qure.prescriptions.models import Prescription, PrescriptionItem
from qure.visits import vitals
from qure.visits.models import SHOWN as VISIT_SHOWN
from qure.visits.models import NoteCategory, Visit, VisitStatus

MAX_ITEMS = 30
ITEM_FIELDS = (
    "medicine_id",
    "dose",
    "frequency",
    "duration_days",
    "quantity",
    "route",
    "instructions",
)


# ---- reading ---------------------------------------------------------------------------


# What a prescription's pages, PDF and answers show of it, loaded with it (the models
# raise on a lazy load).
SHOWN = (
    joinedload(Prescription.patient, innerjoin=True),
    joinedload(Prescription.doctor, innerjoin=True),
    joinedload(Prescription.visit, innerjoin=True).selectinload(Visit.notes),
    selectinload(Prescription.items).joinedload(PrescriptionItem.medicine, innerjoin=True),
)


def get_prescription(prescription_id: int) -> Prescription:
    """One prescription with what its pages show; NotFound otherwise."""
    return get_or_raise(
        Prescription,
        prescription_id,
        "No such prescription.",
        "prescription_not_found",
        options=SHOWN,
    )


# What `plain` reads: the items and their medicines (a caller holding the visit has its
# patient, doctor and notes already), joined into the prescription's own statement.
ITEMS = (joinedload(Prescription.items).joinedload(PrescriptionItem.medicine, innerjoin=True),)


def for_visit(visit_id: int, options: tuple = SHOWN) -> Prescription | None:
    query = select(Prescription).where(Prescription.visit_id == visit_id).options(*options)
    # unique(): joined items repeat the prescription's row (a visit has one prescription).
    return db.session.scalars(query).unique().first()


# What billing reads of a prescription: its visit with patient and doctor, its items and
# their medicines.
BILLED = (
    joinedload(Prescription.visit, innerjoin=True).joinedload(Visit.patient, innerjoin=True),
    joinedload(Prescription.visit, innerjoin=True).joinedload(Visit.doctor, innerjoin=True),
    *ITEMS,
)


def for_billing(
    prescription_id: int | None = None, visit_id: int | None = None
) -> Prescription | None:
    """The prescription with this id (or of this visit) as billing reads it, or None."""
    if prescription_id is not None:
        return get_or_none(Prescription, prescription_id, options=BILLED)
    return for_visit(visit_id, options=BILLED)


def list_prescriptions(
    patient_id: int | None = None,
    doctor_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
):
    """Prescriptions newest first, by patient and/or doctor."""
    query = select(Prescription)
    if patient_id is not None:
        query = query.where(Prescription.patient_id == patient_id)
    if doctor_id is not None:
        query = query.where(Prescription.doctor_id == doctor_id)
    query = query.order_by(Prescription.created_at.desc(), Prescription.id.desc()).options(
        joinedload(Prescription.patient),
        joinedload(Prescription.doctor),
        selectinload(Prescription.items).joinedload(PrescriptionItem.medicine),
    )
    return paginate(query, page, per_page)


def for_patient(patient_id: int, limit: int = 20) -> list[Prescription]:
    """A patient's prescriptions, newest first."""
    query = (
        select(Prescription)
        .where(Prescription.patient_id == patient_id)
        .order_by(Prescription.created_at.desc(), Prescription.id.desc())
        .limit(limit)
        .options(*SHOWN)
    )
    return list(db.session.scalars(query))


def item_plain(item: PrescriptionItem) -> dict[str, Any]:
    medicine = item.medicine
    frequency = dosing.parse_frequency(item.frequency)
    return {
        "medicine_id": medicine.id,
        "medicine": {
            "name": medicine.name,
            "generic_name": medicine.generic_name,
            "strength": medicine.strength,
            "dosage_form": medicine.dosage_form,
        },
        "dose": item.dose,
        "dose_words": dosing.dose_words(item.dose),
        "frequency": item.frequency,
        "frequency_words": frequency.words,
        "duration_days": item.duration_days,
        "quantity": item.quantity,
        "route": item.route,
        "instructions": item.instructions,
    }


def plain(prescription: Prescription) -> dict[str, Any]:
    """The prescription as plain values (for the PDF, the API and the visit snapshot)."""
    return {
        "id": prescription.id,
        "visit_id": prescription.visit_id,
        "created_at": prescription.created_at,
        "notes": prescription.notes,
        "allergy_override_reason": prescription.allergy_override_reason,
        "items": [item_plain(i) for i in prescription.items],
    }


# ---- checking --------------------------------------------------------------------------


def _medicine_id(value: Any) -> int | None:
    # Items arrive as the JSON body's own dicts (untyped, so that every bad item field is
    # named in one answer): an id may still be text, a float or a boolean here.
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def _medicines(items: list) -> dict[int, Medicine]:
    """The active medicines the items name, by id, in one query."""
    ids = {_medicine_id(item.get("medicine_id")) for item in items if isinstance(item, dict)}
    ids.discard(None)
    if not ids:
        return {}
    found = db.session.scalars(
        select(Medicine).where(Medicine.id.in_(ids), Medicine.is_active.is_(True))
    )
    return {m.id: m for m in found}


def clean_items(items: Any) -> list[tuple[Medicine, dict[str, Any]]]:
    """Each item's medicine and model values (quantity computed where the dosing rules say so).
    Raises InvalidInput naming `items.N.field` for every bad field."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidInput(
            "items: give 1 to 30 items", fields={"items": f"Give 1 to {MAX_ITEMS} medicines."}
        )
    errors: dict[str, str] = {}
    cleaned: list[tuple[Medicine, dict[str, Any]]] = []
    known = _medicines(items)
    for n, item in enumerate(items):
        where = f"items.{n}"
        if not isinstance(item, dict):
            errors[where] = "Give medicine_id, dose, frequency and duration_days."
            continue
        for key in sorted(set(item) - set(ITEM_FIELDS)):
            errors[f"{where}.{key}"] = "Unknown field."
        medicine = known.get(_medicine_id(item.get("medicine_id")))
        if medicine is None:
            errors[f"{where}.medicine_id"] = "No such medicine in use."
        values: dict[str, Any] = {}
        try:
            frequency = dosing.parse_frequency(str(item.get("frequency") or ""))
            values["frequency"] = frequency.code
        except InvalidInput as exc:
            errors[f"{where}.frequency"] = next(iter(exc.fields.values()))
            frequency = None
        for key, limit in (("route", 40), ("instructions", 300)):
            try:
                values[key] = plain_text(item.get(key), f"{where}.{key}", limit)
            except InvalidInput as exc:
                errors.update(exc.fields)
        if medicine is not None and frequency is not None:
            try:
                values["quantity"] = dosing.quantity(
                    medicine.dosage_form,
                    item.get("dose"),
                    frequency,
                    item.get("duration_days"),
                    item.get("quantity"),
                )
                values["dose"] = Decimal(str(item.get("dose"))).quantize(Decimal("0.01"))
                values["duration_days"] = int(item.get("duration_days"))
            except InvalidInput as exc:
                errors.update({f"{where}.{k}": v for k, v in exc.fields.items()})
        if medicine is not None:
            cleaned.append((medicine, values))
    if errors:
        raise InvalidInput.naming(errors)
    return cleaned


def allergy_conflicts(patient, medicines: list[Medicine]) -> list[dict[str, Any]]:
    """Each (medicine, allergy) match: by name, ingredient or drug class, whole words."""
    found = []
    for medicine in medicines:
        for match in allergy_matches(
            list(patient.allergies or []), medicine.name, medicine.ingredients, medicine.drug_class
        ):
            found.append(
                {
                    "medicine_id": medicine.id,
                    "medicine": f"{medicine.name} {medicine.strength}",
                    "allergy": match.allergy,
                    "matched": match.matched,
                    "via": match.via,
                }
            )
    return found


def _override_key(conflict: dict[str, Any]) -> str:
    return f"{conflict['medicine_id']}:{conflict['allergy'].casefold()}"


def _check_allergies(
    actor: User,
    visit: Visit,
    medicines,
    override_reason: Any,
    overridden: list[str] | None = None,
) -> tuple[str | None, list[str]]:
    """Check every medicine against the patient's allergies as they are now. A match not
    overridden before (`overridden` keys) is refused (409 `allergy_conflict`, each match in
    details) unless a reason is given; an override is audited. Returns the reason given
    (or None) and the keys of every match now overridden."""
    done = set(overridden or [])
    conflicts = allergy_conflicts(visit.patient, medicines)
    new = [c for c in conflicts if _override_key(c) not in done]
    kept = sorted(done & {_override_key(c) for c in conflicts})
    if not new:
        return None, kept
    reason = " ".join(str(override_reason or "").split())
    if not reason:
        names = ", ".join(sorted({c["medicine"] for c in new}))
        raise Conflict(
            f"Allergy warning: the patient is allergic to {names}. Give a reason to go on.",
            "allergy_conflict",
            details={"matches": new},
        )
    if len(reason) > 500 or "\x00" in reason:
        raise InvalidInput(
            "override_reason: too long",
            fields={"override_reason": "At most 500 characters of plain text."},
        )
    audit.record(
        actor,
        "ALLERGY_OVERRIDDEN",
        ("visit", visit.id),
        None,
        {"patient_id": visit.patient_id, "matches": new, "reason": reason},
    )
    return reason, sorted({*kept, *(_override_key(c) for c in new)})


def _locked_visit(visit_id: int) -> Visit:
    """The visit, its row locked, with what its pages show; NotFound when there is none."""
    return get_or_raise(
        Visit, visit_id, "No such visit.", "visit_not_found", lock=True, options=VISIT_SHOWN
    )


def _own_open_visit(actor: User, visit: Visit) -> None:
    if actor.role != Role.DOCTOR or visit.doctor_id != actor.id:
        raise Forbidden("Only the visit's doctor prescribes on it.", "not_your_visit")
    if visit.status != VisitStatus.IN_PROGRESS:
        raise Conflict("This visit is completed; it is read-only.", "visit_completed")


# ---- writing ---------------------------------------------------------------------------


def _fill(prescription: Prescription, cleaned) -> None:
    if prescription.items:
        # The old items go first: a new item may take an old one's position.
        prescription.items.clear()
        db.session.flush()
    prescription.items = [
        PrescriptionItem(medicine_id=medicine.id, medicine=medicine, position=n, **values)
        for n, (medicine, values) in enumerate(cleaned, start=1)
    ]


def create(actor: User, data: dict[str, Any]) -> Prescription:
    """Write the visit's prescription: {visit_id, items, notes?, override_reason?}.

    Raises NotFound (visit), Forbidden (not the visit's doctor), Conflict
    `visit_completed`, `prescription_exists`, `allergy_conflict`, and InvalidInput naming
    each bad item field. Returns the prescription."""
    visit_id = data.get("visit_id")
    if visit_id is None:
        raise InvalidInput("visit_id: give the visit", fields={"visit_id": "Give the visit."})
    # The visit row is locked first (as completing it does), so a prescription can never
    # land on a visit being completed at the same moment.
    visit = _locked_visit(visit_id)
    _own_open_visit(actor, visit)
    existing = for_visit(visit.id)
    if existing is not None:
        raise Conflict(
            "This visit already has a prescription; change it instead.",
            "prescription_exists",
            details={"prescription_id": existing.id},
        )
    cleaned = clean_items(data.get("items"))
    notes = plain_text(data.get("notes"), "notes", 1000)
    reason, overridden = _check_allergies(
        actor, visit, [m for m, _ in cleaned], data.get("override_reason")
    )
    prescription = Prescription(
        visit_id=visit.id,
        visit=visit,
        patient_id=visit.patient_id,
        patient=visit.patient,
        doctor_id=actor.id,
        doctor=actor,
        notes=notes,
        allergy_override_reason=reason,
        allergy_overrides=overridden,
        created_at=clock.now(),
    )
    try:
        with db.session.begin_nested():
            _fill(prescription, cleaned)
            db.session.add(prescription)
    except IntegrityError as exc:
        if constraint_name(exc) == "uq_prescriptions_visit":
            raise Conflict(
                "This visit already has a prescription; change it instead.",
                "prescription_exists",
            ) from None
        raise
    audit.record(
        actor, "PRESCRIPTION_CREATED", ("prescription", prescription.id), None, plain(prescription)
    )
    return prescription


def update(actor: User, prescription_id: int, data: dict[str, Any]) -> Prescription:
    """Change the items and/or notes while the visit is in progress (the same checks as
    `create`). Raises NotFound, Forbidden, Conflict `visit_completed` / `allergy_conflict`,
    InvalidInput."""
    found = get_prescription(prescription_id)
    _locked_visit(found.visit_id)  # the visit first, as in `create` and visits.complete
    prescription = get_or_none(Prescription, found.id, lock=True, options=SHOWN)
    invoice_id = invoice_for_prescription(prescription.id)
    if invoice_id is not None:
        raise Conflict(
            "This prescription has been invoiced; it cannot change.",
            "prescription_invoiced",
            details={"invoice_id": invoice_id},
        )
    _own_open_visit(actor, prescription.visit)
    before = plain(prescription)
    if "items" in data:
        cleaned = clean_items(data.get("items"))
        # Every medicine is checked against the allergies as they are now; a match the
        # doctor already overrode with a reason needs no second one.
        reason, overridden = _check_allergies(
            actor,
            prescription.visit,
            [m for m, _ in cleaned],
            data.get("override_reason"),
            prescription.allergy_overrides,
        )
        _fill(prescription, cleaned)
        prescription.allergy_overrides = overridden
        if reason:
            prescription.allergy_override_reason = reason
    if "notes" in data:
        prescription.notes = plain_text(data.get("notes"), "notes", 1000)
    db.session.flush()
    old, new = audit.diff(before, plain(prescription))
    if new:
        audit.record(actor, "PRESCRIPTION_UPDATED", ("prescription", prescription.id), old, new)
    return prescription


def item_input(item: PrescriptionItem) -> dict[str, Any]:
    """An existing item as `create`/`update` take it (its quantity kept)."""
    return {
        "medicine_id": item.medicine_id,
        "dose": str(item.dose),
        "frequency": item.frequency,
        "duration_days": item.duration_days,
        "quantity": item.quantity,
        "route": item.route,
        "instructions": item.instructions,
    }


def add_item(
    actor: User, visit_id: int, item: dict[str, Any], override_reason: str | None = None
) -> Prescription:
    """Add one medicine to the visit's prescription (writing the prescription with it
    when there is none yet). Raises as `create` / `update`."""
    existing = for_visit(visit_id)
    if existing is None:
        return create(
            actor, {"visit_id": visit_id, "items": [item], "override_reason": override_reason}
        )
    items = [item_input(i) for i in existing.items] + [item]
    return update(actor, existing.id, {"items": items, "override_reason": override_reason})


def remove_item(actor: User, prescription_id: int, position: int) -> Prescription:
    """Take one medicine off the prescription (it must keep at least one). Raises
    NotFound, Forbidden, Conflict `visit_completed`, InvalidInput."""
    prescription = get_prescription(prescription_id)
    _own_open_visit(actor, prescription.visit)
    items = [item_input(i) for i in prescription.items if i.position != position]
    if len(items) == len(prescription.items):
        raise NotFound("No such medicine on this prescription.", "item_not_found")
    if not items:
        raise InvalidInput(
            "items: keep at least one medicine",
            fields={"items": "A prescription keeps at least one medicine; change it instead."},
        )
    return update(actor, prescription_id, {"items": items})


# ---- printing --------------------------------------------------------------------------

# What a dose and a quantity of each dosage form count, (singular, plural), as printed. A
# dose of an injection or of "other" has no unit the form alone can tell (a vial, millilitres
# and insulin units are all written "1"), so it prints bare.
ML = ("ml", "ml")
UNITS: dict[str, tuple[tuple[str, str] | None, tuple[str, str]]] = {
    "TABLET": (("tab", "tabs"), ("tab", "tabs")),
    "CAPSULE": (("cap", "caps"), ("cap", "caps")),
    "SYRUP": (ML, ("bottle", "bottles")),
    "SUSPENSION": (ML, ("bottle", "bottles")),
    "DROPS": (("drop", "drops"), ("bottle", "bottles")),
    "INHALER": (("puff", "puffs"), ("inhaler", "inhalers")),
    "OINTMENT": (("appl.", "appl."), ("tube", "tubes")),
    "CREAM": (("appl.", "appl."), ("tube", "tubes")),
    "INJECTION": (None, ("vial", "vials")),
    "OTHER": (None, ("pack", "packs")),
}


def in_units(amount: Decimal | int, dosage_form: str, packs: bool = False) -> str:
    """An amount with the unit its dosage form counts in: a dose ("½ tab", "2 tabs", "2.5
    ml", "2 puffs") or, with `packs`, the quantity to dispense ("9 tabs", "1 bottle").
    Counted doses say halves with ½, millilitres as decimals; a dose whose unit the form
    does not tell prints bare ("1"). Raises nothing."""
    dose_unit, pack_unit = UNITS[dosage_form]
    unit = pack_unit if packs else dose_unit
    value = Decimal(amount)
    words = _short(value) if unit == ML else dosing.dose_words(value)
    if unit is None:
        return words
    return f"{words} {unit[0] if value <= 1 else unit[1]}"


def print_values(prescription: Prescription) -> dict[str, Any]:
    """Everything the printed prescription shows, as plain values: the temperature in the
    clinic's unit (`TEMPERATURE_UNIT`), doses and quantities with their units, and the
    findings as the visit records them (complaint, since when, the examination notes)."""
    visit, patient, doctor = prescription.visit, prescription.patient, prescription.doctor
    config = current_app.config
    clinic = clinic_settings.get_settings()  # the admin's settings, the environment's by default
    rx = plain(prescription)
    return {
        "clinic": {
            "name": clinic["clinic_name"],
            "address": clinic["address"],
            "phone": clinic["phone"],
            "registration": clinic["registration"],
        },
        "doctor": {
            "full_name": doctor.full_name,
            "qualification": doctor.qualification,
            "registration_number": doctor.registration_number,
        },
        "date": clock.clinic_day(prescription.created_at),
        "patient": {
            "full_name": patient.full_name,
            "age": patients.age_label(patient),
            "sex": SEX_LABELS.get(patient.sex, patient.sex),
            "mrn": patient.mrn,
            "allergies": list(patient.allergies or []),
        },
        "vitals": {
            "bp": f"{visit.bp_systolic}/{visit.bp_diastolic} mmHg"
            if visit.bp_systolic and visit.bp_diastolic
            else None,
            "temperature": _temperature(visit.temperature_c, config["TEMPERATURE_UNIT"]),
            "pulse": f"{visit.pulse} /min" if visit.pulse else None,
            "spo2": f"{visit.spo2} %" if visit.spo2 else None,
            "weight": f"{_short(visit.weight_kg)} kg" if visit.weight_kg else None,
            "bmi": vitals.bmi(visit),
        },
        "findings": {
            "complaint": visit.chief_complaint,
            "since": visit.symptom_duration,
            "examination": [n.text for n in visit.notes if n.category == NoteCategory.OBSERVATION],
        },
        "diagnosis": visit.diagnosis,
        "icd10_code": visit.icd10_code,
        "follow_up_date": visit.follow_up_date,
        **rx,
        "items": [_printed_item(item) for item in rx["items"]],
    }


def _printed_item(item: dict[str, Any]) -> dict[str, Any]:
    form = item["medicine"]["dosage_form"]
    return {
        **item,
        "dose_text": in_units(item["dose"], form),
        "quantity_text": in_units(item["quantity"], form, packs=True),
    }


def _temperature(celsius: Decimal | None, unit: str) -> str | None:
    if not celsius:
        return None
    if unit.strip().upper() == "F":
        return f"{vitals.fahrenheit(celsius)} °F"
    return f"{celsius} °C"


def _short(value: Decimal) -> str:
    """70.00 -> "70", 70.50 -> "70.5"."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def print_pdf(prescription_id: int) -> tuple[bytes, str]:
    """The A5 prescription PDF and a file name for it."""
    # WeasyPrint takes about a second to import: load it at the first print, not at every
    # start of the app, the worker and each CLI command (the one import kept in a body).
    from qure.core.pdf import render_pdf

    prescription = get_prescription(prescription_id)
    values = print_values(prescription)
    pdf = render_pdf("pdf/prescription.html", **values)
    return pdf, f"prescription-{values['patient']['mrn']}-{prescription.id}.pdf"
