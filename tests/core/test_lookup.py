"""One lookup by id for every service (`core.db.get_or_raise`) and one id limit (`MAX_ID`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qure.auth.models import User
from qure.core.db import MAX_BIG_ID, MAX_ID, get_or_none, get_or_raise, max_id
from qure.core.errors import NotFound
from qure.extensions import db
from qure.patients.models import Patient

QURE = Path(__file__).resolve().parents[2] / "qure"


def test_a_row_is_found_by_its_id(doctor):
    assert get_or_raise(User, doctor.id, "No such user.", "user_not_found") is doctor


@pytest.mark.parametrize("ident", [0, -1, 987_654, MAX_ID, MAX_ID + 1, MAX_BIG_ID + 1, 10**30])
def test_a_missing_or_out_of_range_id_is_not_found(app, ident):
    with pytest.raises(NotFound) as caught:
        get_or_raise(User, ident, "No such user.", "user_not_found")
    assert (caught.value.code, caught.value.message) == ("user_not_found", "No such user.")


def test_a_bigint_key_is_read_beyond_the_integer_range(app):
    assert (max_id(User), max_id(Patient)) == (MAX_ID, MAX_BIG_ID)
    assert get_or_none(Patient, MAX_ID + 1) is None  # asked of the database, no error
    assert get_or_none(Patient, MAX_BIG_ID + 1) is None


def test_no_id_names_nothing(app):
    assert get_or_none(User, None) is None


def test_a_locked_read_sees_the_row_as_it_is_now(doctor):
    db.session.execute(User.__table__.update().where(User.id == doctor.id).values(full_name="Z"))
    assert get_or_raise(User, doctor.id, "No such user.", "user_not_found", lock=True) is doctor
    assert doctor.full_name == "Z"


def test_the_id_limit_is_written_once_in_core():
    limit = re.compile(r"2\s*\*\*\s*(31|63)")
    found = [
        str(path.relative_to(QURE))
        for path in QURE.rglob("*.py")
        if limit.search(path.read_text()) and path != QURE / "core" / "db.py"
    ]
    assert found == []
