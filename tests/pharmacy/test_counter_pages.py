"""The dispensing counter's pages as the pharmacist uses them in a browser (CSRF on): what
is to dispense, the dispense screen and its plan, the record with its returns and the
credit note to offer, and the Schedule H1 register on screen, as CSV and as PDF."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from qure.core.db import commit
from qure.extensions import db
from qure.pharmacy import dispensing
from qure.pharmacy.models import Batch, DispensedItem, Dispensing, H1RegisterEntry
from qure.prescriptions.models import DispenseStatus, Prescription
from tests.billing.helpers import completed_visit
from tests.helpers import csrf_token, flashes, form_post, make_patient, page_text, sign_in
from tests.pharmacy.helpers import in_days, medicine, paid_prescription, stocked
from tests.pharmacy.pages import cell_errors, expired_batch, quantity_of, table

QUEUE = "/pharmacy/dispense"
REGISTER = "/pharmacy/h1-register"
TIMES = "\N{MULTIPLICATION SIGN}"


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def screen(prescription) -> str:
    return f"{QUEUE}/{prescription.id}"


def dispensings() -> int:
    return db.session.scalar(select(func.count()).select_from(Dispensing))


def status_of(prescription) -> str:
    db.session.expire_all()
    return db.session.scalar(
        select(Prescription.dispense_status).where(Prescription.id == prescription.id)
    )


def plan_rows(page: str) -> list[list[str]]:
    """The dispense screen's plan, a row per prescribed item."""
    body = page.split('<table class="dispense-plan">')[1].split("</table>")[0]
    return table(f'<table id="plan">{body}</table>', "plan")


def record_id(response) -> int:
    found = re.fullmatch(r"/pharmacy/dispensings/(\d+)(#.*)?", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


@pytest.fixture
def para(pharmacist):
    """Paracip in three batches: SOONEST 4 (10 days), EXPIRED 50 (yesterday; its expiry
    lies between the two usable ones' received order), LATER 10 (60 days)."""
    med = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, med, ("LATER", 10, 60))
    db.session.commit()
    expired_batch(pharmacist, med, "EXPIRED", 50)
    stocked(pharmacist, med, ("SOONEST", 4, 10))
    db.session.commit()
    return med


# ---- what is to dispense -------------------------------------------------------------


def test_a_paid_prescription_is_listed_an_unpaid_one_is_not(
    client, doctor, reception, pharmacist, para
):
    paid, _ = paid_prescription(
        doctor, reception, [(para, 6)], patient=make_patient(full_name="Paid Patient")
    )
    completed_visit(doctor, [(para, 2)], patient=make_patient(full_name="Unpaid Patient"))
    sign_in(client, pharmacist)
    page = page_text(client.get(QUEUE))
    assert "To dispense (1)" in page
    (row,) = table(page, "to-dispense")
    assert row[1].startswith("Paid Patient")
    assert row[3] == f"Paracip 500 mg {TIMES} 6"
    assert f'href="{screen(paid)}">Dispense</a>' in page
    assert "Unpaid Patient" not in page
    home = page_text(client.get("/home"))
    assert '<strong id="to-dispense-count">1</strong>' in home


@pytest.mark.parametrize("role", ["doctor", "reception"])
def test_doctors_and_reception_do_not_see_the_counter(client, request, role):
    sign_in(client, request.getfixturevalue(role))
    assert client.get(QUEUE).status_code == 403


# ---- the dispense screen and dispensing ----------------------------------------------


def test_the_screen_shows_the_batches_earliest_expiry_first_never_the_expired_one(
    client, doctor, reception, pharmacist, para
):
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    sign_in(client, pharmacist)
    response = client.get(screen(prescription))
    assert response.status_code == 200
    page = page_text(response)
    (row,) = plan_rows(page)
    assert row[2:6] == ["6", "6", "0", "6"]  # prescribed, paid, given before, now
    soonest, later = in_days(10).strftime("%d %b %Y"), in_days(60).strftime("%d %b %Y")
    assert row[6] == f"SOONEST · exp. {soonest} {TIMES} 4 LATER · exp. {later} {TIMES} 2"
    assert "EXPIRED" not in page
    assert ">Dispense</button>" in page
    assert 'name="allow_partial"' not in page


