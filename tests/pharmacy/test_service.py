"""The medicine catalogue, through the service functions, against the real database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from qure.core.db import add_pending
from qure.core.errors import Conflict, InvalidInput, NotFound
from qure.core.models import AUDIT_TOPIC, OutboxEvent
from qure.extensions import db
from qure.pharmacy import service
from qure.pharmacy.catalogue import COMMON_MEDICINES
from qure.pharmacy.models import DOSAGE_FORMS, GST_RATES, Medicine

GOOD = {
    "name": "Augmentin",
    "generic_name": "Amoxicillin + Clavulanic Acid",
    "drug_class": "Penicillin",
    "dosage_form": "TABLET",
    "strength": "625 mg",
    "manufacturer": "GSK",
    "unit_price": "22.40",
    "gst_rate": 12,
    "hsn_code": "3004",
    "reorder_level": 20,
}


def data(**changes):
    values = {**GOOD, **changes}
    return {k: v for k, v in values.items() if v is not ...}


def make_medicine(actor=None, **changes) -> Medicine:
    medicine = service.create(actor, data(**changes))
    db.session.commit()
    return medicine


def count(model) -> int:
    add_pending()  # the rows this transaction writes at commit
    return db.session.scalar(select(func.count()).select_from(model))


def audit_rows(medicine_id: int | None = None, action: str | None = None) -> list[dict]:
    add_pending()  # the rows this transaction writes at commit
    rows = db.session.scalars(
        select(OutboxEvent).where(OutboxEvent.topic == AUDIT_TOPIC).order_by(OutboxEvent.id)
    ).all()
    return [
        r.payload
        for r in rows
        if r.payload["resource"]["type"] == "medicine"
        and (medicine_id is None or r.payload["resource"]["id"] == medicine_id)
        and (action is None or r.payload["action"] == action)
    ]


def stored(medicine_id: int) -> Medicine:
    db.session.expire_all()
    return db.session.get(Medicine, medicine_id)


def names(page) -> list[str]:
    return [m.name for m in page.items]


@pytest.fixture
def catalogue(pharmacist):
    """A small catalogue: two penicillins, a macrolide, an analgesic, an accented antacid."""
    rows = [
        {},  # Augmentin
        {
            "name": "Amoxil",
            "generic_name": "Amoxicillin",
            "dosage_form": "CAPSULE",
            "strength": "500 mg",
            "unit_price": "9.80",
        },
        {
            "name": "Azithral",
            "generic_name": "Azithromycin",
            "drug_class": "Macrolide",
            "strength": "500 mg",
            "unit_price": "23.50",
        },
        {
            "name": "Dolo",
            "generic_name": "Paracetamol",
            "drug_class": "Analgesic",
            "strength": "650 mg",
            "unit_price": "2.10",
        },
        {
            "name": "Gélusil",
            "generic_name": "Aluminium Hydroxide + Magnesium Hydroxide",
            "drug_class": "Antacid",
            "strength": "250 mg + 250 mg",
            "unit_price": "1.50",
        },
    ]
    return {m.name: m for m in (make_medicine(pharmacist, **row) for row in rows)}


# ---- validation ----------------------------------------------------------------------


def test_a_complete_record_is_cleaned_into_model_values():
    values = service.clean(
        data(
            name="  Augmentin   Duo ",
            generic_name="  Amoxicillin+   Clavulanic    Acid ",
            drug_class=" Penicillin ",
            dosage_form=" tablet ",
            strength=" 625  mg ",
            manufacturer="  GSK   India ",
            unit_price=" 22.4 ",
            gst_rate=18,
            hsn_code=" 30049099 ",
            reorder_level=0,
            is_active=True,
        )
    )
    assert values == {
        "name": "Augmentin Duo",
        "generic_name": "Amoxicillin + Clavulanic Acid",
        "ingredients": ["Amoxicillin", "Clavulanic Acid"],
        "drug_class": "Penicillin",
        "dosage_form": "TABLET",
        "strength": "625 mg",
        "manufacturer": "GSK India",
        "unit_price": Decimal("22.40"),
        "gst_rate": 18,
        "hsn_code": "30049099",
        "reorder_level": 0,
        "is_active": True,
    }
    assert str(values["unit_price"]) == "22.40"


def test_optional_fields_may_be_left_out_or_empty():
    required = {k: GOOD[k] for k in ("name", "generic_name", "dosage_form", "strength")}
    values = service.clean({**required, "unit_price": "0", "gst_rate": 0})
    assert values["unit_price"] == Decimal("0.00")
    assert "drug_class" not in values and "hsn_code" not in values
    empty = service.clean(data(drug_class="  ", manufacturer="", hsn_code=" "))
    assert (empty["drug_class"], empty["manufacturer"], empty["hsn_code"]) == (None, None, None)


@pytest.mark.parametrize("form", DOSAGE_FORMS)
def test_every_dosage_form_is_accepted_in_any_case(form):
    assert service.clean(data(dosage_form=form.lower()))["dosage_form"] == form


@pytest.mark.parametrize("rate", GST_RATES)
def test_every_gst_rate_is_accepted(rate):
    assert service.clean(data(gst_rate=rate))["gst_rate"] == rate


@pytest.mark.parametrize(
    ("price", "stored_as"),
    [("12.5", "12.50"), (12, "12.00"), (9.8, "9.80"), ("0", "0.00"), ("9999999999.99", None)],
)
def test_unit_price_becomes_a_decimal_with_two_places(price, stored_as):
    value = service.clean(data(unit_price=price))["unit_price"]
    assert isinstance(value, Decimal)
    assert value.as_tuple().exponent == -2
    assert str(value) == (stored_as or str(price))


def test_ten_ingredients_are_allowed():
    generic = " + ".join(f"Ingredient {i}" for i in range(10))
    assert len(service.clean(data(generic_name=generic))["ingredients"]) == 10


BAD = [
    ("name", ""),
    ("name", None),
    ("name", "A"),
    ("name", " A "),
    ("name", "x" * 121),
    ("name", "Amo\x00xil"),
    ("generic_name", ""),
    ("generic_name", "   "),
    ("generic_name", None),
    ("generic_name", "+"),
    ("generic_name", " + + "),
    ("generic_name", " + ".join(f"Ingredient {i}" for i in range(11))),
    ("generic_name", "Amoxicillin + " + "x" * 121),
    ("generic_name", "Amoxi\x00cillin"),
    ("drug_class", "x" * 81),
    ("drug_class", "Peni\x00cillin"),
    ("dosage_form", "PILL"),
    ("dosage_form", "tablets"),
    ("dosage_form", ""),
    ("dosage_form", None),
    ("dosage_form", 3),
    ("dosage_form", "TAB\x00LET"),
    ("strength", ""),
    ("strength", "x" * 61),
    ("strength", "625\x00 mg"),
    ("manufacturer", "x" * 121),
    ("manufacturer", "G\x00SK"),
    ("unit_price", "abc"),
    ("unit_price", "-1"),
    ("unit_price", "1.234"),
    ("unit_price", "10000000000"),
    ("unit_price", "1e30"),
    ("unit_price", True),
    ("unit_price", None),
    ("unit_price", ""),
    ("unit_price", "NaN"),
    ("unit_price", "Infinity"),
    ("unit_price", "12\x00"),
    ("gst_rate", 7),
    ("gst_rate", None),
    ("gst_rate", -5),
    ("hsn_code", "12a4"),
    ("hsn_code", "123"),
    ("hsn_code", "123456789"),
    ("hsn_code", "30\x0004"),
    ("reorder_level", -1),
    ("reorder_level", None),
    ("reorder_level", 10**6 + 1),
    ("is_active", None),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_a_bad_field_is_named_and_nothing_is_saved(pharmacist, field, value):
    medicines, events = count(Medicine), count(OutboxEvent)
    with pytest.raises(InvalidInput) as caught:
        service.create(pharmacist, data(**{field: value}))
    assert caught.value.code == "invalid_input"
    assert caught.value.status == 422
    assert field in caught.value.fields, caught.value.fields
    assert caught.value.fields[field]
    assert (count(Medicine), count(OutboxEvent)) == (medicines, events)


@pytest.mark.parametrize("missing", ["name", "generic_name", "dosage_form", "strength"])
def test_a_missing_required_field_is_named(missing):
    with pytest.raises(InvalidInput) as caught:
        service.clean(data(**{missing: ...}))
    assert missing in caught.value.fields


@pytest.mark.parametrize("missing", ["unit_price", "gst_rate"])
def test_a_missing_price_or_rate_is_named(missing):
    with pytest.raises(InvalidInput) as caught:
        service.clean(data(**{missing: ...}))
    assert missing in caught.value.fields


def test_an_unknown_field_is_named(pharmacist):
    with pytest.raises(InvalidInput) as caught:
        service.create(pharmacist, data(colour="pink"))
    assert "colour" in caught.value.fields
    assert count(Medicine) == 0


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InvalidInput) as caught:
        service.clean(
            {
                "name": "A",
                "generic_name": "",
                "dosage_form": "PILL",
                "strength": "",
                "unit_price": "abc",
                "gst_rate": 7,
                "hsn_code": "12a4",
                "reorder_level": -1,
                "is_active": None,
            }
        )
    assert set(caught.value.fields) == {
        "name",
        "generic_name",
        "dosage_form",
        "strength",
        "unit_price",
        "gst_rate",
        "hsn_code",
        "reorder_level",
        "is_active",
    }


def test_partial_clean_checks_only_what_is_given():
    assert service.clean({"unit_price": "10.5"}, partial=True) == {"unit_price": Decimal("10.50")}
    assert service.clean({}, partial=True) == {}
    with pytest.raises(InvalidInput) as caught:
        service.clean({"name": ""}, partial=True)
    assert set(caught.value.fields) == {"name"}


# ---- adding --------------------------------------------------------------------------


def test_create_returns_the_medicine_with_its_ingredients_split(pharmacist):
    medicine = service.create(
        pharmacist, data(generic_name="Amoxicillin+Clavulanic   Acid", unit_price="22.4")
    )
    assert medicine.id
    assert medicine.generic_name == "Amoxicillin + Clavulanic Acid"
    assert medicine.ingredients == ["Amoxicillin", "Clavulanic Acid"]
    assert medicine.unit_price == Decimal("22.40")
    assert str(medicine.unit_price) == "22.40"
    assert medicine.created_by_id == pharmacist.id
    db.session.commit()
    saved = stored(medicine.id)
    assert saved.ingredients == ["Amoxicillin", "Clavulanic Acid"]
    assert str(saved.unit_price) == "22.40"
    assert isinstance(saved.unit_price, Decimal)
    assert (saved.name, saved.dosage_form, saved.strength) == ("Augmentin", "TABLET", "625 mg")
    assert (saved.drug_class, saved.manufacturer, saved.hsn_code) == ("Penicillin", "GSK", "3004")
    assert (saved.gst_rate, saved.reorder_level, saved.is_active) == (12, 20, True)
    assert saved.created_at and saved.updated_at


def test_reorder_level_defaults_to_zero_and_a_new_medicine_is_active(pharmacist):
    medicine = make_medicine(pharmacist, reorder_level=...)
    saved = stored(medicine.id)
    assert saved.reorder_level == 0
    assert saved.is_active is True


def test_create_writes_a_medicine_created_audit_row(pharmacist):
    medicine = service.create(pharmacist, data())
    (event,) = audit_rows(medicine.id)
    assert event["action"] == "MEDICINE_CREATED"
    assert event["resource"] == {"type": "medicine", "id": medicine.id}
    assert event["user"]["id"] == pharmacist.id
    assert event["changes"]["old"] is None
    new = event["changes"]["new"]
    assert new["name"] == "Augmentin"
    assert new["generic_name"] == "Amoxicillin + Clavulanic Acid"
    assert new["unit_price"] == "22.40"
    assert new["gst_rate"] == 12
    assert new["is_active"] is True
    medicine_id = medicine.id
    db.session.rollback()
    assert db.session.get(Medicine, medicine_id) is None
    assert audit_rows(medicine_id) == []


# ---- duplicates ----------------------------------------------------------------------


def test_the_same_name_strength_and_form_in_another_case_is_a_conflict(pharmacist):
    make_medicine(pharmacist)
    medicines, events = count(Medicine), count(OutboxEvent)
    with pytest.raises(Conflict) as caught:
        service.create(
            pharmacist,
            data(name=" AUGMENTIN ", strength="625 MG", dosage_form="tablet", unit_price="30"),
        )
    assert caught.value.code == "medicine_exists"
    assert caught.value.status == 409
    assert "name" in caught.value.fields
    assert (count(Medicine), count(OutboxEvent)) == (medicines, events)


def test_another_strength_or_form_is_a_different_medicine(pharmacist):
    first = make_medicine(pharmacist)
    stronger = make_medicine(pharmacist, strength="1 g")
    syrup = make_medicine(pharmacist, dosage_form="SUSPENSION")
    assert len({first.id, stronger.id, syrup.id}) == 3
    assert count(Medicine) == 3


def test_the_session_is_usable_after_a_duplicate(pharmacist):
    make_medicine(pharmacist)
    with pytest.raises(Conflict):
        service.create(pharmacist, data())
    other = make_medicine(pharmacist, name="Clavam")
    assert stored(other.id).name == "Clavam"


# ---- updating ------------------------------------------------------------------------


def test_update_changes_the_given_fields_and_audits_only_the_changes(pharmacist):
    medicine = make_medicine(pharmacist)
    service.update(
        pharmacist,
        medicine.id,
        {"name": "Augmentin", "unit_price": "24.5", "gst_rate": 5, "reorder_level": 20},
    )
    db.session.commit()
    saved = stored(medicine.id)
    assert saved.unit_price == Decimal("24.50")
    assert saved.gst_rate == 5
    assert saved.name == "Augmentin" and saved.manufacturer == "GSK"
    (event,) = audit_rows(medicine.id, "MEDICINE_UPDATED")
    assert event["user"]["id"] == pharmacist.id
    assert event["changes"]["old"] == {"unit_price": "22.40", "gst_rate": 12}
    assert event["changes"]["new"] == {"unit_price": "24.50", "gst_rate": 5}


def test_update_of_the_generic_name_splits_the_ingredients_again(pharmacist):
    medicine = make_medicine(pharmacist)
    service.update(pharmacist, medicine.id, {"generic_name": "Amoxicillin"})
    saved = stored(medicine.id)
    assert saved.generic_name == "Amoxicillin"
    assert saved.ingredients == ["Amoxicillin"]
    assert service.search("clavulanic").total == 0


def test_update_with_nothing_changed_writes_no_audit_row(pharmacist):
    medicine = make_medicine(pharmacist)
    service.update(
        pharmacist,
        medicine.id,
        {"generic_name": "Amoxicillin +Clavulanic Acid", "unit_price": "22.4", "gst_rate": 12},
    )
    assert audit_rows(medicine.id, "MEDICINE_UPDATED") == []


def test_update_with_a_bad_field_changes_nothing(pharmacist):
    medicine = make_medicine(pharmacist)
    with pytest.raises(InvalidInput) as caught:
        service.update(pharmacist, medicine.id, {"name": "Augmentin XR", "unit_price": "1.234"})
    assert set(caught.value.fields) == {"unit_price"}
    db.session.rollback()
    saved = stored(medicine.id)
    assert (saved.name, saved.unit_price) == ("Augmentin", Decimal("22.40"))
    assert audit_rows(medicine.id, "MEDICINE_UPDATED") == []


def test_update_to_a_duplicate_is_a_conflict_and_the_row_is_unchanged(pharmacist):
    make_medicine(pharmacist)
    other = make_medicine(pharmacist, name="Clavam", unit_price="18.00")
    with pytest.raises(Conflict) as caught:
        service.update(pharmacist, other.id, {"name": "augmentin", "unit_price": "20"})
    assert caught.value.code == "medicine_exists"
    assert caught.value.status == 409
    saved = stored(other.id)
    assert (saved.name, saved.unit_price) == ("Clavam", Decimal("18.00"))
    assert audit_rows(other.id, "MEDICINE_UPDATED") == []
    # The session carries on: a good change still saves.
    service.update(pharmacist, other.id, {"unit_price": "19"})
    db.session.commit()
    assert stored(other.id).unit_price == Decimal("19.00")


def test_update_of_an_unknown_medicine_is_not_found(pharmacist):
    with pytest.raises(NotFound) as caught:
        service.update(pharmacist, 987654321, {"unit_price": "1"})
    assert caught.value.code == "medicine_not_found"
    assert caught.value.status == 404


@pytest.mark.parametrize("medicine_id", [0, -1, 987654321, 2**31, 2**63, 10**30])
def test_get_of_an_unknown_or_impossible_id_is_not_found(medicine_id):
    with pytest.raises(NotFound) as caught:
        service.get_medicine(medicine_id)
    assert caught.value.code == "medicine_not_found"


def test_deactivating_keeps_the_record_and_is_audited(pharmacist):
    medicine = make_medicine(pharmacist)
    service.update(pharmacist, medicine.id, {"is_active": False})
    assert service.get_medicine(medicine.id).is_active is False
    (event,) = audit_rows(medicine.id, "MEDICINE_UPDATED")
    assert event["changes"] == {"old": {"is_active": True}, "new": {"is_active": False}}
    assert [e["action"] for e in audit_rows(medicine.id)] == [
        "MEDICINE_CREATED",
        "MEDICINE_UPDATED",
    ]


def test_renaming_updates_the_search(pharmacist):
    medicine = make_medicine(pharmacist)
    service.update(pharmacist, medicine.id, {"name": "Clavam", "drug_class": None})
    assert names(service.search("clavam")) == ["Clavam"]
    assert service.search("augmentin").total == 0
    assert service.search("penicillin").total == 0


# ---- search --------------------------------------------------------------------------


def test_search_by_a_name_fragment(catalogue):
    assert names(service.search("zith")) == ["Azithral"]
    assert names(service.search("DOLO")) == ["Dolo"]


def test_search_by_an_ingredient(catalogue):
    assert names(service.search("clavulanic")) == ["Augmentin"]
    assert names(service.search("paracetamol")) == ["Dolo"]
    assert names(service.search("amoxicillin")) == ["Amoxil", "Augmentin"]


def test_search_by_drug_class(catalogue):
    assert names(service.search("penicillin")) == ["Amoxil", "Augmentin"]
    assert names(service.search("Macrolide")) == ["Azithral"]


def test_every_word_must_appear(catalogue):
    assert names(service.search("amoxicillin clavulanic")) == ["Augmentin"]
    assert names(service.search("  CLAVULANIC   penicillin ")) == ["Augmentin"]
    assert names(service.search("penicillin macrolide")) == []
    assert names(service.search("magnesium aluminium")) == ["Gélusil"]


def test_accents_and_case_are_ignored(catalogue):
    assert names(service.search("gelusil")) == ["Gélusil"]
    assert names(service.search("GÉLUSIL")) == ["Gélusil"]
    assert names(service.search("AZÍTHRAL")) == ["Azithral"]
    assert names(service.search("ANTACID")) == ["Gélusil"]


def test_names_starting_with_the_text_come_first(catalogue, pharmacist):
    make_medicine(pharmacist, name="Clavam")
    # Augmentin sorts before Clavam by name, but Clavam starts with the text typed.
    assert names(service.search("clav")) == ["Clavam", "Augmentin"]
    assert names(service.search("amox")) == ["Amoxil", "Augmentin", "Clavam"]


def test_a_name_starting_with_the_text_comes_first_whatever_its_accents(pharmacist):
    make_medicine(pharmacist, name="Allerfree", generic_name="Ebastine", drug_class=None)
    make_medicine(pharmacist, name="Ébastel", generic_name="Ebastine", drug_class=None)
    # Accents are ignored when matching, so they are ignored when ranking too.
    assert names(service.search("ebast")) == ["Ébastel", "Allerfree"]


def test_no_query_lists_active_medicines_by_name(catalogue):
    assert names(service.search("")) == ["Amoxil", "Augmentin", "Azithral", "Dolo", "Gélusil"]
    assert service.search(None).total == 5
    assert service.search("   ").total == 5


def test_inactive_medicines_are_hidden_unless_asked_for(catalogue, pharmacist):
    service.update(pharmacist, catalogue["Amoxil"].id, {"is_active": False})
    assert names(service.search("amox")) == ["Augmentin"]
    assert service.search("").total == 4
    assert names(service.search("amox", active_only=False)) == ["Amoxil", "Augmentin"]
    assert service.search("", active_only=False).total == 5


def test_pagination(pharmacist):
    for i in range(5):
        make_medicine(pharmacist, name=f"Pagetest {i}")
    pages = [service.search("pagetest", page=n, per_page=2) for n in (1, 2, 3, 4)]
    assert [names(p) for p in pages] == [
        ["Pagetest 0", "Pagetest 1"],
        ["Pagetest 2", "Pagetest 3"],
        ["Pagetest 4"],
        [],
    ]
    assert {p.total for p in pages} == {5}
    assert [(p.page, p.per_page) for p in pages[:2]] == [(1, 2), (2, 2)]
    assert pages[0].has_next and not pages[2].has_next and pages[0].pages == 3


@pytest.mark.parametrize(
    ("page", "per_page", "field"),
    [(0, 50, "page"), (-1, 50, "page"), (1, 0, "per_page"), (1, 201, "per_page")],
)
def test_search_page_bounds(page, per_page, field):
    with pytest.raises(InvalidInput) as caught:
        service.search("x", page=page, per_page=per_page)
    assert field in caught.value.fields


def test_per_page_of_200_is_allowed(catalogue):
    assert service.search("", per_page=200).per_page == 200


def test_a_page_far_past_the_end_is_empty(catalogue):
    page = service.search("", page=10**15)
    assert (page.items, page.total) == ([], 5)


def test_like_wildcards_in_the_query_are_literal(pharmacist):
    make_medicine(pharmacist, name="Zinc 100% Oxide", generic_name="Zinc Oxide", drug_class=None)
    make_medicine(pharmacist, name="Under_Score", generic_name="Calamine", drug_class=None)
    make_medicine(pharmacist, name="Underxscore", generic_name="Calamine", drug_class=None)
    assert names(service.search("%")) == ["Zinc 100% Oxide"]
    assert names(service.search("under_")) == ["Under_Score"]
    assert names(service.search("_")) == ["Under_Score"]


def test_a_nul_character_in_the_query_is_ignored(catalogue):
    assert names(service.search("amo\x00xil")) == ["Amoxil"]


@pytest.mark.parametrize("q", ["²", "١٢٣", "+", "'", '"', ";--", "\\", "x" * 500, "a b c d e f g"])
def test_odd_queries_never_fail(catalogue, q):
    page = service.search(q)
    assert page.total == len(page.items)
    assert "Amoxil" not in names(page)


# ---- the demo catalogue (flask seed-demo) --------------------------------------------


def test_every_common_medicine_is_a_valid_catalogue_entry():
    keys = set()
    for name, generic, drug_class, form, strength, maker, price, gst in COMMON_MEDICINES:
        service.clean(
            {
                "name": name,
                "generic_name": generic,
                "drug_class": drug_class,
                "dosage_form": form,
                "strength": strength,
                "manufacturer": maker,
                "unit_price": price,
                "gst_rate": gst,
            }
        )
        keys.add((name.lower(), strength.lower(), form))
    assert len(keys) == len(COMMON_MEDICINES)


def test_seed_demo_adds_the_common_medicines(app):
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    active = db.session.scalar(
        select(func.count()).select_from(Medicine).where(Medicine.is_active.is_(True))
    )
    assert active >= 60
    assert f"Medicines added: {active}." in result.output
    amoxil = db.session.scalars(select(Medicine).where(Medicine.name == "Amoxil")).one()
    assert amoxil.drug_class == "Penicillin"
    assert amoxil.ingredients == ["Amoxicillin"]
    assert amoxil.generic_name == "Amoxicillin"
    assert "Amoxil" in names(service.search("penicillin", per_page=200))
    assert "Augmentin" in names(service.search("penicillin", per_page=200))
    assert len(audit_rows(action="MEDICINE_CREATED")) == active


def test_seed_demo_twice_adds_no_medicine(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    db.session.expire_all()
    first = (count(Medicine), len(audit_rows(action="MEDICINE_CREATED")))
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    assert "Medicines added: 0." in again.output
    db.session.expire_all()
    assert (count(Medicine), len(audit_rows(action="MEDICINE_CREATED"))) == first
