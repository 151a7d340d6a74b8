"""The daily summary: a generated day with known totals, computed live; stored by its job
(twice: one document with the same figures); answered by the API, live for today and
from `daily_summaries` for a past day; MongoDB down is a clear 503."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pymongo import MongoClient
from sqlalchemy import update

from qure.billing import service as billing
from qure.billing.models import InvoiceMode, PaymentMethod
from qure.core import clock
from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db, mongo
from qure.patients.models import Patient
from qure.pharmacy import dispensing
from qure.prescriptions import service as prescriptions
from qure.queue import service as queue
from qure.reports import summary
from qure.reports.tasks import store_due_summary
from qure.visits import service as visits
from tests.billing.helpers import medicine
from tests.helpers import NOW, bearer, error, make_patient, make_user
from tests.pharmacy.helpers import stocked

URL = "/api/v1/reports/daily-summary"
DAY = NOW.astimezone(ZoneInfo("Asia/Kolkata")).date()  # Monday 7 January 2030


def at(minutes: int):
    return clock.fixed(NOW + timedelta(minutes=minutes))


def seen(reception, doctor, patient, arrive, called, done, medicines=()):
    """A walk-in who waits from `arrive` to `called` and is with the doctor until `done`
    (minutes after 10:00), prescribed `medicines` ((medicine, quantity) pairs)."""
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
                {
                    "medicine_id": m.id,
                    "dose": "1",
                    "frequency": "OD",
                    "duration_days": q,
                    "quantity": q,
                }
                for m, q in medicines
            ]
            prescription = prescriptions.create(doctor, {"visit_id": visit.id, "items": items})
            commit()
    with at(done):
        visits.update(doctor, visit.id, {"diagnosis": "Viral fever"})
        visits.complete(doctor, visit.id)
        commit()
    return visit, prescription


def paid(reception, visit, method):
    invoice = billing.create(reception, {"mode": InvoiceMode.AUTO, "visit_id": visit.id})
    invoice, _ = billing.pay(
        reception, invoice.id, {"method": method, "amount": invoice.total, "reference": "R1"}
    )
    commit()
    return invoice


@pytest.fixture
def day(app, reception, pharmacist):
    """Dr Rao sees Asha (wait 10, consultation 15; Paracip x 6, paid by UPI, dispensed)
    and Ravi (wait 20, consultation 5); Dr Iyer sees an older patient (wait 30,
    consultation 10; paid in cash, its consultation refunded in cash). Asha and Ravi
    registered that day."""
    rao = make_user(Role.DOCTOR, full_name="Anil Rao")
    iyer = make_user(Role.DOCTOR, full_name="Meena Iyer")
    old = make_patient(full_name="Old Patient")
    asha, ravi = make_patient(full_name="Asha Kumar"), make_patient(full_name="Ravi Shah")
    # Registered when the database said so (its now()): placed on the days of the story.
    for patient, when in ((old, NOW - timedelta(days=3)), (asha, NOW), (ravi, NOW)):
        db.session.execute(update(Patient).where(Patient.id == patient.id).values(created_at=when))
    with at(0):
        para = medicine("Paracip", "2.50", 12)
        stocked(pharmacist, para, ("PC-1", 100, 200))
        commit()
    first, rx = seen(reception, rao, asha, 0, 10, 25, [(para, 6)])
    seen(reception, rao, ravi, 5, 25, 30)
    third, _ = seen(reception, iyer, old, 0, 30, 40)
    with at(120):
        upi = paid(reception, first, PaymentMethod.UPI)
        cash = paid(reception, third, PaymentMethod.CASH)
        consultation = billing.get_invoice(cash.id).lines[0]
        note = billing.issue_credit_note(
            reception,
            cash.id,
            {
                "items": [{"line_id": consultation.id, "quantity": "1"}],
                "reason": "Fee waived",
                "method": PaymentMethod.CASH,
            },
        )
        commit()
        dispensing.dispense(pharmacist, {"prescription_id": rx.id})
        commit()
    return {"upi": upi.total, "cash": cash.total - note.total}


def test_a_day_with_known_totals(day):
    with at(180):
        found = summary.live(DAY)
    assert found["date"] == DAY
    assert (found["total_visits"], found["total_patients"], found["new_patients"]) == (3, 3, 2)
    assert found["avg_wait_minutes"] == 20.0  # (10 + 20 + 30) / 3
    assert found["avg_consultation_minutes"] == 10.0  # (15 + 5 + 10) / 3
    assert found["medicines_dispensed"] == 6
    assert found["revenue_by_method"] == {
        PaymentMethod.CASH: day["cash"],
        PaymentMethod.CARD: Decimal("0.00"),
        PaymentMethod.UPI: day["upi"],
    }
    assert found["total_revenue"] == day["upi"] + day["cash"]  # paid, less the credit note
    assert [
        (
            d["doctor"]["name"],
            d["visits"],
            d["patients"],
            d["avg_wait_minutes"],
            d["avg_consultation_minutes"],
        )
        for d in found["by_doctor"]
    ] == [("Anil Rao", 2, 2, 15.0, 10.0), ("Meena Iyer", 1, 1, 30.0, 10.0)]


def test_an_empty_day_has_zeros_and_no_averages(app):
    found = summary.live(DAY)
    assert (found["total_visits"], found["total_patients"], found["medicines_dispensed"]) == (
        0,
        0,
        0,
    )
    assert (found["avg_wait_minutes"], found["avg_consultation_minutes"]) == (None, None)
    assert found["total_revenue"] == Decimal("0.00") and found["by_doctor"] == []


def test_the_job_stores_the_live_figures_once_however_often_it_runs(day):
    evening = datetime(2030, 1, 7, 21, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
    with clock.fixed(evening):
        first = store_due_summary()
        again = store_due_summary()
        live = summary.live(DAY)
    # From the older patient's registration (4 Jan), the quiet days too.
    assert first == {
        "day": DAY.isoformat(),
        "visits": 3,
        "backfilled": ["2030-01-06", "2030-01-05", "2030-01-04"],
    }
    assert again == {"day": DAY.isoformat(), "visits": 3, "backfilled": []}
    documents = list(mongo.db[summary.COLLECTION].find({"date": summary._bson_day(DAY)}))
    assert len(documents) == 1
    assert documents[0]["date"] == datetime(2030, 1, 7, tzinfo=ZoneInfo("UTC"))  # a BSON date
    assert summary.stored(DAY, DAY) == {DAY: live}


def test_the_job_stores_the_past_days_the_store_lacks_once(day):
    """Days the job missed (the worker stopped over a closing time, an empty embedded
    store) are stored by its next run; the run after that has nothing left to store."""
    earlier = DAY - timedelta(days=3)  # the day the older patient registered
    later = datetime(2030, 1, 12, 21, 5, tzinfo=ZoneInfo("Asia/Kolkata"))
    with clock.fixed(later):
        first = store_due_summary()
        again = store_due_summary()
    assert first["day"] == "2030-01-12"
    # Every day from the first active one to yesterday, the newest first.
    assert first["backfilled"] == [
        (later.date() - timedelta(days=n)).isoformat() for n in range(1, 9)
    ]
    assert first["backfilled"][-1] == earlier.isoformat()
    assert again["backfilled"] == []
    kept = summary.stored(earlier, later.date())
    assert len(kept) == 9
    assert kept[DAY]["total_visits"] == 3 and kept[DAY + timedelta(days=1)]["total_visits"] == 0


def test_the_api_answers_today_live_and_a_past_day_from_the_store(client, day, admin):
    headers = bearer(client, admin)
    with at(180):
        today = client.get(URL, headers=headers)
        assert today.status_code == 200, today.get_json()
        body = today.get_json()
        assert body["source"] == "live" and body["date"] == DAY.isoformat()
        assert body["total_revenue"] == f"{day['upi'] + day['cash']:.2f}"
        assert body["revenue_by_method"]["UPI"] == f"{day['upi']:.2f}"
        assert body["by_doctor"][0]["doctor"]["name"] == "Anil Rao"
        summary.store(DAY)
    with clock.fixed(NOW + timedelta(days=1)):
        past = client.get(URL, query_string={"date": DAY.isoformat()}, headers=headers)
        assert past.get_json()["source"] == "stored"
        assert {k: v for k, v in past.get_json().items() if k != "source"} == {
            k: v for k, v in body.items() if k != "source"
        }
        both = client.get(
            URL, query_string={"from": DAY.isoformat(), "to": "08/01/2030"}, headers=headers
        )
        items = both.get_json()["items"]
        assert [(i["date"], i["source"], i["total_visits"]) for i in items] == [
            ("2030-01-07", "stored", 3),
            ("2030-01-08", "live", 0),
        ]


def test_bad_days_and_roles(client, admin, reception, doctor):
    with at(0):
        headers = bearer(client, admin)
        error(
            client.get(URL, query_string={"date": "2030-01-08"}, headers=headers),
            422,
            "invalid_input",
        )
        error(
            client.get(URL, query_string={"date": "someday"}, headers=headers), 422, "invalid_input"
        )
        error(
            client.get(
                URL, query_string={"from": "2030-01-07", "to": "2030-01-01"}, headers=headers
            ),
            422,
            "invalid_input",
        )
        error(
            client.get(
                URL, query_string={"from": "2028-01-01", "to": "2030-01-07"}, headers=headers
            ),
            422,
            "invalid_input",
        )
        for user in (reception, doctor):
            error(client.get(URL, headers=bearer(client, user)), 403, "forbidden")


def test_mongodb_down_is_a_clear_503_and_today_still_answers(client, admin, app):
    """A real pymongo client on a port nothing listens on, as the store would be when
    MongoDB is away."""
    headers = bearer(client, admin)
    dead = MongoClient("mongodb://127.0.0.1:9", serverSelectionTimeoutMS=200, tz_aware=True)
    saved = mongo.client, mongo.db
    mongo.client, mongo.db = dead, dead["qure_test"]
    try:
        with at(0):
            assert client.get(URL, headers=headers).status_code == 200  # today is live
            past = client.get(URL, query_string={"date": "2030-01-06"}, headers=headers)
            error(past, 503, "analytics_unavailable")
    finally:
        mongo.client, mongo.db = saved
        dead.close()
