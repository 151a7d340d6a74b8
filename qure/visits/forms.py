"""Forms of the visit workspace."""

from __future__ import annotations

from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from qure.core.forms import ClinicDateField
from qure.visits.models import NoteCategory
from qure.visits.service import BAD_DAY
from qure.visits.vitals import fahrenheit


def _short(value) -> str:
    """70.00 -> "70", 175.50 -> "175.5": a stored measure as a person writes it."""
    text = f"{value:f}" if isinstance(value, Decimal) else str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


VITAL_NAMES = (
    "bp_systolic",
    "bp_diastolic",
    "temperature",
    "pulse",
    "spo2",
    "weight_kg",
    "height_cm",
    "respiratory_rate",
)
FINDING_NAMES = (
    "chief_complaint",
    "symptom_duration",
    "diagnosis",
    "icd10_code",
    "treatment_plan",
    "follow_up_date",
)
CATEGORY_CHOICES = [SelectChoice(c, c.title()) for c in NoteCategory]


def _measure(label: str) -> StringField:
    return StringField(label, render_kw={"inputmode": "decimal", "autocomplete": "off"})


class WorkspaceForm(FlaskForm):
    """The whole visit workspace in one form: vitals, findings, a new note, the advice.

    No field validators: the visits service checks every section in one round, so that
    all errors show at once beside their fields (`ALIASES` maps its names to ours)."""

    bp_systolic = _measure("BP systolic (mmHg)")
    bp_diastolic = _measure("BP diastolic (mmHg)")
    temperature = _measure("Temperature")
    temperature_unit = SelectField(
        "Unit",
        choices=[SelectChoice("C", "°C"), SelectChoice("F", "°F")],
        default="C",
        validate_choice=False,
    )
    pulse = _measure("Pulse (/min)")
    spo2 = _measure("SpO₂ (%)")
    weight_kg = _measure("Weight (kg)")
    height_cm = _measure("Height (cm)")
    respiratory_rate = _measure("Respiratory rate (/min)")
    chief_complaint = StringField("Chief complaint")
    symptom_duration = StringField("Since", description="e.g. 3 days")
    diagnosis = StringField("Diagnosis", render_kw={"autocomplete": "off"})
    icd10_code = StringField(
        "ICD-10 code",
        description="Optional: a code such as J02.9, or the diagnosis in words to find it",
        render_kw={"autocomplete": "off", "list": "icd10-options", "spellcheck": "false"},
    )
    treatment_plan = TextAreaField("Treatment plan")
    follow_up_date = ClinicDateField("Follow-up", message=BAD_DAY)
    note_category = SelectField("Note category", choices=CATEGORY_CHOICES, validate_choice=False)
    note_text = TextAreaField("New note", description="Saved with the rest of the visit.")
    # Shown in the prescription card, outside the <form> element: joined to it by id.
    advice = TextAreaField("Advice on the prescription", render_kw={"form": "visit-form"})

    ALIASES = {
        **{f"vitals.{name}": name for name in VITAL_NAMES},
        "note.category": "note_category",
        "note.text": "note_text",
    }

    def values(self, with_advice: bool) -> dict:
        """What the visits service's `save_workspace` takes. An emptied field clears the
        value: what the doctor sees is what is saved."""
        vitals = {n: (getattr(self, n).data or None) for n in VITAL_NAMES}
        vitals["temperature_unit"] = self.temperature_unit.data
        data = {"vitals": vitals, **{n: getattr(self, n).data for n in FINDING_NAMES}}
        data["note"] = {"category": self.note_category.data, "text": self.note_text.data}
        if with_advice:
            data["advice"] = self.advice.data
        return data

    def fill(self, visit, unit: str, prescription) -> None:
        """Show the stored values; the temperature in the clinic's preferred unit."""
        for name in VITAL_NAMES:
            source = "temperature_c" if name == "temperature" else name
            value = getattr(visit, source)
            if name == "temperature" and unit == "F":
                value = fahrenheit(value)
            shown = _short(value) if name in ("weight_kg", "height_cm") else str(value)
            getattr(self, name).data = "" if value is None else shown
        self.temperature_unit.data = unit
        for name in FINDING_NAMES:
            getattr(self, name).data = getattr(visit, name)
        self.advice.data = prescription.notes if prescription is not None else None


class NoteForm(FlaskForm):
    category = SelectField("Category", choices=CATEGORY_CHOICES)
    text = TextAreaField("Note", validators=[DataRequired(), Length(max=5000)])


class ItemForm(FlaskForm):
    medicine_id = HiddenField(validators=[DataRequired()])
    dose = StringField("Dose", default="1", validators=[DataRequired(), Length(max=8)])
    frequency = StringField(
        "How often",
        validators=[DataRequired(), Length(max=20)],
        description="OD, BD, TDS, QID, HS, STAT, SOS or 1-0-1",
    )
    duration_days = IntegerField("Days", default=5, validators=[Optional()])
    quantity = IntegerField("Quantity", validators=[Optional()])
    route = StringField("Route", validators=[Optional(), Length(max=40)])
    instructions = StringField(
        "Instructions", validators=[Optional(), Length(max=300)], description="e.g. after food"
    )
    override_reason = StringField("Reason to go on", validators=[Optional(), Length(max=500)])

    def item(self) -> dict:
        return {
            "medicine_id": int(self.medicine_id.data) if self.medicine_id.data.isdigit() else None,
            "dose": self.dose.data,
            "frequency": self.frequency.data,
            "duration_days": self.duration_days.data,
            "quantity": self.quantity.data,
            "route": self.route.data or None,
            "instructions": self.instructions.data or None,
        }


class StartForm(FlaskForm):
    patient_id = HiddenField(validators=[DataRequired()])
