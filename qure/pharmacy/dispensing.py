"""Dispensing at the counter: a paid prescription's medicines handed over from stock,
earliest expiry first (never from an expired batch), returns back into the batch they came
from, and the Schedule H1 register.

What is still due of a prescription item is what its PAID invoice's line bills (less what
credit notes refunded: a refunded line is not dispensed), capped at the prescribed
quantity, less what dispensings have handed over. Returns do not reduce what was handed
over: a returned item is not dispensed again automatically (the patient handed it back;
the money goes back by credit note at the billing counter).

Locks, always in this order, so that two dispensings never deadlock: the prescription row
(FOR UPDATE: one dispensing of a prescription at a time), its PAID invoice (FOR SHARE: a
credit note waits), then the usable batches of the medicines needed, in one statement in
(expiry_date, id) order. Returns lock the dispensed items, then their batches in the same
(expiry_date, id) order. The prescription's `dispense_status` changes only here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from qure.auth.models import User
from qure.billing import invoiced
from qure.core import audit, clock, exports, money
from qure.core.db import get_or_raise
from qure.core.errors import Conflict, InvalidInput
from qure.core.pagination import Page, cut_total, page_cut, page_params, paginate
from qure.core.roles import Role
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import Patient
from qure.pharmacy import stock
from qure.pharmacy.models import (
    REGISTERED,
    Batch,
    DispensedItem,
    Dispensing,
    H1RegisterEntry,
    Medicine,
    MovementType,
)
from qure.prescriptions.models import DispenseStatus, Prescription, PrescriptionItem

DISPENSERS = (Role.PHARMACIST,)  # dispensing is the licensed pharmacist's act
COUNTER = (Role.PHARMACIST, Role.ADMIN)  # who sees what is to dispense
# The register names patients and their addresses: the pharmacy's legal record, read by the
# pharmacist who keeps it and the admin who answers for it (and an inspector through them).
REGISTER_READERS = (Role.ADMIN, Role.PHARMACIST)
MAX_RETURN_ITEMS = 100
MAX_REGISTER_DAYS = 366


# ---- what is due -----------------------------------------------------------------------


def handed_over(prescription_id: int) -> dict[int, int]:
    """Per prescription item id, the quantity its dispensings have handed over (returns
    not subtracted)."""
    rows = db.session.execute(
        select(DispensedItem.prescription_item_id, func.sum(DispensedItem.quantity))
        .join(Dispensing, Dispensing.id == DispensedItem.dispensing_id)
        .where(Dispensing.prescription_id == prescription_id)
        .group_by(DispensedItem.prescription_item_id)
    )
    return {item_id: int(total) for item_id, total in rows}


def _paid(invoice: dict[str, Any] | None) -> dict[int, Any]:
    """Per item id, what the PAID invoice (`invoiced.paid_invoice`) bills less refunds."""
    return {k: line["quantity"] for k, line in invoice["lines"].items()} if invoice else {}


def due(prescription: Prescription, paid: dict, given: dict[int, int]) -> dict[int, int]:
    """Per item id, what is still to be handed over (see the module's note)."""
    out = {}
    for item in prescription.items:
        payable = min(item.quantity, int(paid.get(item.id, 0)))  # a part unit is not given
        out[item.id] = max(0, payable - given.get(item.id, 0))
    return out


def outstanding(prescription: Prescription, left: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "prescription_item_id": item.id,
            "medicine_id": item.medicine_id,
            "medicine": item.medicine.name,
            "quantity": left[item.id],
        }
        for item in prescription.items
        if left.get(item.id)
    ]


# ---- dispensing ------------------------------------------------------------------------

# One statement: the prescription (locked: FOR UPDATE OF prescriptions), its patient and
# doctor, its items and their medicines.
LOCKED = (
    joinedload(Prescription.patient, innerjoin=True),
    joinedload(Prescription.doctor, innerjoin=True),
    joinedload(Prescription.items).joinedload(PrescriptionItem.medicine, innerjoin=True),
)


