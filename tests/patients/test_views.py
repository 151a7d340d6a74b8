"""The patient pages, as staff use them in a browser (CSRF on)."""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.patients import service
from qure.patients.models import Patient
from tests.helpers import csrf_token, form_post, make_patient, page_text, sign_in

NEW = "/patients/new"
FORM = {
    "full_name": "Meera Nair",
    "date_of_birth": "1985-06-15",
    "age_years": "",
    "sex": "F",
    "phone": "+91 98450 12345",
    "email": "",
    "address": "",
    "blood_group": "",
    "allergies": "Penicillin, Sulfa drugs\npenicillin",
    "chronic_conditions": "",
    "ec_name": "",
    "ec_phone": "",
    "ec_relation": "",
}


def field_block(page: str, name: str) -> str:
    """The `<div class="field">` that holds the input named `name`."""
    for block in re.findall(r'<div class="field[^"]*">.*?</div>', page, re.S):
        if f'name="{name}"' in block:
            return block
    raise AssertionError(f"no field {name} on the page")


def patients_in_db() -> list[Patient]:
    db.session.expire_all()
    return list(db.session.scalars(select(Patient).order_by(Patient.id)))


def audit_actions() -> list[str]:
    db.session.expire_all()
    events = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
    return [e.payload["action"] for e in events if e.payload["resource"]["type"] == "patient"]


def rows(page: str) -> int:
    return len(re.findall(r'<td class="mono">QC-\d{6}</td>', page))


# ---- finding -------------------------------------------------------------------------


def test_search_box_finds_by_fragment_and_shows_the_mrn(client, reception):
    target = make_patient(reception, full_name="Zoë Fernandes")
    other = make_patient(reception, full_name="Priya Sharma")
    sign_in(client, reception)
    response = client.get("/patients/?q=FERN")
    assert response.status_code == 200
    page = page_text(response)
    assert 'name="q"' in page and 'value="FERN"' in page
    assert "Zoë Fernandes" in page
    assert target.mrn in page
    assert "Priya Sharma" not in page and other.mrn not in page
    assert f'href="/patients/{target.id}"' in page


def test_search_by_accentless_name_phone_and_mrn(client, reception):
    target = make_patient(reception, full_name="Zoë Fernandes", phone="+91 98765 43210")
    make_patient(reception, full_name="Priya Sharma")
    sign_in(client, reception)
    for q in ("zoe", "98765", target.mrn.lower()):
        page = page_text(client.get("/patients/", query_string={"q": q}))
        assert rows(page) == 1, q
        assert "Zoë Fernandes" in page


def test_no_match_says_so(client, reception):
    make_patient(reception, full_name="Priya Sharma")
    sign_in(client, reception)
    page = page_text(client.get("/patients/?q=nobody"))
    assert "No patients to show." in page
    assert "Priya Sharma" not in page


def test_pagination_links(client, reception):
    for i in range(25):
        make_patient(reception, full_name=f"Pagetest Person {i:02d}")
    make_patient(reception, full_name="Someone Else")
    sign_in(client, reception)
    first = page_text(client.get("/patients/?q=pagetest"))
    assert rows(first) == 20
    assert "Page 1 of 2 (25 in all)" in first
    next_link = re.search(r'<a href="([^"]+)" rel="next">', first).group(1)
    assert "page=2" in next_link and "q=pagetest" in next_link
    assert "archived" not in next_link
    assert 'rel="prev"' not in first
    second = page_text(client.get(next_link))
    assert rows(second) == 5
    assert "Page 2 of 2 (25 in all)" in second
    assert 'rel="next"' not in second
    prev_link = re.search(r'<a href="([^"]+)" rel="prev">', second).group(1)
    assert "page=1" in prev_link and "q=pagetest" in prev_link
    names = set(re.findall(r"Pagetest Person \d\d", first + second))
    assert len(names) == 25


