"""The medicine form."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from qure.core.errors import DomainError
from qure.core.forms import ClinicDateField, attach_row_errors
from qure.pharmacy.models import DOSAGE_FORMS, GST_RATES, AdjustmentReason, DrugSchedule

STOCK_IN_ROWS = 3  # empty rows the stock-in form starts with, and "Add rows" adds
REASON_LABELS = {
    AdjustmentReason.DAMAGED: "Damaged",
    AdjustmentReason.EXPIRED_DISPOSAL: "Expired: disposed of",
    AdjustmentReason.COUNT_CORRECTION: "Count correction",
    AdjustmentReason.RETURN_TO_SUPPLIER: "Returned to the supplier",
}

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


def _text(value: str | None) -> str:
    return (value or "").strip()


class BatchRowForm(Form):
    """One batch of a delivery (a sub-form: the outer form carries the token). Dates are
    text the stock service reads: a full date, or the month a pack prints (06/2031)."""

    batch_number = StringField("Batch no.", render_kw={"size": 12, "maxlength": 40})
    quantity = StringField("Quantity", render_kw={"size": 6, "inputmode": "numeric"})
    expiry_date = StringField(
        "Expiry", render_kw={"size": 11, "placeholder": "MM/YYYY", "autocomplete": "off"}
    )
    mfg_date = StringField(
        "Mfg. date", render_kw={"size": 11, "placeholder": "MM/YYYY", "autocomplete": "off"}
    )
    purchase_price = StringField(
        "Purchase price (₹)", render_kw={"size": 8, "inputmode": "decimal"}
    )

    def blank(self) -> bool:
        return not any(_text(f.data) for f in self)


class StockInForm(FlaskForm):
    """A supplier's delivery of one medicine: several batches on one form. Its buttons:
    `more` (add empty rows) and `save`."""

    supplier = StringField("Supplier", validators=[Length(max=120)])
    batches = FieldList(FormField(BatchRowForm), min_entries=0, max_entries=50)

    def add_rows(self, count: int = STOCK_IN_ROWS) -> None:
        for _ in range(min(count, self.batches.max_entries - len(self.batches))):
            self.batches.append_entry()

    def delivery(self) -> tuple[list[dict[str, Any]], list[int]]:
        """The filled rows in the stock service's terms, and their row numbers."""
        rows = [(n, entry.form) for n, entry in enumerate(self.batches) if not entry.form.blank()]
        supplier = _text(self.supplier.data) or None
        batches = [
            {
                "batch_number": _text(row.batch_number.data),
                "quantity": _text(row.quantity.data),
                "expiry_date": _text(row.expiry_date.data),
                "mfg_date": _text(row.mfg_date.data),
                "supplier": supplier,
                "purchase_price": _text(row.purchase_price.data),
            }
            for _, row in rows
        ]
        return batches, [n for n, _ in rows]

    def attach(self, error: DomainError, rows: list[int]) -> None:
        """`batches.2.quantity` beside the third filled row's quantity; a supplier's
        error once beside the supplier."""
        attach_row_errors(
            self,
            error,
            "batches",
            self.batches,
            rows,
            lambda row, part: self.supplier if part == "supplier" else getattr(row, part, None),
        )


class AdjustForm(FlaskForm):
    """Change a batch's quantity, with a reason."""

    delta = StringField(
        "Change",
        render_kw={"size": 8, "inputmode": "numeric", "autocomplete": "off"},
        description="Units to take away (e.g. -5) or to add (e.g. 3).",
    )
    reason = SelectField(
        "Reason",
        choices=[SelectChoice(r.value, label) for r, label in REASON_LABELS.items()],
        validate_choice=False,
    )
    note = StringField("Note", validators=[Length(max=300)], render_kw={"maxlength": 300})

    def adjustment(self) -> dict[str, Any]:
        return {"delta": _text(self.delta.data), "reason": self.reason.data, "note": self.note.data}


class DispenseForm(FlaskForm):
    """Confirm the dispensing shown; `allow_partial` is the button offered when stock is
    short ("Dispense what is in stock"): one press, no box to tick first."""

    allow_partial = BooleanField("Dispense what is in stock")


class ReturnRowForm(Form):
    item_id = HiddenField()
    quantity = StringField("Quantity back", render_kw={"size": 5, "inputmode": "numeric"})


class ReturnForm(FlaskForm):
    """Unopened items handed back: a quantity per dispensed item, and why."""

    items = FieldList(FormField(ReturnRowForm), max_entries=100)
    reason = StringField("Reason", render_kw={"maxlength": 300})

    def fill(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            if item["returnable"] > 0:
                self.items.append_entry({"item_id": str(item["id"])})

    def wanted(self) -> tuple[list[dict[str, Any]], list[int]]:
        rows = [(n, e.form) for n, e in enumerate(self.items) if _text(e.form.quantity.data)]
        wanted = [
            {
                "dispensed_item_id": int(row.item_id.data)
                if (row.item_id.data or "").isdigit()
                else None,
                "quantity": _text(row.quantity.data),
            }
            for _, row in rows
        ]
        return wanted, [n for n, _ in rows]

    def attach(self, error: DomainError, rows: list[int]) -> None:
        attach_row_errors(
            self, error, "items", self.items, rows, lambda row, _: row.quantity, top=("reason",)
        )


class RegisterRangeForm(FlaskForm):
    """The H1 register's days (a GET form: no token)."""

    class Meta:
        csrf = False

    start = ClinicDateField("From", message="Enter the first day like 02 Dec 2026.")
    end = ClinicDateField("To", message="Enter the last day like 02 Dec 2026.")
