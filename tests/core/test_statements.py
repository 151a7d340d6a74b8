"""No query per row: every list page and list endpoint sends as many SQL statements for
50 rows as for 5 (ARCHITECTURE, Budgets). Models load their relationships with
`lazy="raise_on_sql"`, so a list that forgot its loader option fails here loudly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from qure.core.db import commit
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy import service as pharmacy
from qure.pharmacy import stock
from qure.prescriptions import service as prescriptions
from qure.queue import service as queue
from qure.visits import service as visits
from tests.helpers import (
    TODAY,
    bearer,
    count_statements,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
    sign_in,
    statements,
)

SMALL, LARGE = 5, 50


class Clinic:
    """A day with `rows` of everything a list shows: appointments checked in (tokens),
    medicines, prescriptions, and one patient's completed visits."""

    def __init__(self, doctor, reception):
        self.doctor, self.reception, self.rows = doctor, reception, 0
        self.other = make_user(Role.DOCTOR)  # a second queue, of tokens seen and done
        self.slots = make_slots(doctor, start="10:00", end="23:45")
        self.regular = make_patient(reception)

    def grow(self, rows: int) -> None:
        for _ in range(rows - self.rows):
            self._row()
        self.rows = rows

    def _row(self) -> None:
        n = self.rows
        appointment = make_appointment(make_patient(self.reception), self.slots.pop(0))
        queue.check_in(self.reception, appointment.id)
        walker = make_patient(self.reception)
        queue.walk_in(self.reception, {"patient_id": walker.id, "doctor_id": self.other.id})
        commit()
        called = queue.call_next(self.other)
        commit()
        queue.set_status(self.other, called.token_number, "COMPLETED")
        medicine = pharmacy.create(
            None,
            {
                "name": f"Medicine {n} {len(self.slots)}",
                "generic_name": "Paracetamol",
                "dosage_form": "TABLET",
                "strength": "500 mg",
                "unit_price": "1.00",
                "gst_rate": 12,
            },
        )
        # A batch expiring soon: the expiring lists show it.
        stock.stock_in(
            self.reception,
            {
                "medicine_id": medicine.id,
                "batches": [
                    {"batch_number": "B1", "quantity": 1, "expiry_date": TODAY + timedelta(20)}
                ],
            },
        )
        visit = visits.start(self.doctor, {"patient_id": self.regular.id})
        item = {"medicine_id": medicine.id, "dose": 1, "frequency": "BD", "duration_days": 2}
        prescriptions.create(self.doctor, {"visit_id": visit.id, "items": [item]})
        visits.update(self.doctor, visit.id, {"diagnosis": "Viral fever"})
        visits.complete(self.doctor, visit.id)
        commit()


def html_pages(doctor) -> list[tuple[str, str]]:
    return [
        ("admin", "/queue/"),
        ("admin", "/queue/today"),
        ("doctor", "/queue/mine"),
        ("admin", "/appointments/"),
        ("admin", f"/appointments/?date={TODAY.isoformat()}"),
        ("admin", "/patients/"),
        ("admin", "/pharmacy/medicines"),
        ("admin", f"/schedule/?doctor_id={doctor.id}&week={TODAY.isoformat()}"),
    ]


def api_lists(clinic: Clinic) -> list[tuple[str, str]]:
    return [
        ("admin", "/api/v1/queue/today"),
        ("admin", "/api/v1/appointments"),
        ("admin", "/api/v1/patients"),
        ("admin", "/api/v1/inventory/medicines"),
        ("admin", "/api/v1/prescriptions"),
        ("admin", "/api/v1/prescriptions?status=awaiting_dispense"),
        ("admin", "/api/v1/inventory/medicines?stock=expiring"),
        ("admin", "/api/v1/inventory/low-stock"),
        ("admin", "/api/v1/inventory/expiring?days=30"),
        ("admin", "/api/v1/inventory/expired"),
        ("admin", "/api/v1/pharmacy/h1-register"),
        ("admin", f"/api/v1/patients/{clinic.regular.id}/visits"),
    ]