def test_dispensing_redirects_to_the_record_with_its_batches(
    client, doctor, reception, pharmacist, para
):
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    sign_in(client, pharmacist)
    response = form_post(client, screen(prescription), {})
    assert response.status_code == 302, page_text(response)[:2000]
    page = page_text(client.get(response.headers["Location"]))
    assert flashes(page) == ["Dispensed: print the slip and hand it over with the medicines."]
    assert "Fully dispensed" in page
    rows = table(page, "dispensed")
    assert [(r[1], r[3]) for r in rows] == [("SOONEST", "4"), ("LATER", "2")]
    assert status_of(prescription) == DispenseStatus.DISPENSED
    db.session.expire_all()
    batches = {b.batch_number: b for b in db.session.scalars(select(Batch))}
    assert {n: b.quantity for n, b in batches.items()} == {"SOONEST": 0, "LATER": 8, "EXPIRED": 50}


def test_a_second_post_does_not_dispense_twice(client, doctor, reception, pharmacist, para):
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    sign_in(client, pharmacist)
    token = csrf_token(client, screen(prescription))
    first = client.post(screen(prescription), data={"csrf_token": token})
    second = client.post(screen(prescription), data={"csrf_token": token})  # a double click
    assert first.status_code == second.status_code == 302
    assert record_id(second) == record_id(first)
    assert dispensings() == 1
    assert db.session.scalar(select(func.sum(DispensedItem.quantity))) == 6
    page = page_text(client.get(second.headers["Location"]))
    assert "Everything on this prescription has been handed over." in flashes(page)


def test_short_stock_is_shown_and_offers_partial_dispensing(
    client, doctor, reception, pharmacist, para
):
    prescription, _ = paid_prescription(doctor, reception, [(para, 20)])
    sign_in(client, pharmacist)
    page = page_text(client.get(screen(prescription)))
    (row,) = plan_rows(page)
    assert row[5] == "14"
    assert "Short by 6." in row[6]
    # One press hands over what is in stock: the button carries allow_partial itself.
    assert (
        '<button type="submit" name="allow_partial" value="y" class="primary">'
        "Dispense what is in stock</button>"
    ) in page


def test_short_stock_without_allow_partial_dispenses_nothing(
    client, doctor, reception, pharmacist, para
):
    prescription, _ = paid_prescription(doctor, reception, [(para, 20)])
    sign_in(client, pharmacist)
    response = form_post(client, screen(prescription), {})
    assert response.status_code == 409
    page = page_text(response)
    assert "Not enough usable stock of Paracip." in page
    assert "Nothing was handed over." in page
    assert dispensings() == 0
    assert status_of(prescription) == DispenseStatus.AWAITING


def test_short_stock_with_allow_partial_dispenses_part(client, doctor, reception, pharmacist, para):
    prescription, _ = paid_prescription(doctor, reception, [(para, 20)])
    sign_in(client, pharmacist)
    response = form_post(client, screen(prescription), {"allow_partial": "y"})
    assert response.status_code == 302, page_text(response)[:2000]
    page = page_text(client.get(response.headers["Location"]))
    assert flashes(page) == ["Part dispensed: print the slip and hand it over with the medicines."]
    assert "Part dispensed</span>" in page
    assert [(r[1], r[3]) for r in table(page, "dispensed")] == [("SOONEST", "4"), ("LATER", "10")]
    assert f"Paracip {TIMES} 6" in page.split('id="outstanding"')[1]
    assert f'href="{screen(prescription)}">Dispense the rest</a>' in page
    assert status_of(prescription) == DispenseStatus.PARTIALLY_DISPENSED
    queue = page_text(client.get(QUEUE))
    assert "Part dispensed</span>" in queue and "Dispense the rest</a>" in queue


