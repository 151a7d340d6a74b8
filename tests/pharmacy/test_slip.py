"""The dispensing slip as a PDF (qure.pharmacy.slips), read back from its text: the
clinic, the patient, the prescriber's registration, per item the batch, expiry, quantity
and how to take it; the Schedule H1 warning only when an H1 medicine is on it; what a
partial dispensing left outstanding; A5, or an 80 mm roll."""

from __future__ import annotations

from io import BytesIO

import pytest
from pypdf import PdfReader

from qure.core.db import commit
from qure.core.errors import NotFound
from qure.pharmacy import dispensing
from qure.pharmacy.slips import slip_pdf
from tests.helpers import make_patient, make_user
from tests.pharmacy.helpers import in_days, medicine, paid_prescription, stocked

A5 = (419.53, 595.28)
ROLL_WIDTH = 80 / 25.4 * 72  # 226.77 pt
H1_WARNING = (
    "Schedule H1 drug — warning: it is dangerous to take this preparation except in "
    "accordance with the medical advice. Not to be sold by retail without the prescription "
    "of a Registered Medical Practitioner."
)


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def pdf_text(data: bytes) -> str:
    """The text of every page, whitespace runs made single spaces."""
    reader = PdfReader(BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def page_size(data: bytes) -> tuple[float, float]:
    box = PdfReader(BytesIO(data)).pages[0].mediabox
    return float(box.width), float(box.height)


def dispensed(pharmacist, prescription, **extra) -> dict:
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id, **extra})
    commit()
    return done


@pytest.fixture
def h1_dispensing(doctor, reception, pharmacist):
    """Cefixime (Schedule H1) from two batches and a plain syrup, all handed over."""
    cefixime = medicine("Taxim-O", "11.90", 12, strength="200 mg", schedule="H1")
    syrup = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    stocked(pharmacist, cefixime, ("TX2406", 4, 60), ("TX2411", 20, 520))
    stocked(pharmacist, syrup, ("CX2402", 5, 200))
    patient = make_patient(full_name="Ravi Kumar", sex="M")
    prescription, _ = paid_prescription(
        doctor, reception, [(cefixime, 10), (syrup, 2)], patient=patient
    )
    return dispensed(pharmacist, prescription), patient


def test_the_a5_slip_names_the_patient_doctor_batches_expiry_and_dosage(
    h1_dispensing, doctor, pharmacist
):
    done, patient = h1_dispensing
    data, name = slip_pdf(done["id"])
    assert data.startswith(b"%PDF-")
    assert name == f"dispensing-slip-{done['id']}.pdf"
    assert page_size(data) == pytest.approx(A5, abs=1)
    text = pdf_text(data)
    for shown in (
        "DISPENSING SLIP",
        f"Dispensing no. {done['id']}",
        "07 Jan 2030, 10:00",
        "Ravi Kumar",
        f"MRN {patient.mrn}",
        "Male",
        doctor.full_name,
        f"Reg. no. {doctor.registration_number}",
        # Earliest expiry first: 4 from TX2406, the other 6 from TX2411.
        f"Taxim-O 200 mg Tablet H1 TX2406 EXP {in_days(60):%m/%Y} 4 tabs",
        f"Taxim-O 200 mg Tablet H1 TX2411 EXP {in_days(520):%m/%Y} 6 tabs",
        "1 tab · OD: once a day · 10 days",
        f"Coughex 100 ml Syrup CX2402 EXP {in_days(200):%m/%Y} 2 bottles",
        "1 ml · OD: once a day · 2 days",
        H1_WARNING,
        f"Dispensed by {pharmacist.full_name}",
    ):
        assert shown in text, f"{shown!r} not in:\n{text}"
    assert text.count(H1_WARNING) == 1  # once for the slip, however many H1 lines
    assert "STILL TO BE HANDED OVER" not in text


