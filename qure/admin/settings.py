"""The clinic's settings (SPEC 8 and the billing issue): what receipts and prescriptions
print and what billing charges by default. Stored in PostgreSQL (`clinic_settings`, one
row per key), audited; the environment's values (CLINIC_NAME, ...) are only the defaults
until an admin saves one."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from flask import current_app, g, has_request_context
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from qure.admin.models import ClinicSetting
from qure.auth.models import User
from qure.core import audit
from qure.core.errors import InvalidInput
from qure.core.money import GST_RATES, parse_money
from qure.core.text import plain_text
from qure.extensions import db

# Setting -> (the environment setting that gives its default, the default without one).
FIELDS: dict[str, tuple[str | None, str]] = {
    "clinic_name": ("CLINIC_NAME", "Qure Clinic"),
    "address": ("CLINIC_ADDRESS", ""),
    "phone": ("CLINIC_PHONE", ""),
    "gstin": ("CLINIC_GSTIN", ""),
    "registration": ("CLINIC_REGISTRATION", ""),
    "upi_id": ("CLINIC_UPI_ID", ""),
    "consultation_fee": ("CONSULTATION_FEE", "500.00"),
    "consultation_gst_rate": ("CONSULTATION_GST_RATE", "0"),
    "default_gst_rate": ("DEFAULT_GST_RATE", "18"),
}
TEXT_LIMITS = {"clinic_name": 120, "address": 300, "phone": 40, "registration": 120}
RATES = ("consultation_gst_rate", "default_gst_rate")
KEY_PREFIX = "setting:"  # beside the display key's row in the same table

GSTIN_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GSTIN_RE = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]$")
# State and union-territory codes of the GST registry (01-38), and 97 (other territory).
GSTIN_STATES = {f"{n:02d}" for n in range(1, 39)} | {"97"}
UPI_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,255}@[A-Za-z][A-Za-z0-9]{1,63}$")


def gstin_check_character(first14: str) -> str:
    """The 15th character of a GSTIN: the base-36 checksum of the first 14 (factors 1 and
    2 alternating; each product's base-36 digits summed)."""
    total = 0
    for i, char in enumerate(first14):
        product = GSTIN_CHARS.index(char) * (2 if i % 2 else 1)
        total += product // 36 + product % 36
    return GSTIN_CHARS[(36 - total % 36) % 36]


def check_gstin(value: str) -> str | None:
    """Why `value` is not a GSTIN, or None when it is one."""
    if len(value) != 15:
        return "A GSTIN has 15 characters."
    if not GSTIN_RE.match(value):
        return "A GSTIN reads like 27AAPFU0939F1ZV: state, PAN, entity, Z, check."
    if value[:2] not in GSTIN_STATES:
        return f"{value[:2]} is not a state code."
    if gstin_check_character(value[:14]) != value[14]:
        return "The GSTIN's last character does not match (a typing mistake?)."
    return None


def _default(key: str) -> str:
    name, fallback = FIELDS[key]
    value = current_app.config.get(name) if name else None
    return str(value) if value not in (None, "") else fallback


def _typed(key: str, text: str) -> Any:
    if key == "consultation_fee":
        return Decimal(text)
    if key in RATES:
        return int(text)
    return text


def get_settings() -> dict[str, Any]:
    """Every setting: the saved value, else the environment's, else the built-in default.
    Amounts are Decimal, rates int, the rest text ("" when unset). One statement."""
    saved = dict(
        db.session.execute(
            select(ClinicSetting.key, ClinicSetting.value).where(
                ClinicSetting.key.in_([KEY_PREFIX + k for k in FIELDS])
            )
        ).all()
    )
    return {k: _typed(k, saved.get(KEY_PREFIX + k, _default(k))) for k in FIELDS}


def letterhead(settings: dict[str, Any] | None = None) -> dict[str, str]:
    """What a printed document's header names (templates/pdf/_clinic_header.html): the
    clinic's name, address, phone, GSTIN and registration, from `settings` (read when not
    given)."""
    settings = settings if settings is not None else get_settings()
    return {
        "name": settings["clinic_name"],
        "address": settings["address"],
        "phone": settings["phone"],
        "gstin": settings["gstin"],
        "registration": settings["registration"],
    }


def clinic_name() -> str:
    """The clinic's saved name for a page's header and title, read once per request. An
    error page rendered while the database is away still has a header: the environment's
    name then."""
    if has_request_context() and "clinic_name" in g:
        return g.clinic_name
    try:
        name = db.session.scalar(
            select(ClinicSetting.value).where(ClinicSetting.key == KEY_PREFIX + "clinic_name")
        ) or _default("clinic_name")
    except SQLAlchemyError:
        name = _default("clinic_name")
    if has_request_context():
        g.clinic_name = name
    return name


def clean(data: dict[str, Any]) -> dict[str, str]:
    """The settings in `data` as the text they are stored as. Raises InvalidInput naming
    every bad field (and unknown ones)."""
    errors = {k: "Unknown setting." for k in data if k not in FIELDS}
    out: dict[str, str] = {}
    for key in FIELDS:
        if key not in data:
            continue
        value = data[key]
        try:
            if key in TEXT_LIMITS:
                text = plain_text(value, key, TEXT_LIMITS[key]) or ""
                if key == "clinic_name" and not text:
                    raise InvalidInput(key, fields={key: "Give the clinic's name."})
                out[key] = text
            elif key == "gstin":
                text = (plain_text(value, key, 15) or "").upper()
                why = check_gstin(text) if text else None
                if why:
                    raise InvalidInput(key, fields={key: why})
                out[key] = text
            elif key == "upi_id":
                text = plain_text(value, key, 320) or ""
                if text and not UPI_RE.match(text):
                    raise InvalidInput(key, fields={key: "A UPI ID looks like clinic@bank."})
                out[key] = text
            elif key == "consultation_fee":
                out[key] = str(parse_money(value, key))
            else:  # a GST rate
                if isinstance(value, bool) or str(value).strip() not in {str(r) for r in GST_RATES}:
                    rates = ", ".join(str(r) for r in GST_RATES)
                    raise InvalidInput(key, fields={key: f"Choose a GST rate: {rates}."})
                out[key] = str(int(str(value).strip()))
        except InvalidInput as exc:
            errors.update(exc.fields or {key: str(exc)})
    if errors:
        raise InvalidInput.naming(errors)
    return out


def update(actor: User, data: dict[str, Any]) -> dict[str, Any]:
    """Save the given settings (any subset); audited as SETTINGS_UPDATED with the old and
    new values of what changed. Raises InvalidInput naming each bad field. Returns every
    setting."""
    values = clean(data)
    before = get_settings()
    rows = {
        row.key: row
        for row in db.session.scalars(
            select(ClinicSetting)
            .where(ClinicSetting.key.in_([KEY_PREFIX + k for k in values]))
            .with_for_update()
        )
    }
    for key, text in values.items():
        row = rows.get(KEY_PREFIX + key)
        if row is None:
            db.session.add(ClinicSetting(key=KEY_PREFIX + key, value=text, updated_by_id=actor.id))
        elif row.value != text:
            row.value, row.updated_by_id = text, actor.id
    db.session.flush()
    if has_request_context():
        g.pop("clinic_name", None)  # a page rendered after this request's save shows it
    after = {**before, **{key: _typed(key, text) for key, text in values.items()}}
    old, new = audit.diff(before, after)
    if new:
        audit.record(actor, "SETTINGS_UPDATED", ("settings", "clinic"), old, new)
    return after