def _locked_prescription(prescription_id: Any) -> Prescription:
    if not isinstance(prescription_id, int) or isinstance(prescription_id, bool):
        raise InvalidInput.naming({"prescription_id": "Choose the prescription."})
    return get_or_raise(
        Prescription,
        prescription_id,
        "No such prescription.",
        "prescription_not_found",
        lock=True,
        options=LOCKED,
    )


def dispense(actor: User, data: dict[str, Any]) -> dict[str, Any]:
    """Hand over what is due of a paid prescription {prescription_id, allow_partial?}.

    Takes stock earliest expiry first across as many batches as needed, never from an
    expired one. Without `allow_partial` all or nothing: Conflict `insufficient_stock`
    (details.items: each short item, what is due and what is usable). With it, what is
    usable goes out and the prescription stays PARTIALLY_DISPENSED. Conflict
    `invoice_not_paid` without a PAID invoice, `already_dispensed` when nothing is due.
    Writes the H1 register for H1 and X medicines, audits STOCK_DISPENSED and publishes one
    OUT movement per batch taken from. Returns the dispensing (`plain`)."""
    errors: dict[str, str] = {}
    for key in sorted(set(data) - {"prescription_id", "allow_partial"}):
        errors[key] = "Unknown field."
    allow_partial = data.get("allow_partial", False)
    if not isinstance(allow_partial, bool):
        errors["allow_partial"] = "true or false."
    if errors:
        raise InvalidInput.naming(errors)
    prescription = _locked_prescription(data.get("prescription_id"))
    invoice = invoiced.paid_invoice(prescription.id, lock=True)
    if invoice is None:
        raise Conflict(
            "This prescription has no paid invoice: the patient pays at the billing counter first.",
            "invoice_not_paid",
        )
    # Nothing of a prescription still AWAITING has been handed over: no need to ask.
    awaiting = prescription.dispense_status == DispenseStatus.AWAITING
    left = due(prescription, _paid(invoice), {} if awaiting else handed_over(prescription.id))
    if not any(left.values()):
        raise Conflict("Everything on this prescription has been handed over.", "already_dispensed")

    needed = [item for item in prescription.items if left[item.id]]
    plan, short = _plan(needed, left, stock.lock_usable([item.medicine_id for item in needed]))
    if short and (not allow_partial or not plan):
        names = ", ".join(s["medicine"] for s in short)
        raise Conflict(
            f"Not enough usable stock of {names}.",
            "insufficient_stock",
            details={"items": short},
        )

    now = clock.now()
    dispensing = Dispensing(
        prescription_id=prescription.id,
        dispensed_by_id=actor.id,
        dispensed_by=actor,
        dispensed_at=now,
        partial=bool(short),
    )
    for item, batch, take in plan:
        batch.quantity -= take
        set_committed_value(batch, "medicine", item.medicine)
        dispensing.items.append(
            DispensedItem(prescription_item_id=item.id, batch=batch, quantity=take)
        )
        left[item.id] -= take
    status = (
        DispenseStatus.DISPENSED if not any(left.values()) else DispenseStatus.PARTIALLY_DISPENSED
    )
    prescription.dispense_status = status
    db.session.add(dispensing)
    db.session.flush()

    medicine_of = {item.id: item.medicine for item in prescription.items}
    register = [
        _register_entry(actor, prescription, dispensing, row, medicine_of[row.prescription_item_id])
        for row in dispensing.items
        if medicine_of[row.prescription_item_id].schedule in REGISTERED
    ]
    if register:
        db.session.add_all(register)
    audit.record(
        actor,
        "STOCK_DISPENSED",
        ("dispensing", dispensing.id),
        None,
        {
            "prescription_id": prescription.id,
            "partial": dispensing.partial,
            "status": status,
            "items": [
                {
                    "prescription_item_id": row.prescription_item_id,
                    "batch_id": row.batch_id,
                    "batch_number": row.batch.batch_number,
                    "quantity": row.quantity,
                }
                for row in dispensing.items
            ],
        },
    )
    for row in dispensing.items:
        stock.movement(
            MovementType.OUT,
            actor,
            row.batch,
            medicine_of[row.prescription_item_id],
            row.quantity,
            dispensing_id=dispensing.id,
            prescription_id=prescription.id,
        )
    return plain(dispensing, status, outstanding(prescription, left), prescription.patient, invoice)


