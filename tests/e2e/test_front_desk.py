"""Reception's first workflow in a real browser: sign in, register, find, sign out."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db
from qure.patients.models import Patient
from qure.scheduling.models import Appointment
from tests.helpers import PASSWORD, make_patient, make_slots, make_user


def sign_in(page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_reception_registers_finds_and_signs_out(page, app):
    with app.app_context():
        clerk = make_user(Role.RECEPTION, full_name="Kavya Nair")
        username = clerk.username

    sign_in(page, username, PASSWORD)
    expect(page.get_by_role("heading", name="Front desk")).to_be_visible()
    expect(page.get_by_role("link", name="Users")).to_have_count(0)

    page.get_by_role("link", name="Register a new patient").click()
    page.get_by_label("Full name").fill("Shreya Deshpande")
    page.get_by_label("Date of birth").fill("1994-05-21")
    page.get_by_label("Sex").select_option("F")
    page.get_by_label("Phone", exact=True).fill("+91 98200 55501")
    page.get_by_label("Allergies").fill("Penicillin, Latex")
    page.get_by_role("button", name="Register patient").click()

    expect(page.get_by_role("heading", name="Shreya Deshpande")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Registered Shreya Deshpande as QC-\d{6}"))).to_be_visible()
    expect(page.locator(".pills.danger li")).to_have_text(["Penicillin", "Latex"])
    with app.app_context():
        stored = db.session.scalars(select(Patient)).one()
        assert stored.full_name == "Shreya Deshpande"
        assert stored.phone == "+919820055501"
        mrn = stored.mrn

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_placeholder("Name, phone, MRN or id").fill("desh")
    page.get_by_role("button", name="Find").click()
    row = page.get_by_role("row").filter(has_text="Shreya Deshpande")
    expect(row).to_contain_text(mrn)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/patients/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_wrong_password_shows_the_error(page, app):
    with app.app_context():
        username = make_user(Role.RECEPTION).username

    sign_in(page, username, "not-the-password")

    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/login"))


def test_field_errors_appear_beside_the_field(page, app):
    with app.app_context():
        username = make_user(Role.RECEPTION).username
    sign_in(page, username, PASSWORD)
    page.goto("/patients/new")
    page.get_by_label("Full name").fill("Mohan Das")
    page.get_by_label("Or approximate age (years)").fill("40")
    page.get_by_label("Sex").select_option("M")
    page.get_by_label("Phone", exact=True).fill("12345")
    page.get_by_role("button", name="Register patient").click()

    phone_field = page.locator(".field").filter(has=page.get_by_label("Phone", exact=True))
    expect(phone_field.locator(".error")).to_have_text(
        "Phone: Too short for a phone number; give all of it, e.g. 98765 43210 or +91 98765 43210."
    )
    expect(page.locator("#error-summary")).to_have_text("1 field needs attention: Phone")
    page.locator("#error-summary").get_by_role("link", name="Phone").click()
    expect(page).to_have_url(re.compile(r"/patients/new#phone$"))
    with app.app_context():
        assert db.session.scalars(select(Patient)).all() == []


def test_book_a_time_first_then_the_patient_and_cancel_from_today(page, app, morning_clinic):
    with app.app_context():
        clerk = make_user(Role.RECEPTION)
        doctor = make_user(Role.DOCTOR, full_name="Anil Kumar")
        make_patient(full_name="Priya Sharma")
        make_patient(full_name="Priya Menon")
        local = clock.now().astimezone(clock.clinic_tz())
        start = (local + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
        slots = make_slots(doctor, local.date(), start.strftime("%H:%M"), "15:00", 15)
        second = slots[1].start_at.astimezone(clock.clinic_tz()).strftime("%H:%M")
        username = clerk.username

    sign_in(page, username, PASSWORD)
    page.get_by_role("link", name="Book an appointment").click()
    # The free times show before anyone is chosen; one is picked first.
    times = page.get_by_role("list", name="Times")
    expect(times.get_by_role("link", name=second)).to_be_visible()
    times.get_by_role("link", name=second).click()
    page.get_by_placeholder("Name, phone, MRN or id").fill("priya")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="Priya Menon").click()
    expect(page.get_by_text("Booking for Priya Menon")).to_be_visible()
    expect(page.get_by_role("radio", name=second)).to_be_checked()
    page.get_by_label("Reason for the visit").fill("Follow-up")
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_text("Booked.")).to_be_visible()

    page.get_by_role("link", name="Today").click()
    row = page.get_by_role("row").filter(has_text="Priya Menon")
    expect(row).to_contain_text("Follow-up")
    row.get_by_role("link", name="Cancel…").click()
    page.get_by_role("button", name="Cancel the appointment").click()
    expect(page.get_by_text("Say why the appointment is cancelled.")).to_be_visible()
    page.get_by_label("Why is it cancelled?").fill("Patient called: travelling")
    page.get_by_role("button", name="Cancel the appointment").click()
    expect(page.get_by_text("Cancelled; the slot is open again.")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("Today"))).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="Priya Menon")).to_have_count(0)
    with app.app_context():
        cancelled = db.session.scalars(select(Appointment)).one()
        assert (cancelled.status, cancelled.cancel_reason) == (
            "CANCELLED",
            "Patient called: travelling",
        )
