"""The doctor's visit workspace as staff use it in a browser (CSRF on): Call next opens it,
starting a visit from the patient page, vitals and findings, notes and addenda, the
prescription builder with its allergy warning, completing the visit, who may read and
change it, and the printed prescription (SPEC sections 0, 5 and 6).

The clock is pinned to Monday 2030-01-07 10:00 clinic time (`clinic_now`).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from qure.core import clock
from qure.core.db import commit
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy import service as pharmacy
from qure.prescriptions import service as prescriptions
from qure.prescriptions.dosing import FREQUENCY_HELP
from qure.prescriptions.models import Prescription
from qure.queue import service as queue
from qure.queue.models import QueueEntry
from qure.scheduling.models import Appointment
from qure.visits import service as visits
from qure.visits import vitals
from qure.visits.models import Visit, VisitNote
from tests.helpers import (
    NOW,
    flashes,
    form_post,
    make_appointment,
    make_patient,
    make_slots,
    make_user,
    page_text,
    sign_in,
)

MEDICINES = {
    "crocin": ("Crocin", "Paracetamol", "Analgesic", "TABLET", "500 mg"),
    "amoxil": ("Amoxil", "Amoxicillin", "Penicillin", "CAPSULE", "500 mg"),
    "benadryl": ("Benadryl", "Diphenhydramine", "Antihistamine", "SYRUP", "12.5 mg/5 ml"),
}
FULL_VITALS = {
    "bp_systolic": "128",
    "bp_diastolic": "84",
    "temperature": "100.4",
    "temperature_unit": "F",
    "pulse": "88",
    "spo2": "97",
    "weight_kg": "70",
    "height_cm": "175",
    "respiratory_rate": "18",
}
VITAL_NAMES = (
    "bp_systolic",
    "bp_diastolic",
    "temperature_c",
    "pulse",
    "spo2",
    "weight_kg",
    "height_cm",
    "respiratory_rate",
)


# ---- helpers -------------------------------------------------------------------------------


def field_block(page: str, name: str) -> str:
    """The `<div class="field">` that holds the input named `name` (with its errors)."""
    for block in re.findall(r'<div class="field[^"]*">.*?</div>', page, re.S):
        if f'name="{name}"' in block:
            return block
    raise AssertionError(f"no field {name} on the page")


def field_errors(page: str, name: str) -> list[str]:
    return re.findall(r'<p class="error">(.*?)</p>', field_block(page, name), re.S)


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section class="card" id="{section_id}">.*?</section>', page, re.S)
    assert match, f"no section #{section_id}"
    return match.group(0)


def make_medicines() -> dict:
    made = {}
    for key, (name, generic, drug_class, form, strength) in MEDICINES.items():
        made[key] = pharmacy.create(
            None,
            {
                "name": name,
                "generic_name": generic,
                "drug_class": drug_class,
                "dosage_form": form,
                "strength": strength,
                "unit_price": "10.00",
                "gst_rate": 12,
            },
        )
    commit()
    return made


def start_visit(doctor, patient=None, **findings) -> Visit:
    """A visit in progress by `doctor`, started through the service (for a new patient
    unless one is given), with any findings recorded."""
    patient = patient or make_patient(None, full_name="Meera Nair")
    visit = visits.start(doctor, {"patient_id": patient.id})
    commit()
    if findings:
        visits.update(doctor, visit.id, findings)
        commit()
    return visit


def complete_visit(doctor, visit, diagnosis: str = "Viral fever") -> None:
    visits.update(doctor, visit.id, {"diagnosis": diagnosis})
    visits.complete(doctor, visit.id)
    commit()


def checked_in(doctor, reception, patient) -> QueueEntry:
    """Book `patient` with `doctor` today and check them in: they wait in the doctor's queue."""
    slots = make_slots(doctor, start="10:00", end="12:00")
    appointment = make_appointment(patient, slots[0], reception, reason="Sore throat")
    entry = queue.check_in(reception, appointment.id)
    commit()
    return entry


def fresh(model, ident):
    db.session.expire_all()
    shown = {Visit: visits.SHOWN, Prescription: prescriptions.SHOWN}.get(model, ())
    return db.session.get(model, ident, options=shown, populate_existing=True)


def visits_of(patient) -> list[Visit]:
    db.session.expire_all()
    query = select(Visit).where(Visit.patient_id == patient.id).order_by(Visit.id)
    return list(db.session.scalars(query))


def prescription_of(visit) -> Prescription | None:
    db.session.expire_all()
    query = select(Prescription).where(Prescription.visit_id == visit.id)
    return db.session.scalars(query.options(*prescriptions.SHOWN)).first()


def audit_payloads(action: str) -> list[dict]:
    db.session.expire_all()
    query = select(OutboxEvent).where(OutboxEvent.topic == "audit_logs").order_by(OutboxEvent.id)
    return [row.payload for row in db.session.scalars(query) if row.payload["action"] == action]


def item_data(medicine, **fields) -> dict:
    """The item form as the doctor fills it in."""
    return {
        "medicine_id": str(medicine.id),
        "dose": "1",
        "frequency": "BD",
        "duration_days": "5",
        "quantity": "",
        "route": "",
        "instructions": "",
        **fields,
    }


def choose_url(visit, medicine) -> str:
    return f"/visits/{visit.id}/prescription/choose?medicine_id={medicine.id}"


def add_item(client, visit, medicine, **fields):
    return form_post(
        client,
        f"/visits/{visit.id}/prescription/items",
        item_data(medicine, **fields),
        page=choose_url(visit, medicine),
    )


