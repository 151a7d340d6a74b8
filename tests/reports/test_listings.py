"""The listing reports (visit history, stock movements, invoices and credit notes), made
from data produced the real way (visits completed, stock received and dispensed, invoices
paid and refunded, then the outbox relayed): every filter, pages, CSV equal to the JSON
rows, formula cells neutralised, roles, a dead MongoDB, statement counts, indexes."""

from __future__ import annotations

import csv
import io
import itertools
import time
from datetime import timedelta

import pytest
from pymongo import MongoClient

from qure.billing import service as billing
from qure.billing.models import InvoiceMode, PaymentMethod
from qure.core import clock, documents, outbox
from qure.core.db import commit
from qure.core.exports import cell
from qure.core.roles import Role
from qure.extensions import mongo
from qure.pharmacy import dispensing, stock
from qure.reports import listings
from tests.billing.helpers import completed_visit, medicine
from tests.helpers import (
    NOW,
    TODAY,
    bearer,
    count_statements,
    error,
    make_patient,
    make_user,
    page_text,
    sign_in,
    statements,
)
from tests.pharmacy.helpers import stocked

API = "/api/v1/reports"
D0, D1, D2 = TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY


def on(day, minutes: int = 0):
    """The clock at 10:00 clinic time on `day`, plus some minutes."""
    return clock.fixed(NOW + timedelta(days=(day - TODAY).days, minutes=minutes))


@pytest.fixture
def clinic(app, admin, reception, pharmacist):
    """Dr Rao sees Asha on D0 (prescribed Paracip) and D2, Ravi on D1; Dr Iyer sees Asha
    on D1 and "=cmd" on D2. Paracip and Amoxil are stocked on D0; Asha's Paracip is paid
    (cash) and dispensed on D0; an Amoxil batch is adjusted on D1. Ravi's visit is
    invoiced and left PENDING; Asha's D1 consultation is paid by UPI and refunded (a
    credit note, cash) on D2. Then the outbox is relayed."""
    rao = make_user(Role.DOCTOR, full_name="Anil Rao")
    iyer = make_user(Role.DOCTOR, full_name="Meena Iyer")
    asha = make_patient(full_name="Asha Kumar")
    ravi = make_patient(full_name="Ravi Shah")
    evil = make_patient(full_name="=cmd")
    with on(D0):
        para = medicine("Paracip", "2.50", 12)
        amox = medicine("Amoxil", "8.00", 12, strength="250 mg")
        stocked(pharmacist, para, ("PC-1", 100, 200))
        (amox_batch,) = stocked(pharmacist, amox, ("AM-1", 50, 300))
        commit()
        _, rx = completed_visit(rao, [(para, 6)], patient=asha)
        paid = billing.create(reception, {"mode": InvoiceMode.AUTO, "prescription_id": rx.id})
        paid, _ = billing.pay(
            reception, paid.id, {"method": PaymentMethod.CASH, "amount": paid.total}
        )
        commit()
        dispensing.dispense(pharmacist, {"prescription_id": rx.id})
        commit()
    with on(D1):
        ravi_visit, _ = completed_visit(rao, patient=ravi, prescribe=False)
        pending = billing.create(reception, {"mode": InvoiceMode.AUTO, "visit_id": ravi_visit.id})
        billing.finalize(reception, pending.id)
        commit()
    with on(D1, 30):
        iyer_visit, _ = completed_visit(iyer, patient=asha, prescribe=False)
        stock.adjust(pharmacist, amox_batch.id, {"delta": -2, "reason": "DAMAGED"})
        upi = billing.create(reception, {"mode": InvoiceMode.AUTO, "visit_id": iyer_visit.id})
        upi, _ = billing.pay(
            reception, upi.id, {"method": PaymentMethod.UPI, "amount": upi.total, "reference": "U1"}
        )
        commit()
    with on(D2):
        completed_visit(rao, patient=asha, prescribe=False)
    with on(D2, 30):
        completed_visit(iyer, patient=evil, prescribe=False)
        line = billing.get_invoice(upi.id).lines[0]
        note = billing.issue_credit_note(
            reception,
            upi.id,
            {
                "items": [{"line_id": line.id, "quantity": "1"}],
                "reason": "Fee waived",
                "method": PaymentMethod.CASH,
            },
        )
        commit()
    assert outbox.relay().error is None
    return {
        "rao": rao,
        "iyer": iyer,
        "asha": asha,
        "ravi": ravi,
        "evil": evil,
        "para": para,
        "amox": amox,
        "paid": paid,
        "pending": pending,
        "upi": upi,
        "note": note,
    }