def _plan(
    needed: list[PrescriptionItem], left: dict[int, int], batches: list[Batch]
) -> tuple[list[tuple[PrescriptionItem, Batch, int]], list[dict[str, Any]]]:
    """What to take from which batch (`batches` are usable, in (expiry_date, id) order):
    earliest expiry first, as many batches as each item needs; and what is short."""
    by_medicine: dict[int, list[Batch]] = defaultdict(list)
    for batch in batches:
        by_medicine[batch.medicine_id].append(batch)
    available = {batch.id: batch.quantity for batch in batches}
    plan: list[tuple[PrescriptionItem, Batch, int]] = []
    short = []
    for item in needed:
        need = left[item.id]
        usable = sum(available[b.id] for b in by_medicine[item.medicine_id])
        for batch in by_medicine[item.medicine_id]:
            take = min(need, available[batch.id])
            if take:
                plan.append((item, batch, take))
                available[batch.id] -= take
                need -= take
            if not need:
                break
        if need:
            short.append(
                {
                    "prescription_item_id": item.id,
                    "medicine_id": item.medicine_id,
                    "medicine": item.medicine.name,
                    "due": left[item.id],
                    "available": usable,
                }
            )
    return plan, short


def _register_entry(
    actor: User,
    prescription: Prescription,
    dispensing: Dispensing,
    row: DispensedItem,
    medicine: Medicine,
) -> H1RegisterEntry:
    patient, doctor = prescription.patient, prescription.doctor
    return H1RegisterEntry(
        entry_date=clock.clinic_day(dispensing.dispensed_at),
        dispensed_at=dispensing.dispensed_at,
        patient_name=patient.full_name,
        patient_address=patient.address,
        doctor_name=doctor.full_name,
        doctor_registration=doctor.registration_number,
        medicine_name=f"{medicine.name} {medicine.strength}"[:200],
        schedule=medicine.schedule,
        batch_number=row.batch.batch_number,
        expiry_date=row.batch.expiry_date,
        quantity=row.quantity,
        pharmacist_name=actor.full_name,
        dispensing_id=dispensing.id,
        dispensed_item_id=row.id,
    )


def preview(prescription_id: int) -> dict[str, Any]:
    """What `dispense` would do now, nothing locked or changed, for the dispense screen:
    per item what was prescribed, paid, handed over and is due, the batches it would come
    from (earliest expiry first, never an expired one) and what is short. `paid` is False
    without a PAID invoice; `ready` when something can be handed over."""
    prescription = get_or_raise(
        Prescription,
        prescription_id,
        "No such prescription.",
        "prescription_not_found",
        options=(
            joinedload(Prescription.patient, innerjoin=True),
            joinedload(Prescription.doctor, innerjoin=True),
            selectinload(Prescription.items).joinedload(PrescriptionItem.medicine, innerjoin=True),
        ),
    )
    paid = invoiced.paid_lines_for_prescription(prescription.id)
    given = handed_over(prescription.id)
    left = due(prescription, paid or {}, given)
    needed = [item for item in prescription.items if left[item.id]]
    plan, short = _plan(needed, left, stock.usable_batches([i.medicine_id for i in needed]))
    short_of = {s["prescription_item_id"]: s for s in short}
    items = []
    for item in prescription.items:
        taken = [
            {"batch_number": b.batch_number, "expiry_date": b.expiry_date, "quantity": q}
            for i, b, q in plan
            if i.id == item.id
        ]
        missing = short_of.get(item.id)
        items.append(
            {
                "prescription_item_id": item.id,
                "medicine": _medicine(item.medicine),
                "dose": item.dose,
                "frequency": item.frequency,
                "duration_days": item.duration_days,
                "route": item.route,
                "instructions": item.instructions,
                "prescribed": item.quantity,
                "paid": min(item.quantity, int((paid or {}).get(item.id, 0))),
                "handed_over": given.get(item.id, 0),
                "due": left[item.id],
                "batches": taken,
                "short": missing["due"] - missing["available"] if missing else 0,
            }
        )
    patient, doctor = prescription.patient, prescription.doctor
    return {
        "prescription": {
            "id": prescription.id,
            "created_at": prescription.created_at,
            "visit_id": prescription.visit_id,
            "dispense_status": prescription.dispense_status,
            "notes": prescription.notes,
        },
        "patient": {
            "id": patient.id,
            "full_name": patient.full_name,
            "mrn": patient.mrn,
            "sex": patient.sex,
            "age": patients.age_label(patient),
            "allergies": list(patient.allergies or []),
        },
        "doctor": {
            "full_name": doctor.full_name,
            "registration_number": doctor.registration_number,
        },
        "paid": paid is not None,
        "items": items,
        "short": bool(short),
        "ready": bool(plan),
        "due": any(left.values()),
        "dispensings": for_prescription(prescription.id),
    }


