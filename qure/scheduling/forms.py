"""Forms of the schedule and appointment pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from qure.core import clock
from qure.core.forms import ClinicDateField, ClinicDateTimeField
from qure.scheduling.parsing import read_break_lines

WEEKDAYS = [
    SelectChoice(str(i), label)
    for i, label in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), start=1)
]


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class SlotsForm(FlaskForm):
    doctor_id = SelectField("Doctor", coerce=int, validators=[Optional()])
    start_date = ClinicDateField("From", validators=[DataRequired()])
    end_date = ClinicDateField("To (inclusive)", validators=[DataRequired()])
    weekdays = CheckboxesField("Weekdays", choices=WEEKDAYS, default=["1", "2", "3", "4", "5"])
    start_time = TimeField("Day starts", validators=[DataRequired()], default=None)
    end_time = TimeField("Day ends", validators=[DataRequired()])
    duration_minutes = SelectField(
        "Each slot",
        choices=[SelectChoice("15", "15 minutes"), SelectChoice("30", "30 minutes")],
        default="15",
    )
    breaks = TextAreaField(
        "Breaks",
        validators=[Optional(), Length(max=200)],
        description="One per line, such as 13:00-14:00.",
    )
    preview = SubmitField("Preview")
    create = SubmitField("Create slots")

    def validate_weekdays(self, field) -> None:
        if not field.data:
            raise ValidationError("Choose at least one weekday.")

    def validate_breaks(self, field) -> None:
        try:
            read_break_lines(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def slot_data(self) -> dict:
        """The form's values in the service's terms: dates, times, ISO weekday numbers and
        (start, end) breaks (whether each break ends after it starts is the service's rule)."""
        return {
            "doctor_id": self.doctor_id.data,
            "start_date": self.start_date.data,
            "end_date": self.end_date.data,
            "weekdays": {int(day) for day in self.weekdays.data},
            "start_time": self.start_time.data,
            "end_time": self.end_time.data,
            "duration_minutes": int(self.duration_minutes.data),
            "breaks": read_break_lines(self.breaks.data or ""),
        }


class BlockRangeForm(FlaskForm):
    doctor_id = SelectField("Doctor", coerce=int, validators=[Optional()])
    start = ClinicDateTimeField("From", validators=[DataRequired()])
    end = ClinicDateTimeField("Until", validators=[DataRequired()])
    reason = StringField("Reason", validators=[DataRequired(), Length(max=200)])

    def range_data(self, doctor_id: int | None) -> dict:
        """The form's values in the service's terms: the typed wall-clock times are the
        clinic's, so they become aware datetimes in its zone."""
        zone = clock.clinic_tz()
        return {
            "doctor_id": doctor_id,
            "start": self.start.data.replace(tzinfo=zone),
            "end": self.end.data.replace(tzinfo=zone),
            "reason": self.reason.data,
        }


class BlockSlotForm(FlaskForm):
    reason = StringField("Reason", validators=[DataRequired(), Length(max=200)])


class BookForm(FlaskForm):
    patient_id = IntegerField("Patient", validators=[DataRequired("Choose the patient.")])
    slot_id = IntegerField("Slot", validators=[DataRequired("Choose a time.")])
    reason = StringField("Reason for the visit", validators=[Optional(), Length(max=500)])


class RescheduleForm(FlaskForm):
    slot_id = IntegerField("New time", validators=[DataRequired("Choose a new time.")])


class CancelForm(FlaskForm):
    reason = StringField(
        "Why is it cancelled?",
        validators=[DataRequired("Say why the appointment is cancelled."), Length(max=200)],
        description="For example: the patient called, travelling.",
    )
    back = HiddenField()
