"""One patient's whole day in a real browser, four staff signed in side by side (each in a
browser context of their own) and the waiting-room board open with its display key:

reception registers the patient, books a slot and checks them in; the board shows the
token; the doctor calls them, records vitals and a note, prescribes two medicines,
completes the visit and prints the prescription; reception bills the visit with a
discount, takes a UPI payment and prints the receipt; the pharmacist dispenses, one
medicine from two batches (earliest expiry first), and prints the slip; the admin sees the
visit and the revenue on the dashboard and every step in the audit log. Jobs run
in-process (`jobs.InProcessJobs`, as in embedded mode), so the outbox relay ships the audit
records to the document store as the day goes.

Everything the application logs meanwhile is read afterwards: it holds none of the
patient's data (name, phone, MRN, date of birth, address, emergency contact, the visit's
reason, diagnosis and note), though the desk searches by phone and by name and the
workspace looks the diagnosis up as it is typed (queries the request log leaves out).

With QURE_SCREENSHOTS=<folder> (`make screenshots`: docs/screenshots) a PNG of each main
page of the journey is saved there, at 1280x800."""

from __future__ import annotations

import io
import logging
import os
import re
import time
from datetime import timedelta
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import func, select

from qure.admin import settings as clinic_settings
from qure.billing.models import Invoice, InvoiceStatus, Payment, PaymentMethod
from qure.core import clock, jobs, outbox
from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db, mongo
from qure.pharmacy.models import Batch, DispensedItem
from qure.queue import board
from qure.reports import audit
from qure.visits.models import Visit, VisitStatus
from tests.billing.helpers import medicine
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_slots, make_user
from tests.pharmacy.helpers import stocked

DISPLAY_KEY = "waiting-room-screen-1"
VIEWPORT = {"width": 1280, "height": 800}
TIMES = "\N{MULTIPLICATION SIGN}"  # as the pharmacy pages write a quantity

# What the day leaves in the audit log from the registration on, oldest first: each step,
# in the order the staff took them (a transaction's records in the order it wrote them).
JOURNEY = (
    ("PATIENT_CREATED", "Kavya Nair"),
    ("APPOINTMENT_BOOKED", "Kavya Nair"),
    ("APPOINTMENT_CHECKED_IN", "Kavya Nair"),
    ("TOKEN_ISSUED", "Kavya Nair"),
    ("USER_LOGIN", "Meera Sharma"),
    ("TOKEN_CALLED", "Meera Sharma"),
    ("APPOINTMENT_IN_CONSULTATION", "Meera Sharma"),
    ("VISIT_STARTED", "Meera Sharma"),
    ("VISIT_UPDATED", "Meera Sharma"),
    ("VISIT_NOTE_ADDED", "Meera Sharma"),
    ("PRESCRIPTION_CREATED", "Meera Sharma"),
    ("PRESCRIPTION_UPDATED", "Meera Sharma"),
    ("TOKEN_COMPLETED", "Meera Sharma"),
    ("APPOINTMENT_COMPLETED", "Meera Sharma"),
    ("VISIT_COMPLETED", "Meera Sharma"),
    ("INVOICE_CREATED", "Kavya Nair"),
    ("INVOICE_UPDATED", "Kavya Nair"),
    ("INVOICE_FINALIZED", "Kavya Nair"),
    ("INVOICE_PAID", "Kavya Nair"),
    ("USER_LOGIN", "Ravi Kulkarni"),
    ("STOCK_DISPENSED", "Ravi Kulkarni"),
    ("USER_LOGIN", "Sunita Rao"),
)


# What the patient's record and visit hold, by which a log line would name them. Word by
# word (a search sends any part of a name), in each line as written and URL-decoded; "Ravi"
# not before the pharmacist's surname (staff names are not patient data). Phone numbers
# are looked for in their digits.
PATIENT_WORDS = (
    r"Ravi(?! Kulkarni)",
    "Kumar",
    "Iyer",
    "1981-08-14",
    "14 Aug 1981",
    "14/08/1981",
    "Lotus",
    "Matunga",
    "Lakshmi",
    "Fever",
    "throat",
    "tonsillitis",
    r"J03\.9",
    "exudate",
)
PATIENT_PHONES = ("9820055501", "9820055502")
# How a number is typed or sent: +91 98200 55501, 98200+55501, %2B9198200%2055501.
PHONE_SEPARATORS = re.compile(r"%2[0Bb]|[\s+().-]")


