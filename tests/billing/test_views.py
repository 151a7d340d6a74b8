"""The billing counter's pages as the front desk uses them in a browser (CSRF on): what is
left to bill, one click to an AUTO invoice, a discount previewed then saved, finalising,
a cash payment with its change, a refund by credit note, the day's takings and its close;
a manual invoice typed by hand; who may see and change what.

The clock is pinned to Monday 2030-01-07 10:00 clinic time (`clinic_now`), financial year
2029-30."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from qure.admin import settings
from qure.billing import service
from qure.billing.models import (
    CreditNote,
    DayClose,
    Invoice,
    InvoiceMode,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
)
from qure.billing.qr import qr_svg
from qure.core.db import commit
from qure.extensions import db
from tests.billing.helpers import completed_visit, medicine
from tests.helpers import flashes, form_post, make_patient, page_text, sign_in

# ---- helpers -------------------------------------------------------------------------------


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section class="card" id="{section_id}"[^>]*>.*?</section>', page, re.S)
    assert match, f"no section #{section_id}"
    return match.group(0)


def text_of(html: str) -> str:
    """The words of some HTML, tags gone and spaces squeezed, as a person reads them."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def cell_errors(page: str, field_id: str) -> list[str]:
    match = re.search(rf'<div id="{re.escape(field_id)}-error">(.*?)</div>', page, re.S)
    return re.findall(r'<p class="error">(.*?)</p>', match.group(1), re.S) if match else []


def input_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', page)
    if not match:
        return None
    value = re.search(r'value="([^"]*)"', match.group(0))
    return value.group(1) if value else ""


def empty_rows(*rows: int) -> dict[str, str]:
    """Rows of the lines form left empty, as a browser sends them."""
    return {
        f"lines-{n}-{name}": value
        for n in rows
        for name, value in (
            ("description", ""),
            ("kind", LineKind.PROCEDURE.value),
            ("hsn_sac", ""),
            ("quantity", "1"),
            ("unit_price", ""),
            ("gst_rate", ""),
        )
    }


def visit_to_bill(doctor, patient=None):
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    return completed_visit(doctor, [(para, 10), (cough, 1)], patient=patient)


def the_invoice(invoice_id: int) -> Invoice:
    db.session.expire_all()
    return service.get_invoice(invoice_id)


def manual_invoice(client, patient, **rows) -> int:
    """A MANUAL draft made through the page; returns its id."""
    data = {
        "patient_id": patient.id,
        "lines-0-description": "Wound dressing",
        "lines-0-kind": LineKind.PROCEDURE.value,
        "lines-0-quantity": "1",
        "lines-0-unit_price": "250.00",
        "lines-0-gst_rate": "18",
        "save": "1",
        **rows,
    }
    made = form_post(client, "/billing/new", data, page=f"/billing/new?patient_id={patient.id}")
    assert made.status_code == 302, page_text(made)[:2000]
    return int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])


# ---- the whole counter -------------------------------------------------------------------------