def test_nothing_in_stock_offers_no_button(client, doctor, reception, pharmacist):
    empty = medicine("Emptyx", "2.00", 12)
    prescription, _ = paid_prescription(doctor, reception, [(empty, 3)])
    sign_in(client, pharmacist)
    page = page_text(client.get(screen(prescription)))
    assert "Short by 3: none in stock." in page
    assert "Nothing of what is due is in stock: receive stock first." in page
    assert "<button" not in page.split('id="plan"')[1].split("</section>")[0]


def test_an_unpaid_prescription_cannot_be_dispensed(client, doctor, pharmacist, para):
    _, prescription = completed_visit(doctor, [(para, 2)])
    sign_in(client, pharmacist)
    page = page_text(client.get(screen(prescription)))
    assert "This prescription has no paid invoice" in page
    assert "<button" not in page.split('id="plan"')[1].split("</section>")[0]
    token = csrf_token(client, QUEUE)
    response = client.post(screen(prescription), data={"csrf_token": token})
    assert response.status_code == 302
    assert dispensings() == 0


def test_an_admin_sees_the_screen_but_may_not_dispense(client, doctor, reception, admin, para):
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    sign_in(client, admin)
    response = client.get(screen(prescription))
    assert response.status_code == 200
    page = page_text(response)
    assert "Dispensing is the pharmacist\N{RIGHT SINGLE QUOTATION MARK}s." in page
    assert ">Dispense</button>" not in page
    token = csrf_token(client, QUEUE)
    assert client.post(screen(prescription), data={"csrf_token": token}).status_code == 403
    assert dispensings() == 0


def test_dispensing_without_the_csrf_token_is_refused(client, doctor, reception, pharmacist, para):
    prescription, _ = paid_prescription(doctor, reception, [(para, 6)])
    sign_in(client, pharmacist)
    assert client.post(screen(prescription)).status_code == 400
    assert dispensings() == 0


def test_an_unknown_prescription_is_404(client, pharmacist):
    sign_in(client, pharmacist)
    assert client.get(f"{QUEUE}/987654").status_code == 404
    assert client.get("/pharmacy/dispensings/987654").status_code == 404


# ---- returns and the credit note to offer --------------------------------------------


@pytest.fixture
def handed_over(doctor, reception, pharmacist, para):
    """Six Paracip dispensed: 4 from SOONEST, 2 from LATER. Returns (record, invoice)."""
    prescription, invoice = paid_prescription(doctor, reception, [(para, 6)])
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    commit()
    return done, invoice


def record_url(done) -> str:
    return f"/pharmacy/dispensings/{done['id']}"


def return_data(page: str, quantities: dict[str, str], reason: str = "Unopened") -> dict:
    """The return form as shown, with a quantity typed beside each batch in `quantities`."""
    form = page.split('id="returns"')[1]
    data = {"reason": reason}
    for row in re.findall(r"<tr>(.*?)</tr>", form, re.S):
        hidden = re.search(r'name="(items-\d+)-item_id" type="hidden" value="(\d+)"', row)
        if not hidden:
            continue
        prefix = hidden.group(1)
        number = re.search(r'<td class="mono">([^<]+)</td>', row).group(1)
        data[f"{prefix}-item_id"] = hidden.group(2)
        data[f"{prefix}-quantity"] = quantities.get(number, "")
    return data


