"""The pharmacy counter in a real browser: the pharmacist receives a delivery of two
batches on the stock-in form, dispenses a paid prescription (one medicine from two
batches, earliest expiry first), prints the dispensing slip, and sees the low-stock alert
appear for the medicine the dispensing took below its reorder level.

With QURE_SCREENSHOTS=<folder> each step's page is saved there as a PNG, to look at."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from io import BytesIO
from pathlib import Path

from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import select

from qure.core import clock
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy.models import Batch, DrugSchedule, H1RegisterEntry
from qure.prescriptions.models import DispenseStatus, Prescription
from tests.billing.helpers import medicine
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_patient, make_user
from tests.pharmacy.helpers import paid_prescription, stocked

TIMES = "\N{MULTIPLICATION SIGN}"  # as the pages write a quantity: "Azithral 500 mg", TIMES, 6


def test_pharmacist_receives_stock_dispenses_from_two_batches_and_prints_the_slip(
    page, app, tmp_path
):
    shots = Path(os.environ.get("QURE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"pharmacy-{name}.png"), full_page=True)

    with app.app_context():
        pharmacist = make_user(Role.PHARMACIST, full_name="Ravi Kulkarni")
        doctor = make_user(
            Role.DOCTOR, full_name="Meera Sharma", registration_number="MMC-2011-04567"
        )
        desk = make_user(Role.RECEPTION)
        azi = medicine(
            "Azithral",
            "23.50",
            12,
            generic_name="Azithromycin",
            schedule=DrugSchedule.H1,
            reorder_level=3,
        )
        para = medicine("Paracip", "2.50", 12, generic_name="Paracetamol", reorder_level=20)
        stocked(pharmacist, azi, ("AZ-OLD", 4, 20))
        stocked(pharmacist, para, ("PC-1", 25, 300))
        db.session.commit()
        patient = make_patient(full_name="Asha Devi Sharma", address="12 MG Road, Pune")
        prescription, _ = paid_prescription(doctor, desk, [(azi, 6), (para, 10)], patient=patient)
        prescription_id, azi_id = prescription.id, azi.id
        login = pharmacist.username
        expiry = clock.today() + timedelta(days=700)

    sign_in(page, login, PASSWORD)
    expect(page.locator("#to-dispense-count")).to_have_text("1")
    expect(page.locator("#count-low")).to_have_text("0")
    shot("0-home")

    # The delivery: two batches of Azithral on one form, the expiry as the pack prints it.
    page.get_by_role("link", name="Stock", exact=True).first.click()
    page.get_by_label("Find a medicine").fill("azith")
    page.get_by_role("button", name="Show").click()
    row = page.locator("#inventory tbody tr", has_text="Azithral")
    expect(row).to_contain_text("4")
    row.get_by_role("link", name="Receive stock").click()
    page.get_by_label("Supplier").fill("Mahaveer Medi-Sales")
    page.get_by_label("Batch no., row 1").fill("az-new")
    page.get_by_label("Quantity, row 1").fill("50")
    page.get_by_label("Expiry, row 1").fill(f"{expiry:%m/%Y}")
    page.get_by_label("Batch no., row 2").fill("AZ-SPARE")
    page.get_by_label("Quantity, row 2").fill("0")
    page.get_by_label("Expiry, row 2").fill(f"{expiry:%m/%Y}")
    page.get_by_role("button", name="Receive").click()
    # A quantity of 0 is refused beside its field, and nothing of the delivery is saved.
    expect(page.locator(".has-error")).to_contain_text("A whole number from 1")
    shot("1-stock-in-refused")
    page.get_by_label("Batch no., row 2").fill("")
    page.get_by_label("Quantity, row 2").fill("")
    page.get_by_label("Expiry, row 2").fill("")
    page.get_by_role("button", name="Receive").click()
    expect(page.locator(".flash-success")).to_contain_text("Received 1 batch, 50 units.")
    batches = page.locator("#batches tbody tr")
    expect(batches).to_have_count(2)
    expect(batches.nth(0)).to_contain_text("AZ-OLD")
    expect(batches.nth(1)).to_contain_text("AZ-NEW")
    expect(batches.nth(1)).to_contain_text("Mahaveer Medi-Sales")
    expect(page.locator("#usable")).to_have_text("54")
    shot("2-medicine-batches")

    # To dispense: the plan before confirming, earliest expiry first.
    page.get_by_role("link", name="Dispense", exact=True).first.click()
    listed = page.locator("#to-dispense tbody tr", has_text="Asha Devi Sharma")
    expect(listed).to_contain_text(f"Azithral 500 mg {TIMES} 6")
    listed.get_by_role("link", name="Dispense").click()
    plan = page.locator("table.dispense-plan tbody tr")
    expect(plan.nth(0)).to_contain_text(re.compile(f"AZ-OLD.*{TIMES} 4.*AZ-NEW.*{TIMES} 2", re.S))
    expect(plan.nth(1)).to_contain_text(re.compile(f"PC-1.*{TIMES} 10", re.S))
    shot("3-dispense-plan")
    page.get_by_role("button", name="Dispense", exact=True).click()

    # The record: batch and quantity per item, and the slip.
    expect(page.locator("h1")).to_contain_text("Fully dispensed")
    record = page.locator("#dispensed tbody tr")
    expect(record).to_have_count(3)
    expect(record.nth(0)).to_contain_text("AZ-OLD")
    expect(record.nth(1)).to_contain_text("AZ-NEW")
    shot("4-dispensed")
    href = page.get_by_role("link", name="Print slip (A5)").get_attribute("href")
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() for p in PdfReader(BytesIO(response.body())).pages)
    assert "AZ-OLD" in text and "AZ-NEW" in text and "PC-1" in text
    assert "Asha Devi Sharma" in text and "MMC-2011-04567" in text
    assert f"{expiry:%m/%Y}" in text or clock.format_day(expiry) in text

    # Paracip fell to 15, below its reorder level of 20: the alert appears.
    page.get_by_role("link", name="Home").click()
    expect(page.locator("#count-low")).to_have_text("1")
    expect(page.locator("#to-dispense-count")).to_have_text("0")
    page.get_by_role("link", name=re.compile("^Low stock")).click()
    low = page.locator("#alert-list tbody tr")
    expect(low).to_have_count(1)
    expect(low.first).to_contain_text("Paracip")
    expect(low.first).to_contain_text("15")
    shot("5-low-stock")

    with app.app_context():
        left = dict(
            db.session.execute(
                select(Batch.batch_number, Batch.quantity).order_by(Batch.batch_number)
            ).all()
        )
        assert left == {"AZ-NEW": 48, "AZ-OLD": 0, "PC-1": 15}
        done = db.session.get(Prescription, prescription_id)
        assert done.dispense_status == DispenseStatus.DISPENSED
        register = db.session.scalars(select(H1RegisterEntry).order_by(H1RegisterEntry.id)).all()
        assert [(e.batch_number, e.quantity, e.patient_address) for e in register] == [
            ("AZ-OLD", 4, "12 MG Road, Pune"),
            ("AZ-NEW", 2, "12 MG Road, Pune"),
        ]
        new = db.session.scalar(select(Batch).where(Batch.batch_number == "AZ-NEW"))
        assert new.medicine_id == azi_id and new.supplier == "Mahaveer Medi-Sales"
        assert new.expiry_date.month == expiry.month and new.expiry_date > expiry - timedelta(31)