def test_a_visit_is_billed_discounted_paid_refunded_and_the_day_closed(client, doctor, reception):
    patient = make_patient(full_name="Asha Devi Sharma")
    visit, prescription = visit_to_bill(doctor, patient)
    sign_in(client, reception)

    home = page_text(client.get("/billing"))
    to_bill = text_of(section(home, "to-bill"))
    assert "To bill (1)" in to_bill
    assert "Asha Devi Sharma" in to_bill and doctor.full_name in to_bill
    assert "Make invoice" in to_bill

    made = form_post(client, f"/billing/visits/{visit.id}/invoice", {}, page="/billing")
    assert made.status_code == 302
    invoice_url = made.headers["Location"]
    invoice_id = int(invoice_url.rsplit("/", 1)[1])
    page = page_text(client.get(invoice_url))
    assert "Draft invoice made" in " ".join(flashes(page))
    assert "Invoice DRAFT" in text_of(page)
    lines = text_of(section(page, "lines"))
    assert f"Consultation, {doctor.full_name}" in lines
    assert "Paracip 500 mg Tablet" in lines and "Coughex 100 ml Syrup" in lines
    assert "Total ₹628.30" in lines  # 500 + 25 + 3.00 GST + 85 + 15.30 GST
    assert "Rupees Six Hundred Twenty Eight and Thirty Paise Only" in lines
    assert the_invoice(invoice_id).prescription_id == prescription.id
    # The visit has its invoice: it is no longer to bill.
    assert "Nothing to bill" in page_text(client.get("/billing"))

    # A 10% discount previewed: every line's taxable value and tax, nothing saved.
    discount = {"discount_type": "PERCENT", "discount_value": "10"}
    shown = form_post(client, invoice_url, {**discount, "preview": "1"})
    assert shown.status_code == 200
    preview = text_of(section(page_text(shown), "preview"))
    assert "Preview (not saved yet)" in preview
    # subtotal 610.00, discount 61.00 shared 50.00 / 2.50 / 8.50
    assert "1 Consultation, " in preview
    assert "500.00 50.00 450.00 0% 0.00 0.00 450.00" in preview
    assert "25.00 2.50 22.50 12% 1.35 1.35 25.20" in preview
    assert "85.00 8.50 76.50 18% 6.89 6.89 90.28" in preview
    assert "Totals 610.00 61.00 549.00 8.24 8.24 565.48" in preview
    assert the_invoice(invoice_id).total == Decimal("628.30")
    assert input_value(page_text(shown), "discount_value") == "10"

    saved = form_post(client, invoice_url, {**discount, "save": "1"}, follow_redirects=True)
    assert "Saved." in flashes(page_text(saved))
    assert "Discount (10%) ₹61.00" in text_of(section(page_text(saved), "lines"))
    assert the_invoice(invoice_id).total == Decimal("565.48")

    final = form_post(
        client, f"{invoice_url}/finalize", {}, page=invoice_url, follow_redirects=True
    )
    page = page_text(final)
    assert "Finalised as INV/2029-30/000001." in flashes(page)
    assert "Invoice INV/2029-30/000001 Pending" in text_of(page)
    assert "Pay ₹565.48" in text_of(section(page, "pay"))
    assert the_invoice(invoice_id).status == InvoiceStatus.PENDING

    paid = form_post(
        client,
        f"{invoice_url}/pay",
        {"method": "CASH", "tendered": "600", "amount": "565.48"},
        page=invoice_url,
        follow_redirects=True,
    )
    page = page_text(paid)
    assert "Paid: ₹565.48 by cash. Give ₹34.52 change." in flashes(page)
    payment = text_of(section(page, "payment"))
    assert "Tendered ₹600.00 Change ₹34.52" in payment
    assert "Receipt (A4)" in payment and "Receipt (80 mm roll)" in payment
    stored = the_invoice(invoice_id)
    assert stored.status == InvoiceStatus.PAID
    assert db.session.scalars(select(Payment.change)).one() == Decimal("34.52")

    # Refund the syrup: its row ticked, the whole quantity left (the default).
    syrup = [line for line in sorted(stored.lines, key=lambda li: li.position)][2]
    form = page_text(client.get(invoice_url))
    refund = section(form, "credit-notes")
    assert "Still refundable: ₹565.48" in text_of(refund)
    rows = dict(re.findall(r'name="(lines-\d+-(?:line_id|quantity))"[^>]*value="([^"]*)"', refund))
    assert rows["lines-2-line_id"] == str(syrup.id) and rows["lines-2-quantity"] == "1"
    refunded = form_post(
        client,
        f"{invoice_url}/refund",
        {**rows, "lines-2-chosen": "y", "reason": "Returned unopened", "method": "CASH"},
        page=invoice_url,
        follow_redirects=True,
    )
    page = page_text(refunded)
    assert "Credit note CN/2029-30/000001: ₹90.28 back by cash." in flashes(page)
    note_text = text_of(page)
    assert "Credit note CN/2029-30/000001" in note_text
    assert "Coughex 100 ml Syrup 1 76.50 18% 6.89 6.89 90.28" in note_text
    assert "Rupees Ninety and Twenty Eight Paise Only" in note_text
    note = db.session.scalars(select(CreditNote)).one()
    assert (note.total, note.method, note.reason) == (
        Decimal("90.28"),
        PaymentMethod.CASH,
        "Returned unopened",
    )

    page = page_text(client.get(invoice_url))
    notes = text_of(section(page, "credit-notes"))
    assert "CN/2029-30/000001 · ₹90.28 by cash · Returned unopened" in notes
    assert "Still refundable: ₹475.20" in notes

    takings = text_of(section(page_text(client.get("/billing")), "takings"))
    assert "Cash 565.48 90.28 475.20" in takings
    assert "All 565.48 90.28 475.20" in takings

    report = page_text(client.get("/billing/day-close"))
    assert "Cash 565.48 90.28 475.20" in text_of(section(report, "expected"))
    closed = form_post(
        client,
        "/billing/day-close",
        {"date": "2030-01-07", "cash_counted": "470.00", "note": "Short by a note"},
        page="/billing/day-close",
        follow_redirects=True,
    )
    page = page_text(closed)
    assert "07 Jan 2030 is closed." in flashes(page)
    close = text_of(section(page, "close"))
    assert "Cash expected ₹475.20 Cash counted ₹470.00 Variance ₹5.20 short" in close
    assert f"Closed by {reception.full_name}" in close
    assert "close-form" not in page
    row = db.session.scalars(select(DayClose)).one()
    assert (row.cash_counted, row.variance, row.closed_by_id) == (
        Decimal("470.00"),
        Decimal("-5.20"),
        reception.id,
    )

    # Closing again is refused with a word, never a 500.
    again = form_post(
        client,
        "/billing/day-close",
        {"date": "2030-01-07", "cash_counted": "470.00"},
        page="/billing/day-close?date=2030-01-09",
        follow_redirects=True,
    )
    assert "07 Jan 2030 is closed already." in flashes(page_text(again))

    # The day is closed: no payment lands on it.
    other = manual_invoice(client, patient)
    url = f"/billing/{other}"
    form_post(client, f"{url}/finalize", {}, page=url)
    refused = form_post(
        client,
        f"{url}/pay",
        {"method": "CARD", "reference": "CARD-778", "amount": "295.00"},
        page=url,
        follow_redirects=True,
    )
    assert refused.status_code == 200
    assert "The takings of 07 Jan 2030 are closed; no money moves on that day." in flashes(
        page_text(refused)
    )
    assert the_invoice(other).status == InvoiceStatus.PENDING
    assert db.session.scalar(select(Payment.id).where(Payment.invoice_id == other)) is None