def test_archived_patients_appear_only_when_an_admin_asks(client, admin):
    kept = make_patient(admin, full_name="Kept Person")
    gone = make_patient(admin, full_name="Gone Person")
    service.archive(admin, gone.id)
    db.session.commit()
    sign_in(client, admin)
    page = page_text(client.get("/patients/?q=person"))
    assert kept.mrn in page and gone.mrn not in page
    assert "Include archived patients" in page
    page = page_text(client.get("/patients/?q=person&archived=1"))
    assert kept.mrn in page and gone.mrn in page
    assert 'class="tag">archived' in page


def test_reception_cannot_list_archived_patients(client, admin, reception):
    gone = make_patient(admin, full_name="Gone Person")
    service.archive(admin, gone.id)
    db.session.commit()
    sign_in(client, reception)
    page = page_text(client.get("/patients/?q=gone&archived=1"))
    assert gone.mrn not in page
    assert "Include archived patients" not in page


def test_odd_search_input_is_harmless(client, reception):
    make_patient(reception, full_name="Plain Name")
    sign_in(client, reception)
    for url in ("/patients/?q=%25", "/patients/?q=%00", "/patients/?q=²", "/patients/?page=abc"):
        assert client.get(url).status_code == 200, url
    page = page_text(client.get("/patients/?page=99999999999999999999"))
    assert "No patients to show." in page
    assert client.get(f"/patients/{2**64}").status_code == 404


# ---- registering ---------------------------------------------------------------------


def test_register_redirects_to_the_patient_page(client, reception):
    sign_in(client, reception)
    response = form_post(client, NEW, FORM)
    assert response.status_code == 302
    (patient,) = patients_in_db()
    assert response.headers["Location"].endswith(f"/patients/{patient.id}")
    page = page_text(client.get(response.headers["Location"]))
    assert "Meera Nair" in page
    assert patient.mrn in page
    assert f"Registered Meera Nair as {patient.mrn}." in page
    assert "<li>Penicillin</li>" in page and "<li>Sulfa drugs</li>" in page
    assert patient.allergies == ["Penicillin", "Sulfa drugs"]
    assert patient.phone == "+919845012345"
    assert patient.created_by_id == reception.id
    assert audit_actions() == ["PATIENT_CREATED"]


def test_register_with_an_approximate_age(client, reception):
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, "date_of_birth": "", "age_years": "70"})
    assert response.status_code == 302
    (patient,) = patients_in_db()
    assert patient.dob_estimated is True
    assert service.age(patient) == 70
    page = page_text(client.get(response.headers["Location"]))
    assert "70 y (estimated)" in page