def _quantity(value) -> str | None:
    return None if value is None else money.quantity_text(value)


def credit_offer(item: dict[str, Any]) -> int:
    """How many units of a dispensed item (`plain`'s) a credit note should refund for what
    came back: what was returned, at most what its PAID line may still refund; 0 when
    the line is refunded already or there is none."""
    if item["invoice_line_id"] is None or not item["refundable"]:
        return 0
    return min(item["returned_quantity"], int(Decimal(item["refundable"])))


def _medicine(medicine: Medicine) -> dict[str, Any]:
    return {
        "id": medicine.id,
        "name": medicine.name,
        "strength": medicine.strength,
        "dosage_form": medicine.dosage_form,
        "schedule": medicine.schedule,
    }


# ---- reading ---------------------------------------------------------------------------


def plain(
    dispensing: Dispensing,
    status: str,
    left: list[dict[str, Any]] | None,
    patient: Patient,
    invoice: dict[str, Any] | None,
) -> dict[str, Any]:
    """A dispensing as the API and pages show it (items with their batch and medicine
    loaded): per item the batch and quantity taken and the PAID invoice's line that billed
    it (the line a credit note for a returned item names), and what is still due."""
    lines = invoice["lines"] if invoice else {}
    return {
        "id": dispensing.id,
        "prescription_id": dispensing.prescription_id,
        "patient": {"id": patient.id, "full_name": patient.full_name, "mrn": patient.mrn},
        "invoice_id": invoice["invoice_id"] if invoice else None,
        "invoice_number": invoice["invoice_number"] if invoice else None,
        "dispensed_by": {
            "id": dispensing.dispensed_by.id,
            "full_name": dispensing.dispensed_by.full_name,
        },
        "dispensed_at": dispensing.dispensed_at,
        "partial": dispensing.partial,
        "dispense_status": status,
        "items": [
            {
                "id": row.id,
                "prescription_item_id": row.prescription_item_id,
                "medicine": _medicine(row.batch.medicine),
                "batch_id": row.batch_id,
                "batch_number": row.batch.batch_number,
                "expiry_date": row.batch.expiry_date,
                "quantity": row.quantity,
                "returned_quantity": row.returned_quantity,
                "returnable": row.quantity - row.returned_quantity,
                "invoice_line_id": lines.get(row.prescription_item_id, {}).get("line_id"),
                "refundable": _quantity(lines.get(row.prescription_item_id, {}).get("quantity")),
            }
            for row in dispensing.items
        ],
        "outstanding": left or [],
    }


