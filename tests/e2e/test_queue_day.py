"""The queue in three browsers at once: reception books and checks a patient in, the doctor
calls next, and the waiting-room board shows the called token within three seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from qure.auth.models import User
from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db
from qure.queue import board
from qure.queue import service as queue
from qure.scheduling.models import Slot
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_appointment, make_patient, make_slots, make_user

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
        board.set_display_key(admin, DISPLAY_KEY)
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


def test_the_queue_page_shows_another_desks_check_in_and_keeps_what_is_typed(
    page, browser, live_server, app, morning_clinic
):
    with app.app_context():
        anil = make_user(Role.DOCTOR, full_name="Anil Kumar")
        bina = make_user(Role.DOCTOR, full_name="Bina Rao")
        clerks = [make_user(Role.RECEPTION) for _ in range(2)]
        logins, clerk_id = [c.username for c in clerks], clerks[0].id
        local = clock.now().astimezone(clock.clinic_tz())
        start = (local + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
        for doctor in (anil, bina):
            make_slots(doctor, local.date(), start.strftime("%H:%M"), "15:00", 15)
        sharma = make_patient(full_name="Priya Sharma")
        menon = make_patient(full_name="Priya Menon")
        queue.walk_in(clerks[0], {"patient_id": sharma.id, "doctor_id": anil.id})
        slot = db.session.scalars(
            select(Slot).where(Slot.doctor_id == bina.id).order_by(Slot.start_at)
        ).first()
        make_appointment(menon, slot)
        desk_ids = (anil.id, bina.id)
        db.session.commit()

    # One desk has the queue open and starts typing why Priya Sharma is urgent.
    sign_in(page, logins[0], PASSWORD)
    page.goto("/queue/")
    anil_card = page.locator(f"#doctor-{desk_ids[0]}")
    bina_card = page.locator(f"#doctor-{desk_ids[1]}")
    expect(anil_card.get_by_role("cell", name="Priya Sharma")).to_be_visible()
    expect(bina_card.get_by_text("Nobody waiting.")).to_be_visible()
    reason = anil_card.get_by_placeholder("Why urgent")
    reason.click()
    reason.type("Chest pa")

    # Another desk checks Priya Menon in for the other doctor.
    other = browser.new_context(base_url=live_server).new_page()
    sign_in(other, logins[1], PASSWORD)
    other.goto("/queue/today")
    other.get_by_role("row").filter(has_text="Priya Menon").get_by_role(
        "button", name="Check in"
    ).click()
    expect(other.get_by_label("Token number")).to_have_text("002")

    # The first desk sees it within a few seconds, without a reload, and keeps its text.
    expect(bina_card.get_by_role("cell", name="Priya Menon")).to_be_visible(timeout=8000)
    expect(reason).to_have_value("Chest pa")
    expect(reason).to_be_focused()
    reason.type("in")
    expect(reason).to_have_value("Chest pain")

    # A change to the section being typed in waits until the typing is done.
    with app.app_context():
        ravi = make_patient(full_name="Ravi Walker")
        queue.walk_in(
            db.session.get(User, clerk_id), {"patient_id": ravi.id, "doctor_id": desk_ids[0]}
        )
        db.session.commit()
    expect(page.get_by_text("Some updates wait until you finish typing.")).to_be_visible(
        timeout=8000
    )
    expect(anil_card.get_by_role("cell", name="Ravi Walker")).to_have_count(0)
    reason.fill("")
    page.get_by_role("heading", name=re.compile("Queue")).click()  # focus leaves the field
    expect(anil_card.get_by_role("cell", name="Ravi Walker")).to_be_visible(timeout=8000)
    other.context.close()