class _FormValues(HTMLParser):
    """What a browser sends for the form `form_id`: its fields and those joined to it by
    the `form` attribute (buttons aside)."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.values = form_id, False, {}
        self._text = self._select = None

    def _ours(self, attrs: dict) -> bool:
        return attrs.get("form") == self.form_id or (self.inside and "form" not in attrs)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside = True
        elif tag == "input" and self._ours(attrs) and attrs.get("type") not in ("submit",):
            self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "textarea" and self._ours(attrs):
            self._text = attrs["name"]
            self.values[self._text] = ""
        elif tag == "select" and self._ours(attrs):
            self._select = attrs["name"]
        elif (
            tag == "option"
            and self._select
            and ("selected" in attrs or self._select not in self.values)
        ):
            self.values[self._select] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._text = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._text:
            self.values[self._text] += (
                data.removeprefix("\n") if not self.values[self._text] else data
            )


def workspace_values(page: str) -> dict:
    parser = _FormValues("visit-form")
    parser.feed(page)
    return parser.values


def save(client, visit, complete: bool = False, button: str = "all", **typed):
    """Press Save (or Complete) on the workspace after typing `typed` over what it shows."""
    url = f"/visits/{visit.id}"
    data = {**workspace_values(page_text(client.get(url))), **typed}
    data["complete" if complete else "save"] = "1" if complete else button
    return client.post(url, data=data)


def client_for(app, user):
    browser = app.test_client()
    sign_in(browser, user)
    return browser


# ---- Call next opens the workspace ---------------------------------------------------------


def test_call_next_opens_the_workspace_with_the_patients_banner(
    client, clinic_now, doctor, reception
):
    patient = make_patient(
        None,
        full_name="Meera Nair",
        date_of_birth=date(1985, 6, 15),
        sex="F",
        allergies=["Penicillin", "Sulfa drugs"],
        chronic_conditions=["Type 2 diabetes", "Hypertension"],
    )
    for days_ago, diagnosis in ((60, "Viral fever"), (30, "Acute pharyngitis")):
        with clock.fixed(NOW - timedelta(days=days_ago)):
            complete_visit(doctor, start_visit(doctor, patient), diagnosis)
    entry = checked_in(doctor, reception, patient)
    sign_in(client, doctor)

    response = form_post(client, "/queue/next", {}, page="/queue/mine")

    assert response.status_code == 302
    (_, _, visit) = visits_of(patient)
    assert visit.status == "IN_PROGRESS" and visit.doctor_id == doctor.id
    assert visit.queue_entry_id == entry.id
    assert response.headers["Location"].endswith(f"/visits/{visit.id}")
    response = client.get(response.headers["Location"])
    assert response.status_code == 200
    page = page_text(response)
    assert "Token 001 called: Meera Nair. Nobody else is waiting." in flashes(page)
    assert "<h1>Meera Nair</h1>" in page
    assert "<span>44 y</span>" in page
    assert "<span>Female</span>" in page
    assert f'<span class="mono">{patient.mrn}</span>' in page
    allergies = re.search(r'<p class="banner-allergies[^"]*"[^>]*>.*?</p>', page, re.S).group(0)
    assert 'class="banner-allergies has-allergies" role="alert"' in allergies
    assert "Penicillin, Sulfa drugs" in allergies
    assert "<strong>Chronic:</strong> Type 2 diabetes, Hypertension" in page
    history = re.search(r"<strong>Last visits:</strong>(.*?)</p>", page, re.S).group(1)
    assert "08 Dec 2029: Acute pharyngitis" in history
    assert "08 Nov 2029: Viral fever" in history
    assert history.index("Acute pharyngitis") < history.index("Viral fever")  # newest first
    assert fresh(QueueEntry, entry.id).status == "WITH_DOCTOR"


def test_call_next_for_a_patient_already_in_my_visit_ties_the_token_to_it(
    client, clinic_now, doctor, reception
):
    """The doctor started a visit from the patient page before the patient was checked in;
    Call next opens that visit, and completing it moves the queue on (SPEC 5: completing
    marks the visit, the appointment and the token COMPLETED)."""
    patient = make_patient(None, full_name="Meera Nair")
    visit = start_visit(doctor, patient, diagnosis="Acute pharyngitis")
    entry = checked_in(doctor, reception, patient)
    sign_in(client, doctor)

    response = form_post(client, "/queue/next", {}, page="/queue/mine")

    assert response.headers["Location"].endswith(f"/visits/{visit.id}")
    assert len(visits_of(patient)) == 1
    response = save(client, visit, complete=True)
    page = page_text(client.get(response.headers["Location"]))
    assert any(f.startswith("Visit completed.") for f in flashes(page))
    assert fresh(Visit, visit.id).status == "COMPLETED"
    token, appointment = fresh(QueueEntry, entry.id), fresh(Appointment, entry.appointment_id)
    assert (token.status, appointment.status) == ("COMPLETED", "COMPLETED")


def test_a_patient_without_allergies_shows_none_recorded_and_no_history(client, clinic_now, doctor):
    visit = start_visit(doctor, make_patient(None, full_name="Ravi Iyer", sex="M"))
    sign_in(client, doctor)
    page = page_text(client.get(f"/visits/{visit.id}"))
    assert "<h1>Ravi Iyer</h1>" in page and "<span>Male</span>" in page
    assert re.search(
        r'<p class="banner-allergies" role="note">\s*<strong>Allergies:</strong> ', page
    )
    assert "none recorded" in page
    assert "has-allergies" not in page
    assert "Last visits:" not in page and "Chronic:" not in page


def test_an_unknown_visit_is_404(client, clinic_now, doctor):
    sign_in(client, doctor)
    assert client.get("/visits/999999").status_code == 404


# ---- starting from the patient page --------------------------------------------------------


def test_doctor_starts_a_visit_from_the_patient_page(client, clinic_now, doctor):
    patient = make_patient(None, full_name="Meera Nair")
    sign_in(client, doctor)
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert 'action="/visits/start"' in page and ">Start a visit</button>" in page
    assert f'name="patient_id" type="hidden" value="{patient.id}"' in page

    response = form_post(
        client, "/visits/start", {"patient_id": str(patient.id)}, page=f"/patients/{patient.id}"
    )

    assert response.status_code == 302
    (visit,) = visits_of(patient)
    assert response.headers["Location"].endswith(f"/visits/{visit.id}")
    assert (visit.status, visit.doctor_id, visit.queue_entry_id) == ("IN_PROGRESS", doctor.id, None)
    assert visit.started_at == NOW
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert "A visit is in progress." in page
    assert f'href="/visits/{visit.id}">Open the visit</a>' in page
    assert ">Start a visit</button>" not in page

    # A second start (a stale page, a double click) opens the same visit.
    response = form_post(
        client, "/visits/start", {"patient_id": str(patient.id)}, page=f"/patients/{patient.id}"
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/visits/{visit.id}")
    assert len(visits_of(patient)) == 1


def test_reception_sees_no_start_button_and_cannot_start(client, clinic_now, reception):
    patient = make_patient(None, full_name="Meera Nair")
    sign_in(client, reception)
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert "<h1>Meera Nair</h1>" in page
    assert "Start a visit" not in page and 'action="/visits/start"' not in page
    response = form_post(
        client, "/visits/start", {"patient_id": str(patient.id)}, page=f"/patients/{patient.id}"
    )
    assert response.status_code == 403
    assert visits_of(patient) == []


def test_starting_for_a_patient_waiting_in_my_queue_asks_to_call_them_first(
    client, clinic_now, doctor, reception
):
    patient = make_patient(None, full_name="Meera Nair")
    entry = checked_in(doctor, reception, patient)
    sign_in(client, doctor)
    response = form_post(
        client, "/visits/start", {"patient_id": str(patient.id)}, page=f"/patients/{patient.id}"
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/patients/{patient.id}")
    page = page_text(client.get(response.headers["Location"]))
    assert "The patient holds token 001: call them first." in flashes(page)
    assert visits_of(patient) == []
    assert fresh(QueueEntry, entry.id).status == "WAITING"


# ---- vitals and findings -------------------------------------------------------------------


def test_vitals_in_fahrenheit_are_stored_in_celsius_with_the_bmi(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"

    response = save(client, visit, **FULL_VITALS)

    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)
    page = page_text(client.get(url))
    assert "Saved." in flashes(page)
    assert '<strong id="bmi">22.9</strong>' in page
    assert "Temperature 38.0 °C (100.4 °F)" in page
    assert 'value="38.0"' in field_block(page, "temperature")  # in the clinic's unit (°C)
    saved = fresh(Visit, visit.id)
    assert saved.temperature_c == Decimal("38.0")
    assert (saved.bp_systolic, saved.bp_diastolic, saved.pulse, saved.spo2) == (128, 84, 88, 97)
    assert saved.weight_kg == Decimal("70") and saved.height_cm == Decimal("175")
    assert saved.respiratory_rate == 18
    assert vitals.bmi(saved) == Decimal("22.9")


def test_a_change_without_the_csrf_token_is_refused(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    response = client.post(f"/visits/{visit.id}", data={"pulse": "80", "save": "all"})
    assert response.status_code == 400
    assert fresh(Visit, visit.id).pulse is None


def test_a_vital_emptied_in_the_form_is_cleared(client, clinic_now, doctor):
    """The form shows the stored vitals; erasing a mistaken value and saving must remove it
    (the service takes an empty value as "not recorded"), not answer "Saved." and keep it."""
    visit = start_visit(doctor, vitals={"weight_kg": "70", "spo2": 97, "pulse": 88})
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    page = page_text(client.get(url))
    assert 'value="97"' in field_block(page, "spo2")

    response = save(client, visit, weight_kg="70.00", spo2="", pulse="88")

    assert response.status_code == 302
    assert "Saved." in flashes(page_text(client.get(url)))
    saved = fresh(Visit, visit.id)
    assert (saved.weight_kg, saved.pulse) == (Decimal("70.00"), 88)
    assert saved.spo2 is None


def test_a_clinic_preferring_fahrenheit_sees_fahrenheit(
    app, client, clinic_now, doctor, monkeypatch
):
    """SPEC 5: temperature is stored in °C and shown in the clinic's preferred unit."""
    monkeypatch.setitem(app.config, "TEMPERATURE_UNIT", "F")
    visit = start_visit(doctor, vitals={"temperature": "38.0", "temperature_unit": "C"})
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"

    page = page_text(client.get(url))

    assert 'value="100.4"' in field_block(page, "temperature")
    assert re.search(
        r'<option selected value="F">°F</option>', field_block(page, "temperature_unit")
    )
    # Saving the form as shown keeps the stored value.
    assert save(client, visit, temperature="100.4", temperature_unit="F").status_code == 302
    assert fresh(Visit, visit.id).temperature_c == Decimal("38.0")

    complete_visit(doctor, visit)
    page = page_text(client.get(url))
    vitals_card = section(page, "vitals")
    assert "100.4 °F" in vitals_card, vitals_card


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"spo2": "120"}, "spo2", "Between 50 and 100 %."),
        ({"pulse": "5"}, "pulse", "Between 20 and 250 beats a minute."),
        (
            {"bp_systolic": "80", "bp_diastolic": "120"},
            "bp_systolic",
            "The systolic pressure must be above the diastolic.",
        ),
        ({"temperature": "120", "temperature_unit": "F"}, "temperature", "Between 77.0 and"),
        ({"weight_kg": "heavy"}, "weight_kg", "Give a number."),
    ],
)
def test_an_implausible_vital_is_shown_beside_its_field_and_nothing_is_saved(
    client, clinic_now, doctor, values, field, message
):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    data = {"height_cm": "170", "respiratory_rate": "16", **values}

    response = save(client, visit, **data)

    assert response.status_code == 422
    page = page_text(response)
    block = field_block(page, field)
    assert "has-error" in block and 'aria-invalid="true"' in block
    assert any(e.startswith(message) for e in field_errors(page, field)), block
    assert f'value="{values[field]}"' in block  # what was typed stays in the box
    assert field_errors(page, "height_cm") == []
    saved = fresh(Visit, visit.id)
    assert all(getattr(saved, name) is None for name in VITAL_NAMES)