# ---- a manual invoice -------------------------------------------------------------------------


def test_a_manual_invoice_grows_rows_without_javascript_and_names_the_bad_field(client, reception):
    patient = make_patient(full_name="Ravi Kumar")
    commit()
    sign_in(client, reception)

    page = page_text(client.get(f"/patients/{patient.id}"))
    assert f'href="/billing/new?patient_id={patient.id}">Bill this patient' in page

    url = f"/billing/new?patient_id={patient.id}"
    page = page_text(client.get(url))
    assert "Ravi Kumar" in page
    assert len(re.findall(r'name="lines-\d+-description"', page)) == 3

    typed = {
        "patient_id": patient.id,
        "lines-0-description": "Wound dressing",
        "lines-0-kind": LineKind.PROCEDURE.value,
        "lines-0-hsn_sac": "999312",
        "lines-0-quantity": "2",
        "lines-0-unit_price": "150.00",
        "lines-0-gst_rate": "18",
    }
    more = form_post(client, "/billing/new", {**typed, **empty_rows(1, 2), "more": "1"}, page=url)
    assert more.status_code == 200
    page = page_text(more)
    assert len(re.findall(r'name="lines-\d+-description"', page)) == 6
    assert input_value(page, "lines-0-description") == "Wound dressing"
    assert input_value(page, "lines-0-unit_price") == "150.00"
    assert db.session.scalar(select(Invoice.id)) is None

    bad = {
        **typed,
        **empty_rows(1, 2, 4, 5),
        "lines-3-description": "Blood sugar test",
        "lines-3-kind": LineKind.LAB.value,
        "lines-3-quantity": "-1",
        "lines-3-unit_price": "abc",
        "save": "1",
    }
    refused = form_post(client, "/billing/new", bad, page=url)
    assert refused.status_code == 422
    page = page_text(refused)
    assert cell_errors(page, "lines-3-quantity") == ["Give a number from 0.01 to 100000."]
    assert cell_errors(page, "lines-3-unit_price") == ["Give an amount such as 120.50."]
    assert cell_errors(page, "lines-0-quantity") == []
    assert input_value(page, "lines-3-description") == "Blood sugar test"
    assert input_value(page, "lines-3-quantity") == "-1"
    assert db.session.scalar(select(Invoice.id)) is None

    # A discount above the subtotal is named beside the discount.
    preview = form_post(
        client,
        "/billing/new",
        {**typed, "discount_type": "AMOUNT", "discount_value": "500", "preview": "1"},
        page=url,
    )
    assert preview.status_code == 422
    assert cell_errors(page_text(preview), "discount_value") == [
        "Give an amount from 0 to the subtotal, 300.00."
    ]

    good = {**bad, "lines-3-quantity": "1", "lines-3-unit_price": "80", "lines-3-gst_rate": "0"}
    made = form_post(client, "/billing/new", good, page=url, follow_redirects=True)
    page = page_text(made)
    assert "Draft invoice made: check it, then finalise." in flashes(page)
    invoice = the_invoice(db.session.scalars(select(Invoice.id)).one())
    assert (invoice.mode, invoice.patient_id, invoice.total) == (
        InvoiceMode.MANUAL,
        patient.id,
        Decimal("434.00"),  # 300 + 54.00 GST, then 80 at 0%
    )
    assert [(li.description, li.gst_rate) for li in invoice.lines] == [
        ("Wound dressing", 18),
        ("Blood sugar test", 0),
    ]
    # The draft's lines can be edited on its page, and one removed.
    edit_url = f"/billing/{invoice.id}"
    page = page_text(client.get(edit_url))
    assert input_value(page, "lines-1-description") == "Blood sugar test"
    edited = form_post(
        client,
        edit_url,
        {
            "lines-0-description": "Wound dressing",
            "lines-0-kind": LineKind.PROCEDURE.value,
            "lines-0-quantity": "2",
            "lines-0-unit_price": "150.00",
            "lines-0-gst_rate": "18",
            "lines-1-description": "Blood sugar test",
            "lines-1-kind": LineKind.LAB.value,
            "lines-1-quantity": "1",
            "lines-1-unit_price": "80.00",
            "lines-1-gst_rate": "0",
            "lines-1-remove": "y",
            "save": "1",
        },
        follow_redirects=True,
    )
    assert "Saved." in flashes(page_text(edited))
    assert [li.description for li in the_invoice(invoice.id).lines] == ["Wound dressing"]
    assert the_invoice(invoice.id).total == Decimal("354.00")