@pytest.fixture
def application_log():
    """Everything the application logs while the test runs, as a deployment writes it
    and more: a handler on the root logger takes every record that reaches it, at any
    level; the app's own loggers (`qure.*`) write DEBUG too; and the server's request
    lines are on (werkzeug's INFO lines, which `create_app` leaves off and an operator may
    turn on; gunicorn's access log, off by default, writes the path alone). Other
    libraries keep the level a deployment leaves them at (WARNING): their DEBUG output,
    SQLAlchemy's statements with their parameters, say, is nothing Qure writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    levels = {"qure": logging.DEBUG, "werkzeug": logging.INFO}
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().addHandler(handler)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def patient_data_in(log: str, mrn: str) -> list[str]:
    """The lines of `log` that name the journey's patient or what their visit holds."""
    words = re.compile("|".join(rf"\b{w}\b" for w in (*PATIENT_WORDS, re.escape(mrn))), re.I)

    def names(text: str) -> bool:
        digits = PHONE_SEPARATORS.sub("", text)
        return bool(words.search(text)) or any(phone in digits for phone in PATIENT_PHONES)

    return [line for line in log.splitlines() if names(line) or names(unquote_plus(line))]


@pytest.fixture
def background(app):
    worker = jobs.InProcessJobs(app)
    yield worker
    worker.stop()


