"""The queue in three browsers at once: reception books and checks a patient in, the doctor
calls next, and the waiting-room board shows the called token within three seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from qure.admin import service as settings
from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_patient, make_slots, make_user

DISPLAY_KEY = "waiting-room-screen-1"


def test_book_check_in_call_and_the_board_shows_it(page, browser, live_server, app, morning_clinic):
    with app.app_context():
        doctor = make_user(Role.DOCTOR, full_name="Meera Sharma")
        clerk = make_user(Role.RECEPTION, full_name="Kavya Nair")
        admin = make_user(Role.ADMIN)
        make_patient(full_name="Ravi Kumar Iyer")
        local = clock.now().astimezone(clock.clinic_tz())
        start = (local + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
        make_slots(doctor, local.date(), start.strftime("%H:%M"), "15:00", 15)
        settings.set_display_key(admin, DISPLAY_KEY)
        db.session.commit()
        doctor_name, doctor_login, clerk_login = doctor.full_name, doctor.username, clerk.username

    # Reception books the patient and checks them in.
    sign_in(page, clerk_login, PASSWORD)
    page.get_by_role("link", name="Book an appointment").click()
    page.get_by_label("Doctor").select_option(label=doctor_name)
    page.get_by_role("button", name="Show open slots").click()
    page.get_by_placeholder("Name, phone, MRN or id").fill("ravi")
    page.get_by_role("button", name="Find").click()
    page.get_by_role("link", name="Ravi Kumar Iyer").click()
    page.locator("input[name=slot_id]").first.check()
    page.get_by_label("Reason for the visit").fill("Fever for three days")
    page.get_by_role("button", name="Book").click()
    expect(page.get_by_text("Booked.")).to_be_visible()
    expect(page.locator(".details")).to_contain_text("Scheduled")

    page.get_by_role("link", name="Today").click()
    row = page.get_by_role("row").filter(has_text="Ravi Kumar Iyer")
    row.get_by_role("button", name="Check in").click()
    expect(page.get_by_label("Token number")).to_have_text("001")

    # The waiting-room screen opens with the display key, not a staff login.
    screen = browser.new_context(base_url=live_server).new_page()
    screen.goto("/queue/board")
    screen.get_by_label("Display key").fill(DISPLAY_KEY)
    screen.get_by_role("button", name="Open the board").click()
    column = screen.locator(f".doctor[data-doctor-id='{doctor.id}']")
    expect(column.locator(".upcoming .token")).to_have_text(["001"])
    expect(column.locator(".upcoming .initials")).to_have_text(["R.I."])
    expect(column.locator(".current")).to_have_count(0)
    expect(screen.get_by_text("Ravi")).to_have_count(0)

    # The doctor calls next in a second browser.
    desk = browser.new_context(base_url=live_server).new_page()
    sign_in(desk, doctor_login, PASSWORD)
    desk.get_by_role("link", name="My queue").first.click()
    desk.get_by_role("button", name="Call next").click()
    expect(desk.get_by_role("heading", name="Ravi Kumar Iyer")).to_be_visible()
    expect(desk.get_by_text(re.compile(r"Token 001 called: Ravi Kumar Iyer"))).to_be_visible()

    # The board shows it within three seconds, without a reload.
    expect(column.locator(".current .token")).to_have_text("001", timeout=3000)
    expect(column).to_have_class(re.compile(r"\bcalled\b"))
    screen.context.close()
    desk.context.close()
