"""Migration 0005: the phones stored before it, in their old forms, become E.164.

Runs the real migrations on a database of its own (created and dropped here), so that the
shared test schema is never downgraded under the other tests.
"""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, make_url, text

from qure import ROOT
from qure.extensions import db, migrate

OLD_ROWS = [
    # (name, phone, phone_digits, emergency contact) as the code before 0005 stored them
    ("Typed With 91", "+919876543210", "919876543210", None),
    ("Typed Without 91", "9876543210", "9876543210", {"name": "Arun", "phone": "9845099999"}),
    ("Typed With 0", "09876543211", "09876543211", {"name": "Asha", "phone": "+919845011111"}),
    ("Not A Number", "5555555555", "5555555555", {"name": "Ravi", "phone": "123456789012345"}),
    ("Fifteen Digits", "123456789012345", "123456789012345", None),
    ("From London", "+442079460958", "442079460958", None),
]


@pytest.fixture
def scratch_app(app):
    """An app on a new, empty database beside the test one; dropped afterwards."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    name = f"{url.database}_migration_0005"
    server = create_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    scratch = Flask("migration_0005")
    scratch.config["SQLALCHEMY_DATABASE_URI"] = url.set(database=name).render_as_string(False)
    db.init_app(scratch)
    migrate.init_app(scratch, db, directory=str(ROOT / "migrations"))
    try:
        with scratch.app_context():
            yield scratch
            db.engine.dispose()
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def patients(conn) -> dict[str, tuple]:
    rows = conn.execute(
        text("SELECT full_name, phone, phone_digits, emergency_contact, allergies FROM patients")
    )
    return {name: tuple(rest) for name, *rest in rows}


def test_upgrading_stores_old_phones_in_e164_and_loses_nothing(scratch_app):
    upgrade(revision="0004")
    with db.engine.begin() as conn:
        for name, phone, digits, contact in OLD_ROWS:
            conn.execute(
                text(
                    "INSERT INTO patients (full_name, name_search, date_of_birth, sex, phone, "
                    "phone_digits, emergency_contact, allergies) VALUES (:name, :search, "
                    "'1985-06-15', 'F', :phone, :digits, CAST(:contact AS jsonb), '{Penicillin}')"
                ),
                {
                    "name": name,
                    "search": name.lower(),
                    "phone": phone,
                    "digits": digits,
                    "contact": json.dumps(contact) if contact else None,
                },
            )
    upgrade(revision="0005")
    with db.engine.connect() as conn:
        after = patients(conn)
    allergy = ["Penicillin"]
    assert after == {
        "Typed With 91": ("+919876543210", "919876543210", None, allergy),
        # The same number as the row above: both records stay, for the duplicate check.
        "Typed Without 91": (
            "+919876543210",
            "919876543210",
            {"name": "Arun", "phone": "+919845099999"},
            allergy,
        ),
        "Typed With 0": (
            "+919876543211",
            "919876543211",
            {"name": "Asha", "phone": "+919845011111"},
            allergy,
        ),
        # Values that are not valid numbers are left as they were.
        "Not A Number": (
            "5555555555",
            "5555555555",
            {"name": "Ravi", "phone": "123456789012345"},
            allergy,
        ),
        "Fifteen Digits": ("123456789012345", "123456789012345", None, allergy),
        "From London": ("+442079460958", "442079460958", None, allergy),
    }

    downgrade(revision="0004")  # keeps the phones: the older code reads E.164 too
    with db.engine.connect() as conn:
        assert patients(conn) == after