@pytest.mark.parametrize("typed", ["14 Jan 2030", "14/01/2030", "14-01-2030"])
def test_a_follow_up_is_typed_the_clinics_way_whatever_the_browser(
    client, clinic_now, doctor, typed
):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    response = save(client, visit, follow_up_date=typed)
    assert response.status_code == 302
    assert fresh(Visit, visit.id).follow_up_date == date(2030, 1, 14)
    block = field_block(page_text(client.get(f"/visits/{visit.id}")), "follow_up_date")
    assert 'type="text"' in block and 'value="14 Jan 2030"' in block


def test_findings_are_saved_with_the_icd10_code_in_capitals(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    data = {
        "chief_complaint": "Sore throat",
        "symptom_duration": "3 days",
        "diagnosis": "Acute pharyngitis",
        "icd10_code": " j02.9 ",
        "treatment_plan": "Warm saline gargles",
        "follow_up_date": "2030-01-14",
    }

    response = save(client, visit, **data)

    assert response.status_code == 302
    page = page_text(client.get(url))
    assert "Saved." in flashes(page)
    assert 'value="J02.9"' in field_block(page, "icd10_code")
    assert 'value="Acute pharyngitis"' in field_block(page, "diagnosis")
    assert 'value="14 Jan 2030"' in field_block(page, "follow_up_date")
    saved = fresh(Visit, visit.id)
    assert (saved.chief_complaint, saved.symptom_duration) == ("Sore throat", "3 days")
    assert (saved.diagnosis, saved.icd10_code) == ("Acute pharyngitis", "J02.9")
    assert saved.treatment_plan == "Warm saline gargles"
    assert saved.follow_up_date == date(2030, 1, 14)


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        (
            {"follow_up_date": "2030-01-01"},
            "follow_up_date",
            "A date after today, within two years.",
        ),
        (
            {"follow_up_date": "2030-01-07"},
            "follow_up_date",
            "A date after today, within two years.",
        ),
        (
            {"icd10_code": "J02.7"},
            "icd10_code",
            "Not a code in the WHO ICD-10 list: give one such as J06.9, or leave it empty.",
        ),
    ],
)
def test_a_bad_finding_is_shown_beside_its_field_and_nothing_is_saved(
    client, clinic_now, doctor, values, field, message
):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    data = {"diagnosis": "Acute pharyngitis", "follow_up_date": "", "icd10_code": "", **values}

    response = save(client, visit, **data)

    assert response.status_code == 422
    page = page_text(response)
    assert message in field_errors(page, field)
    assert f'value="{values[field]}"' in field_block(page, field)
    assert 'value="Acute pharyngitis"' in field_block(page, "diagnosis")
    assert field_errors(page, "diagnosis") == []
    saved = fresh(Visit, visit.id)
    assert (saved.diagnosis, saved.icd10_code, saved.follow_up_date) == (None, None, None)