def test_the_thermal_slip_is_80_mm_wide_and_as_long_as_its_content(h1_dispensing, doctor):
    done, _ = h1_dispensing
    data, name = slip_pdf(done["id"], thermal=True)
    assert name == f"dispensing-slip-{done['id']}-thermal.pdf"
    width, height = page_size(data)
    assert width == pytest.approx(ROLL_WIDTH, abs=0.5)
    assert 200 < height < 1000  # cut below the content, not the 3 m page it is laid out on
    assert len(PdfReader(BytesIO(data)).pages) == 1
    text = pdf_text(data)
    for shown in (
        "Ravi Kumar",
        f"Reg. no. {doctor.registration_number}",
        "Taxim-O 200 mg Tablet H1",
        f"Batch TX2406 · EXP {in_days(60):%m/%Y}",
        "Qty 4 tabs",
        f"Batch TX2411 · EXP {in_days(520):%m/%Y}",
        "Qty 6 tabs",
        f"Batch CX2402 · EXP {in_days(200):%m/%Y}",
        "Qty 2 bottles",
        H1_WARNING,
    ):
        assert shown in text, f"{shown!r} not in:\n{text}"


def test_no_h1_warning_without_an_h1_medicine(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12, schedule="H")
    stocked(pharmacist, para, ("PC2401", 30, 300))
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    done = dispensed(pharmacist, prescription)
    for thermal in (False, True):
        text = pdf_text(slip_pdf(done["id"], thermal=thermal)[0])
        assert "PC2401" in text and "6 tabs" in text
        assert "Schedule H1" not in text
        assert " H1 " not in text


def test_a_partial_dispensing_shows_what_is_still_due(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    stocked(pharmacist, para, ("PC2401", 10, 100))
    stocked(pharmacist, cough, ("CX2402", 1, 100))
    prescription, _ = paid_prescription(doctor, reception, [(para, 10), (cough, 3)])
    first = dispensed(pharmacist, prescription, allow_partial=True)

    for thermal in (False, True):
        text = pdf_text(slip_pdf(first["id"], thermal=thermal)[0])
        assert "STILL TO BE HANDED OVER Coughex 100 ml Syrup: 2 bottles" in text, text
        assert "Paracip 500 mg Tablet:" not in text

    stocked(pharmacist, cough, ("CX2403", 5, 100))
    second = dispensed(pharmacist, prescription)
    text = pdf_text(slip_pdf(second["id"])[0])
    assert f"Coughex 100 ml Syrup CX2403 EXP {in_days(100):%m/%Y} 2 bottles" in text
    assert "Paracip" not in text  # all of it went out the first time
    assert "STILL TO BE HANDED OVER" not in text
    # Printed again, the first slip says nothing is due any more.
    assert "STILL TO BE HANDED OVER" not in pdf_text(slip_pdf(first["id"])[0])


def test_returns_and_typed_markup_print_as_text(doctor, reception, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("PC2401", 10, 100))
    patient = make_patient(full_name="<b>Asha</b> Rao")
    prescription, _ = paid_prescription(doctor, reception, [(para, 8)], patient=patient)
    done = dispensed(pharmacist, prescription)
    dispensing.returns(
        pharmacist,
        done["id"],
        {"items": [{"dispensed_item_id": done["items"][0]["id"], "quantity": 3}], "reason": "x"},
    )
    commit()
    text = pdf_text(slip_pdf(done["id"])[0])
    assert "<b>Asha</b> Rao" in text
    assert "8 tabs 3 tabs returned" in text


def test_the_pharmacists_registration_prints_when_on_file(doctor, reception):
    chemist = make_user("PHARMACIST", registration_number="PCI-MH-88213")
    para = medicine("Paracip", "2.50", 12)
    stocked(chemist, para, ("PC2401", 10, 100))
    prescription, _ = paid_prescription(doctor, reception, [(para, 2)])
    done = dispensed(chemist, prescription)
    text = pdf_text(slip_pdf(done["id"], thermal=True)[0])
    assert f"Dispensed by {chemist.full_name} Reg. no. PCI-MH-88213" in text


def test_an_unknown_dispensing_is_not_found(app):
    with pytest.raises(NotFound) as caught:
        slip_pdf(999_999)
    assert caught.value.code == "dispensing_not_found"
