"""Forms of the front desk and queue pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional


class WalkInForm(FlaskForm):
    patient_id = IntegerField("Patient", validators=[DataRequired("Choose the patient.")])
    doctor_id = SelectField("Doctor", validators=[Optional()])
    complaint = StringField("Complaint", validators=[Optional(), Length(max=500)])
    urgent = BooleanField("Urgent")
    urgent_reason = StringField("Why urgent", validators=[Optional(), Length(max=200)])

    def walk_in_data(self) -> dict:
        return {
            "patient_id": self.patient_id.data,
            "doctor_id": int(self.doctor_id.data) if self.doctor_id.data else None,
            "complaint": self.complaint.data,
            "urgent": bool(self.urgent.data),
            "urgent_reason": self.urgent_reason.data,
        }


class StatusForm(FlaskForm):
    status = HiddenField(validators=[DataRequired()])
    back = HiddenField()


class NoShowForm(FlaskForm):
    reason = StringField(
        "Why is this a no-show?",
        validators=[DataRequired("Say why the patient is a no-show."), Length(max=200)],
        description="For example: called twice, not in the waiting room.",
    )
    back = HiddenField()


class UrgentForm(FlaskForm):
    reason = StringField("Why urgent", validators=[DataRequired(), Length(max=200)])
    back = HiddenField()


class CallForm(FlaskForm):
    doctor_id = HiddenField()


class DisplayKeyForm(FlaskForm):
    display_key = StringField(
        "Display key",
        validators=[Optional(), Length(max=200)],
        description="At least 12 characters. Leave empty for a new random key.",
    )
