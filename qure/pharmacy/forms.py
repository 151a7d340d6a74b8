"""The medicine form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from qure.pharmacy.models import DOSAGE_FORMS, GST_RATES, DrugSchedule

SCHEDULE_LABELS = {
    DrugSchedule.NONE: "None (over the counter or not scheduled)",
    DrugSchedule.H: "Schedule H (prescription only)",
    DrugSchedule.H1: "Schedule H1 (prescription only, kept in the H1 register)",
    DrugSchedule.X: "Schedule X (narcotic and psychotropic, registered)",
}


class MedicineForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    generic_name = StringField(
        "Generic name",
        validators=[DataRequired(), Length(max=400)],
        description="The ingredients joined by +, e.g. Amoxicillin + Clavulanic Acid.",
    )
    drug_class = StringField(
        "Drug class",
        validators=[Optional(), Length(max=80)],
        description="Used by the allergy check, e.g. Penicillin.",
    )
    dosage_form = SelectField(
        "Form", choices=[SelectChoice(f, f.title()) for f in DOSAGE_FORMS], default="TABLET"
    )
    strength = StringField("Strength", validators=[DataRequired(), Length(max=60)])
    manufacturer = StringField("Manufacturer", validators=[Optional(), Length(max=120)])
    unit_price = StringField(
        "Unit price (₹)", validators=[DataRequired(), Length(max=20)], description="e.g. 12.50"
    )
    gst_rate = SelectField(
        "GST rate",
        choices=[SelectChoice(str(r), f"{r}%") for r in GST_RATES],
        coerce=int,
        default=12,
    )
    schedule = SelectField(
        "Schedule",
        choices=[SelectChoice(s.value, SCHEDULE_LABELS[s]) for s in DrugSchedule],
        default=DrugSchedule.NONE.value,
        description="Drugs and Cosmetics Rules; H1 and X dispensings go to the H1 register.",
    )
    hsn_code = StringField("HSN code", validators=[Optional(), Length(max=8)])
    reorder_level = IntegerField(
        "Reorder level", default=0, validators=[Optional(), NumberRange(min=0, max=10**6)]
    )
    is_active = BooleanField("In use", default=True)

    def medicine_data(self) -> dict:
        return {
            "name": self.name.data,
            "generic_name": self.generic_name.data,
            "drug_class": self.drug_class.data,
            "dosage_form": self.dosage_form.data,
            "strength": self.strength.data,
            "manufacturer": self.manufacturer.data,
            "unit_price": self.unit_price.data,
            "gst_rate": self.gst_rate.data,
            "schedule": self.schedule.data,
            "hsn_code": self.hsn_code.data,
            "reorder_level": self.reorder_level.data or 0,
            "is_active": bool(self.is_active.data),
        }

    def fill(self, medicine) -> None:
        for key in ("name", "generic_name", "drug_class", "dosage_form", "strength"):
            getattr(self, key).data = getattr(medicine, key)
        self.manufacturer.data = medicine.manufacturer
        self.unit_price.data = str(medicine.unit_price)
        self.gst_rate.data = medicine.gst_rate
        self.schedule.data = medicine.schedule
        self.hsn_code.data = medicine.hsn_code
        self.reorder_level.data = medicine.reorder_level
        self.is_active.data = medicine.is_active