def test_register_with_every_field(client, reception):
    sign_in(client, reception)
    response = form_post(
        client,
        NEW,
        {
            **FORM,
            "sex": "M",
            "full_name": "Arjun Menon",
            "email": "arjun@example.com",
            "address": "7 Beach Road",
            "blood_group": "B-",
            "chronic_conditions": "Asthma\nHypertension",
            "ec_name": "Lakshmi Menon",
            "ec_phone": "98450 77777",
            "ec_relation": "wife",
        },
    )
    assert response.status_code == 302
    (patient,) = patients_in_db()
    assert patient.sex == "M"
    assert patient.email == "arjun@example.com"
    assert patient.blood_group == "B-"
    assert patient.chronic_conditions == ["Asthma", "Hypertension"]
    assert patient.emergency_contact == {
        "name": "Lakshmi Menon",
        "phone": "+919845077777",
        "relation": "wife",
    }
    page = page_text(client.get(response.headers["Location"]))
    assert "Blood group B-" in page
    assert "Lakshmi Menon (wife)" in page
    assert '<span class="mono">+91 98450 77777</span>' in page


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"phone": "12345"}, "phone", "Phone: Too short for a phone number; give all of it"),
        ({"phone": "abc"}, "phone", "Phone: Not a phone number"),
        ({"phone": "55555 55555"}, "phone", "Phone: Not an Indian number in use"),
        ({"phone": ""}, "phone", "Phone is required."),
        ({"full_name": ""}, "full_name", "Full name is required."),
        (
            {"full_name": "A"},
            "full_name",
            "Full name: Give the patient's full name (2 to 120 characters).",
        ),
        ({"age_years": "40"}, "date_of_birth", "Give a date of birth or an approximate age"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth", "cannot be in the future"),
        ({"date_of_birth": ""}, "date_of_birth", "Give a date of birth, or an approximate age"),
        ({"date_of_birth": "", "age_years": "131"}, "age_years", "between 0 and 130"),
        ({"email": "not-an-email"}, "email", "Give a valid email address"),
        ({"sex": "Q"}, "sex", "Not a valid choice"),
        ({"blood_group": "C+"}, "blood_group", "Not a valid choice"),
        ({"ec_name": "Asha", "ec_phone": "12"}, "ec_phone", "Emergency contact phone: Too short"),
        ({"full_name": "Meera\x00Nair"}, "full_name", "Contains a character that is not"),
    ],
)
def test_an_error_appears_beside_its_field_and_nothing_is_saved(
    client, reception, changes, field, message
):
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, **changes})
    assert response.status_code == 422
    page = page_text(response)
    block = field_block(page, field)
    assert "has-error" in block
    assert message in block
    assert patients_in_db() == []
    assert audit_actions() == []


def test_the_form_keeps_what_was_typed_after_an_error(client, reception):
    sign_in(client, reception)
    page = page_text(form_post(client, NEW, {**FORM, "phone": "12345"}))
    assert 'value="Meera Nair"' in field_block(page, "full_name")
    assert 'value="12345"' in field_block(page, "phone")


def test_a_post_without_the_csrf_token_is_refused(client, reception):
    sign_in(client, reception)
    response = client.post(NEW, data=FORM)
    assert response.status_code == 400
    assert patients_in_db() == []


def test_a_possible_duplicate_is_shown_and_can_be_registered_anyway(client, reception):
    existing = make_patient(
        reception, full_name="Meera Nair", date_of_birth=date(1985, 6, 15), phone="+919845012345"
    )
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, "full_name": "Maya Nair"})
    assert response.status_code == 409
    page = page_text(response)
    assert "This may be a patient we already have." in page
    assert f'<a href="/patients/{existing.id}">Meera Nair</a>' in page
    assert existing.mrn in page
    checkbox = field_block(page, "confirm_new")
    assert 'type="checkbox"' in checkbox
    assert "register anyway" in checkbox
    assert 'value="Maya Nair"' in field_block(page, "full_name")
    assert len(patients_in_db()) == 1

    response = form_post(client, NEW, {**FORM, "full_name": "Maya Nair", "confirm_new": "y"})
    assert response.status_code == 302
    assert [p.full_name for p in patients_in_db()] == ["Meera Nair", "Maya Nair"]


def test_the_register_anyway_box_is_not_offered_without_a_duplicate(client, reception):
    sign_in(client, reception)
    page = page_text(client.get(NEW))
    assert 'name="confirm_new"' not in page
    assert 'name="full_name"' in page


def test_non_latin_name_round_trips_and_is_found(client, reception):
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, "full_name": "अमित शर्मा"})
    assert response.status_code == 302
    assert "अमित शर्मा" in page_text(client.get(response.headers["Location"]))
    (patient,) = patients_in_db()
    assert patient.full_name == "अमित शर्मा"
    page = page_text(client.get("/patients/", query_string={"q": "अमित"}))
    assert "अमित शर्मा" in page and patient.mrn in page


# ---- editing -------------------------------------------------------------------------


