"""patients' phones in one stored form (E.164)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:30:00

Until now "+91 98765 43210" was stored as +919876543210 and "98765 43210" as 9876543210:
one number, two forms, so the duplicate check and search missed each other's records.
This rewrites every patient's phone (and its digits) and every emergency contact's phone
in the form the app now stores, through the app's own rule (`qure.core.phone.normalize`),
so that old rows and new ones agree. It merges nothing and loses nothing: a value that is
not a valid number is left as it was, and two records that now share a phone and a date
of birth are simply what the duplicate check reports, as for any other pair.

Downgrade leaves the phones as they are: the code before this revision reads E.164 too.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from qure.core.phone import normalize

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 2000
MIN_DIGITS = 10  # the CHECK constraint on patients.phone_digits

SELECT = sa.text(
    "SELECT id, phone, emergency_contact ->> 'phone' AS contact_phone FROM patients "
    "WHERE id > :after ORDER BY id LIMIT :batch"
)
SET_PHONE = sa.text("UPDATE patients SET phone = :phone, phone_digits = :digits WHERE id = :id")
SET_CONTACT_PHONE = sa.text(
    "UPDATE patients SET emergency_contact = "
    "jsonb_set(emergency_contact, '{phone}', to_jsonb(CAST(:phone AS text))) WHERE id = :id"
)


def convert(value: str | None) -> str | None:
    """The stored form of an old phone value, or None when it is to be left as it was (not
    a valid number, or too short for the phone_digits constraint)."""
    try:
        number = normalize(value or "")
    except ValueError:
        return None
    return number if len(number) - 1 >= MIN_DIGITS else None


def convert_rows(rows) -> tuple[list[dict], list[dict]]:
    """The phone and contact-phone updates for (id, phone, contact_phone) rows: only for
    values that parse and differ from what is stored."""
    phones, contacts = [], []
    for patient_id, phone, contact_phone in rows:
        number = convert(phone)
        if number and number != phone:
            phones.append({"id": patient_id, "phone": number, "digits": number[1:]})
        number = convert(contact_phone)
        if number and number != contact_phone:
            contacts.append({"id": patient_id, "phone": number})
    return phones, contacts


def upgrade():
    bind = op.get_bind()
    after = 0
    while rows := bind.execute(SELECT, {"after": after, "batch": BATCH}).all():
        phones, contacts = convert_rows(rows)
        if phones:
            bind.execute(SET_PHONE, phones)
        if contacts:
            bind.execute(SET_CONTACT_PHONE, contacts)
        after = rows[-1][0]


def downgrade():
    pass