@pytest.fixture
def measure(app, clinic_now, doctor, reception):
    admin = make_user(Role.ADMIN)
    browsers = {"admin": app.test_client(), "doctor": app.test_client()}
    sign_in(browsers["admin"], admin)
    sign_in(browsers["doctor"], doctor)
    api = app.test_client()
    headers = {"admin": bearer(api, admin)}
    clinic = Clinic(doctor, reception)

    def fresh(send):
        # The tests share the app's session: forget what the warm-up loaded, so the
        # measured request reads as a request in production does.
        db.session.expire_all()
        return send()

    def _measure(rows: int) -> dict[str, int]:
        clinic.grow(rows)
        counts = {}
        for who, url in html_pages(doctor):
            browser = browsers[who]
            assert browser.get(url).status_code == 200, url  # warm: the same work, cached
            counts[url] = count_statements(app, lambda b=browser, u=url: fresh(lambda: b.get(u)))
        for who, url in api_lists(clinic):
            response = api.get(url, headers=headers[who])
            assert response.status_code == 200, (url, response.get_data(as_text=True)[:300])
            counts[url] = count_statements(app, lambda u=url, h=headers[who]: api.get(u, headers=h))
        return counts

    return _measure


def test_no_list_sends_a_query_per_row(measure):
    few = measure(SMALL)
    many = measure(LARGE)
    grown = {url: (few[url], many[url]) for url in few if many[url] != few[url]}
    assert grown == {}, grown


# ---- the clinic's journey through the API (bench/journey.py): statements per step --------
# (the journey ends at the billing counter: the AUTO invoice, finalised, paid)

# What each step of one patient's journey sends to PostgreSQL, savepoints included. A
# change that adds a statement to the path every patient takes shows here first; lower a
# figure when a change saves one.
JOURNEY_STATEMENTS = {
    "register": 4,
    "slot": 3,
    "book": 9,
    "checkin": 9,
    "next": 9,
    "start": 7,
    # the user; the visit locked with its patient, doctor and notes; the visit; the audit
    "vitals": 4,
    "note": 4,
    "prescription": 9,
    # the user; the visit; the visit's token and appointment, each read then written; the
    # prescription with its items (the answer); the audit records
    "complete": 9,
    # the user; settings; the prescription with its items; the invoice and its lines in a
    # savepoint (a visit billed before, or by a second desk, is a 409), the audit record
    "invoice": 8,
    # the user; the invoice locked with its lines (no credit notes: it is not PAID); the
    # year's counter; the invoice; the audit record; settings (the answer's UPI link)
    "finalize": 6,
    # the user; the invoice locked with its lines; the day's takings lock and close; the
    # invoice and the payment in one flush; the audit record
    "pay": 7,
}