SHOWN = (
    joinedload(Dispensing.dispensed_by, innerjoin=True),
    selectinload(Dispensing.items)
    .joinedload(DispensedItem.batch, innerjoin=True)
    .joinedload(Batch.medicine, innerjoin=True),
)


def get_dispensing(dispensing_id: int) -> dict[str, Any]:
    """One dispensing (`plain`), with what its prescription still has due; NotFound."""
    dispensing = get_or_raise(
        Dispensing, dispensing_id, "No such dispensing.", "dispensing_not_found", options=SHOWN
    )
    prescription = db.session.scalars(
        select(Prescription)
        .where(Prescription.id == dispensing.prescription_id)
        .options(
            joinedload(Prescription.patient, innerjoin=True),
            selectinload(Prescription.items).joinedload(PrescriptionItem.medicine, innerjoin=True),
        )
    ).one()
    invoice = invoiced.paid_invoice(prescription.id)
    left = due(prescription, _paid(invoice), handed_over(prescription.id))
    return plain(
        dispensing,
        prescription.dispense_status,
        outstanding(prescription, left),
        prescription.patient,
        invoice,
    )


def for_prescription(prescription_id: int) -> list[int]:
    """The ids of a prescription's dispensings, oldest first."""
    return list(
        db.session.scalars(
            select(Dispensing.id)
            .where(Dispensing.prescription_id == prescription_id)
            .order_by(Dispensing.id)
        )
    )


def _awaiting():
    """What is to dispense: prescriptions with items and a PAID invoice, not fully
    dispensed."""
    return (
        Prescription.dispense_status != DispenseStatus.DISPENSED,
        Prescription.id.in_(invoiced.paid_prescriptions()),
        exists().where(PrescriptionItem.prescription_id == Prescription.id),
    )


def to_dispense(page: int = 1, per_page: int = 50) -> Page:
    """Prescriptions with a PAID invoice that are not fully dispensed, oldest first, in
    one statement: the page is cut first (with the count of all), then only its rows are
    joined to their patient, doctor and items with their medicines. Items are plain dicts
    (`_listed_prescriptions`): what `PrescriptionSchema` shows of each (the API writes
    them with `prescriptions.schemas.listed`), which is also what the counter's page
    shows."""
    awaiting, statement = _to_dispense_statements()
    params = page_params(page, per_page)
    rows = db.session.execute(statement, params).all() if params else []
    total = cut_total(awaiting, rows, page)
    return Page(_listed_prescriptions(rows), page, per_page, total)


@cache
def _to_dispense_statements() -> tuple[Select, Select]:
    """What is to dispense, oldest first (ids), and the statement of one page of it
    (`page_cut`) with what the list shows: built once."""
    awaiting = (
        select(Prescription.id, Prescription.created_at)
        .where(*_awaiting())
        .order_by(Prescription.created_at, Prescription.id)
    )
    cut = page_cut(awaiting)
    statement = (
        select(
            Prescription.id,
            Prescription.visit_id,
            Patient.id,
            Patient.full_name,
            Patient.mrn,
            User.id,
            User.full_name,
            Prescription.notes,
            Prescription.allergy_override_reason,
            Prescription.dispense_status,
            Prescription.created_at,
            Medicine.id,
            Medicine.name,
            Medicine.generic_name,
            Medicine.strength,
            Medicine.dosage_form,
            PrescriptionItem.dose,
            PrescriptionItem.frequency,
            PrescriptionItem.duration_days,
            PrescriptionItem.quantity,
            PrescriptionItem.route,
            PrescriptionItem.instructions,
            cut.c.total,
        )
        .select_from(cut)
        .join(Prescription, Prescription.id == cut.c.id)
        .join(Patient, Patient.id == Prescription.patient_id)
        .join(User, User.id == Prescription.doctor_id)
        .join(PrescriptionItem, PrescriptionItem.prescription_id == Prescription.id)
        .join(Medicine, Medicine.id == PrescriptionItem.medicine_id)
        .order_by(cut.c.created_at, cut.c.id, PrescriptionItem.position)
    )
    return awaiting, statement