def get(client, headers, path, **query):
    response = client.get(API + path, query_string=query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def every_page(client, headers, path, per_page=2, **query) -> list[dict]:
    """Every item over all pages (checking the pages' totals agree and never overlap)."""
    first = get(client, headers, path, per_page=per_page, **query)
    items, pages = list(first["items"]), -(-first["total"] // per_page)
    for page in range(2, pages + 1):
        more = get(client, headers, path, per_page=per_page, page=page, **query)
        assert more["total"] == first["total"]
        items += more["items"]
    assert len(items) == first["total"]
    return items


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


# ---- visit history -----------------------------------------------------------------------


def test_an_admin_sees_every_visit_newest_first_and_each_filter(client, clinic, admin):
    headers = bearer(client, admin)
    c = clinic
    everything = get(client, headers, "/visit-history")
    assert everything["total"] == 5
    names = [(v["patient"]["full_name"], v["doctor"]["full_name"]) for v in everything["items"]]
    assert names == [
        ("=cmd", "Meena Iyer"),
        ("Asha Kumar", "Anil Rao"),
        ("Asha Kumar", "Meena Iyer"),
        ("Ravi Shah", "Anil Rao"),
        ("Asha Kumar", "Anil Rao"),
    ]
    oldest = everything["items"][-1]
    assert oldest["patient"]["mrn"] == c["asha"].mrn
    assert oldest["diagnosis"] == "Viral fever"
    assert oldest["medicines_count"] == 1 and oldest["medicines"] == ["Paracip 500 mg"]
    assert oldest["completed_at"].startswith(D0.isoformat() + "T10:00")
    assert oldest["completed_at"].endswith("+05:30")

    asha = get(client, headers, "/visit-history", patient_id=c["asha"].id)
    assert asha["total"] == 3
    iyer = get(client, headers, "/visit-history", doctor_id=c["iyer"].id)
    assert [v["patient"]["full_name"] for v in iyer["items"]] == ["=cmd", "Asha Kumar"]
    both = get(client, headers, "/visit-history", patient_id=c["asha"].id, doctor_id=c["rao"].id)
    assert both["total"] == 2
    d1 = get(client, headers, "/visit-history", **{"from": D1.isoformat(), "to": D1.isoformat()})
    assert [v["patient"]["full_name"] for v in d1["items"]] == ["Asha Kumar", "Ravi Shah"]
    since = get(client, headers, "/visit-history", **{"from": "06 Jan 2030"})  # as typed: D1
    assert since["total"] == 4
    assert {v["completed_at"][:10] for v in since["items"]} == {D1.isoformat(), D2.isoformat()}


def test_a_doctor_sees_the_whole_history_of_their_own_patients_only(client, clinic):
    c = clinic
    headers = bearer(client, c["rao"])
    own = every_page(client, headers, "/visit-history")
    assert {v["patient"]["full_name"] for v in own} == {"Asha Kumar", "Ravi Shah"}
    assert len(own) == 4  # Dr Iyer's visit of Asha included; "=cmd" (never seen) not
    theirs = get(client, headers, "/visit-history", doctor_id=c["iyer"].id)
    assert [v["patient"]["full_name"] for v in theirs["items"]] == ["Asha Kumar"]
    refused = client.get(
        API + "/visit-history", query_string={"patient_id": c["evil"].id}, headers=headers
    )
    error(refused, 403, "not_your_patient")
    # Dr Iyer has seen Asha and "=cmd", not Ravi.
    iyer = get(client, bearer(client, c["iyer"]), "/visit-history")
    assert {v["patient"]["full_name"] for v in iyer["items"]} == {"Asha Kumar", "=cmd"}
    # The page shows the same.
    sign_in(client, c["rao"])
    page = page_text(client.get("/reports/visits"))
    assert "Ravi Shah" in page and "=cmd" not in page
    assert client.get(f"/reports/visits?patient_id={c['evil'].id}").status_code == 403


def test_visit_history_csv_is_exactly_the_filtered_rows_and_neutralises_formulas(
    client, clinic, admin
):
    headers = bearer(client, admin)
    for query in ({}, {"doctor_id": clinic["iyer"].id}, {"from": D1.isoformat()}):
        items = every_page(client, headers, "/visit-history", **query)
        rows = csv_rows(
            client.get(
                API + "/visit-history", query_string={**query, "format": "csv"}, headers=headers
            )
        )
        assert rows[0] == list(listings.VISIT_CSV)
        expected = [
            [
                v["completed_at"],
                v["patient"]["mrn"],
                cell(v["patient"]["full_name"]),
                v["doctor"]["full_name"],
                v["icd10_code"] or "",
                v["diagnosis"] or "",
                v["chief_complaint"] or "",
                str(v["medicines_count"]),
                "; ".join(v["medicines"]),
            ]
            for v in items
        ]
        assert rows[1:] == expected
    accepted = client.get(API + "/visit-history", headers={**headers, "Accept": "text/csv"})
    rows = csv_rows(accepted)
    assert [r[2] for r in rows[1:] if "cmd" in r[2]] == ["'=cmd"]


def test_the_visit_history_page_filters_pages_and_downloads(client, clinic, admin):
    sign_in(client, admin)
    page = client.get("/reports/visits", query_string={"doctor_id": clinic["rao"].id})
    text = page_text(page)
    assert page.status_code == 200
    assert "Ravi Shah" in text and "Meena Iyer" in text  # the select offers Dr Iyer
    assert text.count("<tr>") == 1 + 3
    assert "Download CSV" in text
    link = f"format=csv&amp;doctor_id={clinic['rao'].id}"
    assert link in page.get_data(as_text=True)
    download = client.get(
        "/reports/visits", query_string={"doctor_id": clinic["rao"].id, "format": "csv"}
    )
    assert len(csv_rows(download)) == 1 + 3
    assert "attachment" in download.headers["Content-Disposition"]
    bad = client.get("/reports/visits", query_string={"start": "31 Feb", "patient_id": "x1"})
    assert bad.status_code == 422
    text = page_text(bad)
    assert "Enter the first day like 02 Dec 2026." in text
    assert "Give the number (id) only" in text
    backwards = client.get(
        "/reports/visits", query_string={"start": D2.isoformat(), "end": D0.isoformat()}
    )
    assert backwards.status_code == 422
    assert "The first day comes after the last." in page_text(backwards)


def test_pages_keep_the_filters(client, clinic, admin, monkeypatch):
    from qure.reports import listing_pages

    monkeypatch.setattr(listing_pages, "PER_PAGE", 2)
    sign_in(client, admin)
    first = client.get("/reports/visits", query_string={"patient_id": clinic["asha"].id})
    html = first.get_data(as_text=True)
    assert "Page 1 of 2" in html
    assert f"page=2&amp;patient_id={clinic['asha'].id}" in html
    second = client.get(
        "/reports/visits", query_string={"patient_id": clinic["asha"].id, "page": 2}
    )
    assert page_text(second).count("Asha Kumar") == 1


# ---- stock movements ---------------------------------------------------------------------


def test_stock_movements_each_filter_and_csv(client, clinic, pharmacist):
    headers = bearer(client, pharmacist)
    c = clinic
    everything = every_page(client, headers, "/stock-movements")
    assert [(m["type"], m["medicine"]["name"], m["quantity"]) for m in everything] == [
        ("ADJUSTMENT", "Amoxil", -2),
        ("OUT", "Paracip", 6),
        ("IN", "Amoxil", 50),
        ("IN", "Paracip", 100),
    ]
    out = everything[1]
    assert out["balance"] == 94 and out["batch"]["batch_number"] == "PC-1"
    assert out["reference"].startswith("dispensing ")
    assert everything[0]["reason"] == "DAMAGED"
    assert everything[0]["user"]["id"] == pharmacist.id
    para = get(client, headers, "/stock-movements", medicine_id=c["para"].id)
    assert [m["type"] for m in para["items"]] == ["OUT", "IN"]
    ins = get(client, headers, "/stock-movements", type="IN")
    assert ins["total"] == 2
    both = get(client, headers, "/stock-movements", type="IN", medicine_id=c["amox"].id)
    assert both["total"] == 1
    d1 = get(client, headers, "/stock-movements", **{"from": D1.isoformat(), "to": D2.isoformat()})
    assert [m["type"] for m in d1["items"]] == ["ADJUSTMENT"]
    rows = csv_rows(client.get(API + "/stock-movements?format=csv", headers=headers))
    assert rows[0] == list(listings.MOVEMENT_CSV)
    assert [r[:3] + r[6:8] for r in rows[1:]] == [
        [m["timestamp"], m["type"], m["medicine"]["name"], cell(m["quantity"]), cell(m["balance"])]
        for m in everything
    ]
    assert rows[1][6] == "-2"  # a number stays a number (a spreadsheet sums the column)
    bad = client.get(API + "/stock-movements?type=LOST", headers=headers)
    assert "type" in error(bad, 422, "invalid_input")["fields"]


def test_the_stock_movements_page(client, clinic, pharmacist):
    sign_in(client, pharmacist)
    page = client.get("/reports/stock-movements", query_string={"type": "OUT"})
    text = page_text(page)
    assert page.status_code == 200
    assert "PC-1" in text and "AM-1" not in text.split("<tbody>")[1]
    assert "Amoxil 250 mg" in text  # offered in the medicine select
    chosen = client.get("/reports/stock-movements", query_string={"medicine_id": "abc"})
    assert chosen.status_code == 422 and "Give the number (id) only" in page_text(chosen)
    for typed in ("²", "١٢", "-3", "9" * 30):  # digits of other scripts, signs, too long
        odd = client.get("/reports/stock-movements", query_string={"medicine_id": typed})
        assert odd.status_code == 422 and "Give the number (id) only" in page_text(odd)


# ---- invoices and credit notes -----------------------------------------------------------


def test_invoices_and_credit_notes_each_filter(client, clinic, admin):
    headers = bearer(client, admin)
    c = clinic
    everything = every_page(client, headers, "/invoices")
    assert [(d["kind"], d["status"], d["method"]) for d in everything] == [
        ("credit_note", None, "CASH"),
        ("invoice", "PAID", "UPI"),
        ("invoice", "PENDING", None),
        ("invoice", "PAID", "CASH"),
    ]
    note, upi, pending, paid = everything
    assert note["number"] == c["note"].number and note["against"] == c["upi"].number
    assert note["total"] == f"-{c['note'].total:.2f}" and note["paid"] == note["total"]
    assert upi["total"] == f"{c['upi'].total:.2f}" and upi["paid"] == upi["total"]
    assert pending["paid"] == "0.00" and pending["patient"]["full_name"] == "Ravi Shah"
    assert paid["date"] == D0.isoformat()

    def kinds(**query):
        return [(d["kind"], d["id"]) for d in every_page(client, headers, "/invoices", **query)]

    assert kinds(kind="credit_note") == [("credit_note", c["note"].id)]
    assert kinds(kind="invoice") == [("invoice", d["id"]) for d in everything[1:]]
    assert kinds(status="PAID") == [("invoice", c["upi"].id), ("invoice", c["paid"].id)]
    assert kinds(status="PAID", kind="credit_note") == []
    assert kinds(method="CASH") == [("credit_note", c["note"].id), ("invoice", c["paid"].id)]
    assert kinds(patient_id=c["ravi"].id) == [("invoice", c["pending"].id)]
    assert kinds(**{"from": D1.isoformat(), "to": D1.isoformat()}) == [
        ("invoice", c["upi"].id),
        ("invoice", c["pending"].id),
    ]
    bad = client.get(API + "/invoices?method=CHEQUE", headers=headers)
    assert "method" in error(bad, 422, "invalid_input")["fields"]
    backwards = client.get(
        API + "/invoices",
        query_string={"from": D2.isoformat(), "to": D0.isoformat()},
        headers=headers,
    )
    assert "from" in error(backwards, 422, "invalid_input")["fields"]
    unreadable = client.get(API + "/invoices?from=someday", headers=headers)
    assert "from" in error(unreadable, 422, "invalid_input")["fields"]


def test_invoices_csv_is_exactly_the_filtered_rows(client, clinic, admin):
    headers = bearer(client, admin)
    for query in ({}, {"method": "CASH"}, {"kind": "invoice", "status": "PAID"}):
        items = every_page(client, headers, "/invoices", **query)
        rows = csv_rows(
            client.get(API + "/invoices", query_string={**query, "format": "csv"}, headers=headers)
        )
        assert rows[0] == list(listings.INVOICE_CSV)

        assert rows[1:] == [
            [
                d["kind"],
                d["number"] or "",
                d["date"],
                d["patient"]["mrn"],
                d["patient"]["full_name"],
                d["total"],  # the JSON's string of the same number
                d["paid"],
                d["method"] or "",
                d["status"] or "",
                d["against"] or "",
            ]
            for d in items
        ]


def test_a_page_of_invoices_is_two_statements(app, clinic, admin):
    assert admin.role == Role.ADMIN  # loaded now, not inside the count

    def page():
        found = listings.invoices(admin, page=1, per_page=50, kind=None, method="CASH")
        assert found.total == 2

    assert count_statements(app, page) == 2
    assert count_statements(app, lambda: listings.invoices(admin, patient_id=999999)) <= 2


def test_the_invoices_page(client, clinic, admin):
    sign_in(client, admin)
    page = client.get("/reports/invoices", query_string={"kind": "credit_note"})
    text = page_text(page)
    assert page.status_code == 200
    assert clinic["note"].number in text and f"against {clinic['upi'].number}" in text
    download = client.get(
        "/reports/invoices", query_string={"kind": "credit_note", "format": "csv"}
    )
    rows = csv_rows(download)
    assert len(rows) == 2
    total = rows[0].index("Total")
    assert rows[1][total] == f"-{clinic['note'].total:.2f}"  # negative, and a number
    assert client.get("/reports/invoices?status=LOST").status_code == 422


# ---- roles, the index, outages -----------------------------------------------------------


def test_who_may_open_which_report(client, clinic, reception, pharmacist):
    pages = ("/reports/visits", "/reports/stock-movements", "/reports/invoices")
    apis = ("/visit-history", "/stock-movements", "/invoices")
    desk = bearer(client, reception)
    for path in apis:
        error(client.get(API + path, headers=desk), 403, "forbidden")
    chemist = bearer(client, pharmacist)
    error(client.get(API + "/visit-history", headers=chemist), 403, "forbidden")
    error(client.get(API + "/invoices", headers=chemist), 403, "forbidden")
    doctor = bearer(client, clinic["rao"])
    error(client.get(API + "/stock-movements", headers=doctor), 403, "forbidden")
    error(client.get(API + "/invoices", headers=doctor), 403, "forbidden")
    sign_in(client, reception)
    assert [client.get(p).status_code for p in pages] == [403, 403, 403]
    other = client.application.test_client()
    sign_in(other, pharmacist)
    assert [other.get(p).status_code for p in pages] == [403, 200, 403]
    index = page_text(other.get("/reports"))
    assert "Stock movements" in index and "Visit history" not in index


def _index_prefixes(collection: str) -> list[tuple[tuple[str, int], ...]]:
    return [s.keys for s in documents.declared_indexes() if s.collection == collection]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.DOCTOR])
