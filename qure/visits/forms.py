"""Forms of the visit workspace."""

from __future__ import annotations

from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from qure.visits.models import NOTE_CATEGORIES


def _short(value) -> str:
    """70.00 -> "70", 175.50 -> "175.5": a stored measure as a person writes it."""
    text = f"{value:f}" if isinstance(value, Decimal) else str(value)
    return text.rstrip("0").rstrip(".") if "." in text else text


class VitalsForm(FlaskForm):
    bp_systolic = StringField("BP systolic (mmHg)", validators=[Optional(), Length(max=6)])
    bp_diastolic = StringField("BP diastolic (mmHg)", validators=[Optional(), Length(max=6)])
    temperature = StringField("Temperature", validators=[Optional(), Length(max=6)])
    temperature_unit = SelectField(
        "Unit", choices=[SelectChoice("C", "°C"), SelectChoice("F", "°F")], default="C"
    )
    pulse = StringField("Pulse (/min)", validators=[Optional(), Length(max=6)])
    spo2 = StringField("SpO₂ (%)", validators=[Optional(), Length(max=6)])
    weight_kg = StringField("Weight (kg)", validators=[Optional(), Length(max=8)])
    height_cm = StringField("Height (cm)", validators=[Optional(), Length(max=8)])
    respiratory_rate = StringField(
        "Respiratory rate (/min)", validators=[Optional(), Length(max=6)]
    )

    NAMES = (
        "bp_systolic",
        "bp_diastolic",
        "temperature",
        "pulse",
        "spo2",
        "weight_kg",
        "height_cm",
        "respiratory_rate",
    )

    def vitals(self) -> dict:
        """Every vital on the form; an emptied field clears the value (what the doctor
        sees is what is saved)."""
        values = {n: (getattr(self, n).data or None) for n in self.NAMES}
        values["temperature_unit"] = self.temperature_unit.data
        return values

    def fill(self, visit, unit: str = "C") -> None:
        """Show the stored values; the temperature in the clinic's preferred unit."""
        from qure.visits.service import fahrenheit

        for name in self.NAMES:
            source = "temperature_c" if name == "temperature" else name
            value = getattr(visit, source)
            if name == "temperature" and unit == "F":
                value = fahrenheit(value)
            shown = _short(value) if name in ("weight_kg", "height_cm") else str(value)
            getattr(self, name).data = "" if value is None else shown
        self.temperature_unit.data = unit


class FindingsForm(FlaskForm):
    chief_complaint = StringField("Chief complaint", validators=[Optional(), Length(max=500)])
    symptom_duration = StringField(
        "Since", validators=[Optional(), Length(max=100)], description="e.g. 3 days"
    )
    diagnosis = StringField("Diagnosis", validators=[Optional(), Length(max=500)])
    icd10_code = StringField(
        "ICD-10 code", validators=[Optional(), Length(max=8)], description="Optional, e.g. J02.9"
    )
    treatment_plan = TextAreaField("Treatment plan", validators=[Optional(), Length(max=5000)])
    follow_up_date = DateField("Follow-up", validators=[Optional()])

    NAMES = (
        "chief_complaint",
        "symptom_duration",
        "diagnosis",
        "icd10_code",
        "treatment_plan",
        "follow_up_date",
    )

    def findings(self) -> dict:
        return {n: getattr(self, n).data for n in self.NAMES}

    def fill(self, visit) -> None:
        for name in self.NAMES:
            getattr(self, name).data = getattr(visit, name)


class NoteForm(FlaskForm):
    category = SelectField(
        "Category", choices=[SelectChoice(c, c.title()) for c in NOTE_CATEGORIES]
    )
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


class AdviceForm(FlaskForm):
    notes = TextAreaField("Advice on the prescription", validators=[Optional(), Length(max=1000)])
    position = IntegerField(validators=[Optional()])