def _listed_prescriptions(rows) -> list[dict[str, Any]]:
    """The prescriptions of `rows` (`_to_dispense_statements`: one row per item, a
    prescription's rows together, its items in order) as plain dicts shaped as
    `PrescriptionSchema`, values not formatted. (Rows unpacked by position: reading a
    row's columns by name costs as much as the statement.)"""
    listed: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    last = None
    for (
        prescription_id,
        visit_id,
        patient_id,
        patient_name,
        mrn,
        doctor_id,
        doctor_name,
        notes,
        override_reason,
        status,
        created_at,
        medicine_id,
        medicine_name,
        generic_name,
        strength,
        dosage_form,
        dose,
        frequency,
        duration_days,
        quantity,
        route,
        instructions,
        _total,
    ) in rows:
        if prescription_id != last:
            last, items = prescription_id, []
            listed.append(
                {
                    "id": prescription_id,
                    "visit_id": visit_id,
                    "patient": {"id": patient_id, "full_name": patient_name, "mrn": mrn},
                    "doctor": {"id": doctor_id, "full_name": doctor_name},
                    "notes": notes,
                    "allergy_override_reason": override_reason,
                    "dispense_status": status,
                    "created_at": created_at,
                    "items": items,
                }
            )
        items.append(
            {
                "medicine": {
                    "id": medicine_id,
                    "name": medicine_name,
                    "generic_name": generic_name,
                    "strength": strength,
                    "dosage_form": dosage_form,
                },
                "dose": dose,
                "frequency": frequency,
                "duration_days": duration_days,
                "quantity": quantity,
                "route": route,
                "instructions": instructions,
            }
        )
    return listed


def count_to_dispense() -> int:
    """How many prescriptions are to dispense (the pharmacist's home page): one count."""
    return db.session.scalar(select(func.count(Prescription.id)).where(*_awaiting())) or 0


# ---- returns ---------------------------------------------------------------------------