def test_every_visit_filter_combination_has_an_index(app, role):
    actor = make_user(role)
    names = ("patient_id", "doctor_id", "start", "end")
    values = {"patient_id": 7, "doctor_id": 3, "start": D0, "end": D2}
    for n in range(len(names) + 1):
        for chosen in itertools.combinations(names, n):
            filters = {k: values[k] for k in chosen}
            if role == Role.DOCTOR:
                filters.pop("patient_id", None)  # a patient never seen is refused
            query = listings.visit_query(actor, **filters)
            _assert_indexed(listings.VISITS, query)


def test_every_movement_filter_combination_has_an_index(app, pharmacist):
    names = ("medicine_id", "kind", "start", "end")
    values = {"medicine_id": 7, "kind": "OUT", "start": D0, "end": D2}
    for n in range(len(names) + 1):
        for chosen in itertools.combinations(names, n):
            query = listings.movement_query(pharmacist, **{k: values[k] for k in chosen})
            _assert_indexed(listings.MOVEMENTS, query)


def _assert_indexed(collection: str, query: dict) -> None:
    """Some declared index is the query's equality fields (any order), then the sort."""
    equal = {k for k in query if k != "timestamp"}
    wanted = tuple(listings.NEWEST)
    for keys in _index_prefixes(collection):
        head, tail = keys[: len(equal)], keys[len(equal) :]
        if {f for f, _ in head} == equal and tail[: len(wanted)] == wanted:
            return
    raise AssertionError(f"no index serves {sorted(equal)} sorted by {wanted} on {collection}")