def test_the_edit_form_is_pre_filled_and_saves(client, reception):
    patient = make_patient(
        reception,
        full_name="Kiran Rao",
        date_of_birth=date(1979, 11, 2),
        phone="9845011111",
        allergies=["Aspirin", "Latex"],
        emergency_contact={"name": "Asha Rao", "phone": "9845022222", "relation": "sister"},
    )
    sign_in(client, reception)
    url = f"/patients/{patient.id}/edit"
    page = page_text(client.get(url))
    assert 'value="Kiran Rao"' in field_block(page, "full_name")
    assert 'value="02 Nov 1979"' in field_block(page, "date_of_birth")
    assert 'type="text"' in field_block(page, "date_of_birth")
    assert 'value="+91 98450 11111"' in field_block(page, "phone")
    assert 'value="+91 98450 22222"' in field_block(page, "ec_phone")
    assert "Aspirin\nLatex" in field_block(page, "allergies")
    assert 'value="Asha Rao"' in field_block(page, "ec_name")
    assert '<option selected value="F">' in field_block(page, "sex")

    response = form_post(
        client,
        url,
        {
            **FORM,
            "full_name": "Kiran Rao",
            "date_of_birth": "1979-11-02",
            "phone": "98450 33333",
            "allergies": "Aspirin\nLatex\nIbuprofen",
            "ec_name": "Asha Rao",
            "ec_phone": "9845022222",
            "ec_relation": "sister",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/patients/{patient.id}")
    (saved,) = patients_in_db()
    assert saved.phone == "+919845033333"
    assert saved.allergies == ["Aspirin", "Latex", "Ibuprofen"]
    assert saved.full_name == "Kiran Rao"
    page = page_text(client.get(response.headers["Location"]))
    assert "Saved." in page and "<li>Ibuprofen</li>" in page
    db.session.expire_all()
    (event,) = [
        e.payload
        for e in db.session.scalars(select(OutboxEvent))
        if e.payload["action"] == "PATIENT_UPDATED"
    ]
    assert event["changes"]["old"] == {
        "phone": "+919845011111",
        "allergies": ["Aspirin", "Latex"],
    }
    assert event["changes"]["new"] == {
        "phone": "+919845033333",
        "allergies": ["Aspirin", "Latex", "Ibuprofen"],
    }


def test_saving_the_edit_form_keeps_an_estimated_birth_date_estimated(client, reception):
    patient = service.register(
        reception, {**{k: FORM[k] for k in ("full_name", "sex", "phone")}, "age_years": 60}
    )
    db.session.commit()
    sign_in(client, reception)
    url = f"/patients/{patient.id}/edit"
    page = page_text(client.get(url))
    born = re.search(r'name="date_of_birth"[^>]* value="([^"]+)"', page).group(1)
    response = form_post(client, url, {**FORM, "date_of_birth": born, "address": "New address"})
    assert response.status_code == 302
    (saved,) = patients_in_db()
    assert saved.address == "New address"
    assert saved.dob_estimated is True
    assert service.age(saved) == 60


def test_an_edit_error_appears_beside_the_field_and_changes_nothing(client, reception):
    patient = make_patient(reception, full_name="Kiran Rao", phone="9845011111")
    sign_in(client, reception)
    url = f"/patients/{patient.id}/edit"
    response = form_post(client, url, {**FORM, "full_name": "Kiran R", "phone": "12345"})
    assert response.status_code == 422
    page = page_text(response)
    assert "Phone: Too short for a phone number" in field_block(page, "phone")
    assert "Edit Kiran Rao" in page
    (saved,) = patients_in_db()
    assert (saved.full_name, saved.phone) == ("Kiran Rao", "+919845011111")
    assert audit_actions() == ["PATIENT_CREATED"]


def test_an_archived_patient_cannot_be_edited(client, admin):
    patient = make_patient(admin, full_name="Kiran Rao")
    service.archive(admin, patient.id)
    db.session.commit()
    sign_in(client, admin)
    url = f"/patients/{patient.id}/edit"
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/patients/{patient.id}")
    page = page_text(client.get(response.headers["Location"]))
    assert "This patient is archived; an admin can restore them." in page
    assert f'href="{url}"' not in page
    response = form_post(client, url, {**FORM, "full_name": "Changed"}, page=NEW)
    assert response.status_code == 302
    assert patients_in_db()[0].full_name == "Kiran Rao"


def test_unknown_patient_is_404(client, reception):
    sign_in(client, reception)
    assert client.get("/patients/987654321").status_code == 404
    assert client.get("/patients/987654321/edit").status_code == 404


# ---- archive and restore -------------------------------------------------------------


def test_only_admin_sees_archive_and_restore(client, admin, reception):
    patient = make_patient(admin, full_name="Kiran Rao")
    url = f"/patients/{patient.id}"
    sign_in(client, reception)
    page = page_text(client.get(url))
    assert "Kiran Rao" in page
    assert f'href="{url}/edit"' in page
    assert f'action="{url}/archive"' not in page
    assert ">Archive</button>" not in page
    client.post("/logout", data={"csrf_token": csrf_token(client, url)})

    sign_in(client, admin)
    page = page_text(client.get(url))
    assert f'action="{url}/archive"' in page
    assert ">Archive</button>" in page
    assert f'action="{url}/restore"' not in page


def test_reception_cannot_archive_or_restore(client, admin, reception):
    patient = make_patient(admin, full_name="Kiran Rao")
    url = f"/patients/{patient.id}"
    sign_in(client, reception)
    response = form_post(client, f"{url}/archive", {}, page=url)
    assert response.status_code == 403
    assert patients_in_db()[0].archived_at is None
    service.archive(admin, patient.id)
    db.session.commit()
    response = form_post(client, f"{url}/restore", {}, page=url)
    assert response.status_code == 403
    assert patients_in_db()[0].archived_at is not None


def test_admin_archives_and_restores(client, admin):
    patient = make_patient(admin, full_name="Kiran Rao")
    url = f"/patients/{patient.id}"
    sign_in(client, admin)
    response = form_post(client, f"{url}/archive", {}, page=url)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(url)
    assert patients_in_db()[0].archived_at is not None
    page = page_text(client.get(url))
    assert "Kiran Rao is archived." in page
    assert "Archived " in page
    assert f'action="{url}/restore"' in page
    assert f'action="{url}/archive"' not in page
    assert f'href="{url}/edit"' not in page
    assert patient.mrn not in page_text(client.get("/patients/?q=kiran"))

    response = form_post(client, f"{url}/restore", {}, page=url)
    assert response.status_code == 302
    assert patients_in_db()[0].archived_at is None
    assert "Kiran Rao is restored." in page_text(client.get(url))
    assert patient.mrn in page_text(client.get("/patients/?q=kiran"))
    assert audit_actions() == ["PATIENT_CREATED", "PATIENT_ARCHIVED", "PATIENT_RESTORED"]


def test_archiving_twice_shows_the_conflict(client, admin):
    patient = make_patient(admin, full_name="Kiran Rao")
    url = f"/patients/{patient.id}"
    sign_in(client, admin)
    token = csrf_token(client, url)
    assert client.post(f"{url}/archive", data={"csrf_token": token}).status_code == 302
    response = client.post(f"{url}/archive", data={"csrf_token": token}, follow_redirects=True)
    assert "This patient is already archived." in page_text(response)
    response = client.post(f"{url}/restore", data={"csrf_token": token})
    response = client.post(f"{url}/restore", data={"csrf_token": token}, follow_redirects=True)
    assert "This patient is not archived." in page_text(response)
    assert audit_actions() == ["PATIENT_CREATED", "PATIENT_ARCHIVED", "PATIENT_RESTORED"]


# ---- who may see what ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["doctor", "pharmacist"])
def test_doctor_and_pharmacist_may_read_but_not_register_or_edit(client, request, role):
    user = request.getfixturevalue(role)
    patient = make_patient(None, full_name="Kiran Rao", allergies=["Aspirin"])
    sign_in(client, user)
    index = page_text(client.get("/patients/?q=kiran"))
    assert patient.mrn in index
    assert 'href="/patients/new"' not in index
    response = client.get(f"/patients/{patient.id}")
    assert response.status_code == 200
    page = page_text(response)
    assert "Kiran Rao" in page and "<li>Aspirin</li>" in page
    assert "/edit" not in page and "/archive" not in page
    assert client.get(NEW).status_code == 403
    assert client.get(f"/patients/{patient.id}/edit").status_code == 403
    token = csrf_token(client, f"/patients/{patient.id}")
    assert client.post(NEW, data={**FORM, "csrf_token": token}).status_code == 403
    assert len(patients_in_db()) == 1


@pytest.mark.parametrize("url", ["/patients/", "/patients/new", "/patients/1", "/patients/1/edit"])
def test_signed_out_visitors_are_sent_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_the_patient_page_shows_the_record(client, reception):
    today = clock.today()
    patient = make_patient(
        reception,
        full_name="Kiran Rao",
        date_of_birth=date(today.year - 44, 1, 1),
        sex="M",
        phone="9845011111",
        email="kiran@example.com",
        address="3 Hill Road",
        blood_group="AB+",
        chronic_conditions=["Diabetes"],
    )
    sign_in(client, reception)
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert "<span>44 y</span>" in page
    assert "Male" in page
    assert "Blood group AB+" in page
    assert '<dd class="mono">+91 98450 11111</dd>' in page
    assert "kiran@example.com" in page and "3 Hill Road" in page
    assert "<li>Diabetes</li>" in page
    assert "None recorded." in page
    assert f"01 Jan {today.year - 44}" in page


def test_unescaped_html_in_a_name_is_shown_as_text(client, reception):
    make_patient(reception, full_name="<b>Bold</b> Person")
    sign_in(client, reception)
    raw = client.get("/patients/?q=bold").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; Person" in raw
    assert "<b>Bold</b>" not in raw


def test_registered_count_matches(client, reception):
    sign_in(client, reception)
    for i in range(3):
        response = form_post(
            client, NEW, {**FORM, "full_name": f"Person {i}", "phone": f"98450000{i:02d}"}
        )
        assert response.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Patient)) == 3