def test_the_patient_is_found_by_name_for_a_manual_invoice(client, reception):
    patient = make_patient(full_name="Kavita Joshi")
    commit()
    sign_in(client, reception)
    page = page_text(client.get("/billing/new?q=Kavita"))
    assert "Bill Kavita Joshi" in page
    assert f"/billing/new?patient_id={patient.id}" in page


# ---- refusals become words on the page -----------------------------------------------------


def test_a_finalised_invoice_is_not_edited_and_a_cancel_needs_a_reason(client, reception):
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient)
    url = f"/billing/{invoice_id}"
    form_post(client, f"{url}/finalize", {}, page=url)

    late = form_post(
        client,
        url,
        {"discount_type": "AMOUNT", "discount_value": "10", "save": "1"},
        page=url,
        follow_redirects=True,
    )
    assert late.status_code == 200
    assert "This invoice is pending: only a draft can be changed." in flashes(page_text(late))

    twice = form_post(client, f"{url}/finalize", {}, page=url, follow_redirects=True)
    assert twice.status_code == 200
    assert "only a draft can be changed" in " ".join(flashes(page_text(twice)))

    no_reason = form_post(client, f"{url}/cancel", {"reason": ""}, page=url)
    assert no_reason.status_code == 422
    assert "Say why the invoice is cancelled." in section(page_text(no_reason), "cancel")
    assert the_invoice(invoice_id).status == InvoiceStatus.PENDING

    cancelled = form_post(
        client, f"{url}/cancel", {"reason": "Billed twice"}, page=url, follow_redirects=True
    )
    page = page_text(cancelled)
    assert "The invoice is cancelled." in flashes(page)
    assert "Billed twice" in text_of(section(page, "cancelled"))
    assert the_invoice(invoice_id).status == InvoiceStatus.CANCELLED


