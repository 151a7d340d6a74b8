"""The dashboard and the daily summary pages: a generated day with known totals (and the
day before it) stored by the real job function equals the live figures, new fields
included; the dashboard's numbers, charts and tables for a range; range validation; ADMIN
only; MongoDB down is a quick 503 that still shows today's live figures."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from pymongo import MongoClient

from qure.billing.models import PaymentMethod
from qure.core import clock
from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import mongo
from qure.pharmacy import dispensing
from qure.prescriptions import service as prescriptions
from qure.queue import service as queue
from qure.reports import dashboard, summary
from qure.visits import icd10
from qure.visits import service as visits
from tests.billing.helpers import medicine
from tests.helpers import (
    NOW,
    bearer,
    count_statements,
    make_patient,
    make_user,
    page_text,
    sign_in,
)
from tests.pharmacy.helpers import stocked
from tests.reports.test_summary import paid

DAY = NOW.astimezone(ZoneInfo("Asia/Kolkata")).date()  # Monday 7 January 2030
BEFORE = DAY - timedelta(days=1)
AFTER = DAY + timedelta(days=1)
COLD, GUT = "J06.9", "A09"
URL = "/reports/dashboard"
SUMMARY = "/reports/daily-summary"


def at(minutes: int):
    return clock.fixed(NOW + timedelta(minutes=minutes))


def seen(reception, doctor, patient, arrive, called, done, code, medicines=()):
    """A walk-in who waits from `arrive` to `called` (minutes after Monday 10:00) and is
    with the doctor until `done`, diagnosed `code`, prescribed `medicines`."""
    with at(arrive):
        entry = queue.walk_in(reception, {"patient_id": patient.id, "doctor_id": doctor.id})
        commit()
    with at(called):
        queue.call_next(doctor, doctor.id)
        visit = visits.start(doctor, {"token_number": entry.token_number})
        commit()
        prescription = None
        if medicines:
            items = [
                {"medicine_id": m.id, "dose": "1", "frequency": "OD", "duration_days": q}
                | {"quantity": q}
                for m, q in medicines
            ]
            prescription = prescriptions.create(doctor, {"visit_id": visit.id, "items": items})
            commit()
    with at(done):
        visits.update(doctor, visit.id, {"diagnosis": "As coded", "icd10_code": code})
        visits.complete(doctor, visit.id)
        commit()
    return visit, prescription


@pytest.fixture
def days(app, reception, pharmacy_stock):
    """Sunday: Dr Iyer sees one patient at 09:00 (wait 12, gastroenteritis). Monday: Dr Rao
    sees Asha at 10:00 (wait 10, a cold, Paracip x 6 paid by UPI and dispensed) and Ravi at
    10:05 (wait 20, a cold); Dr Iyer sees an older patient at 11:00 (wait 30,
    gastroenteritis, paid in cash)."""
    rao, iyer, pharmacist, para = pharmacy_stock
    sunday = make_patient(full_name="Sunday Patient")
    seen(reception, iyer, sunday, -1500, -1488, -1480, GUT)  # Sun 6 Jan 09:00
    asha, ravi = make_patient(full_name="Asha Kumar"), make_patient(full_name="Ravi Shah")
    old = make_patient(full_name="Old Patient")
    first, rx = seen(reception, rao, asha, 0, 10, 25, COLD, [(para, 6)])
    seen(reception, rao, ravi, 5, 25, 30, COLD)
    third, _ = seen(reception, iyer, old, 60, 90, 100, GUT)
    with at(120):
        upi = paid(reception, first, PaymentMethod.UPI)
        cash = paid(reception, third, PaymentMethod.CASH)
        dispensing.dispense(pharmacist, {"prescription_id": rx.id})
        commit()
    return {"upi": upi.total, "cash": cash.total, "para": para}


@pytest.fixture
def pharmacy_stock(app, pharmacist):
    rao = make_user(Role.DOCTOR, full_name="Anil Rao")
    iyer = make_user(Role.DOCTOR, full_name="Meena Iyer")
    with at(-2000):
        para = medicine("Paracip", "2.50", 12)
        stocked(pharmacist, para, ("PC-1", 100, 200))
        commit()
    return rao, iyer, pharmacist, para


def stored_by_the_job():
    """Both days stored by the job function, the way the worker runs it."""
    with clock.fixed(NOW + timedelta(days=1)):
        summary.store(BEFORE)
        summary.store(DAY)


def test_the_stored_day_equals_the_live_one_with_diagnoses_medicines_and_waits(days):
    with at(180):
        live = summary.live(DAY)
    assert live["top_diagnoses"] == [
        {"code": COLD, "name": icd10.lookup(COLD).description, "visits": 2},
        {"code": GUT, "name": icd10.lookup(GUT).description, "visits": 1},
    ]
    assert live["top_medicines"] == [
        {"medicine": {"id": days["para"].id, "name": "Paracip"}, "units": 6}
    ]
    assert live["medicines_dispensed"] == 6
    assert live["wait_by_hour"] == [
        {"hour": 10, "entries": 2, "avg_wait_minutes": 15.0},  # (10 + 20) / 2
        {"hour": 11, "entries": 1, "avg_wait_minutes": 30.0},
    ]
    stored_by_the_job()
    assert summary.stored(DAY, DAY) == {DAY: live}
    assert summary.stored(BEFORE, BEFORE)[BEFORE]["wait_by_hour"] == [
        {"hour": 9, "entries": 1, "avg_wait_minutes": 12.0}
    ]


def test_the_dashboard_sums_stored_days_and_today_live(days):
    stored_by_the_job()
    with clock.fixed(NOW + timedelta(days=1)):
        found = dashboard.dashboard(BEFORE, AFTER)
    view = found["range"]
    assert [d["source"] for d in found["days"]] == ["stored", "stored", "live"]
    assert view["visits_per_day"] == [
        {"date": BEFORE, "visits": 1},
        {"date": DAY, "visits": 3},
        {"date": AFTER, "visits": 0},
    ]
    assert [d["revenue"] for d in view["revenue_per_day"]][1] == days["upi"] + days["cash"]
    assert view["totals"]["visits"] == 4 and view["totals"]["medicines_dispensed"] == 6
    assert [(d["code"], d["visits"]) for d in view["top_diagnoses"]] == [(GUT, 2), (COLD, 2)]
    assert view["wait_by_hour"] == [
        {"hour": 9, "entries": 1, "avg_wait_minutes": 12.0},
        {"hour": 10, "entries": 2, "avg_wait_minutes": 15.0},
        {"hour": 11, "entries": 1, "avg_wait_minutes": 30.0},
    ]
    assert view["totals"]["avg_wait_minutes"] == 18.0  # (12 + 10 + 20 + 30) / 4
    assert view["missing"] == [] and found["today"]["total_visits"] == 0


def test_a_past_day_not_stored_yet_is_computed_live(days):
    with clock.fixed(NOW + timedelta(days=1)):
        summary.store(BEFORE)
        found = dashboard.dashboard(BEFORE, DAY)
    assert [d["source"] for d in found["days"]] == ["stored", "live"]
    assert found["range"]["missing"] == [DAY]
    assert found["range"]["totals"]["visits"] == 4


def section(page: str, id_: str) -> str:
    match = re.search(rf'<section[^>]*id="{id_}".*?</section>', page, re.S)
    assert match, f"no section {id_}"
    return match.group(0)


def bars(page: str, id_: str) -> list[float]:
    return [
        float(h)
        for h in re.findall(r'class="chart-bar"[^>]*height="([0-9.]+)"', section(page, id_))
    ]


def rows(page: str, table: str) -> int:
    match = re.search(rf'<table id="{table}".*?<tbody>(.*?)</tbody>', page, re.S)
    return match.group(1).count("<tr>") if match else 0


def test_the_dashboard_page_draws_each_chart_beside_its_table(client, admin, days):
    stored_by_the_job()
    sign_in(client, admin)
    with clock.fixed(NOW + timedelta(days=1, hours=2)):
        response = client.get(URL, query_string={"from": "06 Jan 2030", "to": "08 Jan 2030"})
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    page = page_text(response)
    heights = bars(page, "visits-chart")
    assert len(heights) == 3  # one bar per day
    assert heights[1] == max(heights) and heights[2] == 0  # Monday's 3 visits, Tuesday's none
    assert abs(heights[0] / heights[1] - 1 / 3) < 0.01
    assert (
        'role="img"' in page and 'aria-label="Visits per day, 06 Jan 2030 to 08 Jan 2030"' in page
    )
    assert "<title>Mon 07 Jan 2030: 3 visits</title>" in page
    assert rows(page, "visits-table") == 3 and rows(page, "diagnoses-table") == 2
    assert f"₹{days['upi'] + days['cash']:,.2f}" in section(page, "revenue-chart")
    assert len(bars(page, "waits-chart")) == 3 and len(bars(page, "medicines-chart")) == 1
    assert "Acute upper respiratory infection" in section(page, "diagnoses-chart")
    assert 'data-figure="range-visits">4<' in page
    assert "css/reports.css" in page and "style=" not in section(page, "visits-chart")


def test_the_presets_change_the_number_of_days(client, admin, app):
    sign_in(client, admin)
    with at(0):
        for n in (7, 30, 90):
            page = page_text(client.get(URL, query_string={"days": n}))
            assert len(bars(page, "visits-chart")) == n
            assert rows(page, "visits-table") == n
            assert f'days={n}" aria-current="page"' in page
        default = page_text(client.get(URL))
    assert len(bars(default, "visits-chart")) == 30
    assert 'days=30" aria-current="page"' in default
    assert 'value="09 Dec 2029"' in default and 'value="07 Jan 2030"' in default


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (
            {"from": "07 Jan 2030", "to": "01 Jan 2030"},
            "from",
            "The first day comes after the last",
        ),
        ({"from": "01 Jan 2030", "to": "09 Jan 2030"}, "to", "A day still to come."),
        ({"from": "01 Jan 2028", "to": "07 Jan 2030"}, "to", "At most 366 days"),
        ({"from": "someday"}, "from", "Enter the first day like"),
        ({"days": "400"}, None, "Between 1 and 366 days."),
        ({"days": "ten"}, None, "Give a number of days"),
    ],
)
def test_bad_ranges_are_told_on_the_field(client, admin, query, field, message):
    sign_in(client, admin)
    with at(0):
        response = client.get(URL, query_string=query)
    assert response.status_code == 422
    page = page_text(response)
    if field:
        assert re.search(rf'id="{field}-error"><p class="error">{message}', page), page[-3000:]
    else:
        assert message in page
    assert "visits-chart" not in page and 'id="today-tiles"' in page


def test_only_the_admin_opens_them(app, reception, doctor, pharmacist):
    for user in (reception, doctor, pharmacist):
        client = app.test_client()
        sign_in(client, user)
        assert client.get(URL).status_code == 403
        assert client.get(SUMMARY).status_code == 403


def test_the_daily_summary_pages(client, admin, days):
    sign_in(client, admin)
    with clock.fixed(NOW + timedelta(days=1)):
        summary.store(BEFORE)
        stored = page_text(client.get(SUMMARY, query_string={"date": "2030-01-06"}))
        assert "As the daily job stored it." in stored
        not_yet = client.get(SUMMARY, query_string={"date": "07 Jan 2030"})
        assert not_yet.status_code == 200
        page = page_text(not_yet)
        assert "Not stored yet: computed live now." in page
        assert 'data-figure="visits">3<' in page and "Anil Rao" in page
        assert rows(page, "day-diagnoses") == 2 and "Paracip" in page
        today = page_text(client.get(SUMMARY))
        assert "Today so far: computed live." in today
        ranged = page_text(
            client.get(SUMMARY, query_string={"from": "06 Jan 2030", "to": "08 Jan 2030"})
        )
        assert rows(ranged, "days") == 3
        totals = re.search(r'<tr id="totals">(.*?)</tr>', ranged, re.S).group(1)
        assert "Total, 3 days" in totals and f"₹{days['upi'] + days['cash']:,.2f}" in totals
        assert "not stored yet, live" in ranged and "today, live" in ranged
        csv = client.get(
            SUMMARY, query_string={"from": "2030-01-06", "to": "2030-01-08", "format": "csv"}
        )
        lines = csv.get_data(as_text=True).splitlines()
        assert lines[0].startswith("Date,Source,Patients") and len(lines) == 4
        assert lines[1].startswith("2030-01-06,stored,1,")
        bad = client.get(SUMMARY, query_string={"date": "08 Feb 2030"})
        assert bad.status_code == 422 and "A day still to come." in page_text(bad)


def test_mongodb_down_is_a_quick_503_that_still_shows_today(client, admin, days):
    """A real pymongo client on a port nothing listens on."""
    sign_in(client, admin)
    dead = MongoClient("mongodb://127.0.0.1:1", serverSelectionTimeoutMS=300, tz_aware=True)
    saved = mongo.client, mongo.db
    mongo.client, mongo.db = dead, dead["qure_test"]
    try:
        with at(180):
            started = time.perf_counter()
            response = client.get(URL, query_string={"days": 7})
            elapsed = time.perf_counter() - started
            page = page_text(response)
            past = client.get(SUMMARY, query_string={"date": "2030-01-06"})
            today = client.get(SUMMARY)
    finally:
        mongo.client, mongo.db = saved
        dead.close()
    assert response.status_code == 503 and elapsed < 3
    assert "Analytics unavailable" in page and 'data-figure="visits">3<' in page
    assert "visits-chart" not in page
    assert past.status_code == 503 and "Analytics unavailable" in page_text(past)
    assert today.status_code == 200  # today is live: PostgreSQL alone


def test_the_reports_index_and_the_admin_home_link_the_dashboard(client, admin):
    sign_in(client, admin)
    assert 'href="/reports/dashboard"' in client.get("/reports").get_data(as_text=True)
    assert 'href="/reports/dashboard"' in client.get("/admin/").get_data(as_text=True)


def test_the_api_gives_the_new_fields_stored_as_live(client, admin, days):
    headers = bearer(client, admin)
    with at(180):
        live = client.get("/api/v1/reports/daily-summary", headers=headers).get_json()
    stored_by_the_job()
    with clock.fixed(NOW + timedelta(days=1)):
        stored = client.get(
            "/api/v1/reports/daily-summary", query_string={"date": "2030-01-07"}, headers=headers
        ).get_json()
    assert (live["source"], stored["source"]) == ("live", "stored")
    assert {k: v for k, v in stored.items() if k != "source"} == {
        k: v for k, v in live.items() if k != "source"
    }
    assert stored["top_diagnoses"][0] == {
        "code": COLD,
        "name": icd10.lookup(COLD).description,
        "visits": 2,
    }
    assert stored["top_medicines"] == [
        {"medicine": {"id": days["para"].id, "name": "Paracip"}, "units": 6}
    ]
    assert stored["wait_by_hour"][0] == {"hour": 10, "entries": 2, "avg_wait_minutes": 15.0}


def test_a_longer_range_of_stored_days_sends_no_more_statements(app, client, admin):
    """Past days are one MongoDB query however many; only today is computed from SQL."""
    sign_in(client, admin)
    with at(0):
        for n in range(1, 90):
            summary.store(DAY - timedelta(days=n))
        week = count_statements(app, lambda: client.get(URL, query_string={"days": 7}))
        quarter = count_statements(app, lambda: client.get(URL, query_string={"days": 90}))
    assert week == quarter
    assert quarter <= 12, quarter  # the signed-in user, and today's live summary
