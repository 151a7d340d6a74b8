"""The doctor's visit in a real browser: call the patient, record vitals, prescribe (seeing
and overriding an allergy warning), complete the visit and download the prescription."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import select

from qure.core import clock
from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy import service as pharmacy
from qure.queue import service as queue
from qure.visits.models import Visit
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_appointment, make_patient, make_slots, make_user


def test_doctor_sees_a_patient_from_call_to_printed_prescription(page, app, morning_clinic):
    with app.app_context():
        doctor = make_user(Role.DOCTOR, full_name="Meera Sharma", qualification="MBBS, MD")
        clerk = make_user(Role.RECEPTION)
        patient = make_patient(full_name="Ravi Kumar Iyer", allergies=["Penicillin"])
        local = clock.now().astimezone(clock.clinic_tz())
        start = (local + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
        slots = make_slots(doctor, local.date(), start.strftime("%H:%M"), "15:00", 15)
        appointment = make_appointment(patient, slots[-1], clerk, reason="Sore throat")
        queue.check_in(clerk, appointment.id)
        commit()
        for name, generic, drug_class, form in (
            ("Amoxil", "Amoxicillin", "Penicillin", "CAPSULE"),
            ("Crocin", "Paracetamol", "Analgesic", "TABLET"),
        ):
            pharmacy.create(
                None,
                {
                    "name": name,
                    "generic_name": generic,
                    "drug_class": drug_class,
                    "dosage_form": form,
                    "strength": "500 mg",
                    "unit_price": "5.00",
                    "gst_rate": 12,
                },
            )
        db.session.commit()
        login, patient_id = doctor.username, patient.id

    sign_in(page, login, PASSWORD)
    page.get_by_role("link", name="My queue").first.click()
    page.get_by_role("button", name="Call next").click()

    # The workspace: a banner that cannot be missed.
    expect(page.get_by_role("heading", name="Ravi Kumar Iyer")).to_be_visible()
    expect(page.locator(".banner-allergies.has-allergies")).to_contain_text("Penicillin")

    page.get_by_label("BP systolic (mmHg)").fill("124")
    page.get_by_label("BP diastolic (mmHg)").fill("82")
    page.get_by_label("Temperature").fill("101.3")
    page.get_by_label("Unit").select_option("F")
    page.get_by_label("Weight (kg)").fill("70")
    page.get_by_label("Height (cm)").fill("175")
    page.get_by_role("button", name="Save vitals").click()
    expect(page.locator("#bmi")).to_have_text("22.9")
    expect(page.locator("#vitals")).to_contain_text("38.5 °C")

    page.get_by_label("Diagnosis").fill("Acute tonsillitis")
    page.get_by_label("ICD-10 code").fill("J03.9")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.")).to_be_visible()

    # Prescribe amoxicillin: the allergy warning comes first, then an override with a reason.
    page.get_by_placeholder("Medicine name or ingredient").fill("amoxicillin")
    page.get_by_role("button", name="Find medicine").click()
    page.get_by_role("link", name="Amoxil 500 mg").click()
    page.get_by_label("How often").fill("TDS")
    page.get_by_label("Days").fill("5")
    page.get_by_role("button", name="Add to prescription").click()
    expect(page.locator(".allergy-warning")).to_contain_text("Penicillin")
    page.get_by_label("Reason to go on").fill("Tolerated amoxicillin in 2025 without reaction")
    page.get_by_role("button", name="Prescribe anyway").click()
    expect(page.get_by_text("Added Amoxil.")).to_be_visible()

    page.get_by_placeholder("Medicine name or ingredient").fill("paracetamol")
    page.get_by_role("button", name="Find medicine").click()
    page.get_by_role("link", name="Crocin 500 mg").click()
    page.get_by_label("Dose").fill("0.5")
    page.get_by_label("How often").fill("1-0-1")
    page.get_by_label("Days").fill("3")
    page.get_by_label("Instructions").fill("after food")
    page.get_by_role("button", name="Add to prescription").click()
    rows = page.locator("#prescription tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("1-0-1: morning and night")

    page.get_by_role("button", name="Complete the visit").click()
    expect(page.get_by_text("Visit completed.")).to_be_visible()
    expect(page.get_by_role("button", name="Save vitals")).to_have_count(0)

    with page.expect_download() as download:
        page.get_by_role("link", name="Print (PDF)").click()
    # Words as printed, whatever the line breaks inside a table cell.
    text = " ".join(PdfReader(download.value.path()).pages[0].extract_text().split())
    for expected in (
        "Ravi Kumar Iyer",
        "Amoxil",
        "TDS: three times a day",
        "Crocin",
        "1-0-1: morning and night",
        "after food",
        "Acute tonsillitis",
        "Meera Sharma",
    ):
        assert expected in text, expected
    assert re.search(r"Reg\.\s*no\.\s*REG-\d{5}", text)

    with app.app_context():
        visit = db.session.scalars(select(Visit).where(Visit.patient_id == patient_id)).one()
        assert visit.status == "COMPLETED"
        assert str(visit.temperature_c) == "38.5"
        assert queue.get_token(1).status == "COMPLETED"