# ---- one stored form for phones ------------------------------------------------------


def test_registering_again_with_91_warns_of_the_first_record(client, reception):
    # The issue: the same number with "+91" was a different number, so no warning, and a
    # second record without the first one's penicillin allergy.
    first = make_patient(
        reception,
        full_name="Meera Nair",
        date_of_birth=date(1985, 6, 15),
        phone="98765 43210",
        allergies=["Penicillin"],
    )
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, "phone": "+91 98765 43210", "allergies": ""})
    assert response.status_code == 409
    page = page_text(response)
    assert "This may be a patient we already have." in page
    assert f'<a href="/patients/{first.id}">Meera Nair</a>' in page
    assert [p.id for p in patients_in_db()] == [first.id]


def test_search_by_the_number_typed_any_way_shows_it_the_indian_way(client, reception):
    target = make_patient(reception, full_name="Zoë Fernandes", phone="98765 43210")
    make_patient(reception, full_name="Priya Sharma", phone="+91 91111 22222")
    sign_in(client, reception)
    for q in ("+919876543210", "09876543210", "98765 43210", "43210"):
        page = page_text(client.get("/patients/", query_string={"q": q}))
        assert rows(page) == 1, q
        assert target.mrn in page, q
        assert '<td class="mono">+91 98765 43210</td>' in page, q