def test_one_back_goes_into_its_batch_and_offers_the_credit_note(
    app, client, pharmacist, reception, handed_over
):
    done, invoice = handed_over
    later = db.session.get(Batch, done["items"][1]["batch_id"])
    assert quantity_of(later) == 8
    sign_in(client, pharmacist)
    page = page_text(client.get(record_url(done)))
    data = return_data(page, {"LATER": "1"})
    response = form_post(client, f"{record_url(done)}/returns", data, page=record_url(done))
    assert response.status_code == 302, page_text(response)[:3000]
    assert response.headers["Location"] == f"{record_url(done)}#returned"
    assert quantity_of(later) == 9
    page = page_text(client.get(record_url(done)))
    assert flashes(page)[0].startswith("1 unit back in stock.")
    assert [(r[1], r[4]) for r in table(page, "dispensed")] == [("SOONEST", ""), ("LATER", "1")]
    returned = page.split('id="returned"')[1].split("</section>")[0]
    # The pharmacist cannot issue credit notes: the record says where it is done.
    assert "Offer the credit note" not in returned and "at the billing counter" in returned

    desk = app.test_client()
    sign_in(desk, reception)
    page = page_text(desk.get(record_url(done)))
    returned = page.split('id="returned"')[1].split("</section>")[0]
    link = re.search(r'<a href="([^"]+)">Offer the credit note</a>', returned)
    assert link, returned
    line_id = done["items"][1]["invoice_line_id"]
    url = link.group(1)
    assert url.startswith(f"/billing/{invoice.id}?")
    assert f"refund_line={line_id}" in url and "refund_qty=1" in url
    invoice_page = desk.get(url)
    assert invoice_page.status_code == 200
    shown = page_text(invoice_page)
    ticked = [
        n
        for n, value in re.findall(r'name="lines-(\d+)-line_id" type="hidden" value="(\d+)"', shown)
        if value == str(line_id)
    ]
    (n,) = ticked
    box = re.search(rf'<input[^>]*name="lines-{n}-chosen"[^>]*>', shown).group(0)
    assert "checked" in box
    quantity = re.search(rf'<input[^>]*name="lines-{n}-quantity"[^>]*>', shown).group(0)
    assert 'value="1"' in quantity
    assert 'value="Returned unopened at the pharmacy"' in shown


def test_more_than_handed_over_is_refused_beside_the_quantity(client, pharmacist, handed_over):
    done, _ = handed_over
    sign_in(client, pharmacist)
    page = page_text(client.get(record_url(done)))
    data = return_data(page, {"LATER": "3"})
    response = form_post(client, f"{record_url(done)}/returns", data, page=record_url(done))
    assert response.status_code == 422
    shown = page_text(response)
    item = done["items"][1]
    prefix = next(k for k, v in data.items() if v == str(item["id"]))[: -len("-item_id")]
    assert cell_errors(shown, f"{prefix}-quantity") == ["At most 2 can come back."]
    assert 'value="3"' in shown
    later = db.session.get(Batch, item["batch_id"])
    assert quantity_of(later) == 8
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(DispensedItem.returned_quantity))) == 0
    assert 'id="returned"' not in shown


def test_a_return_needs_a_quantity_and_a_reason(client, pharmacist, handed_over):
    done, _ = handed_over
    sign_in(client, pharmacist)
    page = page_text(client.get(record_url(done)))
    url = f"{record_url(done)}/returns"
    nothing = form_post(client, url, return_data(page, {}), page=record_url(done))
    assert nothing.status_code == 422
    assert "Give the quantity that came back beside its item." in page_text(nothing)
    no_reason = form_post(
        client, url, return_data(page, {"LATER": "1"}, reason=""), page=record_url(done)
    )
    assert no_reason.status_code == 422
    assert cell_errors(page_text(no_reason), "reason") == [
        "Say why it came back (at most 300 characters)."
    ]
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(DispensedItem.returned_quantity))) == 0


def test_a_doctor_reads_no_return_form_and_may_not_post_one(client, doctor, handed_over):
    done, _ = handed_over
    sign_in(client, doctor)
    page = page_text(client.get(record_url(done)))
    assert "Take items back" not in page
    token = csrf_token(client, "/home")
    data = {"items-0-item_id": str(done["items"][0]["id"]), "items-0-quantity": "1"}
    response = client.post(
        f"{record_url(done)}/returns", data={**data, "reason": "x", "csrf_token": token}
    )
    assert response.status_code == 403


# ---- the H1 register -----------------------------------------------------------------


@pytest.fixture
def registered(doctor, reception, pharmacist, para):
    """Tramazac (H1) and Paracip dispensed to Ravi Kumar today."""
    tramadol = medicine("Tramazac", "9.00", 12, schedule="H1")
    stocked(pharmacist, tramadol, ("TZ-9", 20, 200))
    patient = make_patient(full_name="Ravi Kumar", address="12 MG Road, Pune")
    prescription, _ = paid_prescription(
        doctor, reception, [(tramadol, 5), (para, 2)], patient=patient
    )
    done = dispensing.dispense(pharmacist, {"prescription_id": prescription.id})
    commit()
    return done