def test_a_card_payment_needs_its_reference_and_keeps_what_was_typed(client, reception):
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient)
    url = f"/billing/{invoice_id}"
    form_post(client, f"{url}/finalize", {}, page=url)

    refused = form_post(
        client, f"{url}/pay", {"method": "CARD", "reference": "", "amount": "295.00"}, page=url
    )
    assert refused.status_code == 422
    pay = section(page_text(refused), "pay")
    assert "Give the CARD transaction reference." in pay
    assert re.search(r'value="CARD"[^>]*checked|checked[^>]*value="CARD"', pay)
    assert the_invoice(invoice_id).status == InvoiceStatus.PENDING

    paid = form_post(
        client,
        f"{url}/pay",
        {"method": "UPI", "reference": "UPI-4411", "amount": "295.00"},
        page=url,
        follow_redirects=True,
    )
    page = page_text(paid)
    assert "Paid: ₹295.00 by UPI." in flashes(page)
    assert "Reference UPI-4411" in text_of(section(page, "payment"))
    again = form_post(
        client,
        f"{url}/pay",
        {"method": "CASH", "amount": "295.00"},
        page=f"/billing/{invoice_id}",
        follow_redirects=True,
    )
    assert "This invoice is paid; refund by credit note." in flashes(page_text(again))


def test_a_refund_of_more_than_is_left_is_named_beside_the_line(client, reception):
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient, **{"lines-0-quantity": "2"})
    url = f"/billing/{invoice_id}"
    form_post(client, f"{url}/finalize", {}, page=url)
    form_post(client, f"{url}/pay", {"method": "CASH", "amount": "590.00"}, page=url)
    line = the_invoice(invoice_id).lines[0]

    nothing = form_post(
        client,
        f"{url}/refund",
        {"lines-0-line_id": str(line.id), "lines-0-quantity": "2", "reason": "x", "method": "CASH"},
        page=url,
    )
    assert nothing.status_code == 422
    assert "Tick the lines to refund." in page_text(nothing)

    too_much = form_post(
        client,
        f"{url}/refund",
        {
            "lines-0-line_id": str(line.id),
            "lines-0-chosen": "y",
            "lines-0-quantity": "3",
            "reason": "Overcharged",
            "method": "CASH",
        },
        page=url,
    )
    assert too_much.status_code == 422
    page = page_text(too_much)
    assert cell_errors(page, "lines-0-quantity") == ["Only 2 of this line is left to refund."]
    assert input_value(page, "reason") == "Overcharged"
    assert db.session.scalar(select(CreditNote.id)) is None


# ---- finding invoices, the close's history ------------------------------------------------


def test_invoices_are_found_by_patient_status_and_number(client, reception, pharmacist):
    asha = make_patient(full_name="Asha Devi Sharma")
    ravi = make_patient(full_name="Ravi Kumar")
    commit()
    sign_in(client, reception)
    first = manual_invoice(client, asha)
    second = manual_invoice(client, ravi)
    form_post(client, f"/billing/{second}/finalize", {}, page=f"/billing/{second}")

    every = text_of(page_text(client.get("/billing/invoices")))
    assert "Asha Devi Sharma" in every and "Ravi Kumar" in every
    by_name = text_of(page_text(client.get("/billing/invoices?q=ravi")))
    assert "Ravi Kumar" in by_name and "Asha Devi Sharma" not in by_name
    drafts = text_of(page_text(client.get("/billing/invoices", query_string={"status": "DRAFT"})))
    assert "Asha Devi Sharma" in drafts and "Ravi Kumar" not in drafts
    by_number = text_of(page_text(client.get("/billing/invoices?number=1")))
    assert "INV/2029-30/000001" in by_number and "Asha Devi Sharma" not in by_number
    by_day = text_of(page_text(client.get("/billing/invoices?date=08 Jan 2030")))
    assert "No invoices match." in by_day
    today = text_of(page_text(client.get("/billing/invoices?date=07 Jan 2030")))
    assert "Asha Devi Sharma" in today
    mine = text_of(page_text(client.get(f"/billing/invoices?patient_id={asha.id}")))
    assert "Asha Devi Sharma" in mine and "Ravi Kumar" not in mine
    assert first != second


