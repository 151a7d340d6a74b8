"""Patient rules, through the service functions, against the real database."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.db import add_pending
from qure.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from qure.core.models import OutboxEvent
from qure.extensions import db
from qure.patients import service
from qure.patients.models import Patient
from tests.helpers import make_patient

GOOD = {
    "full_name": "Meera Nair",
    "date_of_birth": date(1985, 6, 15),
    "sex": "F",
    "phone": "+91 98450 12345",
}


def data(**changes):
    values = {**GOOD, **changes}
    return {k: v for k, v in values.items() if v is not ...}


def count(model) -> int:
    add_pending()  # the rows this transaction writes at commit
    return db.session.scalar(select(func.count()).select_from(model))


def audit_rows(patient_id: int, action: str | None = None) -> list[dict]:
    add_pending()  # the rows this transaction writes at commit
    rows = db.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [
        r.payload
        for r in rows
        if r.payload["resource"] == {"type": "patient", "id": patient_id}
        and (action is None or r.payload["action"] == action)
    ]


def bad_fields(values: dict, partial: bool = False) -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        service.clean(values, partial=partial)
    assert caught.value.code == "invalid_input"
    return caught.value.fields


def names(page) -> list[str]:
    return [p.full_name for p in page.items]


# ---- validation ----------------------------------------------------------------------


def test_a_complete_valid_record_is_cleaned_into_model_values():
    values = service.clean(
        data(
            full_name="  Meera   Nair ",
            phone="+91 98450-12345",
            email=" Meera@Example.COM ",
            address=" 12 MG Road ",
            blood_group="ab+",
            sex="f",
            allergies="Penicillin, penicillin\nSulfa;  Latex ",
            chronic_conditions=["Asthma", "ASTHMA", "Type 2 diabetes"],
            emergency_contact={"name": " Arun  Nair ", "phone": "98450-99999", "relation": "son"},
        )
    )
    assert values["full_name"] == "Meera Nair"
    assert values["name_search"] == "meera nair"
    assert values["phone"] == "+919845012345"
    assert values["phone_digits"] == "919845012345"
    assert values["email"] == "meera@example.com"
    assert values["address"] == "12 MG Road"
    assert values["blood_group"] == "AB+"
    assert values["sex"] == "F"
    assert values["allergies"] == ["Penicillin", "Sulfa", "Latex"]
    assert values["chronic_conditions"] == ["Asthma", "Type 2 diabetes"]
    assert values["emergency_contact"] == {
        "name": "Arun Nair",
        "phone": "+919845099999",
        "relation": "son",
    }
    assert values["date_of_birth"] == date(1985, 6, 15)
    assert values["dob_estimated"] is False


@pytest.mark.parametrize("name", ["", "A", " A ", None, "x" * 121])
def test_full_name_too_short_or_too_long(name):
    assert "full_name" in bad_fields(data(full_name=name))


def test_date_of_birth_in_the_future():
    tomorrow = clock.today() + timedelta(days=1)
    assert "date_of_birth" in bad_fields(data(date_of_birth=tomorrow))


def test_date_of_birth_today_is_a_newborn():
    values = service.clean(data(date_of_birth=clock.today()))
    assert values["date_of_birth"] == clock.today()


def test_date_of_birth_older_than_130_years():
    today = clock.today()
    assert "date_of_birth" in bad_fields(data(date_of_birth=date(today.year - 135, 1, 1)))


def test_date_of_birth_and_age_both_given():
    fields = bad_fields(data(age_years=40))
    assert "date_of_birth" in fields
    assert "not both" in fields["date_of_birth"]


def test_neither_date_of_birth_nor_age():
    assert "date_of_birth" in bad_fields(data(date_of_birth=...))


@pytest.mark.parametrize("years", [131, -1, 1000])
def test_age_out_of_range_or_not_a_whole_number(years):
    fields = bad_fields(data(date_of_birth=..., age_years=years))
    assert "age_years" in fields


@pytest.mark.parametrize("years", [0, 1, 45, 130])
def test_approximate_age_becomes_an_estimated_date_of_birth(reception, years):
    patient = service.register(reception, data(date_of_birth=..., age_years=years))
    db.session.flush()
    stored = db.session.get(Patient, patient.id)
    assert stored.dob_estimated is True
    assert service.age(stored) == years
    assert stored.date_of_birth.year in (clock.today().year - years,)


@pytest.mark.parametrize("sex", ["Q", "", None, "FM", "male"])
def test_sex_must_be_f_m_or_o(sex):
    assert "sex" in bad_fields(data(sex=sex))


@pytest.mark.parametrize("sex", ["F", "M", "O", "m"])
def test_each_sex_is_accepted(sex):
    assert service.clean(data(sex=sex))["sex"] == sex.upper()


@pytest.mark.parametrize(
    "phone",
    [
        "12345",
        "abc",
        "",
        "98450 1234a",
        "98450 ABCDE",  # not read as a keypad
        "123456789",
        "1234567890123456",
        "5555555555",  # ten digits, but no Indian number starts so
        "+999 1234567",  # no such country
        "98450 12345 ext 12",
        "98450 12345 #12",
        "+683 4002",  # a valid number, but shorter than phone_digits can hold
    ],
)
def test_bad_phone(phone):
    assert "phone" in bad_fields(data(phone=phone))


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("98450", "Too short for a phone number"),
        ("5555555555", "Not an Indian number in use"),
        ("+999 1234567", "Unknown country code"),
        ("98450 ABCDE", "Not a phone number"),
    ],
)
def test_a_bad_phone_says_what_is_wrong(phone, reason):
    assert bad_fields(data(phone=phone))["phone"].startswith(reason)


@pytest.mark.parametrize(
    ("phone", "stored"),
    [
        ("9845012345", "+919845012345"),
        ("+91 98450 12345", "+919845012345"),
        ("+91-98450-12345", "+919845012345"),
        ("++919845012345", "+919845012345"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+1 (202) 555-0123", "+12025550123"),
    ],
)
def test_good_phone_is_stored_in_e164(phone, stored):
    values = service.clean(data(phone=phone))
    assert (values["phone"], values["phone_digits"]) == (stored, stored[1:])


@pytest.mark.parametrize(
    "typed",
    [
        "98765 43210",
        "9876543210",
        "+91 98765 43210",
        "+919876543210",
        "+91-98765-43210",
        "09876543210",
        "098765-43210",
        "(098765) 43210",
        "+91 (0) 98765 43210",
        "0091 98765 43210",
        "91 98765 43210",
        " 98765\t43210 ",
    ],
)
def test_every_common_way_of_typing_a_number_stores_one_form(reception, typed):
    patient = service.register(
        reception, data(phone=typed, emergency_contact={"name": "Arun", "phone": typed})
    )
    db.session.flush()
    db.session.expire_all()
    stored = db.session.get(Patient, patient.id)
    assert (stored.phone, stored.phone_digits) == ("+919876543210", "919876543210")
    assert stored.emergency_contact["phone"] == "+919876543210"


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "a b@example.com"])
def test_bad_email(email):
    assert "email" in bad_fields(data(email=email))


def test_empty_email_is_none():
    assert service.clean(data(email="  "))["email"] is None


@pytest.mark.parametrize("group", ["C+", "A", "AB", "O+-", "B positive"])
def test_bad_blood_group(group):
    assert "blood_group" in bad_fields(data(blood_group=group))


@pytest.mark.parametrize("group", ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"])
def test_every_blood_group_is_accepted(group):
    assert service.clean(data(blood_group=group))["blood_group"] == group


def test_address_too_long():
    assert "address" in bad_fields(data(address="x" * 501))


def test_emergency_contact_with_a_bad_phone():
    fields = bad_fields(data(emergency_contact={"name": "Arun", "phone": "12", "relation": "son"}))
    assert "emergency_contact.phone" in fields
    assert "phone" not in fields


def test_emergency_contact_without_a_name():
    fields = bad_fields(data(emergency_contact={"phone": "9845099999"}))
    assert "emergency_contact.name" in fields


def test_emergency_contact_that_is_not_an_object():
    assert "emergency_contact" in bad_fields(data(emergency_contact="Arun 9845099999"))


def test_empty_emergency_contact_is_none():
    values = service.clean(data(emergency_contact={"name": "", "phone": " ", "relation": ""}))
    assert values["emergency_contact"] is None


def test_allergies_as_a_list_are_deduplicated_case_insensitively():
    values = service.clean(data(allergies=["Peanuts", "PEANUTS", " peanuts ", "Penicillin", ""]))
    assert values["allergies"] == ["Peanuts", "Penicillin"]


def test_allergies_as_comma_and_newline_text_are_split_and_deduplicated():
    values = service.clean(data(allergies="Penicillin,\nSulfa drugs\npenicillin, SULFA DRUGS,,"))
    assert values["allergies"] == ["Penicillin", "Sulfa drugs"]


@pytest.mark.parametrize("bad", [42, ["ok", 3], {"a": 1}])
def test_allergies_of_the_wrong_type(bad):
    assert "allergies" in bad_fields(data(allergies=bad))


def test_too_many_or_too_long_list_entries():
    assert "chronic_conditions" in bad_fields(data(chronic_conditions=[f"c{i}" for i in range(51)]))
    assert "allergies" in bad_fields(data(allergies=["x" * 101]))


def test_unknown_field_is_named():
    assert "weight" in bad_fields(data(weight=70))


def test_every_bad_field_is_reported_at_once():
    fields = bad_fields(
        {
            "full_name": "A",
            "date_of_birth": clock.today() + timedelta(days=3),
            "sex": "Q",
            "phone": "abc",
            "email": "nope",
            "blood_group": "C+",
            "emergency_contact": {"name": "Arun", "phone": "1"},
        }
    )
    assert set(fields) >= {
        "full_name",
        "date_of_birth",
        "sex",
        "phone",
        "email",
        "blood_group",
        "emergency_contact.phone",
    }


def test_partial_clean_checks_only_what_is_given():
    assert service.clean({"phone": "98450 11111"}, partial=True) == {
        "phone": "+919845011111",
        "phone_digits": "919845011111",
    }
    assert "phone" in bad_fields({"phone": "12345"}, partial=True)
    assert "full_name" in bad_fields({"full_name": ""}, partial=True)


def test_register_with_a_bad_field_saves_nothing(reception):
    patients, events = count(Patient), count(OutboxEvent)
    with pytest.raises(InvalidInput) as caught:
        service.register(reception, data(phone="12345"))
    assert "phone" in caught.value.fields
    assert (count(Patient), count(OutboxEvent)) == (patients, events)


def test_update_with_a_bad_field_changes_nothing(reception):
    patient = make_patient(reception, full_name="Kiran Rao", email="kiran@example.com")
    events = count(OutboxEvent)
    with pytest.raises(InvalidInput) as caught:
        service.update(reception, patient.id, {"full_name": "Kiran R", "email": "bad"})
    assert set(caught.value.fields) == {"email"}
    db.session.rollback()
    db.session.expire_all()
    stored = db.session.get(Patient, patient.id)
    assert (stored.full_name, stored.email) == ("Kiran Rao", "kiran@example.com")
    assert count(OutboxEvent) == events


# ---- registering ---------------------------------------------------------------------


def test_register_assigns_increasing_mrns_and_records_the_author(reception):
    first = service.register(reception, data())
    second = service.register(reception, data(full_name="Vikram Nair", phone="9845000001"))
    assert re.fullmatch(r"QC-\d{6}", first.mrn)
    assert re.fullmatch(r"QC-\d{6}", second.mrn)
    assert int(second.mrn[3:]) > int(first.mrn[3:])
    assert first.created_by_id == reception.id


def test_age_is_computed_not_stored(reception):
    assert not [c for c in Patient.__table__.columns if "age" in c.name]
    today = clock.today()
    thirty = service.register(reception, data(date_of_birth=date(today.year - 30, 1, 1)))
    assert service.age(thirty) == 30
    tomorrow = today + timedelta(days=1)
    if (tomorrow.month, tomorrow.day) == (2, 29):
        tomorrow += timedelta(days=1)
    born = tomorrow.replace(year=tomorrow.year - 40)
    almost = service.register(reception, data(full_name="Almost Forty", date_of_birth=born))
    assert service.age(almost) == 39


def test_registering_stores_every_field(reception):
    patient = service.register(
        reception,
        data(
            email="meera@example.com",
            address="12 MG Road, Kochi",
            blood_group="O-",
            allergies="Penicillin\nLatex",
            chronic_conditions=["Hypertension"],
            emergency_contact={"name": "Arun", "phone": "+91 98450 99999", "relation": "son"},
        ),
    )
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Patient, patient.id)
    assert stored.full_name == "Meera Nair"
    assert stored.date_of_birth == date(1985, 6, 15)
    assert stored.dob_estimated is False
    assert stored.phone == "+919845012345"
    assert stored.email == "meera@example.com"
    assert stored.address == "12 MG Road, Kochi"
    assert stored.blood_group == "O-"
    assert stored.allergies == ["Penicillin", "Latex"]
    assert stored.chronic_conditions == ["Hypertension"]
    assert stored.emergency_contact == {"name": "Arun", "phone": "+919845099999", "relation": "son"}
    assert stored.archived_at is None


def test_registering_writes_a_created_audit_row_in_the_same_transaction(reception):
    patient = service.register(reception, data(allergies=["Penicillin"]))
    (event,) = audit_rows(patient.id)
    assert event["action"] == "PATIENT_CREATED"
    assert event["user"]["id"] == reception.id
    assert event["changes"]["old"] is None
    assert event["changes"]["new"]["mrn"] == patient.mrn
    assert event["changes"]["new"]["allergies"] == ["Penicillin"]
    patient_id = patient.id
    db.session.rollback()
    assert db.session.get(Patient, patient_id) is None
    assert audit_rows(patient_id) == []


def test_non_latin_name_round_trips_and_is_found(reception):
    patient = service.register(reception, data(full_name="अमित शर्मा"))
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).full_name == "अमित शर्मा"
    assert names(service.search("अमित")) == ["अमित शर्मा"]
    assert names(service.search("शर्मा")) == ["अमित शर्मा"]


# ---- duplicates ----------------------------------------------------------------------


def test_same_phone_and_birth_date_is_a_possible_duplicate(reception):
    first = service.register(reception, data())
    patients = count(Patient)
    with pytest.raises(Conflict) as caught:
        service.register(reception, data(full_name="Meera N", phone="+919845012345"))
    assert caught.value.code == "possible_duplicate"
    assert caught.value.details == {
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
    assert count(Patient) == patients


def test_duplicate_check_compares_phone_digits_not_formatting(reception):
    service.register(reception, data(phone="+91 98450 12345"))
    with pytest.raises(Conflict):
        service.register(reception, data(phone="+91-9845012345"))


@pytest.mark.parametrize("again", ["+91 98765 43210", "09876543210", "+91-98765-43210"])
def test_the_same_number_typed_another_way_is_a_possible_duplicate(reception, again):
    # The issue: "+91 ..." was stored apart from "98765 43210", so the second registration
    # went through without a warning and without the first record's allergy.
    first = service.register(reception, data(phone="98765 43210", allergies=["Penicillin"]))
    with pytest.raises(Conflict) as caught:
        service.register(reception, data(full_name="Meera Nair", phone=again))
    assert caught.value.code == "possible_duplicate"
    assert [c["id"] for c in caught.value.details["candidates"]] == [first.id]
    assert count(Patient) == 1


def test_confirm_new_registers_a_second_person_with_the_same_phone_and_birth_date(reception):
    first = service.register(reception, data())
    twin = service.register(reception, data(full_name="Maya Nair"), confirm_new=True)
    assert twin.id != first.id and twin.mrn != first.mrn
    assert count(Patient) == 2


def test_same_phone_other_birth_date_is_not_a_duplicate(reception):
    service.register(reception, data())
    other = service.register(
        reception, data(full_name="Father Nair", date_of_birth=date(1955, 1, 1))
    )
    assert other.id


def test_an_archived_patient_is_a_duplicate_candidate_flagged_as_archived(admin):
    # A returning patient is restored, not registered a second time.
    first = service.register(admin, data())
    service.archive(admin, first.id)
    with pytest.raises(Conflict) as caught:
        service.register(admin, data())
    (candidate,) = caught.value.details["candidates"]
    assert (candidate["id"], candidate["archived"]) == (first.id, True)
    again = service.register(admin, data(), confirm_new=True)
    assert again.id != first.id


def test_only_an_admin_may_search_archived_patients(reception, admin):
    with pytest.raises(Forbidden):
        service.search("x", include_archived=True, actor=reception)
    with pytest.raises(Forbidden):
        service.search("x", include_archived=True)
    assert service.search("x", include_archived=True, actor=admin).total == 0


# ---- updating ------------------------------------------------------------------------


def test_update_changes_only_the_given_fields_and_audits_only_the_changes(reception):
    patient = make_patient(reception, full_name="Kiran Rao", email="kiran@example.com")
    old_phone = patient.phone
    service.update(
        reception,
        patient.id,
        {"full_name": "Kiran Rao", "phone": "+91 90000 11111", "allergies": "Aspirin"},
    )
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Patient, patient.id)
    assert stored.full_name == "Kiran Rao"
    assert stored.email == "kiran@example.com"
    assert stored.phone == "+919000011111"
    assert stored.phone_digits == "919000011111"
    assert stored.allergies == ["Aspirin"]
    (event,) = audit_rows(patient.id, "PATIENT_UPDATED")
    assert event["changes"]["old"] == {"phone": old_phone, "allergies": []}
    assert event["changes"]["new"] == {"phone": "+919000011111", "allergies": ["Aspirin"]}


def test_update_with_no_change_writes_no_audit_row(reception):
    patient = make_patient(reception, full_name="Kiran Rao")
    service.update(reception, patient.id, {"full_name": "Kiran  Rao"})
    assert audit_rows(patient.id, "PATIENT_UPDATED") == []


def test_renaming_updates_the_search(reception):
    patient = make_patient(reception, full_name="Kiran Rao")
    service.update(reception, patient.id, {"full_name": "Kiran Deshpande"})
    assert [p.id for p in service.search("deshpande").items] == [patient.id]
    assert service.search("rao").total == 0


def test_update_to_an_approximate_age_and_back_to_a_date(reception):
    patient = make_patient(reception)
    service.update(reception, patient.id, {"age_years": 52})
    assert patient.dob_estimated is True
    assert service.age(patient) == 52
    service.update(reception, patient.id, {"date_of_birth": date(1971, 2, 3)})
    assert patient.dob_estimated is False
    assert patient.date_of_birth == date(1971, 2, 3)


def test_resending_the_same_estimated_date_keeps_it_estimated(reception):
    patient = service.register(reception, data(date_of_birth=..., age_years=60))
    service.update(reception, patient.id, {"date_of_birth": patient.date_of_birth})
    assert patient.dob_estimated is True
    # The edit form sends its empty "approximate age" box along with the date.
    service.update(
        reception,
        patient.id,
        {"date_of_birth": patient.date_of_birth, "age_years": None, "full_name": "Old Man"},
    )
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).dob_estimated is True


def test_update_of_an_unknown_patient_is_not_found(reception):
    with pytest.raises(NotFound) as caught:
        service.update(reception, 987654321, {"full_name": "Nobody Here"})
    assert caught.value.code == "patient_not_found"


def test_update_of_an_archived_patient_is_refused(admin):
    patient = make_patient(admin, full_name="Kiran Rao")
    service.archive(admin, patient.id)
    with pytest.raises(Conflict) as caught:
        service.update(admin, patient.id, {"full_name": "Kiran Rao Jr"})
    assert caught.value.code == "patient_archived"
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Patient, patient.id).full_name == "Kiran Rao"


# ---- archive and restore -------------------------------------------------------------


def test_archive_hides_from_search_but_keeps_the_record(admin):
    patient = make_patient(admin, full_name="Hidden Person")
    archived = service.archive(admin, patient.id)
    assert archived.archived_at is not None
    assert service.search("hidden").total == 0
    assert [p.id for p in service.search("hidden", include_archived=True, actor=admin).items] == [
        patient.id
    ]
    assert service.get_patient(patient.id).archived_at is not None
    with pytest.raises(NotFound):
        service.get_patient(patient.id, include_archived=False)
    (event,) = audit_rows(patient.id, "PATIENT_ARCHIVED")
    assert event["changes"]["old"] == {"archived_at": None}
    assert event["changes"]["new"]["archived_at"] == archived.archived_at.isoformat()


def test_archive_twice_is_a_conflict(admin):
    patient = make_patient(admin)
    service.archive(admin, patient.id)
    with pytest.raises(Conflict) as caught:
        service.archive(admin, patient.id)
    assert caught.value.code == "already_archived"


def test_restore_brings_the_patient_back(admin):
    patient = make_patient(admin, full_name="Returning Person")
    service.archive(admin, patient.id)
    restored = service.restore(admin, patient.id)
    assert restored.archived_at is None
    assert [p.id for p in service.search("returning").items] == [patient.id]
    (event,) = audit_rows(patient.id, "PATIENT_RESTORED")
    assert event["changes"]["new"] == {"archived_at": None}
    assert event["changes"]["old"]["archived_at"]


def test_restore_of_a_patient_not_archived_is_a_conflict(admin):
    patient = make_patient(admin)
    with pytest.raises(Conflict) as caught:
        service.restore(admin, patient.id)
    assert caught.value.code == "not_archived"
    assert audit_rows(patient.id, "PATIENT_RESTORED") == []


def test_archive_or_restore_of_an_unknown_patient(admin):
    with pytest.raises(NotFound):
        service.archive(admin, 987654321)
    with pytest.raises(NotFound):
        service.restore(admin, 987654321)


def test_every_change_is_audited_in_order(admin):
    patient = service.register(admin, data())
    service.update(admin, patient.id, {"email": "m@example.com"})
    service.archive(admin, patient.id)
    service.restore(admin, patient.id)
    assert [e["action"] for e in audit_rows(patient.id)] == [
        "PATIENT_CREATED",
        "PATIENT_UPDATED",
        "PATIENT_ARCHIVED",
        "PATIENT_RESTORED",
    ]
    assert all(e["resource"]["type"] == "patient" for e in audit_rows(patient.id))


# ---- search --------------------------------------------------------------------------


def test_name_fragment_is_case_and_accent_insensitive(reception):
    make_patient(reception, full_name="Zoë Fernandes")
    make_patient(reception, full_name="Priya Sharma")
    make_patient(reception, full_name="John Smith")
    assert names(service.search("zoe")) == ["Zoë Fernandes"]
    assert names(service.search("ZOË")) == ["Zoë Fernandes"]
    assert names(service.search("SHAR")) == ["Priya Sharma"]
    assert names(service.search("nandes")) == ["Zoë Fernandes"]


def test_accented_query_finds_plain_name(reception):
    make_patient(reception, full_name="Jose Pereira")
    assert names(service.search("José")) == ["Jose Pereira"]


def test_multi_word_query_needs_every_word(reception):
    make_patient(reception, full_name="Ravi Kumar Sharma")
    make_patient(reception, full_name="Ravi Shankar")
    make_patient(reception, full_name="Anita Sharma")
    assert names(service.search("ravi sharma")) == ["Ravi Kumar Sharma"]
    assert names(service.search("  Sharma   RAVI ")) == ["Ravi Kumar Sharma"]


def test_search_by_phone_digits(reception):
    target = make_patient(reception, full_name="Phone Person", phone="+91 98765 43210")
    make_patient(reception, full_name="Other Person", phone="+91 91111 22222")
    for q in ("+91 98765 43210", "919876543210", "98765 43210", "9876543210", "98765", "43210"):
        found = service.search(q)
        assert [p.id for p in found.items] == [target.id], q


def test_search_by_the_number_typed_any_way_finds_the_record(reception):
    target = make_patient(reception, full_name="Phone Person", phone="98765 43210")
    make_patient(reception, full_name="Other Person", phone="+91 91111 22222")
    typed = ("+919876543210", "09876543210", "98765 43210", "0091 98765 43210", "098765-43210")
    for q in typed:
        assert [p.id for p in service.search(q).items] == [target.id], q


def test_search_by_the_last_digits_finds_the_record(reception):
    target = make_patient(reception, full_name="Phone Person", phone="+91 98765 43210")
    make_patient(reception, full_name="Other Person", phone="+91 91111 22222")
    for q in ("3210", "543210", "6543210"):
        assert [p.id for p in service.search(q).items] == [target.id], q


def test_exact_phone_ranks_before_partial_phone(reception):
    partial = make_patient(reception, full_name="Longer Number", phone="+49 30 9876543210")
    exact = make_patient(reception, full_name="Exact Number", phone="9876543210")
    found = service.search("9876543210")
    assert [p.id for p in found.items] == [exact.id, partial.id]


def test_search_by_mrn_in_any_spelling(reception):
    target = make_patient(reception, full_name="Mrn Person")
    make_patient(reception, full_name="Someone Else")
    number = int(target.mrn[3:])
    for q in (target.mrn, target.mrn.lower(), f"qc-{number}", f"QC{number}", f" qc-{number} "):
        assert [p.id for p in service.search(q).items] == [target.id], q


def test_search_by_unknown_mrn_finds_nothing(reception):
    make_patient(reception)
    assert service.search("QC-999999").total == 0


def test_search_by_id(reception):
    target = make_patient(reception, full_name="Id Person")
    make_patient(reception, full_name="Someone Else")
    found = service.search(str(target.id))
    assert found.items[0].id == target.id


def test_ranking_exact_then_prefix_then_word_then_anywhere(reception):
    for name in ("Ranil", "Vanilla Anilkumar", "Sunil Anil", "Anil Kumar", "Anil"):
        make_patient(reception, full_name=name)
    # A long name scores low on trigram similarity, yet a prefix match outranks a word match.
    make_patient(reception, full_name="Anilkumar Venkataraman Subramaniam Iyer")
    make_patient(reception, full_name="Sunil Rao")
    found = names(service.search("anil"))
    assert found[0] == "Anil"
    assert set(found[1:3]) == {"Anil Kumar", "Anilkumar Venkataraman Subramaniam Iyer"}
    assert set(found[3:5]) == {"Sunil Anil", "Vanilla Anilkumar"}
    assert found[5:] == ["Ranil"]


def test_ranking_full_name_match_before_mid_word(reception):
    make_patient(reception, full_name="Sunil Anil Rao")
    make_patient(reception, full_name="Vanilla Anilkumar")
    make_patient(reception, full_name="Anil Kumar")
    found = names(service.search("anil"))
    assert found[0] == "Anil Kumar"
    assert len(found) == 3
    assert names(service.search("anil kumar"))[0] == "Anil Kumar"


def test_pagination(reception):
    created = [make_patient(reception, full_name=f"Pagetest Person {i}") for i in range(5)]
    pages = [service.search("pagetest", page=n, per_page=2) for n in (1, 2, 3, 4)]
    assert [len(p.items) for p in pages] == [2, 2, 1, 0]
    assert {p.total for p in pages} == {5}
    assert [(p.page, p.per_page) for p in pages[:2]] == [(1, 2), (2, 2)]
    ids = [patient.id for page in pages for patient in page.items]
    assert sorted(ids) == sorted(p.id for p in created)
    assert pages[0].has_next and not pages[2].has_next and pages[0].pages == 3


def test_no_query_lists_the_most_recent_first_without_archived(admin):
    first = make_patient(admin)
    second = make_patient(admin)
    gone = make_patient(admin)
    service.archive(admin, gone.id)
    assert [p.id for p in service.search("").items] == [second.id, first.id]
    assert [p.id for p in service.search(None, include_archived=True, actor=admin).items] == [
        gone.id,
        second.id,
        first.id,
    ]
    assert service.search("   ").total == 2


@pytest.mark.parametrize(
    ("page", "per_page", "field"), [(0, 20, "page"), (1, 0, "per_page"), (1, 201, "per_page")]
)
def test_search_page_bounds(page, per_page, field):
    with pytest.raises(InvalidInput) as caught:
        service.search("x", page=page, per_page=per_page)
    assert field in caught.value.fields


def test_like_wildcards_in_the_query_are_literal(reception):
    make_patient(reception, full_name="Percent 100% Sure")
    make_patient(reception, full_name="Under_Score")
    make_patient(reception, full_name="Underxscore")
    make_patient(reception, full_name="Back\\Slash")
    make_patient(reception, full_name="Plain Name")
    assert names(service.search("%")) == ["Percent 100% Sure"]
    assert names(service.search("100%")) == ["Percent 100% Sure"]
    assert names(service.search("under_")) == ["Under_Score"]
    assert names(service.search("_")) == ["Under_Score"]
    assert names(service.search("\\")) == ["Back\\Slash"]


@pytest.mark.parametrize(
    "q", ["²", "١٢٣", "QC-", "+", "()", "-", "'", '"', ";--", "x" * 500, "0", "9" * 30]
)
def test_odd_queries_never_fail(reception, q):
    make_patient(reception, full_name="Plain Name")
    page = service.search(q)
    assert page.total == len(page.items)
    assert "Plain Name" not in names(page)
