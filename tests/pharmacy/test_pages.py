"""The stock pages as staff use them in a browser (CSRF on): the inventory and its filters,
a medicine's batches, receiving a delivery, adjustments, the alert tabs and the counts on
the pharmacist's and the admin's home."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from qure.extensions import db
from qure.pharmacy.models import Batch
from tests.helpers import csrf_token, flashes, form_post, page_text, sign_in
from tests.pharmacy.helpers import in_days, medicine, stocked
from tests.pharmacy.pages import cell_errors, expired_batch, names, quantity_of, table

STOCK = "/pharmacy/stock"
ALERTS = "/pharmacy/alerts"


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


def batches_of(med) -> list[Batch]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(Batch).where(Batch.medicine_id == med.id).order_by(Batch.id))
    )


def batch_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Batch))


@pytest.fixture
def shelf(pharmacist):
    """Paracip: 30 usable (expiring in 100 days) and 50 expired; Lowmox: 5 at reorder
    level 10; Nostock: never received; Soonex: 40 expiring in 10 days."""
    para = medicine("Paracip", "2.50", 12)
    low = medicine("Lowmox", "9.00", 12, reorder_level=10)
    none = medicine("Nostock", "4.00", 12)
    soon = medicine("Soonex", "6.00", 12)
    stocked(pharmacist, para, ("PC-GOOD", 30, 100))
    stocked(pharmacist, low, ("LM-1", 5, 200))
    stocked(pharmacist, soon, ("SX-1", 40, 10))
    db.session.commit()
    expired_batch(pharmacist, para, "PC-OLD", 50)
    return {"para": para, "low": low, "none": none, "soon": soon}


# ---- the inventory -------------------------------------------------------------------


def test_the_inventory_shows_usable_stock_and_next_expiry_without_expired_batches(
    client, pharmacist, shelf
):
    sign_in(client, pharmacist)
    response = client.get(STOCK)
    assert response.status_code == 200
    rows = {row[0].split(" 500 mg")[0]: row for row in table(page_text(response), "inventory")}
    assert sorted(rows) == ["Lowmox", "Nostock", "Paracip", "Soonex"]
    para = rows["Paracip"]
    assert para[2] == "30"  # the 50 expired units are not usable
    assert para[3] == in_days(100).strftime("%d %b %Y")
    assert rows["Lowmox"][2] == "5 Low" and rows["Lowmox"][4] == "10"
    assert rows["Nostock"][2] == "Out of stock" and rows["Nostock"][3] == "—"
    assert rows["Soonex"][2] == "40" and rows["Soonex"][3] == in_days(10).strftime("%d %b %Y")
    assert all(row[5] == "Receive stock" for row in rows.values())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"stock": "low"}, ["Lowmox", "Nostock"]),
        ({"stock": "out"}, ["Nostock"]),
        ({"stock": "expiring"}, ["Soonex"]),
        ({"q": "para"}, ["Paracip"]),
        ({"q": "mox", "stock": "low"}, ["Lowmox"]),
    ],
)
def test_the_inventory_filters(client, pharmacist, shelf, query, expected):
    sign_in(client, pharmacist)
    page = page_text(client.get(STOCK, query_string=query))
    assert sorted(names(page, "inventory")) == expected
    if "stock" in query:
        assert f'<option value="{query["stock"]}" selected>' in page


def test_a_filter_that_matches_nothing_says_so(client, pharmacist, shelf):
    sign_in(client, pharmacist)
    page = page_text(client.get(STOCK, query_string={"q": "lowmox", "stock": "out"}))
    assert "No medicine is out of stock matching “lowmox”." in page
    assert 'id="inventory"' not in page


@pytest.mark.parametrize("role", ["doctor", "reception"])
def test_doctors_and_reception_read_the_stock_but_are_not_offered_to_receive(
    client, request, role, shelf
):
    sign_in(client, request.getfixturevalue(role))
    response = client.get(STOCK)
    assert response.status_code == 200
    page = page_text(response)
    assert len(table(page, "inventory")) == 4
    assert "Receive stock" not in page and "/stock-in" not in page
    medicine_page = client.get(f"/pharmacy/medicines/{shelf['para'].id}")
    assert medicine_page.status_code == 200
    assert "/adjust" not in page_text(medicine_page)
    assert client.get(ALERTS).status_code == 200


def test_a_medicine_page_lists_its_batches_expired_ones_marked(client, pharmacist, shelf):
    sign_in(client, pharmacist)
    page = page_text(client.get(f"/pharmacy/medicines/{shelf['para'].id}"))
    rows = table(page, "batches")
    assert [(r[0], r[1]) for r in rows] == [("PC-OLD Expired", "50"), ("PC-GOOD", "30")]
    assert "30" in page.split('id="usable">')[1].split("</dd>")[0]
    old = batches_of(shelf["para"])[1]
    assert f"/pharmacy/batches/{old.id}/adjust?reason=EXPIRED_DISPOSAL" in page


# ---- receiving a delivery ------------------------------------------------------------


def stock_in_url(med) -> str:
    return f"/pharmacy/medicines/{med.id}/stock-in"


def rows_on(page: str) -> int:
    return page.count('name="batches-') // 5


def delivery(*rows: dict, supplier: str = "Medlife Distributors", count: int = 3) -> dict:
    data = {"supplier": supplier, "save": "1"}
    for n in range(count):
        row = rows[n] if n < len(rows) else {}
        for key in ("batch_number", "quantity", "expiry_date", "mfg_date", "purchase_price"):
            data[f"batches-{n}-{key}"] = row.get(key, "")
    return data


FIRST = {"batch_number": "ab-101", "quantity": "100", "expiry_date": "06/2031"}
SECOND = {
    "batch_number": "AB-102",
    "quantity": "120",
    "expiry_date": "31/12/2031",
    "mfg_date": "01/2029",
    "purchase_price": "1.75",
}


def test_the_stock_in_form_starts_with_three_empty_rows(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, pharmacist)
    response = client.get(stock_in_url(para))
    assert response.status_code == 200
    page = page_text(response)
    assert "Receive stock: Paracip 500 mg" in page
    assert rows_on(page) == 3
    assert 'name="batches-0-batch_number" size="12" type="text" value=""' in page
    assert 'name="batches-3-' not in page


def test_two_filled_rows_and_an_empty_one_receive_two_batches(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, pharmacist)
    response = form_post(client, stock_in_url(para), delivery(FIRST, SECOND))
    assert response.status_code == 302, page_text(response)[:3000]
    assert response.headers["Location"] == f"/pharmacy/medicines/{para.id}"
    first, second = batches_of(para)
    assert (first.batch_number, first.quantity, first.expiry_date) == (
        "AB-101",
        100,
        date(2031, 6, 30),
    )
    assert first.mfg_date is None and first.purchase_price is None
    assert (second.batch_number, second.quantity, second.expiry_date) == (
        "AB-102",
        120,
        date(2031, 12, 31),
    )
    assert second.mfg_date == date(2029, 1, 1) and str(second.purchase_price) == "1.75"
    assert {first.supplier, second.supplier} == {"Medlife Distributors"}
    assert {first.received_by_id, second.received_by_id} == {pharmacist.id}
    page = page_text(client.get(response.headers["Location"]))
    assert flashes(page) == ["Received 2 batches, 220 units."]
    assert [(r[0], r[1], r[2]) for r in table(page, "batches")] == [
        ("AB-101", "100", "30 Jun 2031"),
        ("AB-102", "120", "31 Dec 2031"),
    ]


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        (
            {"expiry_date": "12/2029"},
            "expiry_date",
            "This stock has expired: it cannot be received.",
        ),
        (
            {"expiry_date": "31/12/2031", "mfg_date": "01/2032"},
            "mfg_date",
            "The manufacturing date",
        ),
        ({"quantity": "0"}, "quantity", "A whole number from 1 to"),
        ({"quantity": "ten"}, "quantity", "A whole number from 1 to"),
        ({"expiry_date": "soon"}, "expiry_date", "Not a date"),
        ({"expiry_date": ""}, "expiry_date", "Give the date."),
        ({"batch_number": "AB-101"}, "batch_number", "This batch number is given twice."),
        ({"purchase_price": "abc"}, "purchase_price", "Give an amount"),
    ],
)
def test_a_bad_row_shows_its_message_beside_the_field_and_saves_nothing(
    client, pharmacist, bad, field, message
):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, pharmacist)
    # The bad row is the third row of the form, the second filled one: an empty row sits
    # between them, so the message must find its way to the row it belongs to.
    second = {**SECOND, **bad}
    data = delivery(FIRST, {}, second)
    response = form_post(client, stock_in_url(para), data)
    assert response.status_code == 422, page_text(response)[:2000]
    page = page_text(response)
    errors = cell_errors(page, f"batches-2-{field}")
    assert errors and message in errors[0]
    for name in ("batch_number", "quantity", "expiry_date", "mfg_date", "purchase_price"):
        assert cell_errors(page, f"batches-0-{name}") == []
    # What was typed stays, and nothing at all is saved: no half-saved delivery.
    assert 'value="ab-101"' in page and 'value="Medlife Distributors"' in page
    assert batch_count() == 0


def test_a_batch_the_medicine_already_has_is_refused_beside_its_number(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    stocked(pharmacist, para, ("AB-102", 5, 300))
    db.session.commit()
    sign_in(client, pharmacist)
    response = form_post(client, stock_in_url(para), delivery(FIRST, SECOND))
    assert response.status_code == 422
    page = page_text(response)
    assert cell_errors(page, "batches-1-batch_number") == ["This medicine already has this batch."]
    assert [b.batch_number for b in batches_of(para)] == ["AB-102"]


def test_an_empty_delivery_asks_for_a_batch(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, pharmacist)
    response = form_post(client, stock_in_url(para), delivery())
    assert response.status_code == 422
    assert "Fill in at least one batch" in page_text(response)
    assert batch_count() == 0


def test_add_rows_gives_three_more_and_saves_nothing(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, pharmacist)
    data = delivery(FIRST)
    del data["save"]
    response = form_post(client, stock_in_url(para), {**data, "more": "1"})
    assert response.status_code == 200
    page = page_text(response)
    assert rows_on(page) == 6
    assert 'value="ab-101"' in page and 'value="06/2031"' in page
    assert batch_count() == 0


def test_a_doctor_may_not_receive_stock(client, doctor):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, doctor)
    assert client.get(stock_in_url(para)).status_code == 403
    token = csrf_token(client, STOCK)
    data = {**delivery(FIRST), "csrf_token": token}
    assert client.post(stock_in_url(para), data=data).status_code == 403
    assert batch_count() == 0


def test_stock_in_without_the_csrf_token_is_refused(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    sign_in(client, pharmacist)
    assert client.post(stock_in_url(para), data=delivery(FIRST)).status_code == 400
    assert batch_count() == 0


def test_stock_in_of_an_unknown_medicine_is_404(client, pharmacist):
    sign_in(client, pharmacist)
    assert client.get("/pharmacy/medicines/987654/stock-in").status_code == 404


# ---- adjusting a batch ---------------------------------------------------------------


@pytest.fixture
def batch(pharmacist):
    para = medicine("Paracip", "2.50", 12)
    (batch,) = stocked(pharmacist, para, ("PC-1", 20, 100))
    db.session.commit()
    return batch


def adjust_url(batch) -> str:
    return f"/pharmacy/batches/{batch.id}/adjust"


def test_taking_five_away_shows_the_new_quantity(client, pharmacist, batch):
    sign_in(client, pharmacist)
    page = page_text(client.get(adjust_url(batch)))
    assert "Adjust batch PC-1" in page
    assert '<strong id="holds">20</strong>' in page
    response = form_post(
        client, adjust_url(batch), {"delta": "-5", "reason": "DAMAGED", "note": "Dropped"}
    )
    assert response.status_code == 302, page_text(response)[:2000]
    assert quantity_of(batch) == 15
    page = page_text(client.get(response.headers["Location"]))
    assert flashes(page) == ["Batch PC-1 now holds 15."]
    assert table(page, "batches")[0][:2] == ["PC-1", "15"]


def test_below_zero_is_refused_beside_the_change(client, pharmacist, batch):
    sign_in(client, pharmacist)
    response = form_post(client, adjust_url(batch), {"delta": "-21", "reason": "DAMAGED"})
    assert response.status_code in (409, 422)
    page = page_text(response)
    assert cell_errors(page, "delta") == ["The batch holds 20; take away at most that."]
    assert 'value="-21"' in page
    assert quantity_of(batch) == 20


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"delta": "-1", "reason": "LOST"}, "reason", "One of DAMAGED"),
        ({"delta": "-1"}, "reason", "One of DAMAGED"),
        ({"delta": "0", "reason": "DAMAGED"}, "delta", "Give how many units"),
        ({"delta": "", "reason": "DAMAGED"}, "delta", "A whole number"),
        ({"delta": "1.5", "reason": "DAMAGED"}, "delta", "A whole number"),
    ],
)
def test_an_adjustment_needs_a_reason_and_a_whole_change(
    client, pharmacist, batch, data, field, message
):
    sign_in(client, pharmacist)
    response = form_post(client, adjust_url(batch), data)
    assert response.status_code == 422
    errors = cell_errors(page_text(response), field)
    assert errors and message in errors[0]
    assert quantity_of(batch) == 20


def test_the_adjust_form_offers_the_reasons_and_preselects_one(client, pharmacist, batch):
    sign_in(client, pharmacist)
    page = page_text(client.get(adjust_url(batch), query_string={"reason": "EXPIRED_DISPOSAL"}))
    for label in (
        "Damaged",
        "Expired: disposed of",
        "Count correction",
        "Returned to the supplier",
    ):
        assert f">{label}</option>" in page
    assert '<option selected value="EXPIRED_DISPOSAL">' in page


def test_a_doctor_may_not_adjust(client, doctor, batch):
    sign_in(client, doctor)
    assert client.get(adjust_url(batch)).status_code == 403
    token = csrf_token(client, STOCK)
    data = {"delta": "-5", "reason": "DAMAGED", "csrf_token": token}
    assert client.post(adjust_url(batch), data=data).status_code == 403
    assert quantity_of(batch) == 20


def test_adjust_without_the_csrf_token_is_refused(client, pharmacist, batch):
    sign_in(client, pharmacist)
    response = client.post(adjust_url(batch), data={"delta": "-5", "reason": "DAMAGED"})
    assert response.status_code == 400
    assert quantity_of(batch) == 20


# ---- alerts and the counts on the home pages -----------------------------------------


def alert_rows(client, tab: str) -> list[list[str]]:
    response = client.get(ALERTS, query_string={"tab": tab})
    assert response.status_code == 200
    page = page_text(response)
    section = page.split('id="alert-list"')[1]
    if "<table>" not in section:
        return []
    body = section.split("<tbody>")[1].split("</tbody>")[0]
    return table(f'<table id="t"><tbody>{body}</tbody></table>', "t")


def test_the_low_tab_includes_a_medicine_never_stocked(client, pharmacist, shelf):
    sign_in(client, pharmacist)
    rows = alert_rows(client, "low")
    assert [r[0] for r in rows] == ["Nostock 500 mg", "Lowmox 500 mg"]  # emptiest first
    assert rows[0][1] == "Out of stock"


def test_the_expiring_tabs_leave_out_expired_batches_the_expired_tab_lists_them(
    client, pharmacist, shelf
):
    stocked(pharmacist, shelf["low"], ("LM-45", 7, 45))
    db.session.commit()
    sign_in(client, pharmacist)
    assert [(r[1], r[2]) for r in alert_rows(client, "30")] == [("SX-1", "40")]
    assert [r[1] for r in alert_rows(client, "60")] == ["SX-1", "LM-45"]
    assert [r[1] for r in alert_rows(client, "90")] == ["SX-1", "LM-45"]
    (expired,) = alert_rows(client, "expired")
    assert (expired[0], expired[1], expired[2]) == ("Paracip 500 mg", "PC-OLD", "50")
    assert "expired" in expired[3]
    old = batches_of(shelf["para"])[1]
    page = page_text(client.get(ALERTS, query_string={"tab": "expired"}))
    assert f"/pharmacy/batches/{old.id}/adjust?reason=EXPIRED_DISPOSAL" in page


def test_an_empty_expired_batch_is_not_an_alert(client, pharmacist):
    para = medicine("Paracip", "2.50", 12)
    db.session.commit()
    expired_batch(pharmacist, para, "GONE", 0)
    sign_in(client, pharmacist)
    assert alert_rows(client, "expired") == []


def test_an_unknown_tab_shows_low_stock(client, pharmacist, shelf):
    sign_in(client, pharmacist)
    page = page_text(client.get(ALERTS, query_string={"tab": "45"}))
    assert "<h2>Low stock</h2>" in page


def counts(page: str) -> tuple[str, str, str]:
    def one(name):
        return page.split(f'<strong id="count-{name}">')[1].split("</strong>")[0]

    return one("low"), one("expiring"), one("expired")


def test_the_pharmacists_home_shows_the_alert_counts(client, pharmacist, shelf):
    sign_in(client, pharmacist)
    page = page_text(client.get("/home"))
    assert counts(page) == ("2", "1", "1")
    assert '<strong id="to-dispense-count">0</strong>' in page


def test_the_admins_home_shows_the_alert_counts(client, admin, shelf):
    sign_in(client, admin)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert counts(page_text(response)) == ("2", "1", "1")


def test_the_alert_tabs_carry_the_counts(client, pharmacist, shelf):
    sign_in(client, pharmacist)
    page = page_text(client.get(ALERTS))
    assert "Low stock (2)</a>" in page
    assert "Expiring in 30 days (1)</a>" in page
    assert "Expired, still on the shelf (1)</a>" in page


# ---- an empty database ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        STOCK,
        f"{STOCK}?stock=low",
        f"{STOCK}?stock=out",
        f"{STOCK}?stock=expiring",
        f"{STOCK}?stock=nonsense&page=abc",
        f"{STOCK}?q=x&page=99",
        f"{ALERTS}?tab=low",
        f"{ALERTS}?tab=30",
        f"{ALERTS}?tab=60",
        f"{ALERTS}?tab=90",
        f"{ALERTS}?tab=expired",
        f"{ALERTS}?tab=expired&page=7",
        "/pharmacy/dispense",
        "/pharmacy/h1-register",
        "/pharmacy/h1-register.csv",
        "/home",
    ],
)
def test_every_page_renders_for_an_empty_database(client, pharmacist, url):
    sign_in(client, pharmacist)
    assert client.get(url).status_code == 200, url


def test_the_admins_home_renders_for_an_empty_database(client, admin):
    sign_in(client, admin)
    page = page_text(client.get("/admin/"))
    assert counts(page) == ("0", "0", "0")


def test_the_empty_pages_say_so(client, pharmacist):
    sign_in(client, pharmacist)
    assert "The catalogue is empty." in page_text(client.get(STOCK))
    assert "Nothing is low" in page_text(client.get(ALERTS))
    assert "None." in page_text(client.get(ALERTS, query_string={"tab": "expired"}))
    assert "Nothing to dispense" in page_text(client.get("/pharmacy/dispense"))
    assert counts(page_text(client.get("/home"))) == ("0", "0", "0")


@pytest.mark.parametrize(
    "url",
    [
        f"{STOCK}?page=-1",
        f"{STOCK}?page=99999999999999999999",
        f"{STOCK}?q=%00&stock=%00",
        f"{STOCK}?q=%C2%B2",
        f"{ALERTS}?tab=%00",
        f"{ALERTS}?tab=30&page=99999999999999999999",
        "/pharmacy/dispense?page=abc",
        "/pharmacy/dispense?page=99999999999999999999",
        "/pharmacy/h1-register?page=99999999999999999999",
    ],
)
def test_odd_input_never_fails(client, pharmacist, shelf, url):
    sign_in(client, pharmacist)
    assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    "query", ["start=%00", "end=" + "9" * 500, "start=2030-01-07&end=2099-01-01", "start=0"]
)
def test_odd_register_days_answer_422_not_500(client, pharmacist, query):
    sign_in(client, pharmacist)
    assert client.get(f"/pharmacy/h1-register?{query}").status_code == 422, query
    assert client.get(f"/pharmacy/h1-register.csv?{query}").status_code == 422, query
    assert client.get(f"/pharmacy/h1-register.pdf?{query}").status_code == 422, query