def test_the_admin_sees_past_closes(client, admin, reception):
    sign_in(client, admin)
    form_post(
        client,
        "/billing/day-close",
        {"date": "2030-01-06", "cash_counted": "0"},
        page="/billing/day-close?date=2030-01-06",
    )
    page = text_of(page_text(client.get("/billing/day-closes")))
    assert "06 Jan 2030 0.00 0.00 0.00 0.00 0.00 0.00" in page
    assert admin.full_name in page
    closed = text_of(page_text(client.get("/billing/day-close?date=2030-01-06")))
    assert "Closed" in closed and "Close 06 Jan 2030" not in closed


def test_the_cashier_sees_past_closes_as_the_api_shows_them(client, reception):
    # SPEC 0: the day close is the desk's (ADMIN, RECEPTION); the page once let only ADMIN in.
    sign_in(client, reception)
    form_post(
        client,
        "/billing/day-close",
        {"date": "2030-01-06", "cash_counted": "0"},
        page="/billing/day-close?date=2030-01-06",
    )
    assert 'href="/billing/day-closes">Past closes</a>' in page_text(client.get("/billing"))
    page = text_of(page_text(client.get("/billing/day-closes")))
    assert "06 Jan 2030 0.00 0.00 0.00 0.00 0.00 0.00" in page
    assert reception.full_name in page


# ---- who may see and do what ------------------------------------------------------------------


def test_a_doctor_may_not_bill_and_a_pharmacist_only_reads(client, doctor, pharmacist, reception):
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient)
    url = f"/billing/{invoice_id}"
    client.post("/logout", data={})

    other = client.application.test_client()
    sign_in(other, doctor)
    for path in ("/billing", "/billing/new", url, "/billing/invoices", "/billing/day-close"):
        assert other.get(path).status_code == 403, path
    assert form_post(other, f"{url}/finalize", {}, page="/home").status_code == 403

    reader = client.application.test_client()
    sign_in(reader, pharmacist)
    page = page_text(reader.get(url))
    assert "Invoice DRAFT" in text_of(page) and "Wound dressing" in page
    assert (
        "Finalise" not in page
        and "Cancel the invoice" not in page
        and "<form" not in page[page.index("<main>") :]
    )
    assert reader.get("/billing/invoices").status_code == 200
    for path in ("/billing", "/billing/new", "/billing/day-close", "/billing/day-closes"):
        assert reader.get(path).status_code == 403, path
    assert form_post(reader, f"{url}/finalize", {}, page="/home").status_code == 403
    nav = page_text(reader.get("/home"))
    assert ">Billing</a>" not in nav


def test_billing_is_in_the_front_desk_navigation_and_home(client, doctor, reception):
    visit_to_bill(doctor)
    sign_in(client, reception)
    home = page_text(client.get("/home"))
    assert 'href="/billing">Billing</a>' in home
    assert "1 completed visit to bill" in text_of(section(home, "to-bill"))


def test_the_billing_forms_need_their_csrf_token(client, doctor, reception):
    visit, _ = visit_to_bill(doctor)
    patient = make_patient()
    commit()
    sign_in(client, reception)
    assert client.post(f"/billing/visits/{visit.id}/invoice", data={}).status_code == 400
    assert client.post("/billing/new", data={"patient_id": patient.id}).status_code == 400
    assert client.post("/billing/day-close", data={"cash_counted": "0"}).status_code == 400
    assert db.session.scalar(select(Invoice.id)) is None
    assert db.session.scalar(select(DayClose.id)) is None


