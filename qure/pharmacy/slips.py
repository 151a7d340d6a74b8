"""The dispensing slip: what the pharmacy counter hands over with the medicines, on A5 or
on an 80 mm thermal roll (as the receipt's A4/roll split, qure/billing/receipts.py).

It names the patient, the prescriber and their registration, and per medicine handed
over: the batch, the expiry as the pack prints it ("EXP 06/2031"), the quantity and how
to take it (the prescription item's dose, frequency, days and instructions). Schedule H1
and X medicines carry their marker and the statutory warning of the Drugs and Cosmetics
Rules; what the prescription still has due (a partial dispensing) is listed, as it stands
when the slip is printed; and the pharmacist who dispensed signs it.

Everything printed is worked out here as plain values; the templates under templates/pdf/
only lay it out, and Jinja escapes every value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from qure.admin import settings as clinic_settings
from qure.auth.models import User
from qure.core.templating import clinic_datetime
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import SEX_LABELS
from qure.pharmacy import dispensing as dispensings
from qure.pharmacy.models import DrugSchedule
from qure.prescriptions import dosing
from qure.prescriptions.models import Prescription, PrescriptionItem
from qure.prescriptions.service import in_units

STYLESHEET = "css/slip.css"
# The cautionary words Rule 97 of the Drugs and Cosmetics Rules puts on these schedules.
WARNINGS = {
    DrugSchedule.H1: (
        "Schedule H1 drug — warning: it is dangerous to take this preparation except in "
        "accordance with the medical advice. Not to be sold by retail without the "
        "prescription of a Registered Medical Practitioner."
    ),
    DrugSchedule.X: (
        "Schedule X drug — warning: to be sold by retail on the prescription of a "
        "Registered Medical Practitioner only."
    ),
}
FOOTER = "Keep this slip: it names the batch and expiry of every medicine handed over."


def _prescription(prescription_id: int) -> Prescription:
    return db.session.scalars(
        select(Prescription)
        .where(Prescription.id == prescription_id)
        .options(
            joinedload(Prescription.patient, innerjoin=True),
            joinedload(Prescription.doctor, innerjoin=True),
            selectinload(Prescription.items).joinedload(PrescriptionItem.medicine, innerjoin=True),
        )
    ).one()


def _how_to_take(item: PrescriptionItem) -> dict[str, Any]:
    form = item.medicine.dosage_form
    return {
        "dose": in_units(item.dose, form),
        "frequency": dosing.parse_frequency(item.frequency).words,
        "days": f"{item.duration_days} day{'' if item.duration_days == 1 else 's'}",
        "route": item.route,
        "instructions": item.instructions,
    }


def _medicine_text(name: str, strength: str, form: str) -> str:
    return f"{name} {strength} {form.capitalize()}"


def slip_values(dispensing_id: int, thermal: bool = False) -> dict[str, Any]:
    """Everything a dispensing's slip prints, as plain values. Raises NotFound
    `dispensing_not_found`."""
    done = dispensings.get_dispensing(dispensing_id)
    prescription = _prescription(done["prescription_id"])
    patient, doctor = prescription.patient, prescription.doctor
    items_by_id = {item.id: item for item in prescription.items}
    pharmacist = db.session.execute(
        select(User.full_name, User.registration_number).where(
            User.id == done["dispensed_by"]["id"]
        )
    ).one()

    lines = []
    for n, row in enumerate(done["items"], 1):
        medicine = row["medicine"]
        schedule = DrugSchedule(medicine["schedule"])
        form = medicine["dosage_form"]
        lines.append(
            {
                "n": n,
                "medicine": _medicine_text(medicine["name"], medicine["strength"], form),
                "marker": schedule.value if schedule in WARNINGS else None,
                "batch_number": row["batch_number"],
                "expiry": f"EXP {row['expiry_date']:%m/%Y}",
                "quantity": in_units(row["quantity"], form, packs=True),
                "returned": in_units(row["returned_quantity"], form, packs=True)
                if row["returned_quantity"]
                else None,
                **_how_to_take(items_by_id[row["prescription_item_id"]]),
            }
        )
    on_slip = {DrugSchedule(row["medicine"]["schedule"]) for row in done["items"]}
    outstanding = []
    for left in done["outstanding"]:
        item = items_by_id[left["prescription_item_id"]]
        form = item.medicine.dosage_form
        outstanding.append(
            {
                "medicine": _medicine_text(item.medicine.name, item.medicine.strength, form),
                "quantity": in_units(left["quantity"], form, packs=True),
            }
        )
    return {
        "thermal": thermal,
        "title": "Dispensing slip",
        "clinic": clinic_settings.letterhead(),
        "dispensing": {
            "number": done["id"],
            "prescription_number": prescription.id,
            "dispensed_at": clinic_datetime(done["dispensed_at"]),
            "partial": done["partial"],
        },
        "patient": {
            "full_name": patient.full_name,
            "mrn": patient.mrn,
            "age": patients.age_label(patient),
            "sex": SEX_LABELS.get(patient.sex, patient.sex),
        },
        "doctor": {
            "full_name": doctor.full_name,
            "qualification": doctor.qualification,
            "registration_number": doctor.registration_number,
        },
        "lines": lines,
        "warnings": [WARNINGS[s] for s in (DrugSchedule.H1, DrugSchedule.X) if s in on_slip],
        "outstanding": outstanding,
        "pharmacist": {
            "full_name": pharmacist.full_name,
            "registration_number": pharmacist.registration_number,
        },
        "footer": FOOTER,
    }


def slip_pdf(dispensing_id: int, thermal: bool = False) -> tuple[bytes, str]:
    """A dispensing's slip: A5, or with `thermal` one 80 mm page as long as the slip.
    Returns (the PDF, its file name `dispensing-slip-42.pdf`, `-thermal` before `.pdf`
    for the roll). Raises NotFound `dispensing_not_found`."""
    # WeasyPrint takes about a second to import: loaded at the first print, not at start.
    from qure.core.pdf import render_pdf

    values = slip_values(dispensing_id, thermal)
    pdf = render_pdf("pdf/dispensing_slip.html", STYLESHEET, roll=thermal, **values)
    return pdf, f"dispensing-slip-{dispensing_id}{'-thermal' if thermal else ''}.pdf"