def test_the_patient_page_shows_both_phones_the_indian_way(client, reception):
    patient = make_patient(
        reception,
        phone="09876543210",
        emergency_contact={"name": "Arun", "phone": "0091 98450 99999", "relation": "son"},
    )
    sign_in(client, reception)
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert '<dd class="mono">+91 98765 43210</dd>' in page
    assert 'Arun (son) · <span class="mono">+91 98450 99999</span>' in page


# ---- every error at once -------------------------------------------------------------


def summary(page: str) -> str:
    found = re.search(
        r'<div class="flash flash-error" role="alert" id="error-summary">(.*?)</div>', page, re.S
    )
    assert found, "no error summary on the page"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def test_an_empty_name_and_a_bad_phone_are_both_reported_at_once(client, reception):
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, "full_name": "", "phone": "98765"})
    assert response.status_code == 422
    page = page_text(response)
    assert "Full name is required." in field_block(page, "full_name")
    assert "Phone: Too short for a phone number" in field_block(page, "phone")
    assert summary(page) == "2 fields need attention: Full name, Phone"
    assert '<a href="#full_name">Full name</a>' in page and '<a href="#phone">Phone</a>' in page
    assert patients_in_db() == []


def test_an_unreadable_date_and_the_service_rules_are_reported_at_once(client, reception):
    sign_in(client, reception)
    changes = {
        "date_of_birth": "31/31/1985",
        "phone": "55555 55555",
        "email": "nope",
        "ec_name": "Asha",
        "ec_phone": "12",
    }
    page = page_text(form_post(client, NEW, {**FORM, **changes}))
    assert "like 02 Dec 2026" in field_block(page, "date_of_birth")
    # The service's own message for a missing date is not added to the form's.
    assert "Give a date of birth" not in field_block(page, "date_of_birth")
    assert "Phone: Not an Indian number in use" in field_block(page, "phone")
    assert "Email: Give a valid email address" in field_block(page, "email")
    assert "Emergency contact phone: Too short" in field_block(page, "ec_phone")
    assert summary(page) == (
        "4 fields need attention: Date of birth, Phone, Email, Emergency contact phone"
    )


