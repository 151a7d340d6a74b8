"""Receipts and credit notes as PDFs (SPEC 8, the billing issue): what the patient takes
home, read back from the PDF's text: the clinic's settings, the number, every line and
total, the amount in words, PAID or UNPAID; the thermal roll is 80 mm wide; the UPI QR
code decodes to exactly the payment link; and what a user typed prints as text."""

from __future__ import annotations

from io import BytesIO

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from qure.admin import settings as clinic_settings
from qure.billing import service
from qure.core import phone
from qure.core.db import commit
from tests.billing.helpers import completed_visit, medicine
from tests.helpers import bearer, error, make_patient
from tests.prescriptions.test_pdf import SHIPPED, base_names, font_names

A4 = (595.28, 841.89)
ROLL_WIDTH = 80 / 25.4 * 72  # 226.77 pt
GSTIN = "27AAPFU0939F1ZV"
CLINIC = {
    "clinic_name": "Sanjeevani Family Clinic",
    "address": "12 MG Road, Pune 411001",
    "phone": "+91 20 2567 8901",
    "gstin": GSTIN,
    "registration": "Clinic Reg. PMC/CE/2019/118",
    "upi_id": "sanjeevani@okaxis",
}


# ---- helpers -------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """The text of every page, whitespace runs made single spaces."""
    reader = PdfReader(BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def squeezed(text: str) -> str:
    return "".join(text.split())


def qr_codes(data: bytes) -> list[str]:
    """What every QR code on the first page decodes to, read from the rendered page."""
    image = pypdfium2.PdfDocument(data)[0].render(scale=3).to_pil()
    return [code.text for code in zxingcpp.read_barcodes(image)]


def pdf_of(response) -> bytes:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/pdf"
    data = response.get_data()
    assert data.startswith(b"%PDF-")
    return data


def page_size(data: bytes) -> tuple[float, float]:
    box = PdfReader(BytesIO(data)).pages[0].mediabox
    return float(box.width), float(box.height)


def save_settings(admin, **changes):
    clinic_settings.update(admin, changes)
    commit()


@pytest.fixture
def clinic(admin):
    save_settings(admin, **CLINIC)
    return CLINIC


@pytest.fixture
def billed(desk, doctor):
    """A finalised (PENDING) AUTO invoice of a consultation and two medicines, 10% off:
    subtotal 610.00, discount 61.00, total 565.48 (as tests/billing/test_flow.py)."""
    para = medicine("Paracip", "2.50", 12, hsn_code="30049099")
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    _, prescription = completed_visit(doctor, [(para, 10), (cough, 1)])
    made = desk.auto(prescription, discount={"type": "PERCENT", "value": "10"})
    assert made.status_code == 201, made.get_json()
    final = desk.post(f"/{made.get_json()['id']}/finalize")
    assert final.status_code == 200, final.get_json()
    return final.get_json()


def receipt(desk, invoice_id: int, **query):
    return desk.get(f"/{invoice_id}/receipt", **query)


def manual(desk, patient, items, **extra) -> dict:
    made = desk.post("", {"mode": "MANUAL", "patient_id": patient.id, "items": items, **extra})
    assert made.status_code == 201, made.get_json()
    return made.get_json()


# ---- the A4 receipt ------------------------------------------------------------------------


def test_a_paid_receipt_prints_the_clinic_the_lines_the_totals_and_the_payment(
    desk, clinic, billed, doctor
):
    paid = desk.pay(billed, "UPI", reference="UPI-4471-XY")
    assert paid.status_code == 200, paid.get_json()
    response = receipt(desk, billed["id"])
    data = pdf_of(response)
    assert response.headers["Content-Disposition"] == (
        "inline; filename=receipt-INV-2029-30-000001.pdf"
    )
    assert page_size(data) == pytest.approx(A4, abs=0.5)
    text = pdf_text(data)
    for shown in (
        "Sanjeevani Family Clinic",
        "12 MG Road, Pune 411001",
        "+91 20 2567 8901",
        f"GSTIN {GSTIN}",
        "PMC/CE/2019/118",
        "INV/2029-30/000001",
        "07 Jan 2030",
        "Asha Devi Sharma",
        f"Doctor: {doctor.full_name}",
    ):
        assert shown in text, f"{shown!r} not in:\n{text}"
    # Each line: #, description, HSN/SAC, qty, rate, discount share, taxable, GST rate,
    # CGST, SGST, line total.
    for row in (
        "1 Consultation",
        "999312 1 500.00 50.00 450.00 0% 0.00 0.00 450.00",
        "2 Paracip 500 mg Tablet 30049099 10 2.50 2.50 22.50 12% 1.35 1.35 25.20",
        "3 Coughex 100 ml Syrup — 1 85.00 8.50 76.50 18% 6.89 6.89 90.28",
    ):
        assert row in text, f"{row!r} not in:\n{text}"
    for total in (
        "Subtotal 610.00",
        "Discount (10%) \N{MINUS SIGN}61.00",
        "Taxable value 549.00",
        "CGST 8.24",
        "SGST 8.24",
        "Total ₹ 565.48",
    ):
        assert total in text, f"{total!r} not in:\n{text}"
    assert "Rupees Five Hundred Sixty Five and Forty Eight Paise Only" in text
    assert "Paid by UPI, reference UPI-4471-XY" in text
    assert "PAID" in text.split() and "UNPAID" not in text
    assert qr_codes(data) == []  # paid: nothing to scan


def test_the_receipt_shows_who_the_patient_is(desk, clinic, billed):
    patient = service.get_invoice(billed["id"]).patient
    text = pdf_text(pdf_of(receipt(desk, billed["id"])))
    assert f"MRN {patient.mrn} · {phone.display(patient.phone)}" in text


def test_a_cash_receipt_shows_what_was_tendered_and_the_change(desk, clinic, billed):
    paid = desk.pay(billed, "CASH", tendered="600.00")
    assert paid.status_code == 200, paid.get_json()
    text = pdf_text(pdf_of(receipt(desk, billed["id"])))
    assert "Paid by cash" in text
    assert "Tendered ₹ 600.00 · Change ₹ 34.52" in text


def test_an_unpaid_receipt_says_unpaid_and_its_qr_code_is_the_exact_upi_link(desk, clinic, billed):
    data = pdf_of(receipt(desk, billed["id"]))
    text = pdf_text(data)
    assert "UNPAID" in text and "PAID" not in text.split()
    assert "Scan to pay ₹ 565.48 by UPI to sanjeevani@okaxis" in text
    link = (
        "upi://pay?pa=sanjeevani@okaxis&pn=Sanjeevani%20Family%20Clinic&am=565.48"
        "&cu=INR&tn=INV%2F2029-30%2F000001"
    )
    assert service.upi_link(service.get_invoice(billed["id"])) == link
    assert qr_codes(data) == [link]


def test_no_qr_code_without_the_clinics_upi_id(desk, admin, clinic, billed):
    save_settings(admin, upi_id="")
    data = pdf_of(receipt(desk, billed["id"]))
    assert "UNPAID" in pdf_text(data) and "Scan to pay" not in pdf_text(data)
    assert qr_codes(data) == []


def test_a_large_total_is_grouped_in_lakhs_and_written_in_words(desk, clinic):
    patient = make_patient(full_name="Ravi Kumar")
    invoice = manual(
        desk,
        patient,
        [
            {
                "kind": "PROCEDURE",
                "description": "Day-care surgery",
                "quantity": "1",
                "unit_price": "102340.50",
                "gst_rate": 0,
            }
        ],
    )
    text = pdf_text(pdf_of(receipt(desk, invoice["id"])))
    assert "₹ 1,02,340.50" in text
    assert "Rupees One Lakh Two Thousand Three Hundred Forty and Fifty Paise Only" in text


# ---- drafts and cancelled invoices ------------------------------------------------------------


def test_a_draft_prints_as_not_a_tax_invoice_without_a_number(desk, clinic):
    patient = make_patient(full_name="Meena Joshi")
    invoice = manual(
        desk,
        patient,
        [
            {
                "kind": "LAB",
                "description": "CBC",
                "quantity": "1",
                "unit_price": "350.00",
                "gst_rate": 0,
            }
        ],
    )
    response = receipt(desk, invoice["id"])
    data = pdf_of(response)
    assert response.headers["Content-Disposition"] == (
        f"inline; filename=receipt-draft-{invoice['id']}.pdf"
    )
    text = pdf_text(data)
    assert "DRAFT - not a tax invoice" in text
    assert "INV/" not in text and "not numbered (draft)" in text
    assert "UNPAID" not in text and "PAID" not in text.split()
    assert qr_codes(data) == []  # no number, nothing to pay yet


def test_a_cancelled_invoice_prints_cancelled_and_why(desk, clinic, billed):
    cancelled = desk.post(f"/{billed['id']}/cancel", {"reason": "Billed the wrong patient"})
    assert cancelled.status_code == 200, cancelled.get_json()
    data = pdf_of(receipt(desk, billed["id"]))
    text = pdf_text(data)
    assert "CANCELLED" in text and "Billed the wrong patient" in text
    assert "INV/2029-30/000001" in text
    assert qr_codes(data) == []


# ---- the thermal roll ------------------------------------------------------------------------


def test_the_thermal_receipt_is_an_80_mm_roll_with_everything_on_it(desk, clinic, billed):
    response = receipt(desk, billed["id"], format="thermal")
    data = pdf_of(response)
    assert response.headers["Content-Disposition"] == (
        "inline; filename=receipt-INV-2029-30-000001-thermal.pdf"
    )
    reader = PdfReader(BytesIO(data))
    assert len(reader.pages) == 1
    width, height = page_size(data)
    assert width == pytest.approx(ROLL_WIDTH, abs=0.5)
    assert 300 < height < 1500  # cut to the receipt, not 3 metres of paper
    text = pdf_text(data)
    for shown in (
        "Sanjeevani Family Clinic",
        f"GSTIN {GSTIN}",
        "INV/2029-30/000001",
        "Consultation",
        "Paracip",
        "Coughex",
        "GST 12% (CGST + SGST)",
        "1.35 + 1.35",
        "₹ 565.48",
        "Rupees Five Hundred Sixty Five and Forty Eight Paise Only",
        "UNPAID",
    ):
        assert shown in text, f"{shown!r} not in:\n{text}"
    link = service.upi_link(service.get_invoice(billed["id"]))
    assert qr_codes(data) == [link]


def test_the_roll_is_as_long_as_the_receipt(desk, clinic):
    """The roll's one page is cut below what is printed: forty lines make a longer strip
    than one, and still one page (a thermal printer has no page breaks)."""
    patient = make_patient(full_name="Kavita Rao")
    heights = []
    for count in (1, 40):
        items = [
            {
                "kind": "OTHER",
                "description": f"Dressing {n}",
                "quantity": "1",
                "unit_price": "10.00",
                "gst_rate": 0,
            }
            for n in range(1, count + 1)
        ]
        invoice = manual(desk, patient, items)
        data = pdf_of(receipt(desk, invoice["id"], format="thermal"))
        assert len(PdfReader(BytesIO(data)).pages) == 1
        assert "Dressing 40" in pdf_text(data) or count == 1
        heights.append(page_size(data)[1])
    assert heights[0] < 700 < 2000 < heights[1] < 8000


def test_a_bad_format_is_refused(desk, billed):
    response = receipt(desk, billed["id"], format="a5")
    assert response.status_code == 422


# ---- credit notes ------------------------------------------------------------------------------


def test_a_credit_note_prints_what_it_reverses_and_the_receipt_what_is_left(
    client, desk, clinic, billed
):
    assert desk.pay(billed, "UPI", reference="UPI-1").status_code == 200
    syrup = billed["lines"][2]
    made = desk.post(
        f"/{billed['id']}/credit-notes",
        {
            "items": [{"line_id": syrup["id"], "quantity": 1}],
            "reason": "Syrup returned unopened",
            "method": "CASH",
        },
    )
    assert made.status_code == 201, made.get_json()
    note = made.get_json()

    response = client.get(f"/api/v1/credit-notes/{note['id']}/pdf", headers=desk.headers)
    data = pdf_of(response)
    assert response.headers["Content-Disposition"] == (
        "inline; filename=credit-note-CN-2029-30-000001.pdf"
    )
    text = pdf_text(data)
    for shown in (
        "Sanjeevani Family Clinic",
        f"GSTIN {GSTIN}",
        "CN/2029-30/000001",
        "Against invoice INV/2029-30/000001 of 07 Jan 2030",
        "Asha Devi Sharma",
        "Coughex",
        "1 18% 76.50 6.89 6.89 90.28",
        "Total refunded ₹ 90.28",
        "Rupees Ninety and Twenty Eight Paise Only",
        "Syrup returned unopened",
        "Refunded by cash",
    ):
        assert shown in text, f"{shown!r} not in:\n{text}"
    assert "Paracip" not in text  # only the line reversed

    text = pdf_text(pdf_of(receipt(desk, billed["id"])))
    assert "CN/2029-30/000001 of 07 Jan 2030: ₹ 90.28 refunded by cash" in text
    assert "Refunded ₹ 90.28 · still refundable ₹ 475.20" in text
    assert "PAID" in text.split()


# ---- not found, roles --------------------------------------------------------------------------


def test_unknown_ids_are_404(client, desk):
    error(desk.get("/999999/receipt"), 404, "invoice_not_found")
    error(desk.get("/999999/receipt", format="thermal"), 404, "invoice_not_found")
    response = client.get("/api/v1/credit-notes/999999/pdf", headers=desk.headers)
    error(response, 404, "credit_note_not_found")


@pytest.mark.parametrize(
    ("role", "status"),
    [("admin", 200), ("reception", 200), ("pharmacist", 200), ("doctor", 403)],
)
def test_who_may_read_a_receipt(request, client, billed, role, status):
    user = request.getfixturevalue(role)
    response = client.get(f"/api/v1/billing/{billed['id']}/receipt", headers=bearer(client, user))
    assert response.status_code == status


def test_a_receipt_needs_a_signed_in_user(client, billed):
    assert client.get(f"/api/v1/billing/{billed['id']}/receipt").status_code == 401


def test_who_may_read_a_credit_note_pdf(client, desk, billed, doctor, pharmacist):
    assert desk.pay(billed, "CASH").status_code == 200
    made = desk.post(f"/{billed['id']}/credit-notes", {"reason": "All returned", "method": "CASH"})
    url = f"/api/v1/credit-notes/{made.get_json()['id']}/pdf"
    assert client.get(url, headers=bearer(client, pharmacist)).status_code == 200
    assert client.get(url, headers=bearer(client, doctor)).status_code == 403


# ---- what a user typed prints as text ---------------------------------------------------------


def test_markup_in_a_name_or_a_line_prints_as_text(desk, clinic):
    patient = make_patient(full_name="<b>Asha</b> <img src=x>")
    invoice = manual(
        desk,
        patient,
        [
            {
                "kind": "OTHER",
                "description": '<i>Dressing</i> <a href="https://x.invalid">',
                "quantity": "1",
                "unit_price": "120.00",
                "gst_rate": 18,
            }
        ],
    )
    for query in ({}, {"format": "thermal"}):
        text = pdf_text(pdf_of(receipt(desk, invoice["id"], **query)))
        assert "<b>Asha</b> <img src=x>" in text
        assert squeezed('<i>Dressing</i> <a href="https://x.invalid">') in squeezed(text)


def test_a_devanagari_name_prints_in_the_shipped_font(desk, clinic):
    # (pypdf reads a reph (र्म) back out of order, so the name has none: "शर्मा" -> "शार्मा".)
    name = "सुनीता देवी पाटील"
    patient = make_patient(full_name=name)
    invoice = manual(
        desk,
        patient,
        [
            {
                "kind": "OTHER",
                "description": "पट्टी (dressing)",
                "quantity": "1",
                "unit_price": "50.00",
                "gst_rate": 0,
            }
        ],
    )
    for query in ({}, {"format": "thermal"}):
        data = pdf_of(receipt(desk, invoice["id"], **query))
        assert squeezed(name) in squeezed(pdf_text(data))
        assert squeezed("पट्टी") in squeezed(pdf_text(data))
        fonts = base_names(font_names(data))
        assert "Qure-Noto-Sans-Devanagari" in fonts and fonts <= SHIPPED, fonts
