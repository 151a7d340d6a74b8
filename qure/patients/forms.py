"""Patient registration and edit forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from qure.core import phone
from qure.core.forms import ClinicDateField
from qure.patients.models import BLOOD_GROUPS

SEX_CHOICES = [
    SelectChoice("", "Choose"),
    SelectChoice("F", "Female"),
    SelectChoice("M", "Male"),
    SelectChoice("O", "Other"),
]
BLOOD_GROUP_CHOICES = [SelectChoice("", "Unknown")] + [SelectChoice(g) for g in BLOOD_GROUPS]
# Service field names that the form shows under another name.
ERROR_ALIASES = {
    "emergency_contact.name": "ec_name",
    "emergency_contact.phone": "ec_phone",
    "emergency_contact.relation": "ec_relation",
    "emergency_contact": "ec_name",
}


PHONE_HELP = (
    "Typed any way: 98765 43210, 098765 43210 or +91 98765 43210; "
    "another country's number with its + code."
)


class PatientForm(FlaskForm):
    full_name = StringField(
        "Full name", validators=[DataRequired("Full name is required."), Length(max=120)]
    )
    date_of_birth = ClinicDateField("Date of birth", validators=[Optional()])
    age_years = IntegerField(
        "Or approximate age (years)",
        validators=[Optional(), NumberRange(min=0, max=130)],
        description="Only when the date of birth is not known.",
    )
    sex = SelectField("Sex", choices=SEX_CHOICES, validators=[DataRequired("Sex is required.")])
    phone = StringField(
        "Phone",
        validators=[DataRequired("Phone is required."), Length(max=40)],
        description=PHONE_HELP,
    )
    email = EmailField("Email", validators=[Optional(), Length(max=254)])
    address = TextAreaField("Address", validators=[Optional(), Length(max=500)])
    blood_group = SelectField("Blood group", choices=BLOOD_GROUP_CHOICES)
    allergies = TextAreaField(
        "Allergies", description="One per line or separated by commas, e.g. Penicillin."
    )
    chronic_conditions = TextAreaField("Chronic conditions", description="One per line.")
    ec_name = StringField("Emergency contact name", validators=[Optional(), Length(max=120)])
    ec_phone = StringField("Emergency contact phone", validators=[Optional(), Length(max=40)])
    ec_relation = StringField("Relation", validators=[Optional(), Length(max=40)])
    confirm_new = BooleanField("This is a different person: register anyway")
    # Where to go once registered (a local path; the view checks it), kept across a retry.
    next = HiddenField()

    def patient_data(self, editing: bool = False) -> dict:
        """The form's values in the service's terms."""
        data = {
            "full_name": self.full_name.data,
            "sex": self.sex.data,
            "phone": self.phone.data,
            "email": self.email.data,
            "address": self.address.data,
            "blood_group": self.blood_group.data,
            "allergies": self.allergies.data or "",
            "chronic_conditions": self.chronic_conditions.data or "",
            "emergency_contact": {
                "name": self.ec_name.data,
                "phone": self.ec_phone.data,
                "relation": self.ec_relation.data,
            },
        }
        if self.date_of_birth.data is not None or self.age_years.data is not None:
            data["date_of_birth"] = self.date_of_birth.data
            data["age_years"] = self.age_years.data
        elif not editing:
            data["date_of_birth"] = None
        return data

    def fill(self, patient) -> None:
        """Pre-fill from a patient record (edit page)."""
        self.full_name.data = patient.full_name
        self.date_of_birth.data = patient.date_of_birth
        self.sex.data = patient.sex
        self.phone.data = phone.display(patient.phone)
        self.email.data = patient.email
        self.address.data = patient.address
        self.blood_group.data = patient.blood_group or ""
        self.allergies.data = "\n".join(patient.allergies or [])
        self.chronic_conditions.data = "\n".join(patient.chronic_conditions or [])
        contact = patient.emergency_contact or {}
        self.ec_name.data = contact.get("name")
        self.ec_phone.data = phone.display(contact.get("phone"))
        self.ec_relation.data = contact.get("relation")

    def label_errors(self) -> list[tuple[str, str]]:
        """Name the field in each of its messages ("Phone: Too short ...") and return the
        (id, label) of every field with errors, in the form's order, for the summary."""
        faulted = []
        for field in self:
            if not field.errors or field.type in ("CSRFTokenField", "HiddenField"):
                continue
            label = field.label.text
            field.errors = [m if m.startswith(label) else f"{label}: {m}" for m in field.errors]
            faulted.append((field.id, label))
        return faulted