@pytest.mark.concurrency  # real commits: no test savepoints among the app's own
def test_the_journey_sends_the_statements_it_is_pinned_to(app, clinic_now):
    reception = make_user(Role.RECEPTION)
    doctor = make_user(Role.DOCTOR)
    medicines = [
        pharmacy.create(
            None,
            {
                "name": f"Journey Medicine {n}",
                "generic_name": "Paracetamol",
                "dosage_form": "TABLET",
                "strength": "500 mg",
                "unit_price": "2.50",
                "gst_rate": 12,
            },
        ).id
        for n in (1, 2)
    ]
    commit()
    api = app.test_client()
    desk, doc = bearer(api, reception), bearer(api, doctor)

    def journey(n: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        answers: dict[str, dict] = {}

        def step(name, who, method, url, body, status):
            def send():
                response = api.open(url, method=method, json=body, headers=who)
                assert response.status_code == status, (name, response.get_json())
                answers[name] = response.get_json()

            counts[name] = len(statements(app, send, savepoints=True))
            return answers[name]

        patient = step(
            "register",
            desk,
            "POST",
            "/api/v1/patients",
            {
                "full_name": f"Journey Patient {n}",
                "date_of_birth": "1990-04-0" + str(n),
                "sex": "F",
                "phone": f"+9198200{n:05d}",
                "confirm_new": True,
            },
            201,
        )
        start = f"{11 + n}:00"
        slots = step(
            "slot",
            doc,
            "POST",
            "/api/v1/slots/bulk",
            {
                "start_date": TODAY.isoformat(),
                "end_date": TODAY.isoformat(),
                "start_time": start,
                "end_time": f"{11 + n}:15",
                "duration_minutes": 15,
            },
            201,
        )
        booked = step(
            "book",
            desk,
            "POST",
            "/api/v1/appointments",
            {"patient_id": patient["id"], "slot_id": slots["slots"][0]["id"]},
            201,
        )
        step(
            "checkin", desk, "POST", "/api/v1/queue/checkin", {"appointment_id": booked["id"]}, 201
        )
        called = step("next", doc, "POST", "/api/v1/queue/next", {"open_visit": False}, 200)
        visit = step(
            "start", doc, "POST", "/api/v1/visits", {"token_number": called["token_number"]}, 201
        )
        url = f"/api/v1/visits/{visit['id']}"
        step("vitals", doc, "PATCH", url, {"vitals": {"pulse": 80}, "diagnosis": "Fever"}, 200)
        step("note", doc, "POST", f"{url}/notes", {"category": "SYMPTOM", "text": "Fever"}, 201)
        items = [
            {"medicine_id": m, "dose": "1", "frequency": "BD", "duration_days": 3}
            for m in medicines
        ]
        step(
            "prescription",
            doc,
            "POST",
            "/api/v1/prescriptions",
            {"visit_id": visit["id"], "items": items},
            201,
        )
        prescription = answers["prescription"]
        step("complete", doc, "POST", f"{url}/complete", {}, 200)
        body = {"mode": "AUTO", "prescription_id": prescription["id"]}
        invoice = step("invoice", desk, "POST", "/api/v1/billing", body, 201)
        bill = f"/api/v1/billing/{invoice['id']}"
        step("finalize", desk, "POST", f"{bill}/finalize", {}, 200)
        pay = {"method": "UPI", "amount": invoice["total"], "reference": f"UPI-{n}"}
        step("pay", desk, "POST", f"{bill}/pay", pay, 200)
        return counts

    journey(1)  # the first of each: connections opened, caches filled
    assert journey(2) == JOURNEY_STATEMENTS


SEARCHES = {
    # the bearer token's user, then one statement: the counts and the first page together
    "q=ravi+sharma": 2,
    "q=ravi+sh": 2,
    "q={mrn}": 2,
    "q=98450": 2,
    "q=": 2,
    # one word: then the words holding it inside (none here; a common word fills the cap
    # before, and skips this)
    "q=sharma": 3,
    # a later page: the counts, then the page
    "q=sharma&page=2&per_page=1": 4,
    "q=ravi+sharma&page=2&per_page=1": 3,
    # past the last page of a number: the page (empty), then the count
    "q=98450&page=9": 3,
    # inside a word ("arma" in Sharma, Varma): the words holding it, their counts, their page
    "q=arma": 5,
}


def test_the_patient_search_sends_a_fixed_number_of_statements(app, reception):
    """Searches over tiers and kinds of text cost the same statements for 50 matches as
    for 5 (pinned: the search endpoint is the front desk's busiest)."""
    api = app.test_client()
    headers = bearer(api, reception)
    mrn = None
    for n in range(LARGE):
        last = ("Sharma", "Varma", "Sharmila")[n % 3]
        patient = make_patient(reception, full_name=f"Ravi {last} {n}", phone=f"+91 98450 {n:05d}")
        mrn = mrn or patient.mrn
        if n + 1 not in (SMALL, LARGE):
            continue
        counts = {}
        for query in SEARCHES:
            url = f"/api/v1/patients?{query.format(mrn=mrn)}"
            response = api.get(url, headers=headers)
            assert response.status_code == 200, (url, response.get_data(as_text=True)[:300])
            assert response.json["items"] or "page=" in query, url
            db.session.expire_all()  # read as a request in production reads: nothing cached
            counts[query] = count_statements(app, lambda u=url: api.get(u, headers=headers))
        assert counts == SEARCHES, n + 1
