"""The billing counter in a real browser: reception bills a completed visit with a
discount, shows the UPI QR code, takes the UPI payment, downloads the receipt, refunds one
medicine by credit note, and closes the day with the net takings.

With QURE_SCREENSHOTS=<folder> each step's page is saved there as a PNG, to look at."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from io import BytesIO
from pathlib import Path

from playwright.sync_api import expect
from pypdf import PdfReader
from sqlalchemy import select

from qure.admin import settings as clinic_settings
from qure.billing.models import CreditNote, DayClose, Invoice, InvoiceStatus, Payment
from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db
from tests.billing.helpers import completed_visit, medicine
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_patient, make_user


def test_reception_bills_a_visit_takes_upi_refunds_a_medicine_and_closes_the_day(
    page, app, tmp_path
):
    shots = Path(os.environ.get("QURE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"billing-{name}.png"), full_page=True)

    with app.app_context():
        admin = make_user(Role.ADMIN)
        clinic_settings.update(
            admin,
            {
                "clinic_name": "Shanti Clinic",
                "upi_id": "shanti.clinic@okaxis",
                "consultation_fee": "500.00",
                "consultation_gst_rate": "0",
            },
        )
        commit()
        doctor = make_user(Role.DOCTOR, full_name="Meera Sharma")
        clerk = make_user(Role.RECEPTION, full_name="Kavya Nair")
        para = medicine("Paracip", "2.50", 12, hsn_code="30049099")
        cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
        db.session.commit()
        patient = make_patient(full_name="Asha Devi Sharma")
        completed_visit(doctor, [(para, 10), (cough, 1)], patient=patient)
        login = clerk.username

    sign_in(page, login, PASSWORD)
    shot("0-home")
    page.get_by_role("link", name="1 completed visit to bill").click()  # the home page
    row = page.locator("tr", has_text="Asha Devi Sharma")
    expect(row).to_contain_text("Meera Sharma")
    shot("1-to-bill")
    row.get_by_role("button", name="Make invoice").click()

    # The AUTO draft: the consultation, then the medicines in prescription order.
    expect(page.locator("#status")).to_have_text("Draft")
    lines = page.locator("#lines tbody tr")
    expect(lines).to_have_count(3)
    expect(lines.nth(0)).to_contain_text("Consultation")
    expect(lines.nth(1)).to_contain_text("Paracip")
    expect(lines.nth(2)).to_contain_text("Coughex")
    expect(page.locator("#total")).to_have_text("₹628.30")  # 500 + 25 + 3.00 + 85 + 15.30

    # 10% off, previewed before saving: each line's taxable value and tax.
    page.get_by_label("Discount", exact=True).select_option(label="Percentage (%)")
    page.get_by_label("Discount value").fill("10")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("565.48")
    expect(preview.locator("tbody tr").nth(2)).to_contain_text("76.50")  # 85.00 less 8.50
    expect(page.locator("#total")).to_have_text("₹628.30")  # not saved yet
    shot("2-preview")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#total")).to_have_text("₹565.48")
    page.get_by_role("button", name="Finalise").click()

    # Finalised: its number, and the UPI QR code for the exact amount.
    heading = page.locator("h1")
    expect(heading).to_contain_text(re.compile(r"INV/\d{4}-\d{2}/\d{6}"))
    number = re.search(r"INV/\d{4}-\d{2}/\d{6}", heading.inner_text()).group(0)
    expect(page.locator("#status")).to_have_text("Pending")
    qr = page.locator("#pay figure.upi-qr")
    expect(qr.locator("svg")).to_be_visible()
    expect(qr).to_contain_text("₹565.48")
    shot("3-pay")

    page.get_by_label("UPI").check()
    page.get_by_label("Transaction reference").fill("UPI-412345678901")
    page.get_by_role("button", name="Take the payment").click()
    expect(page.locator("#status")).to_have_text("Paid")
    expect(page.locator("#payment")).to_contain_text("UPI-412345678901")
    shot("4-paid")

    # The receipt, downloaded with the signed-in session: PAID, the number, in words.
    href = page.get_by_role("link", name="Receipt (A4)").get_attribute("href")
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() for p in PdfReader(BytesIO(response.body())).pages)
    assert number in text and "PAID" in text and "UNPAID" not in text
    assert "Shanti Clinic" in text and "565.48" in text
    assert "Five Hundred Sixty Five and Forty Eight Paise Only" in text

    # The syrup comes back unopened: a credit note for that line alone.
    refund = page.locator("#credit-notes form")
    syrup = refund.locator("tr", has_text="Coughex")
    syrup.get_by_role("checkbox").check()
    syrup.get_by_role("textbox").fill("1")
    refund.get_by_label("Reason").fill("Syrup returned unopened")
    refund.get_by_label("Cash").check()
    refund.get_by_role("button", name="Issue the credit note").click()
    expect(page.locator("h1")).to_contain_text(re.compile(r"Credit note CN/\d{4}-\d{2}/\d{6}"))
    expect(page.locator("main")).to_contain_text("₹90.28 by cash")  # 76.50 + 6.89 + 6.89
    shot("5-credit-note")
    pdf = page.request.get(page.get_by_role("link", name="Credit note (PDF)").get_attribute("href"))
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.get_by_role("link", name=number).click()  # back to the invoice
    expect(page.locator("#credit-notes")).to_contain_text("₹90.28")
    expect(page.locator("#refundable")).to_contain_text("₹475.20")
    shot("6-refunded")

    # The day's close: UPI 565.48 in, 90.28 cash out, net 475.20.
    page.get_by_role("link", name="Billing").first.click()
    page.get_by_role("link", name="Day close").click()
    expected = page.locator("#expected")
    expect(expected).to_contain_text("475.20")
    expect(expected).to_contain_text("565.48")
    expect(expected).to_contain_text("90.28")
    page.get_by_label("Cash counted (₹)").fill("0")
    page.get_by_label("Note").fill("UPI only today; one cash refund")
    page.get_by_role("button", name=re.compile("^Close ")).click()
    expect(page.locator("#close")).to_contain_text("Kavya Nair")
    expect(page.locator("#variance")).to_have_text("₹90.28 over")  # 0 counted, -90.28 due
    shot("7-day-closed")

    with app.app_context():
        invoice = db.session.scalar(select(Invoice).where(Invoice.number == number))
        assert invoice.status == InvoiceStatus.PAID and invoice.total == Decimal("565.48")
        payment = db.session.scalar(select(Payment).where(Payment.invoice_id == invoice.id))
        assert payment.reference == "UPI-412345678901"
        note = db.session.scalar(select(CreditNote).where(CreditNote.invoice_id == invoice.id))
        assert note.total == Decimal("90.28")
        close = db.session.scalar(select(DayClose))
        assert close.cash_counted == Decimal("0.00")
