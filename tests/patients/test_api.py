"""`/api/v1/patients`: every status code a client can meet."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.patients.models import Patient
from tests.helpers import bearer, error, make_patient

URL = "/api/v1/patients"
BODY = {
    "full_name": "Meera Nair",
    "date_of_birth": "1985-06-15",
    "sex": "F",
    "phone": "+91 98450 12345",
}


def patients_in_db() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Patient))


def stored(patient_id: int) -> Patient:
    db.session.expire_all()
    return db.session.get(Patient, patient_id)


def actions(patient_id: int) -> list[str]:
    db.session.expire_all()
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [
        r.payload["action"]
        for r in rows
        if r.payload["resource"] == {"type": "patient", "id": patient_id}
    ]


# ---- reading -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "reception", "doctor", "pharmacist"])
def test_every_role_may_search(client, request, role):
    user = request.getfixturevalue(role)
    make_patient(user, full_name="Ravi Shankar")
    make_patient(user, full_name="Anita Desai")
    response = client.get(f"{URL}?q=shank", headers=bearer(client, user))
    assert response.status_code == 200
    assert response.json["total"] == 1
    assert response.json["page"] == 1
    assert response.json["per_page"] == 50
    assert [p["full_name"] for p in response.json["items"]] == ["Ravi Shankar"]


@pytest.mark.parametrize("role", ["doctor", "pharmacist"])
def test_every_role_may_read_one_patient(client, request, role):
    user = request.getfixturevalue(role)
    patient = make_patient(None, full_name="Read Me")
    response = client.get(f"{URL}/{patient.id}", headers=bearer(client, user))
    assert response.status_code == 200
    assert response.json["full_name"] == "Read Me"
    assert response.json["mrn"] == patient.mrn


def test_search_without_a_token_is_401(client):
    error(client.get(URL), 401, "unauthorized")


def test_a_bad_token_is_401(client):
    response = client.get(URL, headers={"Authorization": "Bearer not.a.token"})
    error(response, 401, "unauthorized")


def test_the_session_cookie_is_not_enough(client, reception):
    from tests.helpers import sign_in

    sign_in(client, reception)
    error(client.get(URL), 401, "unauthorized")


def test_search_by_name_phone_mrn_and_id(client, reception):
    target = make_patient(reception, full_name="Zoë Fernandes", phone="+91 98765 43210")
    make_patient(reception, full_name="Priya Sharma", phone="+91 91111 22222")
    headers = bearer(client, reception)
    number = int(target.mrn[3:])
    for q in ("zoe", "ZOË", "nandes", "+91 98765 43210", "98765", target.mrn, f"qc-{number}"):
        response = client.get(URL, query_string={"q": q}, headers=headers)
        assert response.status_code == 200
        assert [p["id"] for p in response.json["items"]] == [target.id], q
    response = client.get(URL, query_string={"q": str(target.id)}, headers=headers)
    assert response.json["items"][0]["id"] == target.id


def test_search_by_the_number_typed_any_way(client, reception):
    target = make_patient(reception, full_name="Zoë Fernandes", phone="98765 43210")
    make_patient(reception, full_name="Priya Sharma", phone="+91 91111 22222")
    headers = bearer(client, reception)
    for q in ("+919876543210", "09876543210", "98765 43210", "0091 98765 43210", "43210"):
        response = client.get(URL, query_string={"q": q}, headers=headers)
        assert [p["id"] for p in response.json["items"]] == [target.id], q
        assert response.json["items"][0]["phone"] == "+919876543210"


def test_search_ranks_best_match_first(client, reception):
    for name in ("Ranil", "Sunil Anil", "Anil Kumar Venkataraman Subramaniam", "Vanilla Anilkumar"):
        make_patient(reception, full_name=name)
    response = client.get(f"{URL}?q=anil", headers=bearer(client, reception))
    found = [p["full_name"] for p in response.json["items"]]
    assert found[0] == "Anil Kumar Venkataraman Subramaniam"
    assert set(found[1:3]) == {"Sunil Anil", "Vanilla Anilkumar"}
    assert found[3:] == ["Ranil"]


def test_search_treats_like_wildcards_literally(client, reception):
    make_patient(reception, full_name="Plain Name")
    make_patient(reception, full_name="Fifty% Off")
    headers = bearer(client, reception)
    response = client.get(URL, query_string={"q": "%"}, headers=headers)
    assert [p["full_name"] for p in response.json["items"]] == ["Fifty% Off"]
    response = client.get(URL, query_string={"q": "_"}, headers=headers)
    assert response.json == {
        "items": [],
        "page": 1,
        "per_page": 50,
        "total": 0,
        "total_capped": False,
    }


def test_pagination(client, reception):
    for i in range(5):
        make_patient(reception, full_name=f"Pagetest Person {i}")
    headers = bearer(client, reception)
    seen = []
    for page, size in ((1, 2), (2, 2), (3, 1)):
        response = client.get(f"{URL}?q=pagetest&page={page}&per_page=2", headers=headers)
        assert response.status_code == 200
        assert response.json["total"] == 5
        assert (response.json["page"], response.json["per_page"]) == (page, 2)
        assert len(response.json["items"]) == size
        seen += [p["id"] for p in response.json["items"]]
    assert len(set(seen)) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [("per_page=201", "per_page"), ("per_page=0", "per_page"), ("page=0", "page")],
)
def test_page_out_of_range_is_422(client, reception, query, field):
    response = client.get(f"{URL}?{query}", headers=bearer(client, reception))
    body = error(response, 422, "invalid_input")
    assert field in body["fields"]


def test_per_page_of_200_is_allowed(client, reception):
    response = client.get(f"{URL}?per_page=200", headers=bearer(client, reception))
    assert response.status_code == 200
    assert response.json["per_page"] == 200


@pytest.mark.parametrize("q", ["²", "%", "\\", "QC-", "9" * 40, "x" * 120])
def test_odd_queries_answer_200(client, reception, q):
    make_patient(reception, full_name="Plain Name")
    response = client.get(URL, query_string={"q": q}, headers=bearer(client, reception))
    assert response.status_code == 200
    assert response.json["total"] == 0


def test_a_query_longer_than_120_is_422(client, reception):
    response = client.get(URL, query_string={"q": "x" * 121}, headers=bearer(client, reception))
    assert "q" in error(response, 422, "invalid_input")["fields"]


def test_archived_patients_are_hidden_unless_asked_for(client, admin):
    kept = make_patient(admin, full_name="Kept Person")
    gone = make_patient(admin, full_name="Gone Person")
    headers = bearer(client, admin)
    assert client.delete(f"{URL}/{gone.id}", headers=headers).status_code == 200
    response = client.get(f"{URL}?q=person", headers=headers)
    assert [p["id"] for p in response.json["items"]] == [kept.id]
    response = client.get(f"{URL}?q=person&include_archived=true", headers=headers)
    assert sorted(p["id"] for p in response.json["items"]) == sorted([kept.id, gone.id])
    response = client.get(URL, headers=headers)
    assert [p["id"] for p in response.json["items"]] == [kept.id]


def test_get_unknown_patient_is_404(client, doctor):
    response = client.get(f"{URL}/987654321", headers=bearer(client, doctor))
    error(response, 404, "patient_not_found")


# ---- registering ---------------------------------------------------------------------


def test_register_answers_201_with_location_and_the_full_record(client, reception):
    body = {
        **BODY,
        "email": "Meera@Example.com",
        "address": "12 MG Road, Kochi",
        "blood_group": "o+",
        "allergies": ["Penicillin", "penicillin", "Sulfa"],
        "chronic_conditions": ["Asthma"],
        "emergency_contact": {"name": "Arun Nair", "phone": "98450 99999", "relation": "son"},
    }
    response = client.post(URL, json=body, headers=bearer(client, reception))
    assert response.status_code == 201, response.json
    patient = response.json
    assert response.headers["Location"].endswith(f"{URL}/{patient['id']}")
    assert patient["mrn"].startswith("QC-") and len(patient["mrn"]) == 9
    assert patient["full_name"] == "Meera Nair"
    assert patient["date_of_birth"] == "1985-06-15"
    assert patient["dob_estimated"] is False
    assert patient["age"] == clock.age_on(date(1985, 6, 15), clock.today())
    assert patient["sex"] == "F"
    assert patient["phone"] == "+919845012345"
    assert patient["email"] == "meera@example.com"
    assert patient["address"] == "12 MG Road, Kochi"
    assert patient["blood_group"] == "O+"
    assert patient["allergies"] == ["Penicillin", "Sulfa"]
    assert patient["chronic_conditions"] == ["Asthma"]
    assert patient["emergency_contact"] == {
        "name": "Arun Nair",
        "phone": "+919845099999",
        "relation": "son",
    }
    assert patient["archived_at"] is None
    assert patient["created_at"] and patient["updated_at"]
    again = client.get(response.headers["Location"], headers=bearer(client, reception))
    assert again.status_code == 200
    assert again.json == patient
    assert stored(patient["id"]).allergies == ["Penicillin", "Sulfa"]
    assert actions(patient["id"]) == ["PATIENT_CREATED"]


def test_register_with_an_approximate_age(client, reception):
    body = {k: v for k, v in BODY.items() if k != "date_of_birth"}
    response = client.post(URL, json={**body, "age_years": 62}, headers=bearer(client, reception))
    assert response.status_code == 201
    assert response.json["age"] == 62
    assert response.json["dob_estimated"] is True


def test_admin_may_register(client, admin):
    response = client.post(URL, json=BODY, headers=bearer(client, admin))
    assert response.status_code == 201


def test_register_without_a_token_is_401(client):
    error(client.post(URL, json=BODY), 401, "unauthorized")
    assert patients_in_db() == 0


@pytest.mark.parametrize("role", ["doctor", "pharmacist"])
def test_doctor_and_pharmacist_may_not_register_or_edit(client, request, role):
    user = request.getfixturevalue(role)
    patient = make_patient(None, full_name="Kiran Rao")
    headers = bearer(client, user)
    error(client.post(URL, json=BODY, headers=headers), 403, "forbidden")
    patch = client.patch(f"{URL}/{patient.id}", json={"full_name": "Hacked"}, headers=headers)
    error(patch, 403, "forbidden")
    error(client.delete(f"{URL}/{patient.id}", headers=headers), 403, "forbidden")
    assert patients_in_db() == 1
    assert stored(patient.id).full_name == "Kiran Rao"


def test_possible_duplicate_is_409_with_the_candidates(client, reception):
    first = make_patient(reception, **{**BODY, "date_of_birth": date(1985, 6, 15)})
    headers = bearer(client, reception)
    response = client.post(
        URL, json={**BODY, "full_name": "Meera N", "phone": "919845012345"}, headers=headers
    )
    body = error(response, 409, "possible_duplicate")
    assert body["details"] == {
        "candidates": [
            {
                "id": first.id,
                "mrn": first.mrn,
                "full_name": "Meera Nair",
                "date_of_birth": "1985-06-15",
                "archived": False,
            }
        ]
    }
    assert patients_in_db() == 1
    confirmed = client.post(
        URL, json={**BODY, "full_name": "Meera N", "confirm_new": True}, headers=headers
    )
    assert confirmed.status_code == 201
    assert confirmed.json["id"] != first.id
    assert patients_in_db() == 2


def test_the_same_number_with_91_is_409_possible_duplicate(client, reception):
    first = make_patient(
        reception, **{**BODY, "phone": "98765 43210", "date_of_birth": date(1985, 6, 15)}
    )
    headers = bearer(client, reception)
    response = client.post(URL, json={**BODY, "phone": "+91 98765 43210"}, headers=headers)
    body = error(response, 409, "possible_duplicate")
    assert [c["id"] for c in body["details"]["candidates"]] == [first.id]
    assert patients_in_db() == 1


@pytest.mark.parametrize(
    "typed", ["98765 43210", "09876543210", "+91-98765-43210", "0091 98765 43210"]
)
def test_any_typed_form_is_answered_and_stored_in_e164(client, reception, typed):
    contact = {"name": "Arun", "phone": typed, "relation": "son"}
    response = client.post(
        URL,
        json={**BODY, "phone": typed, "emergency_contact": contact},
        headers=bearer(client, reception),
    )
    assert response.status_code == 201, response.json
    assert response.json["phone"] == "+919876543210"
    assert response.json["emergency_contact"]["phone"] == "+919876543210"
    row = stored(response.json["id"])
    assert (row.phone, row.phone_digits) == ("+919876543210", "919876543210")


def test_a_bad_phone_is_422_saying_why(client, reception):
    response = client.post(URL, json={**BODY, "phone": "98765"}, headers=bearer(client, reception))
    body = error(response, 422, "invalid_input")
    assert body["fields"]["phone"].startswith("Too short for a phone number")
    assert patients_in_db() == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"full_name": "A"}, "full_name"),
        ({"date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"date_of_birth": "15/06/1985"}, "date_of_birth"),
        ({"age_years": 40}, "date_of_birth"),
        ({"date_of_birth": None, "age_years": 131}, "age_years"),
        ({"date_of_birth": None, "age_years": -1}, "age_years"),
        ({"date_of_birth": None, "age_years": "forty"}, "age_years"),
        ({"date_of_birth": None, "age_years": True}, "age_years"),
        ({"date_of_birth": None}, "date_of_birth"),
        ({"sex": "Q"}, "sex"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "abc"}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"blood_group": "C+"}, "blood_group"),
        ({"allergies": "Penicillin"}, "allergies"),
        ({"emergency_contact": {"name": "Arun", "phone": "12"}}, "emergency_contact.phone"),
        ({"emergency_contact": "Arun"}, "emergency_contact"),
        ({"weight": 70}, "weight"),
    ],
)
def test_a_bad_field_is_422_naming_it(client, reception, changes, field):
    response = client.post(URL, json={**BODY, **changes}, headers=bearer(client, reception))
    body = error(response, 422, "invalid_input")
    assert field in body["fields"], body
    assert patients_in_db() == 0


@pytest.mark.parametrize("missing", ["full_name", "sex", "phone"])
def test_a_missing_required_field_is_422(client, reception, missing):
    body = {k: v for k, v in BODY.items() if k != missing}
    response = client.post(URL, json=body, headers=bearer(client, reception))
    assert missing in error(response, 422, "invalid_input")["fields"]


def test_several_bad_fields_are_all_reported(client, reception):
    response = client.post(
        URL,
        json={
            "full_name": "X",
            "date_of_birth": (clock.today() + timedelta(days=1)).isoformat(),
            "sex": "Q",
            "phone": "12345",
            "email": "nope",
            "blood_group": "C+",
        },
        headers=bearer(client, reception),
    )
    body = error(response, 422, "invalid_input")
    assert set(body["fields"]) >= {
        "full_name",
        "date_of_birth",
        "sex",
        "phone",
        "email",
        "blood_group",
    }


def test_malformed_json_is_400(client, reception):
    headers = {**bearer(client, reception), "Content-Type": "application/json"}
    response = client.post(URL, data='{"full_name": "Meera', headers=headers)
    error(response, 400, "bad_request")
    assert patients_in_db() == 0


# ---- editing -------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(client, reception):
    patient = make_patient(reception, full_name="Kiran Rao", email="kiran@example.com")
    response = client.patch(
        f"{URL}/{patient.id}",
        json={"phone": "+91 90000 11111", "allergies": ["Aspirin"]},
        headers=bearer(client, reception),
    )
    assert response.status_code == 200
    assert response.json["phone"] == "+919000011111"
    assert response.json["allergies"] == ["Aspirin"]
    assert response.json["full_name"] == "Kiran Rao"
    assert response.json["email"] == "kiran@example.com"
    row = stored(patient.id)
    assert (row.full_name, row.phone, row.allergies) == ("Kiran Rao", "+919000011111", ["Aspirin"])
    assert actions(patient.id) == ["PATIENT_CREATED", "PATIENT_UPDATED"]


def test_patch_can_clear_optional_fields(client, reception):
    patient = make_patient(
        reception,
        email="kiran@example.com",
        blood_group="A+",
        emergency_contact={"name": "Asha", "phone": "9845099999"},
    )
    response = client.patch(
        f"{URL}/{patient.id}",
        json={"email": None, "blood_group": None, "emergency_contact": None},
        headers=bearer(client, reception),
    )
    assert response.status_code == 200
    assert (response.json["email"], response.json["blood_group"]) == (None, None)
    assert response.json["emergency_contact"] is None
    assert stored(patient.id).emergency_contact is None


def test_patch_with_a_bad_field_is_422_and_changes_nothing(client, reception):
    patient = make_patient(reception, full_name="Kiran Rao")
    response = client.patch(
        f"{URL}/{patient.id}",
        json={"full_name": "Kiran Deshpande", "phone": "12345"},
        headers=bearer(client, reception),
    )
    assert set(error(response, 422, "invalid_input")["fields"]) == {"phone"}
    assert stored(patient.id).full_name == "Kiran Rao"
    assert actions(patient.id) == ["PATIENT_CREATED"]


def test_patch_unknown_patient_is_404(client, reception):
    response = client.patch(
        f"{URL}/987654321", json={"full_name": "Nobody"}, headers=bearer(client, reception)
    )
    error(response, 404, "patient_not_found")


def test_patch_without_a_token_is_401(client):
    patient = make_patient(None, full_name="Kiran Rao")
    error(client.patch(f"{URL}/{patient.id}", json={"full_name": "X Y"}), 401, "unauthorized")


def test_patch_an_archived_patient_is_409(client, admin):
    patient = make_patient(admin, full_name="Kiran Rao")
    headers = bearer(client, admin)
    client.delete(f"{URL}/{patient.id}", headers=headers)
    response = client.patch(f"{URL}/{patient.id}", json={"full_name": "X Y"}, headers=headers)
    error(response, 409, "patient_archived")
    assert stored(patient.id).full_name == "Kiran Rao"


# ---- archive and restore -------------------------------------------------------------


def test_delete_archives_and_restore_brings_back(client, admin):
    patient = make_patient(admin, full_name="Archie Vist")
    headers = bearer(client, admin)
    response = client.delete(f"{URL}/{patient.id}", headers=headers)
    assert response.status_code == 200
    assert response.json["archived_at"] is not None
    assert stored(patient.id).archived_at is not None
    readable = client.get(f"{URL}/{patient.id}", headers=headers)
    assert readable.status_code == 200
    assert readable.json["archived_at"] == response.json["archived_at"]
    assert client.get(f"{URL}?q=archie", headers=headers).json["total"] == 0
    error(client.delete(f"{URL}/{patient.id}", headers=headers), 409, "already_archived")

    response = client.post(f"{URL}/{patient.id}/restore", headers=headers)
    assert response.status_code == 200
    assert response.json["archived_at"] is None
    assert client.get(f"{URL}?q=archie", headers=headers).json["total"] == 1
    restore = client.post(f"{URL}/{patient.id}/restore", headers=headers)
    error(restore, 409, "not_archived")
    assert actions(patient.id) == ["PATIENT_CREATED", "PATIENT_ARCHIVED", "PATIENT_RESTORED"]


def test_only_admin_may_archive_or_restore(client, admin, reception):
    patient = make_patient(admin, full_name="Kiran Rao")
    headers = bearer(client, reception)
    error(client.delete(f"{URL}/{patient.id}", headers=headers), 403, "forbidden")
    assert stored(patient.id).archived_at is None
    client.delete(f"{URL}/{patient.id}", headers=bearer(client, admin))
    error(client.post(f"{URL}/{patient.id}/restore", headers=headers), 403, "forbidden")
    assert stored(patient.id).archived_at is not None


def test_archive_and_restore_unknown_patient_is_404(client, admin):
    headers = bearer(client, admin)
    error(client.delete(f"{URL}/987654321", headers=headers), 404, "patient_not_found")
    error(client.post(f"{URL}/987654321/restore", headers=headers), 404, "patient_not_found")


def test_non_latin_name_round_trips(client, reception):
    headers = bearer(client, reception)
    response = client.post(URL, json={**BODY, "full_name": "अमित शर्मा"}, headers=headers)
    assert response.status_code == 201
    assert response.json["full_name"] == "अमित शर्मा"
    found = client.get(URL, query_string={"q": "अमित"}, headers=headers)
    assert [p["full_name"] for p in found.json["items"]] == ["अमित शर्मा"]


# ---- input never produces a 500 -------------------------------------------------------


@pytest.mark.parametrize("page", ["9223372036854775807", "99999999999999999999"])
def test_a_page_far_past_the_end_is_empty(client, reception, page):
    make_patient(reception, full_name="Plain Name")
    response = client.get(f"{URL}?page={page}", headers=bearer(client, reception))
    assert response.status_code == 200
    assert response.json["items"] == []
    assert response.json["total"] == 1


def test_a_nul_character_in_the_query_is_ignored(client, reception):
    make_patient(reception, full_name="Plain Name")
    response = client.get(f"{URL}?q=pla%00in", headers=bearer(client, reception))
    assert response.status_code == 200
    assert [p["full_name"] for p in response.json["items"]] == ["Plain Name"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"full_name": "Meera\x00Nair"}, "full_name"),
        ({"address": "12\x00 Road"}, "address"),
        ({"allergies": ["Pen\x00icillin"]}, "allergies"),
        ({"emergency_contact": {"name": "A\x00", "phone": "9845099999"}}, "emergency_contact"),
    ],
)
def test_a_nul_character_in_a_field_is_422(client, reception, changes, field):
    response = client.post(URL, json={**BODY, **changes}, headers=bearer(client, reception))
    assert field in error(response, 422, "invalid_input")["fields"]
    assert patients_in_db() == 0


def test_an_id_too_large_for_the_database_is_404(client, admin):
    # No BIGINT id can be that large: the URL names nothing (the route does not match).
    headers = bearer(client, admin)
    huge = f"{URL}/{2**64}"
    error(client.get(huge, headers=headers), 404, "not_found")
    error(client.patch(huge, json={"full_name": "X Y"}, headers=headers), 404, "not_found")
    error(client.delete(huge, headers=headers), 404, "not_found")
    error(client.post(f"{huge}/restore", headers=headers), 404, "not_found")


def test_only_an_admin_may_search_archived_patients(client, reception, admin):
    query = {"q": "x", "include_archived": "true"}
    denied = client.get(URL, query_string=query, headers=bearer(client, reception))
    assert error(denied, 403, "forbidden")
    allowed = client.get(URL, query_string=query, headers=bearer(client, admin))
    assert allowed.status_code == 200


def _documented(spec: dict, name: str) -> dict:
    return spec["components"]["schemas"][name]


def test_search_items_are_the_record_as_one_patient_reads(client, admin):
    full = make_patient(
        admin,
        full_name="Listed Fullrecord",
        email="listed@example.com",
        address="12 MG Road, Pune",
        blood_group="AB-",
        allergies=["Penicillin", "Sulfa"],
        chronic_conditions=["Asthma"],
        emergency_contact={"name": "Asha Fullrecord", "phone": "98450 12345", "relation": "Sister"},
    )
    guessed = make_patient(admin, full_name="Listed Guessed", date_of_birth=None, age_years=40)
    gone = make_patient(admin, full_name="Listed Archived")
    client.delete(f"{URL}/{gone.id}", headers=bearer(client, admin))
    headers = bearer(client, admin)

    def one(patient_id):
        return client.get(f"{URL}/{patient_id}", headers=headers).json

    for query in ("q=listed", f"q={full.mrn}", "q=", "q=listed&include_archived=true"):
        items = client.get(f"{URL}?{query}", headers=headers).json["items"]
        assert items, query
        for item in items:
            assert item == one(item["id"]), query
    by_name = client.get(f"{URL}?q=listed&include_archived=true", headers=headers).json
    assert {p["id"] for p in by_name["items"]} == {full.id, guessed.id, gone.id}
    assert next(p for p in by_name["items"] if p["id"] == gone.id)["archived_at"]
    assert next(p for p in by_name["items"] if p["id"] == guessed.id)["dob_estimated"] is True


def test_the_search_answer_has_the_documented_shape(client, reception):
    make_patient(reception, full_name="Shape Check", allergies=["Latex"])
    spec = client.get("/api/v1/openapi.json").json
    ok = spec["paths"]["/api/v1/patients"]["get"]["responses"]["200"]
    page_ref = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    page = _documented(spec, page_ref)
    item_ref = page["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[-1]
    body = client.get(f"{URL}?q=shape", headers=bearer(client, reception)).json
    assert set(body) == set(page["properties"])
    assert set(body["items"][0]) == set(_documented(spec, item_ref)["properties"])