@pytest.fixture
def dead_mongo(app):
    dead = MongoClient("mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=200, tz_aware=True)
    saved = (mongo.client, mongo.db, mongo.embedded)
    mongo.use_client(dead, "qure_dead", embedded=False)
    try:
        yield
    finally:
        mongo.client, mongo.db, mongo.embedded = saved
        dead.close()


def test_a_dead_mongodb_is_a_quick_503(client, admin, dead_mongo):
    headers = bearer(client, admin)
    started = time.monotonic()
    for path in ("/visit-history", "/stock-movements", "/stock-movements?format=csv"):
        error(client.get(API + path, headers=headers), 503, "analytics_unavailable")
    sign_in(client, admin)
    for path in ("/reports/visits", "/reports/stock-movements?format=csv"):
        page = client.get(path)
        assert page.status_code == 503
        assert "Analytics unavailable" in page_text(page)
    assert time.monotonic() - started < 5
    assert client.get("/reports/invoices").status_code == 200  # PostgreSQL's report


def test_the_invoices_page_loads_in_two_statements_of_its_own(app, client, clinic, admin):
    sign_in(client, admin)

    def page():
        response = client.get("/reports/invoices", query_string={"method": "CASH"})
        assert response.status_code == 200

    sent = statements(app, page)
    # Every page: who is signed in, and the clinic's settings (its name in the header).
    common = [s for s in sent if "FROM users" in s or "FROM clinic_settings" in s]
    assert len(common) == 2
    assert len(sent) - len(common) == 2  # the report's own: the count and the page


def test_the_patient_page_links_to_their_visit_history(client, clinic, admin):
    sign_in(client, admin)
    asha = clinic["asha"].id
    page = client.get(f"/patients/{asha}").get_data(as_text=True)
    assert f"/reports/visits?patient_id={asha}" in page
    report = page_text(client.get(f"/reports/visits?patient_id={asha}"))
    assert report.count("Asha Kumar") == 3 and "Ravi Shah" not in report.split("<tbody>")[1]


@pytest.mark.parametrize("path", ["/visit-history", "/stock-movements", "/audit-logs"])
@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_the_calendars_first_and_last_days_filter_and_answer(client, admin, path, day):
    # These days once gave a 500 (their clinic midnights are past the calendar; found by
    # tests/test_fuzz_api): now a filter like any other, matching nothing here.
    headers = bearer(client, admin)
    for query in (f"from={day}", f"to={day}"):
        answer = client.get(f"/api/v1/reports{path}?{query}", headers=headers)
        assert answer.status_code == 200, answer.json
        if day == "9999-12-31" and query.startswith("from"):
            assert answer.json["items"] == []