def test_a_diagnosis_typed_in_the_code_field_offers_codes_beside_it(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = save(client, visit, diagnosis="Sore throat", icd10_code="pharyngitis")

    assert response.status_code == 422
    (message,) = field_errors(page_text(response), "icd10_code")
    assert message.startswith("Not a code in the WHO ICD-10 list")
    assert "Did you mean: J02.9 Acute pharyngitis, unspecified;" in message
    assert 'value="pharyngitis"' in field_block(page_text(response), "icd10_code")
    assert fresh(Visit, visit.id).diagnosis is None


def test_a_diagnosis_without_a_code_is_shown_its_codes(client, clinic_now, doctor):
    visit = start_visit(doctor, diagnosis="Acute pharyngitis")
    sign_in(client, doctor)

    page = page_text(client.get(f"/visits/{visit.id}"))

    hints = re.search(r'<div class="wide icd10-hints".*?</div>', page, re.S).group(0)
    assert 'ICD-10 codes for “Acute pharyngitis”: <span class="mono">J02.9</span>' in hints
    options = re.search(r'<datalist id="icd10-options">.*?</datalist>', page, re.S).group(0)
    assert '<option value="J02.9">J02.9 Acute pharyngitis, unspecified</option>' in options
    assert 'list="icd10-options"' in field_block(page, "icd10_code")

    assert save(client, visit, icd10_code="J02.9").status_code == 302
    assert "icd10-hints" not in page_text(client.get(f"/visits/{visit.id}"))


def test_the_icd10_search_answers_json_to_doctors_and_admins(app, client, clinic_now, doctor):
    sign_in(client, doctor)
    response = client.get("/visits/icd10?q=pharyngitis")
    assert response.status_code == 200
    items = response.json["items"]
    assert items[0] == {"code": "J02.9", "description": "Acute pharyngitis, unspecified"}
    assert {"code": "J31.2", "description": "Chronic pharyngitis"} in items
    assert client.get("/visits/icd10?q=j02").json["items"][0]["code"] == "J02"
    assert client.get("/visits/icd10?q=").json == {"items": []}
    assert client_for(app, make_user(Role.ADMIN)).get("/visits/icd10?q=flu").status_code == 200
    browser = client_for(app, make_user(Role.RECEPTION))
    assert browser.get("/visits/icd10?q=flu").status_code == 403


# ---- notes ---------------------------------------------------------------------------------


def test_notes_join_the_timeline_and_after_completion_become_addenda(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    assert "No notes yet." in section(page_text(client.get(url)), "notes")

    response = save(
        client, visit, button="note", note_category="SYMPTOM", note_text="Dry cough at night"
    )

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{url}#notes")
    page = page_text(client.get(url))
    assert "Saved." in flashes(page)
    assert "Dry cough at night</textarea>" not in page  # the box is empty for the next note
    # Enter in another box presses the form's first button, "Add note": no note, no jump.
    response = save(client, visit, button="note", pulse="80")
    assert response.headers["Location"].endswith(url)
    assert fresh(Visit, visit.id).pulse == 80 and len(fresh(Visit, visit.id).notes) == 1
    notes = section(page, "notes")
    assert '<span class="tag">Symptom</span>' in notes
    assert doctor.full_name in notes and "<p>Dry cough at night</p>" in notes
    assert 'class="tag danger">addendum' not in notes
    assert ">Add note</button>" in notes

    complete_visit(doctor, visit)
    page = page_text(client.get(url))
    assert ">Add an addendum</button>" in section(page, "notes")
    response = form_post(
        client,
        f"{url}/notes",
        {"category": "OBSERVATION", "text": "Lab report: normal CBC"},
        page=url,
    )
    assert response.status_code == 302
    page = page_text(client.get(url))
    assert "Addendum added." in flashes(page)
    notes = section(page, "notes")
    assert notes.count('<span class="tag danger">addendum</span>') == 1
    assert notes.index("Dry cough at night") < notes.index("Lab report: normal CBC")
    assert '<span class="tag">Observation</span> <span class="tag danger">addendum</span>' in notes

    db.session.expire_all()
    query = select(VisitNote).where(VisitNote.visit_id == visit.id).order_by(VisitNote.id)
    saved = [(n.category, n.text, n.author_id, n.is_addendum) for n in db.session.scalars(query)]
    assert saved == [
        ("SYMPTOM", "Dry cough at night", doctor.id, False),
        ("OBSERVATION", "Lab report: normal CBC", doctor.id, True),
    ]


def test_an_empty_addendum_is_refused_beside_the_text(client, clinic_now, doctor):
    visit = start_visit(doctor)
    complete_visit(doctor, visit)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    response = form_post(client, f"{url}/notes", {"category": "SYMPTOM", "text": "  "}, page=url)
    assert response.status_code == 422
    assert field_errors(page_text(response), "text")
    assert fresh(Visit, visit.id).notes == []


def test_a_note_too_long_is_refused_beside_it_and_the_rest_is_kept(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = save(client, visit, diagnosis="Migraine", note_text="x" * 5001)

    assert response.status_code == 422
    page = page_text(response)
    assert field_errors(page, "note_text") == ["Write the note (up to 5,000 characters)."]
    assert 'value="Migraine"' in field_block(page, "diagnosis")
    assert "x" * 5001 + "</textarea>" in field_block(page, "note_text")
    saved = fresh(Visit, visit.id)
    assert (saved.diagnosis, saved.notes) == (None, [])


# ---- the prescription builder --------------------------------------------------------------


def test_medicine_search_finds_by_name_and_by_ingredient(client, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"

    page = page_text(client.get(f"{url}?mq=amox"))
    choices = re.search(r'<ul class="plain choices">.*?</ul>', page, re.S).group(0)
    assert f'href="{url}/prescription/choose?medicine_id={meds["amoxil"].id}#prescription"' in (
        choices
    )
    assert "Amoxil 500 mg" in choices and "Crocin" not in choices

    page = page_text(client.get(f"{url}?mq=Paracetamol"))
    choices = re.search(r'<ul class="plain choices">.*?</ul>', page, re.S).group(0)
    assert "Crocin 500 mg" in choices and "Paracetamol" in choices
    assert "Amoxil" not in choices and "Benadryl" not in choices

    page = page_text(client.get(f"{url}?mq=zzzz"))
    assert "No medicine matches “zzzz”." in page


def test_choosing_a_medicine_shows_the_item_form(client, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = client.get(choose_url(visit, meds["crocin"]))

    assert response.status_code == 200
    page = page_text(response)
    form = re.search(r'<form method="post"[^>]*class="item-form".*?</form>', page, re.S).group(0)
    assert f'action="/visits/{visit.id}/prescription/items"' in form
    assert "<h3>Crocin 500 mg" in form
    assert f'name="medicine_id" type="hidden" value="{meds["crocin"].id}"' in form
    for name in ("dose", "frequency", "duration_days", "quantity", "route", "instructions"):
        assert f'name="{name}"' in form
    assert 'value="1"' in field_block(form, "dose")
    assert 'value="5"' in field_block(form, "duration_days")
    assert "OD, BD, TDS, QID, HS, STAT, SOS or 1-0-1" in form
    assert 'name="override_reason"' not in form and "allergy-warning" not in form
    assert ">Add to prescription</button>" in form

    page = page_text(client.get(choose_url(visit, meds["benadryl"])))
    assert "Packs to dispense (needed for this form)." in page


def test_choosing_an_unknown_medicine_sends_back_to_the_search(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    response = client.get(f"/visits/{visit.id}/prescription/choose?medicine_id=99999")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/visits/{visit.id}#prescription")
    page = page_text(client.get(f"/visits/{visit.id}"))
    assert "Choose a medicine from the search." in flashes(page)


def test_adding_a_tablet_computes_the_quantity(client, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = add_item(
        client, visit, meds["crocin"], dose="0.5", frequency="1-0-1", instructions="after food"
    )

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/visits/{visit.id}#prescription")
    page = page_text(client.get(f"/visits/{visit.id}"))
    assert "Added Crocin." in flashes(page)
    rx = section(page, "prescription")
    row = re.search(r"<tbody>.*?</tbody>", rx, re.S).group(0)
    assert "<strong>Crocin</strong> 500 mg" in row and "Paracetamol · after food" in row
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[:4] == ["½", "1-0-1: morning and night", "5", "5"]
    assert "Allergy warning overridden" not in rx
    prescription = prescription_of(visit)
    assert prescription.doctor_id == doctor.id and prescription.patient_id == visit.patient_id
    (item,) = prescription.items
    assert (item.medicine_id, item.dose, item.frequency) == (
        meds["crocin"].id,
        Decimal("0.50"),
        "1-0-1",
    )
    assert (item.duration_days, item.quantity, item.instructions) == (5, 5, "after food")
    assert f'href="/prescriptions/{prescription.id}">Preview</a>' in rx
    assert f'href="/prescriptions/{prescription.id}/print" download>Print (PDF)</a>' in rx


def test_a_syrup_without_a_quantity_is_refused_beside_the_quantity(client, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = add_item(client, visit, meds["benadryl"], frequency="TDS")

    assert response.status_code == 422
    page = page_text(response)
    assert "Give the number of packs for a syrup." in field_errors(page, "quantity")
    assert "<h3>Benadryl 12.5 mg/5 ml" in page  # the item form stays open
    assert 'value="TDS"' in field_block(page, "frequency")
    assert prescription_of(visit) is None

    response = add_item(client, visit, meds["benadryl"], frequency="TDS", quantity="2")
    assert response.status_code == 302
    (item,) = prescription_of(visit).items
    assert item.quantity == 2


@pytest.mark.parametrize("frequency", ["twice daily", "0-0-0", "1-0"])
def test_a_bad_frequency_shows_the_accepted_forms(client, clinic_now, doctor, frequency):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = add_item(client, visit, meds["crocin"], frequency=frequency)

    assert response.status_code == 422
    assert FREQUENCY_HELP in field_errors(page_text(response), "frequency")
    assert prescription_of(visit) is None


def test_the_allergy_warning_needs_a_reason_that_is_then_recorded(client, clinic_now, doctor):
    meds = make_medicines()
    patient = make_patient(None, full_name="Meera Nair", allergies=["Penicillin"])
    visit = start_visit(doctor, patient)
    sign_in(client, doctor)

    response = add_item(client, visit, meds["amoxil"], frequency="TDS")

    assert response.status_code == 409
    page = page_text(response)
    warning = re.search(r'<div class="flash flash-error allergy-warning".*?</div>', page, re.S)
    assert warning, "no allergy warning"
    warning = warning.group(0)
    assert "Allergy warning: not added." in warning
    line = "Allergy: Penicillin — Amoxil 500 mg contains Amoxicillin, class Penicillin."
    assert f"<li>{line}</li>" in warning
    assert warning.count("<li>") == 1 and "(Penicillin)" not in warning
    # The first action offered, and the focused one, is to choose another medicine.
    after = page[page.index('class="flash flash-error allergy-warning"') :]
    first = re.search(r"<(button|a)\b[^>]*>[^<]*", after).group(0)
    assert first == ('<button type="submit" class="primary" autofocus>Choose another medicine'), (
        first
    )
    assert after.count("autofocus") == 1
    assert f'action="/visits/{visit.id}#mq"' in warning  # back to the medicine search
    # The override comes second, plainer, with its reason.
    assert after.index("Choose another medicine") < after.index("Or prescribe it anyway")
    block = field_block(page, "override_reason")
    assert "Reason to go on" in block
    assert '<button type="submit">Prescribe anyway</button>' in page
    assert ">Add to prescription</button>" not in page
    assert 'value="TDS"' in field_block(page, "frequency")  # the doctor's entries are kept
    assert prescription_of(visit) is None
    assert audit_payloads("ALLERGY_OVERRIDDEN") == []

    reason = "Took amoxicillin in 2028 without a reaction"
    response = add_item(client, visit, meds["amoxil"], frequency="TDS", override_reason=reason)

    assert response.status_code == 302
    page = page_text(client.get(f"/visits/{visit.id}"))
    assert "Added Amoxil." in flashes(page)
    assert f"Allergy warning overridden: {reason}" in section(page, "prescription")
    prescription = prescription_of(visit)
    assert prescription.allergy_override_reason == reason
    (item,) = prescription.items
    assert (item.medicine_id, item.quantity) == (meds["amoxil"].id, 15)
    (audit,) = audit_payloads("ALLERGY_OVERRIDDEN")
    assert audit["user"]["id"] == doctor.id
    assert audit["resource"] == {"type": "visit", "id": visit.id}
    assert audit["changes"]["new"]["reason"] == reason
    (match,) = audit["changes"]["new"]["matches"]
    assert (match["allergy"], match["via"], match["matched"]) == (
        "Penicillin",
        "drug class",
        "Penicillin",
    )


def test_the_medicine_search_marks_what_the_patient_is_allergic_to(client, clinic_now, doctor):
    meds = make_medicines()
    patient = make_patient(None, full_name="Meera Nair", allergies=["Penicillin", "Sulfa"])
    visit = start_visit(doctor, patient)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"

    page = page_text(client.get(f"{url}?mq=in"))  # every medicine has "in" somewhere

    listing = re.search(r'<ul class="plain choices">.*?</ul>', page, re.S).group(0)
    choices = re.findall(r"<li>.*?</li>", listing, re.S)
    amoxil = next(c for c in choices if "Amoxil 500 mg" in c)
    others = [c for c in choices if "Amoxil" not in c]
    assert len(others) == 2  # Crocin and Benadryl
    assert '<span class="tag danger allergy-badge">⚠ allergy: Penicillin</span>' in amoxil
    assert all("allergy" not in c for c in others)
    page = page_text(client.get(choose_url(visit, meds["amoxil"])))
    heading = re.search(r"<h3>.*?</h3>", page, re.S).group(0)
    assert "⚠ allergy: Penicillin" in heading
    page = page_text(client.get(choose_url(visit, meds["crocin"])))
    assert "⚠ allergy" not in re.search(r"<h3>.*?</h3>", page, re.S).group(0)


def test_removing_one_of_two_medicines(client, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    assert add_item(client, visit, meds["crocin"], frequency="OD").status_code == 302
    page = page_text(client.get(url))
    assert ">Remove</button>" not in page  # a prescription keeps at least one medicine
    assert add_item(client, visit, meds["benadryl"], quantity="1").status_code == 302
    page = page_text(client.get(url))
    rx = section(page, "prescription")
    assert rx.count(">Remove</button>") == 2
    assert f'action="{url}/prescription/items/1/remove"' in rx

    response = form_post(client, f"{url}/prescription/items/1/remove", {}, page=url)

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"{url}#prescription")
    page = page_text(client.get(url))
    assert "Removed." in flashes(page)
    rx = section(page, "prescription")
    assert "Benadryl" in rx and "Crocin" not in rx
    assert ">Remove</button>" not in rx
    items = prescription_of(visit).items
    assert [(i.position, i.medicine_id, i.quantity) for i in items] == [(1, meds["benadryl"].id, 1)]


def test_advice_is_saved_with_the_workspace_form(client, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    assert 'name="advice"' not in page_text(client.get(url))  # no prescription yet

    add_item(client, visit, meds["crocin"])
    page = page_text(client.get(url))
    assert 'form="visit-form"' in field_block(page, "advice")  # in the prescription card
    response = save(client, visit, advice="Plenty of fluids, rest", diagnosis="Viral fever")

    assert response.status_code == 302
    page = page_text(client.get(url))
    assert "Saved." in flashes(page)
    assert "Plenty of fluids, rest</textarea>" in field_block(page, "advice")
    assert prescription_of(visit).notes == "Plenty of fluids, rest"
    assert fresh(Visit, visit.id).diagnosis == "Viral fever"


# ---- one form for the whole workspace ------------------------------------------------------


def test_the_workspace_is_one_form_with_save_and_complete(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    page = page_text(client.get(f"/visits/{visit.id}"))
    forms = re.findall(r'<form method="post" action="/visits/\d+[^"]*"', page)
    assert forms == [f'<form method="post" action="/visits/{visit.id}"']
    form = re.search(r'<form [^>]*id="visit-form".*?</form>', page, re.S).group(0)
    for name in ("pulse", "diagnosis", "icd10_code", "treatment_plan", "note_text"):
        assert f'name="{name}"' in form, name
    assert '<button type="submit" name="save" value="all" class="primary">Save</button>' in form
    assert '<button type="submit" name="complete" value="1">Complete the visit</button>' in form
    assert f'data-visit-id="{visit.id}"' in form
    assert '<script src="/static/js/visit.js" defer></script>' in page


def test_save_writes_every_section_in_one_go(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = save(
        client,
        visit,
        pulse="88",
        chief_complaint="Sore throat",
        diagnosis="Acute pharyngitis",
        icd10_code="j029",
        follow_up_date="2030-01-14",
        note_category="OBSERVATION",
        note_text="Congested throat",
    )

    assert response.status_code == 302
    saved = fresh(Visit, visit.id)
    assert (saved.pulse, saved.chief_complaint) == (88, "Sore throat")
    assert (saved.diagnosis, saved.icd10_code) == ("Acute pharyngitis", "J02.9")
    assert saved.follow_up_date == date(2030, 1, 14)
    assert [(n.category, n.text) for n in saved.notes] == [("OBSERVATION", "Congested throat")]
    assert saved.status == "IN_PROGRESS"


def test_complete_after_typing_a_diagnosis_saves_it_and_completes(
    client, clinic_now, doctor, reception
):
    """The issue: typing a diagnosis and pressing Complete used to throw it away and say a
    diagnosis was needed."""
    patient = make_patient(None, full_name="Meera Nair")
    entry = checked_in(doctor, reception, patient)
    sign_in(client, doctor)
    form_post(client, "/queue/next", {}, page="/queue/mine")
    (visit,) = visits_of(patient)

    response = save(
        client,
        visit,
        complete=True,
        pulse="80",
        diagnosis="Acute pharyngitis",
        note_text="Throat congested, no exudate",
    )

    assert response.status_code == 302
    page = page_text(client.get(response.headers["Location"]))
    assert "Visit completed. The next patient can be called." in flashes(page)
    saved = fresh(Visit, visit.id)
    assert (saved.status, saved.diagnosis, saved.pulse) == ("COMPLETED", "Acute pharyngitis", 80)
    assert [n.text for n in saved.notes] == ["Throat congested, no exudate"]
    # A token that has a visit completes through the visit.
    assert fresh(QueueEntry, entry.id).status == "COMPLETED"
    assert fresh(Appointment, entry.appointment_id).status == "COMPLETED"


def test_errors_in_several_sections_show_beside_each_field_and_nothing_is_saved(
    client, clinic_now, doctor
):
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = save(
        client,
        visit,
        complete=True,
        pulse="5",
        spo2="97",
        chief_complaint="Sore throat",
        icd10_code="J02.7",
        follow_up_date="2030-01-01",
        note_text="Dry cough",
    )

    assert response.status_code == 422
    page = page_text(response)
    assert "Nothing is saved yet: correct the fields marked below." in page
    assert field_errors(page, "pulse") == ["Between 20 and 250 beats a minute."]
    assert field_errors(page, "diagnosis") == ["Record a diagnosis before completing the visit."]
    assert field_errors(page, "icd10_code")[0].startswith("Not a code in the WHO ICD-10 list")
    assert field_errors(page, "follow_up_date") == ["A date after today, within two years."]
    assert field_errors(page, "spo2") == []
    # Every typed value is still in its box.
    assert 'value="5"' in field_block(page, "pulse")
    assert 'value="97"' in field_block(page, "spo2")
    assert 'value="Sore throat"' in field_block(page, "chief_complaint")
    assert 'value="J02.7"' in field_block(page, "icd10_code")
    assert "Dry cough</textarea>" in field_block(page, "note_text")
    assert 'data-unsaved="1"' in page
    saved = fresh(Visit, visit.id)
    assert (saved.status, saved.pulse, saved.spo2, saved.chief_complaint, saved.notes) == (
        "IN_PROGRESS",
        None,
        None,
        None,
        [],
    )
    assert audit_payloads("VISIT_COMPLETED") == []


def test_completing_without_a_diagnosis_shows_it_beside_the_field(client, clinic_now, doctor):
    visit = start_visit(doctor)
    sign_in(client, doctor)

    response = save(client, visit, complete=True, treatment_plan="Rest")

    assert response.status_code == 422
    page = page_text(response)
    assert field_errors(page, "diagnosis") == ["Record a diagnosis before completing the visit."]
    assert "Rest</textarea>" in field_block(page, "treatment_plan")
    assert fresh(Visit, visit.id).status == "IN_PROGRESS"
    assert fresh(Visit, visit.id).treatment_plan is None
    assert audit_payloads("VISIT_COMPLETED") == []


def test_completing_the_called_visit_makes_it_read_only_and_completes_the_token(
    client, clinic_now, doctor, reception
):
    meds = make_medicines()
    patient = make_patient(None, full_name="Meera Nair")
    entry = checked_in(doctor, reception, patient)
    sign_in(client, doctor)
    response = form_post(client, "/queue/next", {}, page="/queue/mine")
    url = response.headers["Location"]
    (visit,) = visits_of(patient)
    assert url.endswith(f"/visits/{visit.id}")
    save(client, visit, pulse="80", temperature="37.2", temperature_unit="C")
    add_item(client, visit, meds["crocin"])

    response = save(client, visit, complete=True, diagnosis="Acute pharyngitis", icd10_code="J02.9")

    assert response.status_code == 302
    page = page_text(client.get(url))
    assert any(f.startswith("Visit completed.") for f in flashes(page))
    assert '<span class="tag done">Completed</span>' in page
    assert f'action="/visits/{visit.id}"' not in page and 'name="complete"' not in page
    assert f'action="/visits/{visit.id}/prescription/items"' not in page
    assert 'name="mq"' not in page and 'name="advice"' not in page
    assert f'data-visit-done="{visit.id}"' in page  # the browser drops its draft
    assert "Pulse 80" in page and "Temp 37.2 °C" in page
    assert "Acute pharyngitis" in page and "J02.9" in page
    saved = fresh(Visit, visit.id)
    assert saved.status == "COMPLETED" and saved.completed_at == NOW
    assert fresh(QueueEntry, entry.id).status == "COMPLETED"
    assert fresh(Appointment, entry.appointment_id).status == "COMPLETED"
    assert len(audit_payloads("VISIT_COMPLETED")) == 1

    # The read-only visit refuses changes sent anyway.
    data = {"pulse": "95", "diagnosis": "Flu", "save": "all"}
    response = form_post(client, url, data, page=url, follow_redirects=True)
    assert "This visit is completed; add an addendum note instead." in flashes(page_text(response))
    assert fresh(Visit, visit.id).pulse == 80
    data = {"diagnosis": "Flu", "complete": "1"}
    response = form_post(client, url, data, page=url, follow_redirects=True)
    assert "This visit is completed; add an addendum note instead." in flashes(page_text(response))
    assert fresh(Visit, visit.id).diagnosis == "Acute pharyngitis"


# ---- who may read and change ---------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.PHARMACIST])
def test_reception_and_pharmacist_cannot_open_a_visit(app, clinic_now, doctor, role):
    meds = make_medicines()
    visit = start_visit(doctor)
    browser = client_for(app, make_user(role))
    url = f"/visits/{visit.id}"
    assert browser.get(url).status_code == 403
    assert browser.get(choose_url(visit, meds["crocin"])).status_code == 403
    response = form_post(browser, url, {"pulse": "80", "save": "all"}, page="/patients/")
    assert response.status_code == 403
    response = form_post(
        browser, f"{url}/notes", {"category": "SYMPTOM", "text": "x"}, page="/patients/"
    )
    assert response.status_code == 403
    assert fresh(Visit, visit.id).pulse is None


def test_another_doctor_reads_the_visit_but_cannot_change_it(app, clinic_now, doctor):
    meds = make_medicines()
    visit = start_visit(doctor, diagnosis="Acute pharyngitis", vitals={"pulse": 80})
    for medicine, quantity in ((meds["crocin"], None), (meds["benadryl"], 1)):
        prescriptions.add_item(
            doctor,
            visit.id,
            {
                "medicine_id": medicine.id,
                "dose": 1,
                "frequency": "BD",
                "duration_days": 5,
                "quantity": quantity,
            },
        )
    commit()
    other = make_user(Role.DOCTOR)
    browser = client_for(app, other)
    url = f"/visits/{visit.id}"

    response = browser.get(url)

    assert response.status_code == 200
    page = page_text(response)
    assert "<h1>Meera Nair</h1>" in page and "Acute pharyngitis" in page and "Crocin" in page
    assert "Pulse 80" in page
    assert f'action="{url}/' not in page and f'action="{url}"' not in page  # no form posts
    assert 'name="mq"' not in page and ">Remove</button>" not in page
    assert browser.get(choose_url(visit, meds["amoxil"])).status_code == 200

    refusals = [
        (url, {"pulse": "120", "save": "all"}, "Only the visit's doctor changes it."),
        (url, {"diagnosis": "Flu", "complete": "1"}, "Only the visit's doctor changes it."),
        (f"{url}/notes", {"category": "SYMPTOM", "text": "Mine"}, "Only the visit's doctor"),
        (
            f"{url}/prescription/items",
            item_data(meds["amoxil"]),
            "Only the visit's doctor prescribes on it.",
        ),
        (f"{url}/prescription/items/1/remove", {}, "Only the visit's doctor prescribes on it."),
    ]
    for post_url, data, message in refusals:
        response = form_post(browser, post_url, data, page=url)
        assert response.status_code in (302, 403), post_url
        if response.status_code == 302:
            page = page_text(browser.get(response.headers["Location"]))
            assert any(f.startswith(message) for f in flashes(page)), (post_url, flashes(page))

    saved = fresh(Visit, visit.id)
    assert (saved.status, saved.pulse, saved.diagnosis, saved.notes) == (
        "IN_PROGRESS",
        80,
        "Acute pharyngitis",
        [],
    )
    prescription = prescription_of(visit)
    assert [i.medicine_id for i in prescription.items] == [meds["crocin"].id, meds["benadryl"].id]
    assert prescription.notes is None


def test_admin_reads_a_visit_but_cannot_change_it(app, clinic_now, doctor, admin):
    visit = start_visit(doctor, diagnosis="Acute pharyngitis")
    browser = client_for(app, admin)
    url = f"/visits/{visit.id}"
    response = browser.get(url)
    assert response.status_code == 200
    page = page_text(response)
    assert "<h1>Meera Nair</h1>" in page and "Acute pharyngitis" in page
    assert f'action="{url}/' not in page and f'action="{url}"' not in page
    response = form_post(browser, url, {"diagnosis": "Flu", "save": "all"}, page=url)
    assert response.status_code == 403
    response = form_post(browser, url, {"diagnosis": "Flu", "complete": "1"}, page=url)
    assert response.status_code == 403
    saved = fresh(Visit, visit.id)
    assert (saved.status, saved.diagnosis) == ("IN_PROGRESS", "Acute pharyngitis")


# ---- the printed prescription and the patient page -----------------------------------------


def written_prescription(doctor) -> tuple[Visit, Prescription, dict]:
    """A completed visit with a two-medicine prescription."""
    meds = make_medicines()
    patient = make_patient(None, full_name="Meera Nair", allergies=["Sulfa drugs"])
    visit = start_visit(doctor, patient, diagnosis="Acute pharyngitis", icd10_code="J02.9")
    prescriptions.add_item(
        doctor,
        visit.id,
        {"medicine_id": meds["crocin"].id, "dose": "0.5", "frequency": "1-0-1", "duration_days": 5},
    )
    prescriptions.add_item(
        doctor,
        visit.id,
        {
            "medicine_id": meds["benadryl"].id,
            "dose": "1",
            "frequency": "TDS",
            "duration_days": 3,
            "quantity": 1,
        },
    )
    commit()
    complete_visit(doctor, visit, "Acute pharyngitis")
    return visit, prescription_of(visit), meds


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.PHARMACIST])
def test_front_desk_and_pharmacy_preview_and_print_the_prescription(app, clinic_now, doctor, role):
    visit, prescription, _ = written_prescription(doctor)
    browser = client_for(app, make_user(role))

    response = browser.get(f"/prescriptions/{prescription.id}")

    assert response.status_code == 200
    page = page_text(response)
    assert "<h1>Prescription</h1>" in page
    assert "Meera Nair" in page and visit.patient.mrn in page
    assert "<strong>Crocin</strong> 500 mg tablet" in page
    assert "<strong>Benadryl</strong> 12.5 mg/5 ml syrup" in page
    assert "1-0-1: morning and night" in page and "TDS: three times a day" in page
    assert "Acute pharyngitis (J02.9)" in page
    assert "Allergies: Sulfa drugs" in page
    assert doctor.full_name in page
    assert f'href="/prescriptions/{prescription.id}/print"' in page
    assert f'href="/visits/{visit.id}"' not in page  # the visit is for doctors and admins

    response = browser.get(f"/prescriptions/{prescription.id}/print")

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert f"prescription-{visit.patient.mrn}-{prescription.id}.pdf" in disposition
    assert response.data.startswith(b"%PDF")


def test_an_unknown_prescription_is_404(client, clinic_now, reception):
    sign_in(client, reception)
    assert client.get("/prescriptions/999999").status_code == 404
    assert client.get("/prescriptions/999999/print").status_code == 404


def test_reception_sees_the_prescriptions_on_the_patient_page(app, clinic_now, doctor):
    visit, prescription, _ = written_prescription(doctor)
    browser = client_for(app, make_user(Role.RECEPTION))

    page = page_text(browser.get(f"/patients/{visit.patient_id}"))

    listing = re.search(r'<section class="card" id="prescriptions">.*?</section>', page, re.S)
    assert listing, "no prescriptions list"
    listing = listing.group(0)
    assert "07 Jan 2030" in listing and doctor.full_name in listing
    assert f'<a href="/prescriptions/{prescription.id}">view</a>' in listing
    assert f'<a href="/prescriptions/{prescription.id}/print">print</a>' in listing
    assert 'id="visit-history"' not in page and "Acute pharyngitis" not in page


def test_doctor_sees_the_visit_history_with_diagnosis_and_medicines(client, clinic_now, doctor):
    visit, prescription, _ = written_prescription(doctor)
    with clock.fixed(NOW + timedelta(hours=1)):
        later = start_visit(doctor, visit.patient)
    sign_in(client, doctor)

    page = page_text(client.get(f"/patients/{visit.patient_id}"))

    history = re.search(r'<section class="card" id="visit-history">.*?</section>', page, re.S)
    assert history, "no visit history"
    rows = re.findall(r"<tr>\s*<td>.*?</tr>", history.group(0), re.S)
    assert len(rows) == 2
    newest, older = rows
    assert f'href="/visits/{later.id}"' in newest and "in progress" in newest
    assert f'<a href="/visits/{visit.id}">07 Jan 2030</a>' in older
    assert doctor.full_name in older
    assert 'Acute pharyngitis <span class="mono">J02.9</span>' in older
    assert "Crocin, Benadryl" in older
    assert f'<a href="/prescriptions/{prescription.id}">view</a>' in older
    assert 'id="prescriptions"' not in page


def test_add_note_with_the_note_box_left_out_of_the_post_is_no_server_error(
    client, clinic_now, doctor
):
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"
    data = workspace_values(page_text(client.get(url)))
    data.pop("note_text", None)
    response = client.post(url, data={**data, "save": "note"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)


def test_the_builder_shows_usable_stock_so_a_stock_out_is_seen_before_saving(
    client, clinic_now, doctor, pharmacist
):
    from qure.pharmacy import stock

    meds = make_medicines()
    soon = clock.today() + timedelta(days=200)
    stock.stock_in(
        pharmacist,
        {
            "medicine_id": meds["amoxil"].id,
            "batches": [
                {"batch_number": "AM1", "quantity": 1200, "expiry_date": soon},
                {"batch_number": "AM2", "quantity": 34, "expiry_date": soon},
            ],
        },
    )
    commit()
    visit = start_visit(doctor)
    sign_in(client, doctor)
    url = f"/visits/{visit.id}"

    page = page_text(client.get(f"{url}?mq=a"))
    choices = re.search(r'<ul class="plain choices">.*?</ul>', page, re.S).group(0)
    amoxil = re.search(r"<li>.*?Amoxil.*?</li>", choices, re.S).group(0)
    crocin = re.search(r"<li>.*?Crocin.*?</li>", choices, re.S).group(0)
    assert "in stock 1,234" in amoxil
    assert "out of stock" in crocin

    chosen = page_text(client.get(choose_url(visit, meds["crocin"])))
    assert re.search(r"<h3>Crocin 500 mg.*out of stock.*</h3>", chosen, re.S)

    assert add_item(client, visit, meds["amoxil"], frequency="BD").status_code == 302
    rx = section(page_text(client.get(url)), "prescription")
    assert "in stock 1,234" in rx
