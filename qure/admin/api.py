"""`/api/v1/settings`: the clinic's settings (ADMIN only, reading included)."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from qure.admin import settings
from qure.core.http import transactional
from qure.core.money import GST_RATES
from qure.core.roles import Role, api_roles
from qure.core.schemas import ErrorSchema

blp = Blueprint(
    "api_settings", __name__, url_prefix="/api/v1/settings", description="Clinic settings"
)


class SettingsSchema(Schema):
    clinic_name = fields.String()
    address = fields.String()
    phone = fields.String()
    gstin = fields.String(metadata={"description": "15 characters, checked; empty: none"})
    registration = fields.String()
    upi_id = fields.String(metadata={"description": "name@bank; empty: no UPI QR codes"})
    # Sent as text ("500.00"): apispec would document a Decimal field as a number.
    consultation_fee = fields.Decimal(
        as_string=True,
        places=2,
        metadata={"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "example": "500.00"},
    )
    consultation_gst_rate = fields.Integer(metadata={"enum": list(GST_RATES)})
    default_gst_rate = fields.Integer(metadata={"enum": list(GST_RATES)})


class SettingsIn(Schema):
    """Any subset; every value is checked by the service (a field error names it)."""

    clinic_name = fields.Raw()
    address = fields.Raw()
    phone = fields.Raw()
    gstin = fields.Raw()
    registration = fields.Raw()
    upi_id = fields.Raw()
    consultation_fee = fields.Raw(metadata={"type": "string", "example": "500.00"})
    consultation_gst_rate = fields.Raw(metadata={"type": "integer", "enum": list(GST_RATES)})
    default_gst_rate = fields.Raw(metadata={"type": "integer", "enum": list(GST_RATES)})


@blp.get("")
@api_roles(Role.ADMIN)
@blp.response(200, SettingsSchema)
def get_settings():
    """The clinic's settings as receipts and billing use them."""
    return settings.get_settings()


@blp.patch("")
@api_roles(Role.ADMIN)
@blp.arguments(SettingsIn)
@blp.response(200, SettingsSchema)
@blp.alt_response(422, schema=ErrorSchema)
@transactional
def update_settings(body):
    """Change any subset of the settings (audited)."""
    return settings.update(g.actor, body)