def test_one_bad_field_says_one_field(client, reception):
    sign_in(client, reception)
    page = page_text(form_post(client, NEW, {**FORM, "phone": "98765"}))
    assert summary(page) == "1 field needs attention: Phone"


def test_the_edit_form_reports_every_error_at_once(client, reception):
    patient = make_patient(reception, full_name="Kiran Rao", phone="9845011111")
    sign_in(client, reception)
    url = f"/patients/{patient.id}/edit"
    response = form_post(client, url, {**FORM, "full_name": "", "phone": "98765"})
    assert response.status_code == 422
    page = page_text(response)
    assert "Full name is required." in field_block(page, "full_name")
    assert "Phone: Too short for a phone number" in field_block(page, "phone")
    assert summary(page) == "2 fields need attention: Full name, Phone"
    (saved,) = patients_in_db()
    assert (saved.full_name, saved.phone) == ("Kiran Rao", "+919845011111")


def test_no_summary_on_a_fresh_form(client, reception):
    sign_in(client, reception)
    assert 'id="error-summary"' not in page_text(client.get(NEW))


# ---- no dead ends after registering --------------------------------------------------


def test_the_patient_page_offers_booking_and_a_walk_in_for_this_patient(client, reception):
    sign_in(client, reception)
    response = form_post(client, NEW, FORM)
    (patient,) = patients_in_db()
    page = page_text(client.get(response.headers["Location"]))
    assert f'href="/appointments/book?patient_id={patient.id}">Book an appointment</a>' in page
    assert f'href="/queue/today?patient_id={patient.id}#walk-in">Walk-in</a>' in page
    # The links lead somewhere that works for this user.
    assert client.get(f"/appointments/book?patient_id={patient.id}").status_code == 200
    assert client.get(f"/queue/today?patient_id={patient.id}").status_code == 200


