"""One invoice through the counter by the API: AUTO from a prescription, a discount,
finalising, payment, a credit note, the takings and the day's close."""

from __future__ import annotations

from tests.billing.helpers import Desk, completed_visit, medicine


def test_a_visit_is_billed_paid_refunded_and_the_day_closed(client, doctor, reception):
    para = medicine("Paracip", "2.50", 12)
    cough = medicine("Coughex", "85.00", 18, form="SYRUP", strength="100 ml")
    _, prescription = completed_visit(doctor, [(para, 10), (cough, 1)])
    desk = Desk(client, reception)

    made = desk.auto(prescription, discount={"type": "PERCENT", "value": "10"})
    assert made.status_code == 201, made.get_json()
    invoice = made.get_json()
    assert invoice["status"] == "DRAFT" and invoice["number"] is None
    assert [
        (li["kind"], li["quantity"], li["unit_price"], li["gst_rate"]) for li in invoice["lines"]
    ] == [
        ("CONSULTATION", "1.00", "500.00", 0),
        ("MEDICINE", "10.00", "2.50", 12),
        ("MEDICINE", "1.00", "85.00", 18),
    ]
    # subtotal 610.00, discount 61.00 shared 50.00 / 2.50 / 8.50
    assert invoice["subtotal"] == "610.00" and invoice["discount_amount"] == "61.00"
    assert [li["taxable"] for li in invoice["lines"]] == ["450.00", "22.50", "76.50"]
    assert [li["cgst"] for li in invoice["lines"]] == ["0.00", "1.35", "6.89"]
    assert invoice["total"] == "565.48"

    again = desk.auto(prescription)
    assert again.status_code == 409
    assert again.get_json()["error"]["details"] == {"invoice_id": invoice["id"]}

    final = desk.post(f"/{invoice['id']}/finalize").get_json()
    assert final["number"] == "INV/2029-30/000001" and final["status"] == "PENDING"

    paid = desk.pay(final, "UPI", reference="UPI-123", **{})
    assert paid.status_code == 200, paid.get_json()
    assert paid.get_json()["status"] == "PAID"
    twice = desk.pay(final, "UPI", reference="UPI-124")
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "already_paid"

    syrup = final["lines"][2]
    note = desk.post(
        f"/{invoice['id']}/credit-notes",
        {
            "items": [{"line_id": syrup["id"], "quantity": 1}],
            "reason": "Returned",
            "method": "CASH",
        },
    )
    assert note.status_code == 201, note.get_json()
    body = note.get_json()
    assert body["number"] == "CN/2029-30/000001"
    assert (body["taxable"], body["cgst"], body["sgst"], body["total"]) == (
        "76.50",
        "6.89",
        "6.89",
        "90.28",
    )

    takings = desk.get("/takings").get_json()
    assert takings["by_method"] == {"CASH": "-90.28", "CARD": "0.00", "UPI": "565.48"}
    assert takings["net"] == "475.20"

    closed = desk.post("/day-close", {"date": "2030-01-07", "cash_counted": "0"})
    assert closed.status_code == 201, closed.get_json()
    close = closed.get_json()
    assert (close["cash_counted"], close["variance"]) == ("0.00", "90.28")  # 0 - (-90.28)
    report = desk.get("/day-close", date="2030-01-07").get_json()
    assert report["closed"] is True and report["net"] == "475.20"