def relayed(app, timeout: float = 15.0) -> None:
    """Wait until the in-process relay has shipped every outbox row (what the audit log
    page reads); fail if it has not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    with app.app_context():
        while outbox.backlog():
            assert time.monotonic() < deadline, "the outbox relay did not catch up"
            db.session.remove()
            time.sleep(0.1)


def test_one_patients_clinic_day_in_four_browsers(
    browser, live_server, app, morning_clinic, background, application_log, tmp_path
):
    shots = Path(os.environ.get("QURE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def signed_in(username: str):
        # The browsers sit in the clinic, so their clocks (the board's) read clinic time.
        context = browser.new_context(
            base_url=live_server, viewport=VIEWPORT, timezone_id=morning_clinic
        )
        page = context.new_page()
        page.set_default_timeout(10_000)
        if username:
            sign_in(page, username, PASSWORD)
        return page

    def shot(page, name: str, top: bool = False) -> None:
        if top:  # from the top of the page, whatever the last form's anchor scrolled to
            page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / f"{name}.png"))

    with app.app_context():
        owner = make_user(Role.ADMIN, full_name="Sunita Rao")
        clinic_settings.update(
            owner,
            {
                "clinic_name": "Shanti Clinic",
                "upi_id": "shanti.clinic@okaxis",
                "consultation_fee": "500.00",
                "consultation_gst_rate": "0",
            },
        )
        board.set_display_key(owner, DISPLAY_KEY)
        commit()
        doctor = make_user(
            Role.DOCTOR,
            full_name="Meera Sharma",
            qualification="MBBS, MD",
            registration_number="MMC-2011-04567",
        )
        clerk = make_user(Role.RECEPTION, full_name="Kavya Nair")
        chemist = make_user(Role.PHARMACIST, full_name="Ravi Kulkarni")
        local = clock.now().astimezone(clock.clinic_tz())
        start = (local + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)
        make_slots(doctor, local.date(), start.strftime("%H:%M"), "15:00", 15)
        azi = medicine("Azithral", "23.50", 12, generic_name="Azithromycin")
        para = medicine("Paracip", "2.50", 12, generic_name="Paracetamol")
        # The later expiry is received first: the plan must still take the earlier first.
        stocked(chemist, azi, ("AZ-LATE", 40, 700))
        stocked(chemist, azi, ("AZ-EARLY", 2, 200))
        stocked(chemist, para, ("PC-1", 100, 300))
        commit()
        logins = {
            "reception": clerk.username,
            "doctor": doctor.username,
            "pharmacist": chemist.username,
            "admin": owner.username,
        }
        doctor_id = doctor.id

    # Reception: look for the patient by phone and by name (not registered yet), register
    # them, book today's first open slot, check them in.
    desk = signed_in(logins["reception"])
    expect(desk.get_by_role("heading", name="Front desk")).to_be_visible()
    for typed in ("98200 55501", "Ravi Kumar"):
        desk.get_by_label("Find a patient").fill(typed)
        desk.get_by_role("button", name="Find", exact=True).click()
        expect(desk.get_by_text(f"Results for “{typed}”")).to_be_visible()
        expect(desk.get_by_text("No patients to show.")).to_be_visible()
    desk.get_by_role("link", name="Register a patient").click()
    desk.get_by_label("Full name").fill("Ravi Kumar Iyer")
    desk.get_by_label("Date of birth").fill("1981-08-14")
    desk.get_by_label("Sex").select_option("M")
    desk.get_by_label("Phone", exact=True).fill("+91 98200 55501")
    desk.get_by_label("Address").fill("12 Lotus Lane, Matunga, Mumbai 400019")
    desk.get_by_label("Emergency contact name").fill("Lakshmi Iyer")
    desk.get_by_label("Emergency contact phone").fill("+91 98200 55502")
    desk.get_by_label("Relation").fill("Wife")
    desk.get_by_role("button", name="Register patient").click()
    registered = desk.get_by_text(re.compile(r"Registered Ravi Kumar Iyer as QC-\d{6}"))
    expect(registered).to_be_visible()
    mrn = re.search(r"QC-\d{6}", registered.inner_text()).group(0)

    desk.get_by_role("link", name="Book an appointment").click()
    desk.get_by_label("Doctor").select_option(label="Meera Sharma")
    desk.get_by_role("button", name="Show open slots").click()
    desk.locator("input[name=slot_id]").first.check()
    desk.get_by_label("Reason for the visit").fill("Fever and sore throat")
    desk.get_by_role("button", name="Book").click()
    expect(desk.get_by_text("Booked.")).to_be_visible()
    expect(desk.locator(".details")).to_contain_text("Scheduled")

    desk.get_by_role("link", name="Today").click()
    desk.get_by_role("row").filter(has_text="Ravi Kumar Iyer").get_by_role(
        "button", name="Check in"
    ).click()
    expect(desk.get_by_label("Token number")).to_have_text("001")

    # The waiting-room board: the token and initials, never the name.
    screen = signed_in("")
    screen.goto("/queue/board")
    screen.get_by_label("Display key").fill(DISPLAY_KEY)
    screen.get_by_role("button", name="Open the board").click()
    column = screen.locator(f".doctor[data-doctor-id='{doctor_id}']")
    expect(column.locator(".upcoming .token")).to_have_text(["001"])
    expect(column.locator(".upcoming .initials")).to_have_text(["R.I."])
    expect(screen.get_by_text("Ravi")).to_have_count(0)

    # The doctor calls the patient; the board shows the call without a reload.
    clinic = signed_in(logins["doctor"])
    clinic.get_by_role("link", name="My queue").first.click()
    clinic.get_by_role("button", name="Call next").click()
    expect(clinic.get_by_role("heading", name="Ravi Kumar Iyer")).to_be_visible()
    expect(clinic.get_by_text(re.compile(r"Token 001 called: Ravi Kumar Iyer"))).to_be_visible()
    expect(column.locator(".current .token")).to_have_text("001", timeout=5000)
    expect(column).to_have_class(re.compile(r"\bcalled\b"))
    shot(screen, "board")

    # Vitals, diagnosis and a note, saved with one form.
    clinic.get_by_label("BP systolic (mmHg)").fill("124")
    clinic.get_by_label("BP diastolic (mmHg)").fill("82")
    clinic.get_by_label("Pulse (/min)").fill("96")
    clinic.get_by_label("Temperature").fill("101.3")
    clinic.get_by_label("Unit").select_option("F")
    clinic.get_by_label("Weight (kg)").fill("70")
    clinic.get_by_label("Height (cm)").fill("175")
    clinic.get_by_label("Diagnosis").fill("Acute tonsillitis")
    clinic.get_by_label("ICD-10 code").fill("J03.9")
    clinic.get_by_label("New note").fill("Tonsils enlarged with exudate; no rash")
    clinic.get_by_role("button", name="Save", exact=True).click()
    expect(clinic.get_by_text("Saved.")).to_be_visible()
    expect(clinic.locator("#bmi")).to_have_text("22.9")
    expect(clinic.locator("#vitals")).to_contain_text("38.5 °C")
    expect(clinic.get_by_text("Tonsils enlarged with exudate; no rash")).to_be_visible()

    # Two medicines: Azithral once a day for 5 days, Paracip 1-0-1 for 5 days.
    clinic.get_by_placeholder("Medicine name or ingredient").fill("azithro")
    clinic.get_by_role("button", name="Find medicine").click()
    clinic.get_by_role("link", name="Azithral 500 mg").click()
    clinic.get_by_label("How often").fill("OD")
    clinic.get_by_label("Days").fill("5")
    clinic.get_by_role("button", name="Add to prescription").click()
    expect(clinic.get_by_text("Added Azithral.")).to_be_visible()
    clinic.get_by_placeholder("Medicine name or ingredient").fill("paracetamol")
    clinic.get_by_role("button", name="Find medicine").click()
    clinic.get_by_role("link", name="Paracip 500 mg").click()
    clinic.get_by_label("How often").fill("1-0-1")
    clinic.get_by_label("Days").fill("5")
    clinic.get_by_label("Instructions").fill("after food")
    clinic.get_by_role("button", name="Add to prescription").click()
    rows = clinic.locator("#prescription tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Azithral")
    expect(rows.nth(1)).to_contain_text("1-0-1: morning and night")
    shot(clinic, "visit", top=True)

    clinic.get_by_role("button", name="Complete the visit").click()
    expect(clinic.get_by_text("Visit completed.")).to_be_visible()
    printed = clinic.get_by_role("link", name="Print (PDF)").get_attribute("href")
    response = clinic.request.get(printed)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = " ".join(PdfReader(BytesIO(response.body())).pages[0].extract_text().split())
    for expected in ("Ravi Kumar Iyer", "Azithral", "Paracip", "Acute tonsillitis", "Meera Sharma"):
        assert expected in text, expected

    # Reception bills the visit: 10% off, a UPI payment, the receipt.
    desk.get_by_role("link", name="Home").first.click()
    expect(desk.locator("main")).to_contain_text("Ravi Kumar Iyer")  # recently registered
    shot(desk, "front-desk")
    desk.get_by_role("link", name="1 completed visit to bill").click()
    row = desk.locator("tr", has_text="Ravi Kumar Iyer")
    expect(row).to_contain_text("Meera Sharma")
    row.get_by_role("button", name="Make invoice").click()
    lines = desk.locator("#lines tbody tr")
    expect(lines).to_have_count(3)
    expect(lines.nth(0)).to_contain_text("Consultation")
    expect(lines.nth(1)).to_contain_text("Azithral")
    expect(lines.nth(2)).to_contain_text("Paracip")
    # 500 + 5 x 23.50 x 1.12 + 10 x 2.50 x 1.12 = 659.60
    expect(desk.locator("#total")).to_have_text("₹659.60")
    desk.get_by_label("Discount", exact=True).select_option(label="Percentage (%)")
    desk.get_by_label("Discount value").fill("10")
    desk.get_by_role("button", name="Save").click()
    # 450 + Azithral 105.75 + CGST 6.35 + SGST 6.35 + Paracip 22.50 + 1.35 + 1.35
    expect(desk.locator("#total")).to_have_text("₹593.65")
    desk.get_by_role("button", name="Finalise").click()
    expect(desk.locator("#status")).to_have_text("Pending")
    number = re.search(r"INV/\d{4}-\d{2}/\d{6}", desk.locator("h1").inner_text()).group(0)
    expect(desk.locator("#pay figure.upi-qr")).to_contain_text("₹593.65")
    desk.get_by_label("UPI").check()
    desk.get_by_label("Transaction reference").fill("UPI-412345678901")
    desk.get_by_role("button", name="Take the payment").click()
    expect(desk.locator("#status")).to_have_text("Paid")
    expect(desk.locator("#payment")).to_contain_text("UPI-412345678901")
    shot(desk, "receipt")
    response = desk.request.get(desk.get_by_role("link", name="Receipt (A4)").get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() for p in PdfReader(BytesIO(response.body())).pages)
    assert number in text and "PAID" in text and "593.65" in text

    # The pharmacist dispenses: Azithral from both batches, the earlier expiry first.
    counter = signed_in(logins["pharmacist"])
    expect(counter.locator("#to-dispense-count")).to_have_text("1")
    counter.get_by_role("link", name="Dispense", exact=True).first.click()
    listed = counter.locator("#to-dispense tbody tr", has_text="Ravi Kumar Iyer")
    expect(listed).to_contain_text(f"Azithral 500 mg {TIMES} 5")
    listed.get_by_role("link", name="Dispense").click()
    plan = counter.locator("table.dispense-plan tbody tr")
    expect(plan.nth(0)).to_contain_text(
        re.compile(f"AZ-EARLY.*{TIMES} 2.*AZ-LATE.*{TIMES} 3", re.S)
    )
    expect(plan.nth(1)).to_contain_text(re.compile(f"PC-1.*{TIMES} 10", re.S))
    shot(counter, "dispense")
    counter.get_by_role("button", name="Dispense", exact=True).click()
    expect(counter.locator("h1")).to_contain_text("Fully dispensed")
    record = counter.locator("#dispensed tbody tr")
    expect(record).to_have_count(3)
    expect(record.nth(0)).to_contain_text("AZ-EARLY")
    expect(record.nth(1)).to_contain_text("AZ-LATE")
    response = counter.request.get(
        counter.get_by_role("link", name="Print slip (A5)").get_attribute("href")
    )
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() for p in PdfReader(BytesIO(response.body())).pages)
    assert "AZ-EARLY" in text and "AZ-LATE" in text and "Ravi Kumar Iyer" in text

    # The admin: today's visit and revenue on the dashboard, every step in the audit log.
    office = signed_in(logins["admin"])
    office.get_by_role("link", name="Dashboard").first.click()
    tiles = office.locator("#today-tiles")
    expect(tiles.locator('[data-figure="visits"]')).to_have_text("1")
    expect(tiles.locator('[data-figure="revenue"]')).to_have_text("₹593.65")
    expect(tiles).to_contain_text("UPI: ₹593.65")
    expect(tiles.locator('[data-figure="dispensed"]')).to_have_text("15")
    expect(office.locator("#today-doctors")).to_contain_text("Meera Sharma")
    shot(office, "dashboard")

    relayed(app)
    office.goto("/reports/audit")
    log = office.locator("#audit-log > tbody > tr")
    expect(log.filter(has_text="PATIENT_CREATED")).to_have_count(1)
    # Newest first on the page; the journey's entries are the newest. Who: the name, before
    # the role beside it.
    shown = log.evaluate_all(
        "rows => rows.map(r => [r.querySelector('td.action').textContent.trim(),"
        " r.cells[2].firstChild.textContent.trim()])"
    )
    assert [tuple(entry) for entry in shown[: len(JOURNEY)]] == list(reversed(JOURNEY))
    shot(office, "audit-log")

    with app.app_context():
        db.session.remove()
        visit = db.session.scalars(select(Visit)).one()
        assert visit.status == VisitStatus.COMPLETED and visit.diagnosis == "Acute tonsillitis"
        invoice = db.session.scalar(select(Invoice).where(Invoice.number == number))
        assert invoice.status == InvoiceStatus.PAID and invoice.total == Decimal("593.65")
        payment = db.session.scalar(select(Payment).where(Payment.invoice_id == invoice.id))
        assert payment.method == PaymentMethod.UPI
        taken = db.session.execute(
            select(Batch.batch_number, func.sum(DispensedItem.quantity))
            .join(Batch, Batch.id == DispensedItem.batch_id)
            .group_by(Batch.batch_number)
        ).all()
        assert dict(taken) == {"AZ-EARLY": 2, "AZ-LATE": 3, "PC-1": 10}
        left = dict(db.session.execute(select(Batch.batch_number, Batch.quantity)).all())
        assert left == {"AZ-EARLY": 0, "AZ-LATE": 37, "PC-1": 90}
        logged = [d["action"] for d in mongo.db[audit.COLLECTION].find({}).sort("seq", 1)]
        assert logged[-len(JOURNEY) :] == [action for action, _ in JOURNEY]
        assert outbox.verify().ok
    for page in (desk, screen, clinic, counter, office):
        page.context.close()

    # The application's log: read (the searches' request lines are in it, their queries
    # left out), and nothing in it names the patient or what their visit holds.
    logged = application_log.getvalue()
    assert '"GET /patients/?[redacted] HTTP/1.1" 200' in logged
    assert '"GET /visits/icd10?[redacted] HTTP/1.1" 200' in logged
    assert patient_data_in(logged, mrn) == []