def test_a_doctor_and_an_archived_patient_get_no_booking_links(client, admin, doctor):
    patient = make_patient(admin)
    sign_in(client, doctor)
    assert "Book an appointment" not in page_text(client.get(f"/patients/{patient.id}"))
    service.archive(admin, patient.id)
    db.session.commit()
    client.get("/logout")
    sign_in(client, admin)
    page = page_text(client.get(f"/patients/{patient.id}"))
    assert "Book an appointment" not in page and ">Walk-in<" not in page


def test_the_register_page_prefills_the_name(client, reception):
    sign_in(client, reception)
    page = page_text(client.get(NEW, query_string={"name": "  Meera   Nair "}))
    assert 'value="Meera Nair"' in field_block(page, "full_name")


def test_after_registering_next_is_followed_with_the_new_patient(client, reception):
    sign_in(client, reception)
    back = "/appointments/book?doctor_id=3&date=2030-01-07&patient_id=99#slots"
    page_url = f"{NEW}?next={quote(back)}"
    hidden = field_block_hidden(page_text(client.get(page_url)))
    assert f'value="{back}"' in hidden
    # What a browser posts: the page's own address, with the hidden field.
    response = form_post(client, page_url, {**FORM, "next": back})
    assert response.status_code == 302
    (patient,) = patients_in_db()
    assert response.headers["Location"] == (
        f"/appointments/book?doctor_id=3&date=2030-01-07&patient_id={patient.id}#slots"
    )


def test_next_survives_a_failed_submission(client, reception):
    sign_in(client, reception)
    page = page_text(client.get(NEW, query_string={"next": "/queue/today"}))
    assert '<input id="next" name="next" type="hidden" value="/queue/today">' in page
    failed = form_post(client, NEW, {**FORM, "phone": "98765", "next": "/queue/today"})
    assert failed.status_code == 422
    assert 'name="next" type="hidden" value="/queue/today"' in page_text(failed)
    response = form_post(client, NEW, {**FORM, "next": "/queue/today"})
    (patient,) = patients_in_db()
    assert response.headers["Location"] == f"/queue/today?patient_id={patient.id}"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "http:/evil.example",
        "",
    ],
)
def test_next_never_leads_off_the_site(client, reception, target):
    sign_in(client, reception)
    page = page_text(client.get(NEW, query_string={"next": target}))
    assert "evil" not in field_block_hidden(page)
    response = form_post(client, NEW, {**FORM, "next": target})
    assert response.status_code == 302
    (patient,) = patients_in_db()
    assert response.headers["Location"] == f"/patients/{patient.id}"


def field_block_hidden(page: str) -> str:
    found = re.search(r'<input id="next"[^>]*>', page)
    assert found, "no next field"
    return found.group(0)


def test_a_duplicate_can_be_taken_to_next_instead(client, reception):
    existing = make_patient(
        reception, full_name="Meera Nair", date_of_birth=date(1985, 6, 15), phone="+919845012345"
    )
    sign_in(client, reception)
    response = form_post(client, NEW, {**FORM, "next": "/queue/today"})
    assert response.status_code == 409
    page = page_text(response)
    assert (
        f'<a class="button" href="/queue/today?patient_id={existing.id}">'
        "Continue with this patient</a>"
    ) in page


# ---- ages ------------------------------------------------------------------------------


def test_ages_read_y_and_estimated_in_pages_and_search(client, reception):
    today = clock.today()
    known = make_patient(
        reception, full_name="Known Age", date_of_birth=date(today.year - 58, 1, 1)
    )
    guessed = make_patient(reception, full_name="Guessed Age", date_of_birth=None, age_years=58)
    sign_in(client, reception)
    page = page_text(client.get("/patients/", query_string={"q": "age"}))
    assert "<td>58 y / F</td>" in page
    assert "<td>58 y (estimated) / F</td>" in page
    assert "<span>58 y</span>" in page_text(client.get(f"/patients/{known.id}"))
    assert "<span>58 y (estimated)</span>" in page_text(client.get(f"/patients/{guessed.id}"))
