"""The doctor's visit in a real browser: call the patient, record vitals, prescribe (seeing
and overriding an allergy warning), complete the visit and download the prescription; the
one workspace form keeps what is typed (Complete saves it, a draft survives a reload)."""

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
from qure.visits import service as visits
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
    page.get_by_role("button", name="Save", exact=True).click()
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
    expect(page.locator(".allergy-warning")).to_contain_text(
        "Allergy: Penicillin — Amoxil 500 mg contains Amoxicillin, class Penicillin."
    )
    expect(page.get_by_role("button", name="Choose another medicine")).to_be_focused()
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
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)

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


def test_complete_saves_what_was_typed_and_a_draft_survives_a_reload(page, app, morning_clinic):
    with app.app_context():
        doctor = make_user(Role.DOCTOR, full_name="Meera Sharma")
        clerk = make_user(Role.RECEPTION)
        patient = make_patient(full_name="Asha Menon")
        queue.walk_in(clerk, {"patient_id": patient.id, "doctor_id": doctor.id})
        commit()
        login, patient_id = doctor.username, patient.id

    sign_in(page, login, PASSWORD)
    page.get_by_role("link", name="My queue").first.click()
    page.get_by_role("button", name="Call next").click()
    expect(page.get_by_role("heading", name="Asha Menon")).to_be_visible()
    with app.app_context():
        visit_id = db.session.scalars(select(Visit.id).where(Visit.patient_id == patient_id)).one()

    # Typed, not saved: the browser keeps a draft, and leaving asks first.
    page.get_by_label("Pulse (/min)").click()
    page.keyboard.type("92")
    page.get_by_label("Diagnosis").click()
    page.keyboard.type("Acute pharyngitis")
    page.get_by_label("New note").click()
    page.keyboard.type("Throat congested")
    # The code field offers the codes of the diagnosis typed.
    expect(page.locator('#icd10-options option[value="J02.9"]')).to_have_count(1)
    asked = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.accept()

    page.on("dialog", answer)
    page.reload()

    assert asked == ["beforeunload"]
    expect(page.locator(".draft-note")).to_contain_text("Restored what you typed earlier")
    expect(page.get_by_label("Pulse (/min)")).to_have_value("92")
    expect(page.get_by_label("Diagnosis")).to_have_value("Acute pharyngitis")
    expect(page.get_by_label("New note")).to_have_value("Throat congested")
    with app.app_context():
        saved = db.session.get(Visit, visit_id)
        assert (saved.pulse, saved.diagnosis) == (None, None)

    page.get_by_label("ICD-10 code").fill("j029")
    page.get_by_role("button", name="Complete the visit").click()

    expect(page.get_by_text("Visit completed. The next patient can be called.")).to_be_visible()
    assert asked == ["beforeunload"]  # submitting the form does not ask
    # The page clears the draft from its deferred script: wait for the page to finish
    # loading (the flash can be on screen before the script has run, on a busy machine).
    page.wait_for_load_state("load")
    draft = page.evaluate(f"localStorage.getItem('qure.visit-draft.{visit_id}')")
    assert draft is None
    with app.app_context():
        db.session.expire_all()
        saved = visits.get_visit(visit_id)
        assert (saved.status, saved.pulse) == ("COMPLETED", 92)
        assert (saved.diagnosis, saved.icd10_code) == ("Acute pharyngitis", "J02.9")
        assert [n.text for n in saved.notes] == ["Throat congested"]
        assert queue.get_token(1).status == "COMPLETED"


def open_visit_as_its_doctor(page, app) -> int:
    """A visit in progress, its doctor signed in on its workspace; returns its id."""
    with app.app_context():
        doctor = make_user(Role.DOCTOR, full_name="Meera Sharma")
        patient = make_patient(full_name="Asha Menon")
        visit = visits.start(doctor, {"patient_id": patient.id})
        commit()
        login, visit_id = doctor.username, visit.id
    sign_in(page, login, PASSWORD)
    page.goto(f"/visits/{visit_id}")
    return visit_id


def test_signing_out_leaves_no_draft_in_a_shared_browser(page, app, morning_clinic):
    visit_id = open_visit_as_its_doctor(page, app)
    page.get_by_label("Diagnosis").click()
    page.keyboard.type("Suspected tuberculosis")
    key = f"qure.visit-draft.{visit_id}"
    assert "Suspected tuberculosis" in page.evaluate(f"localStorage.getItem('{key}')")

    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.wait_for_function(f"localStorage.getItem('{key}') === null")


def test_a_save_that_changes_nothing_still_drops_the_draft(page, app, morning_clinic):
    visit_id = open_visit_as_its_doctor(page, app)
    page.get_by_label("ICD-10 code").fill("j029")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_label("ICD-10 code")).to_have_value("J02.9")
    # Typed again as before: the server normalises it to what it already holds.
    page.get_by_label("ICD-10 code").fill("j029")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_label("ICD-10 code")).to_have_value("J02.9")
    expect(page.locator(".draft-note")).to_be_hidden()
    assert page.evaluate(f"localStorage.getItem('qure.visit-draft.{visit_id}')") is None