def returns(actor: User, dispensing_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Take unopened items back {items: [{dispensed_item_id, quantity}], reason} into
    the batch each came from, never more than was handed over from it less what came
    back already (InvalidInput naming `items.N.quantity`), under row locks on the
    dispensed items and then their batches. Publishes a RETURN movement per item; the
    prescription's state does not change (a returned item is not dispensed again
    automatically). Returns the dispensing (`plain`)."""
    errors: dict[str, str] = {}
    for key in sorted(set(data) - {"items", "reason"}):
        errors[key] = "Unknown field."
    reason = " ".join(str(data.get("reason") or "").split())
    if not reason or len(reason) > 300 or "\x00" in reason:
        errors["reason"] = "Say why it came back (at most 300 characters)."
    raw = data.get("items")
    wanted: list[tuple[int, int, int]] = []  # (position, dispensed item id, quantity)
    if not isinstance(raw, list) or not raw or len(raw) > MAX_RETURN_ITEMS:
        errors["items"] = f"Give 1 to {MAX_RETURN_ITEMS} items to take back."
        raw = []
    seen: set[int] = set()
    for n, item in enumerate(raw):
        if not isinstance(item, dict):
            errors[f"items.{n}"] = "Give the dispensed item and the quantity."
            continue
        item_id = item.get("dispensed_item_id")
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            errors[f"items.{n}.dispensed_item_id"] = "Choose the dispensed item."
        elif item_id in seen:
            errors[f"items.{n}.dispensed_item_id"] = "This item is named twice."
        seen.add(item_id)
        quantity = stock.whole_number(
            item.get("quantity"), f"items.{n}.quantity", errors, 1, stock.MAX_QUANTITY
        )
        wanted.append((n, item_id, quantity))
    if errors:
        raise InvalidInput.naming(errors)
    dispensing = get_or_raise(
        Dispensing, dispensing_id, "No such dispensing.", "dispensing_not_found", options=SHOWN
    )
    rows = {
        row.id: row
        for row in db.session.scalars(
            select(DispensedItem)
            .where(
                DispensedItem.dispensing_id == dispensing.id,
                DispensedItem.id.in_([item_id for _, item_id, _ in wanted]),
            )
            .order_by(DispensedItem.id)
            .with_for_update(of=DispensedItem)
            .execution_options(populate_existing=True)
        )
    }
    for n, item_id, quantity in wanted:
        row = rows.get(item_id)
        if row is None:
            errors[f"items.{n}.dispensed_item_id"] = "Not an item of this dispensing."
        elif quantity > row.quantity - row.returned_quantity:
            errors[f"items.{n}.quantity"] = (
                f"At most {row.quantity - row.returned_quantity} can come back."
            )
    if errors:
        raise InvalidInput.naming(errors)
    batches = stock.lock_batches([rows[item_id].batch_id for _, item_id, _ in wanted])
    for _, item_id, quantity in wanted:
        row = rows[item_id]
        row.returned_quantity += quantity
        batches[row.batch_id].quantity += quantity
    db.session.flush()
    audit.record(
        actor,
        "DISPENSING_RETURNED",
        ("dispensing", dispensing.id),
        None,
        {
            "reason": reason,
            "items": [
                {"dispensed_item_id": item_id, "batch_id": rows[item_id].batch_id, "quantity": q}
                for _, item_id, q in wanted
            ],
        },
    )
    for _, item_id, quantity in wanted:
        batch = batches[rows[item_id].batch_id]
        stock.movement(
            MovementType.RETURN,
            actor,
            batch,
            batch.medicine,
            quantity,
            dispensing_id=dispensing.id,
            reason=reason,
        )
    return get_dispensing(dispensing.id)


# ---- the H1 register -------------------------------------------------------------------


def register_range(start: date | None, end: date | None) -> tuple[date, date]:
    """The register's days: both given, one (that day), or neither (today)."""
    today = clock.today()
    start, end = start or end or today, end or start or today
    clock.check_span(start, end)
    if end - start > timedelta(days=MAX_REGISTER_DAYS):
        raise InvalidInput.naming({"to": f"At most {MAX_REGISTER_DAYS} days at once."})
    return start, end


def _register_query(start: date, end: date):
    return (
        select(H1RegisterEntry)
        .where(H1RegisterEntry.entry_date >= start, H1RegisterEntry.entry_date <= end)
        .order_by(H1RegisterEntry.dispensed_at, H1RegisterEntry.id)
    )


def h1_register(
    start: date | None = None, end: date | None = None, page: int = 1, per_page: int = 50
) -> Page:
    """The register's entries from `start` to `end` (clinic dates, both included; today
    when neither is given), in the order they were written."""
    start, end = register_range(start, end)
    return paginate(_register_query(start, end), page, per_page)


CSV_COLUMNS = (
    ("Date", "entry_date"),
    ("Patient", "patient_name"),
    ("Address", "patient_address"),
    ("Prescriber", "doctor_name"),
    ("Registration no.", "doctor_registration"),
    ("Medicine", "medicine_name"),
    ("Schedule", "schedule"),
    ("Batch", "batch_number"),
    ("Expiry", "expiry_date"),
    ("Quantity", "quantity"),
    ("Pharmacist", "pharmacist_name"),
    ("Dispensing", "dispensing_id"),
)


def h1_register_entries(start: date, end: date) -> Iterator[H1RegisterEntry]:
    """Every entry from `start` to `end`, in the order written (for printing)."""
    start, end = register_range(start, end)
    yield from db.session.scalars(_register_query(start, end))


def h1_register_csv(start: date | None = None, end: date | None = None) -> Iterator[str]:
    """The register from `start` to `end` as CSV text, a header and a line per entry."""
    start, end = register_range(start, end)
    rows = (
        [getattr(entry, key) for _, key in CSV_COLUMNS]
        for entry in db.session.scalars(_register_query(start, end))
    )
    return exports.lines([title for title, _ in CSV_COLUMNS], rows)
