"""Payments, credit notes, the day's takings and its close, and the UPI link, through the
API (SPEC 8, issue 11)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from qure.admin import settings as clinic_settings
from qure.billing.models import CreditNote, CreditNoteLine, DayClose, Payment
from qure.core.db import commit
from qure.extensions import db
from tests.billing.helpers import Desk
from tests.helpers import error
from tests.prescriptions.test_service import audit_payloads


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def one_line(price: str = "100.00", rate: int = 18, quantity: str = "1") -> list[dict]:
    return [
        {
            "kind": "PROCEDURE",
            "description": "Dressing",
            "quantity": quantity,
            "unit_price": price,
            "gst_rate": rate,
        }
    ]


# The four-rate invoice of test_invoices' table (7.5 % off): line totals 462.50, 97.11,
# 8.35, 272.87; total 840.83.
FOUR_RATES = [
    {"kind": "CONSULTATION", "description": "Consultation", "quantity": "1", "unit_price": "500"},
    {"kind": "MEDICINE", "description": "Tablets", "quantity": "3", "unit_price": "33.33"},
    {"kind": "MEDICINE", "description": "Eye drops", "quantity": "7", "unit_price": "1.15"},
    {"kind": "PROCEDURE", "description": "Dressing", "quantity": "1", "unit_price": "250"},
]
for _line, _rate in zip(FOUR_RATES, (0, 5, 12, 18), strict=True):
    _line["gst_rate"] = _rate


def invoice(desk, patient, items=None, discount=None, finalize=True) -> dict:
    body = {"mode": "MANUAL", "patient_id": patient.id, "items": items or one_line()}
    if discount:
        body["discount"] = discount
    made = ok(desk.post("", body), 201)
    return ok(desk.post(f"/{made['id']}/finalize")) if finalize else made


def paid(desk, patient, method="CASH", **extra) -> dict:
    pending = invoice(desk, patient, **extra)
    reference = None if method == "CASH" else f"{method}-REF-{pending['id']}"
    return ok(desk.pay(pending, method, reference=reference))


def payments() -> int:
    return db.session.scalar(select(func.count()).select_from(Payment))


# ---- paying ----------------------------------------------------------------------------


def test_cash_with_the_amount_tendered_shows_the_change(desk, patient, reception):
    pending = invoice(desk, patient)  # 100 + 9 + 9 = 118.00
    short = desk.pay(pending, tendered="100.00")
    assert set(error(short, 422, "invalid_input")["fields"]) == {"tendered"}
    body = ok(desk.pay(pending, tendered="500"))
    assert body["status"] == "PAID"
    assert body["paid_at"] == "2030-01-07T04:30:00+00:00"
    payment = body["payment"]
    assert (payment["method"], payment["amount"]) == ("CASH", "118.00")
    assert (payment["tendered"], payment["change"]) == ("500.00", "382.00")
    assert (payment["paid_on"], payment["received_by"]["id"]) == ("2030-01-07", reception.id)
    assert body["upi_link"] is None
    row = db.session.scalars(select(Payment)).one()
    assert (row.amount, row.tendered, row.change) == (
        Decimal("118.00"),
        Decimal("500.00"),
        Decimal("382.00"),
    )


def test_exact_cash_without_tendered(desk, patient):
    body = ok(desk.pay(invoice(desk, patient)))
    assert (body["payment"]["tendered"], body["payment"]["change"]) == (None, None)


@pytest.mark.parametrize("method", ["CARD", "UPI"])
def test_card_and_upi_need_the_reference(desk, patient, method):
    pending = invoice(desk, patient)
    for reference in (None, "", "   "):
        refused = desk.pay(pending, method, reference=reference)
        assert set(error(refused, 422, "invalid_input")["fields"]) == {"reference"}
    tendered = desk.pay(pending, method, reference="R1", tendered="200")
    assert "tendered" in error(tendered, 422, "invalid_input")["fields"]
    body = ok(desk.pay(pending, method, reference="TXN 4471"))
    assert (body["payment"]["method"], body["payment"]["reference"]) == (method, "TXN 4471")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "117.99"}, "amount"),
        ({"amount": "118.01"}, "amount"),
        ({"amount": "1180"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": "118.001"}, "amount"),
        ({"method": "CHEQUE"}, "method"),
        ({"method": None}, "method"),
        ({"tendered": "lots"}, "tendered"),
        ({"method": "CARD", "reference": ["TXN-1"]}, "reference"),
        ({"method": "UPI", "reference": 412345678901}, "reference"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_payment_names_its_field(desk, patient, change, field):
    pending = invoice(desk, patient)
    body = {"method": "CASH", "amount": "118.00", **change}
    response = desk.post(f"/{pending['id']}/pay", body)
    assert field in error(response, 422, "invalid_input")["fields"]
    assert payments() == 0
    assert ok(desk.get(f"/{pending['id']}"))["status"] == "PENDING"


def test_the_amount_may_be_a_number(desk, patient):
    pending = invoice(desk, patient)
    assert ok(desk.post(f"/{pending['id']}/pay", {"method": "CASH", "amount": 118}))["status"] == (
        "PAID"
    )


def test_paying_a_draft_finalises_it(desk, patient):
    """SPEC 8: "paying a DRAFT finalises it" (numbered, then paid, in one step)."""
    draft = invoice(desk, patient, finalize=False)
    body = ok(desk.pay(draft))
    assert (body["status"], body["number"]) == ("PAID", "INV/2029-30/000001")
    assert body["finalized_at"] == body["paid_at"]
    (finalized,) = audit_payloads("INVOICE_FINALIZED")
    assert finalized["resource"]["id"] == draft["id"]


def test_paid_and_cancelled_invoices_are_not_paid(desk, patient):
    done = paid(desk, patient)
    error(desk.pay(done), 409, "already_paid")
    error(desk.pay(done, "UPI", reference="UPI-2"), 409, "already_paid")
    cancelled = invoice(desk, patient)
    ok(desk.post(f"/{cancelled['id']}/cancel", {"reason": "Billed twice"}))
    error(desk.pay(cancelled), 409, "invoice_cancelled")
    error(desk.pay({"id": 999999, "total": "1.00"}), 404, "invoice_not_found")
    assert payments() == 1


def test_an_idempotency_key_replays_the_first_answer(desk, patient):
    pending = invoice(desk, patient)
    body = {"method": "UPI", "amount": "118.00", "reference": "UPI-771"}
    url = f"/{pending['id']}/pay"
    first = desk.post(url, body, **{"Idempotency-Key": "pay-abc-1"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    again = desk.post(url, body, **{"Idempotency-Key": "pay-abc-1"})
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert payments() == 1
    other = {**body, "reference": "UPI-772"}
    reused = desk.post(url, other, **{"Idempotency-Key": "pay-abc-1"})
    error(reused, 409, "idempotency_key_reused")
    second = invoice(desk, patient)
    elsewhere = desk.post(f"/{second['id']}/pay", body, **{"Idempotency-Key": "pay-abc-1"})
    error(elsewhere, 409, "idempotency_key_reused")
    # Without a key a second payment is refused as ever.
    error(desk.post(url, body), 409, "already_paid")
    bad_key = desk.post(f"/{second['id']}/pay", body, **{"Idempotency-Key": "x" * 201})
    assert "Idempotency-Key" in error(bad_key, 422, "invalid_input")["fields"]
    assert payments() == 1
    (audited,) = audit_payloads("INVOICE_PAID")
    assert audited["changes"]["new"]["reference"] == "UPI-771"


# ---- the UPI link --------------------------------------------------------------------------


def test_the_upi_link_is_for_numbered_unpaid_invoices_when_the_clinic_has_a_upi_id(
    desk, patient, admin
):
    draft = invoice(desk, patient, finalize=False)
    pending = invoice(desk, patient)
    assert pending["upi_link"] is None  # no UPI ID yet
    clinic_settings.update(
        admin, {"upi_id": "shanti.clinic@okaxis", "clinic_name": "Shanti & Sons Clinic"}
    )
    commit()
    shown = ok(desk.get(f"/{pending['id']}"))
    assert shown["upi_link"] == (
        "upi://pay?pa=shanti.clinic@okaxis&pn=Shanti%20%26%20Sons%20Clinic&am=118.00"
        "&cu=INR&tn=INV%2F2029-30%2F000001"
    )
    assert ok(desk.get(f"/{draft['id']}"))["upi_link"] is None
    assert ok(desk.pay(pending))["upi_link"] is None
    cancelled = invoice(desk, patient)
    assert cancelled["upi_link"].endswith("&tn=INV%2F2029-30%2F000002")
    assert ok(desk.post(f"/{cancelled['id']}/cancel", {"reason": "x"}))["upi_link"] is None


# ---- credit notes --------------------------------------------------------------------------


def refund(desk, invoice_id, items=None, method="CASH", reason="Returned"):
    body = {"reason": reason, "method": method}
    if items is not None:
        body["items"] = items
    return desk.post(f"/{invoice_id}/credit-notes", body)


def test_partial_refunds_add_up_to_exactly_the_line(desk, patient):
    bill = paid(desk, patient, items=FOUR_RATES, discount={"type": "PERCENT", "value": "7.5"})
    assert bill["total"] == "840.83"
    drops = bill["lines"][2]  # 7 x 1.15 @ 12: taxable 7.45, CGST = SGST 0.45, total 8.35
    # Each refund is the line's amount for everything refunded so far (rounded half-up)
    # less the amount for what was refunded before:
    #   1 of 7: taxable 7.45 x 1/7 = 1.0643 -> 1.06; CGST 0.45 x 1/7 = 0.0643 -> 0.06
    #   2 of 7: 7.45 x 2/7 = 2.1286 -> 2.13 - 1.06 = 1.07; 0.1286 -> 0.13 - 0.06 = 0.07
    #   all 7:  7.45 - 2.13 = 5.32; 0.45 - 0.13 = 0.32
    expected = [
        ("1.06", "0.06", "0.06", "1.18"),
        ("1.07", "0.07", "0.07", "1.21"),
        ("5.32", "0.32", "0.32", "5.96"),
    ]
    notes = []
    for quantity, figures in zip(("1", "1", "5"), expected, strict=True):
        note = ok(refund(desk, bill["id"], [{"line_id": drops["id"], "quantity": quantity}]), 201)
        assert (note["taxable"], note["cgst"], note["sgst"], note["total"]) == figures
        (row,) = note["lines"]
        assert (row["line_id"], row["quantity"], row["description"]) == (
            drops["id"],
            f"{Decimal(quantity):.2f}",
            "Eye drops",
        )
        assert (row["taxable"], row["cgst"], row["sgst"], row["total"]) == figures
        notes.append(note)
    assert [n["number"] for n in notes] == [f"CN/2029-30/00000{n}" for n in (1, 2, 3)]
    assert notes[0]["invoice_number"] == bill["number"]
    # 1.18 + 1.21 + 5.96 = 8.35, the line's total, to the paisa.
    db.session.expire_all()
    rows = db.session.scalars(
        select(CreditNoteLine).where(CreditNoteLine.invoice_line_id == drops["id"])
    ).all()
    assert sum(r.total for r in rows) == Decimal("8.35")
    assert sum(r.taxable for r in rows) == Decimal("7.45")
    assert sum(r.cgst for r in rows) == sum(r.sgst for r in rows) == Decimal("0.45")
    shown = ok(desk.get(f"/{bill['id']}"))
    assert shown["refundable"] == "832.48"  # 840.83 - 8.35
    assert shown["lines"][2]["refunded_quantity"] == "7.00"
    assert [n["number"] for n in shown["credit_notes"]] == [n["number"] for n in notes]
    again = refund(desk, bill["id"], [{"line_id": drops["id"], "quantity": "0.5"}])
    assert "items.0.quantity" in error(again, 422, "invalid_input")["fields"]
    # The rest of the invoice, no items: 462.50 + 97.11 + 272.87 = 832.48.
    rest = ok(refund(desk, bill["id"], method="UPI"), 201)
    assert rest["total"] == "832.48" and rest["number"] == "CN/2029-30/000004"
    assert [row["line_id"] for row in rest["lines"]] == [bill["lines"][n]["id"] for n in (0, 1, 3)]
    assert [row["total"] for row in rest["lines"]] == ["462.50", "97.11", "272.87"]
    error(refund(desk, bill["id"]), 409, "nothing_to_refund")
    assert ok(desk.get(f"/{bill['id']}"))["refundable"] == "0.00"
    fetched = ok(desk.client.get(f"/api/v1/credit-notes/{rest['id']}", headers=desk.headers))
    assert fetched == rest


def test_a_refund_of_more_than_is_left_names_the_item(desk, patient):
    bill = paid(desk, patient, items=FOUR_RATES)
    consultation, tablets = bill["lines"][0], bill["lines"][1]
    ok(refund(desk, bill["id"], [{"line_id": tablets["id"], "quantity": "2"}]), 201)
    both = [
        {"line_id": consultation["id"], "quantity": 1},
        {"line_id": tablets["id"], "quantity": 2},  # 1 of 3 is left
    ]
    fields = error(refund(desk, bill["id"], both), 422, "invalid_input")["fields"]
    assert set(fields) == {"items.1.quantity"}
    over = [{"line_id": tablets["id"], "quantity": "1.01"}]
    fields = error(refund(desk, bill["id"], over), 422, "invalid_input")["fields"]
    assert set(fields) == {"items.0.quantity"}
    for items, field in (
        ([{"line_id": 999999, "quantity": 1}], "items.0.line_id"),
        ([{"line_id": tablets["id"], "quantity": 0}], "items.0.quantity"),
        ([{"line_id": tablets["id"], "quantity": "-1"}], "items.0.quantity"),
        ([{"line_id": tablets["id"], "quantity": "x"}], "items.0.quantity"),
        (
            [{"line_id": tablets["id"], "quantity": 1}, {"line_id": tablets["id"], "quantity": 1}],
            "items.1.line_id",
        ),
        ([], "items"),
        (["all"], "items.0"),
    ):
        fields = error(refund(desk, bill["id"], items), 422, "invalid_input")["fields"]
        assert field in fields, (items, fields)
    no_reason = refund(desk, bill["id"], reason=" ")
    assert "reason" in error(no_reason, 422, "invalid_input")["fields"]
    typed = refund(desk, bill["id"], reason=["Returned"])
    assert error(typed, 422, "invalid_input")["fields"] == {"reason": "Give text."}
    no_method = refund(desk, bill["id"], method="BARTER")
    assert "method" in error(no_method, 422, "invalid_input")["fields"]
    assert db.session.scalar(select(func.count()).select_from(CreditNote)) == 1


def test_only_a_paid_invoice_is_refunded(desk, patient):
    for bill in (invoice(desk, patient), invoice(desk, patient, finalize=False)):
        error(refund(desk, bill["id"]), 409, "invoice_not_paid")
    error(refund(desk, 999999), 404, "invoice_not_found")


def test_a_free_line_has_nothing_to_refund(desk, patient):
    bill = paid(desk, patient, items=[*one_line(), *one_line(price="0", rate=0)])
    free = bill["lines"][1]
    error(
        refund(desk, bill["id"], [{"line_id": free["id"], "quantity": 1}]), 409, "nothing_to_refund"
    )


def test_who_refunds_and_who_reads_credit_notes(client, desk, patient, pharmacist, doctor, admin):
    bill = paid(desk, patient, items=FOUR_RATES)
    url = "/api/v1/credit-notes/{}"
    reader, medic = Desk(client, pharmacist), Desk(client, doctor)
    error(refund(reader, bill["id"]), 403, "forbidden")
    error(refund(medic, bill["id"]), 403, "forbidden")
    one = [{"line_id": bill["lines"][0]["id"], "quantity": 1}]
    note = ok(refund(Desk(client, admin), bill["id"], one), 201)
    assert ok(client.get(url.format(note["id"]), headers=reader.headers))["id"] == note["id"]
    error(client.get(url.format(note["id"]), headers=medic.headers), 403, "forbidden")
    assert client.get(url.format(note["id"])).status_code == 401
    error(client.get(url.format(999999), headers=reader.headers), 404, "credit_note_not_found")


# ---- the day's takings and its close --------------------------------------------------------


def test_the_takings_of_a_day(desk, patient):
    cash = paid(desk, patient)  # 118.00
    paid(desk, patient, "CARD", items=one_line("200.00"))  # 236.00
    upi = paid(desk, patient, "UPI", items=one_line("50.00", 5))  # 52.50
    ok(refund(desk, cash["id"], [{"line_id": cash["lines"][0]["id"], "quantity": "1"}]), 201)
    ok(refund(desk, upi["id"], method="CARD"), 201)  # 52.50 back by card
    takings = ok(desk.get("/takings"))
    assert takings == {
        "date": "2030-01-07",
        "by_method": {"CASH": "0.00", "CARD": "183.50", "UPI": "52.50"},
        "payments_by_method": {"CASH": "118.00", "CARD": "236.00", "UPI": "52.50"},
        "refunds_by_method": {"CASH": "118.00", "CARD": "52.50", "UPI": "0.00"},
        "payments": "406.50",
        "refunds": "170.50",
        "net": "236.00",
    }
    assert ok(desk.get("/takings", date="2030-01-07")) == takings
    yesterday = ok(desk.get("/takings", date="2030-01-06"))
    assert (yesterday["payments"], yesterday["net"]) == ("0.00", "0.00")
    assert "date" in error(desk.get("/takings", date="2030-13-45"), 422, "invalid_input")["fields"]


def test_the_day_close(desk, patient, reception):
    paid(desk, patient)  # CASH 118.00
    paid(desk, patient, "UPI", items=one_line("200.00"))  # UPI 236.00
    refunded = paid(desk, patient, items=one_line("10.00", 0))  # CASH 10.00
    ok(refund(desk, refunded["id"]), 201)  # CASH -10.00
    before = ok(desk.get("/day-close", date="2030-01-07"))
    assert (before["closed"], before["close"]) == (False, None)
    assert before["by_method"] == {"CASH": "118.00", "CARD": "0.00", "UPI": "236.00"}
    closing = {"date": "2030-01-07", "cash_counted": "100.00", "note": "Short by 18"}
    close = ok(desk.post("/day-close", closing), 201)
    assert close["expected"] == {"CASH": "118.00", "CARD": "0.00", "UPI": "236.00"}
    assert (close["payments"], close["refunds"]) == ("364.00", "10.00")
    assert (close["cash_counted"], close["variance"], close["note"]) == (
        "100.00",
        "-18.00",
        "Short by 18",
    )
    assert close["closed_by"]["id"] == reception.id
    error(desk.post("/day-close", {**closing, "cash_counted": "118"}), 409, "day_closed")
    report = ok(desk.get("/day-close", date="2030-01-07"))
    assert report["closed"] is True and report["close"] == close
    assert report["by_method"] == close["expected"]
    assert (report["payments"], report["refunds"], report["net"]) == ("364.00", "10.00", "354.00")
    assert ok(desk.get("/day-close")) == report  # today by default
    # No money moves on a closed day.
    late = invoice(desk, patient)
    error(desk.pay(late), 409, "day_closed")
    upi = ok(desk.get("", status="PAID"))["items"][1]
    error(refund(desk, upi["id"]), 409, "day_closed")
    assert ok(desk.get(f"/{late['id']}"))["status"] == "PENDING"
    assert ok(desk.get("/day-close")) == report
    (audited,) = audit_payloads("DAY_CLOSED")
    assert audited["changes"]["new"]["variance"] == "-18.00"
    assert audited["resource"] == {"type": "day_close", "id": close["id"]}
    closes = ok(desk.get("/day-closes"))
    assert [c["id"] for c in closes["items"]] == [close["id"]]
    row = db.session.scalars(select(DayClose)).one()
    assert (row.expected_cash, row.variance) == (Decimal("118.00"), Decimal("-18.00"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"date": "2030-01-08", "cash_counted": "0"}, "date"),
        ({"date": "8 Jan", "cash_counted": "0"}, "date"),
        ({"date": "2030-01-07", "cash_counted": "-1"}, "cash_counted"),
        ({"date": "2030-01-07", "cash_counted": "many"}, "cash_counted"),
        ({"date": "2030-01-07"}, "cash_counted"),
        ({"date": "2030-01-07", "cash_counted": "1", "note": "x" * 501}, "note"),
        ({"date": "2030-01-07", "cash_counted": "1", "note": {"text": "short"}}, "note"),
        ({"date": "2030-01-07", "cash_counted": "1", "extra": 1}, "extra"),
    ],
)
def test_a_bad_close_names_its_field(desk, body, field):
    assert field in error(desk.post("/day-close", body), 422, "invalid_input")["fields"]
    assert db.session.scalar(select(DayClose.id)) is None


def test_a_past_day_is_closed_with_what_it_took(desk):
    close = ok(desk.post("/day-close", {"date": "2030-01-06", "cash_counted": "5"}), 201)
    assert close["expected"] == {"CASH": "0.00", "CARD": "0.00", "UPI": "0.00"}
    assert close["variance"] == "5.00"
    assert ok(desk.get("/day-close", date="2030-01-07"))["closed"] is False


def test_no_cash_counted_as_minus_zero(desk):
    close = ok(desk.post("/day-close", {"date": "2030-01-07", "cash_counted": "-0"}), 201)
    assert (close["cash_counted"], close["variance"]) == ("0.00", "0.00")


# ---- the audit trail of money ---------------------------------------------------------------


def test_payments_and_credit_notes_are_audited(desk, patient, reception):
    bill = paid(desk, patient, "CARD")
    (payment,) = audit_payloads("INVOICE_PAID")
    assert payment["resource"] == {"type": "invoice", "id": bill["id"]}
    assert payment["user"]["id"] == reception.id
    assert payment["changes"]["new"] == {
        "status": "PAID",
        "number": bill["number"],
        "method": "CARD",
        "amount": "118.00",
        "reference": f"CARD-REF-{bill['id']}",
    }
    note = ok(refund(desk, bill["id"], reason="Overcharged"), 201)
    (issued,) = audit_payloads("CREDIT_NOTE_ISSUED")
    assert issued["resource"] == {"type": "credit_note", "id": note["id"]}
    assert issued["changes"]["new"]["total"] == "118.00"
    assert issued["changes"]["new"]["reason"] == "Overcharged"
