"""The upload form of an import."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired

from qure.imports.models import ImportKind

KIND_CHOICES = [
    SelectChoice(ImportKind.PATIENTS.value, "Patients"),
    SelectChoice(ImportKind.MEDICINES.value, "Medicines (with opening stock)"),
]


class ImportForm(FlaskForm):
    kind = SelectField("What the file holds", choices=KIND_CHOICES, validators=[DataRequired()])
    file = FileField(
        "CSV file",
        validators=[FileRequired("Choose the CSV file to import.")],
        description="UTF-8 CSV with a header line; start from a template below.",
        render_kw={"accept": ".csv,text/csv"},
    )