def test_a_second_make_invoice_opens_the_first(client, doctor, reception):
    visit, _ = visit_to_bill(doctor)
    sign_in(client, reception)
    first = form_post(client, f"/billing/visits/{visit.id}/invoice", {}, page="/billing")
    again = form_post(client, f"/billing/visits/{visit.id}/invoice", {}, page="/billing")
    assert again.headers["Location"] == first.headers["Location"]
    page = page_text(client.get(again.headers["Location"]))
    assert "This visit has an invoice already." in flashes(page)
    assert len(db.session.scalars(select(Invoice.id)).all()) == 1


def test_a_visit_without_a_prescription_bills_the_consultation(client, doctor, reception):
    visit, _ = completed_visit(doctor, prescribe=False)
    sign_in(client, reception)
    made = form_post(
        client, f"/billing/visits/{visit.id}/invoice", {}, page="/billing", follow_redirects=True
    )
    lines = text_of(section(page_text(made), "lines"))
    assert f"Consultation, {doctor.full_name}" in lines and "Total ₹500.00" in lines


# ---- documents --------------------------------------------------------------------------------


def test_the_receipt_and_credit_note_pdfs_open_from_the_pages(client, reception):
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient)
    url = f"/billing/{invoice_id}"
    form_post(client, f"{url}/finalize", {}, page=url)
    form_post(client, f"{url}/pay", {"method": "CASH", "amount": "295.00"}, page=url)
    line = the_invoice(invoice_id).lines[0]
    form_post(
        client,
        f"{url}/refund",
        {
            "lines-0-line_id": str(line.id),
            "lines-0-chosen": "y",
            "lines-0-quantity": "1",
            "reason": "Not done",
            "method": "CASH",
        },
        page=url,
    )
    note = db.session.scalars(select(CreditNote)).one()
    for path in (
        f"{url}/receipt.pdf",
        f"{url}/receipt.pdf?format=thermal",
        f"/billing/credit-notes/{note.id}.pdf",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype == "application/pdf"
        assert response.data.startswith(b"%PDF")


def test_an_unpaid_invoice_shows_the_upi_qr_code_for_its_amount(client, admin, reception):
    settings.update(admin, {"upi_id": "shanti.clinic@okaxis"})
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient)
    url = f"/billing/{invoice_id}"
    assert "<svg" not in page_text(client.get(url))  # a draft has no number to pay yet
    form_post(client, f"{url}/finalize", {}, page=url)
    page = page_text(client.get(url))
    pay = section(page, "pay")
    link = service.upi_link(the_invoice(invoice_id))
    assert link.startswith("upi://pay?pa=shanti.clinic@okaxis&") and "&am=295.00&" in link
    assert str(qr_svg(link)) in pay
    assert "Scan with any UPI app to pay ₹295.00 for INV/2029-30/000001." in text_of(pay)


def test_the_pay_button_pressed_twice_answers_the_first_payment(client, reception):
    patient = make_patient()
    commit()
    sign_in(client, reception)
    invoice_id = manual_invoice(client, patient)
    url = f"/billing/{invoice_id}"
    form_post(client, f"{url}/finalize", {}, page=url)
    key = input_value(page_text(client.get(url)), "key")
    assert key
    body = {"method": "CASH", "tendered": "300", "amount": "295.00", "key": key}
    first = form_post(client, f"{url}/pay", body, page=url, follow_redirects=True)
    second = form_post(client, f"{url}/pay", body, page=url, follow_redirects=True)
    for response in (first, second):
        assert "Paid: ₹295.00 by cash. Give ₹5.00 change." in flashes(page_text(response))
    assert len(db.session.scalars(select(Payment.id)).all()) == 1


def test_a_bad_cash_count_is_named_beside_the_field_and_nothing_is_closed(client, reception):
    sign_in(client, reception)
    refused = form_post(
        client,
        "/billing/day-close",
        {"date": "2030-01-07", "cash_counted": "12,5O", "note": "Counted twice"},
        page="/billing/day-close",
    )
    assert refused.status_code == 422
    page = page_text(refused)
    assert "Give an amount such as 120.50." in section(page, "close-form")
    assert input_value(page, "cash_counted") == "12,5O"
    assert "Counted twice" in section(page, "close-form")
    assert db.session.scalar(select(DayClose.id)) is None
