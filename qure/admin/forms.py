"""Forms of the admin pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice

from qure.core.money import GST_RATES

RATE_CHOICES = [SelectChoice(str(r), f"{r} %") for r in GST_RATES]


class SettingsForm(FlaskForm):
    """What receipts and prescriptions print, and billing's defaults. The service checks
    every value (the GSTIN's checksum, the UPI ID, the fee) and names the field it refuses."""

    clinic_name = StringField("Clinic name")
    address = TextAreaField("Address", render_kw={"rows": 3})
    phone = StringField("Phone")
    gstin = StringField(
        "GSTIN", description="15 characters, as on the GST certificate. Leave empty if none."
    )
    registration = StringField("Registration", description="Printed under the clinic's name.")
    upi_id = StringField(
        "UPI ID",
        description="Such as clinic@okaxis: unpaid receipts then carry a QR code to pay by UPI.",
    )
    consultation_fee = StringField("Consultation fee (₹)", description="Such as 500.00.")
    consultation_gst_rate = SelectField(
        "GST on the consultation",
        choices=RATE_CHOICES,
        description="Clinical services are exempt: 0 % unless your accountant says otherwise.",
    )
    default_gst_rate = SelectField(
        "GST for a line without a rate", choices=RATE_CHOICES, description="Usually 18 %."
    )

    def values(self) -> dict[str, str]:
        return {name: field.data for name, field in self._fields.items() if name != "csrf_token"}