def test_the_register_lists_the_h1_medicine_only(client, pharmacist, doctor, registered):
    sign_in(client, pharmacist)
    response = client.get(REGISTER)
    assert response.status_code == 200
    page = page_text(response)
    (row,) = table(page, "register")
    assert row[1] == "Ravi Kumar 12 MG Road, Pune"
    assert row[2] == f"{doctor.full_name} ({doctor.registration_number})"
    assert row[3] == "Tramazac 500 mg H1"
    assert (row[4], row[6]) == ("TZ-9", "5")
    assert "Paracip" not in page
    assert f'href="/pharmacy/dispensings/{registered["id"]}"' in page
    # The download links carry the days shown, and answer.
    for kind in ("csv", "pdf"):
        link = re.search(rf'href="({REGISTER}\.{kind}\?[^"]+)"', page).group(1)
        assert client.get(link.replace("&amp;", "&")).status_code == 200, link


def test_a_day_without_entries_says_so(client, pharmacist, registered):
    sign_in(client, pharmacist)
    page = page_text(
        client.get(REGISTER, query_string={"start": "01 Dec 2029", "end": "02 Dec 2029"})
    )
    assert "No Schedule H1 or X medicine was dispensed from 01 Dec 2029 to 02 Dec 2029." in page


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "nonsense"}, "start", "Enter the first day like 02 Dec 2026."),
        ({"end": "31/02/2030"}, "end", "Enter the last day like 02 Dec 2026."),
        (
            {"start": "07 Jan 2030", "end": "01 Jan 2030"},
            "start",
            "The first day comes after the last",
        ),
    ],
)
def test_a_bad_range_is_answered_beside_its_field(client, pharmacist, query, field, message):
    sign_in(client, pharmacist)
    response = client.get(REGISTER, query_string=query)
    assert response.status_code == 422
    errors = cell_errors(page_text(response), field)
    assert errors and errors[0].startswith(message)
    assert client.get(f"{REGISTER}.csv", query_string=query).status_code == 422


def test_the_register_as_csv(client, pharmacist, registered):
    sign_in(client, pharmacist)
    response = client.get(f"{REGISTER}.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    today = in_days(0).isoformat()
    assert f'filename="h1-register-{today}-{today}.csv"' in response.headers["Content-Disposition"]
    header, row, *rest = response.get_data(as_text=True).splitlines()
    assert rest == []
    assert header.startswith("Date,Patient,Address,Prescriber,Registration no.,Medicine")
    assert row.startswith(f'{today},Ravi Kumar,"12 MG Road, Pune",')
    assert ",Tramazac 500 mg,H1,TZ-9," in row


def test_the_register_as_pdf(client, pharmacist, registered):
    sign_in(client, pharmacist)
    response = client.get(f"{REGISTER}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.get_data().startswith(b"%PDF")


@pytest.mark.parametrize("role", ["doctor", "reception"])
def test_doctors_and_reception_may_not_read_the_register(client, request, role, registered):
    sign_in(client, request.getfixturevalue(role))
    for url in (REGISTER, f"{REGISTER}.csv", f"{REGISTER}.pdf"):
        assert client.get(url).status_code == 403, url
    assert db.session.scalar(select(func.count()).select_from(H1RegisterEntry)) == 1


def test_a_stale_return_of_an_item_already_back_says_why(client, pharmacist, handed_over):
    """Two tabs: all of LATER comes back in one; the other, drawn before, asks for one more.
    The row is no longer on the form, so its message is shown above it."""
    done, _ = handed_over
    sign_in(client, pharmacist)
    stale = return_data(page_text(client.get(record_url(done))), {"LATER": "1"})
    url = f"{record_url(done)}/returns"
    everything = return_data(page_text(client.get(record_url(done))), {"LATER": "2"})
    assert form_post(client, url, everything, page=record_url(done)).status_code == 302
    response = form_post(client, url, stale, page=record_url(done))
    assert response.status_code == 422
    assert "At most 0 can come back." in page_text(response)
    later = db.session.get(Batch, done["items"][1]["batch_id"])
    assert quantity_of(later) == 10
