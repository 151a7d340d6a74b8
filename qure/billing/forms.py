"""Forms of the billing counter. No field validators beyond the CSRF token and lengths:
the billing service checks every value in one round, and its errors are put beside the
fields here (`attach`, which maps `items.2.quantity` to the third row's quantity)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice

from qure.billing.models import LineKind, PaymentMethod
from qure.core import money
from qure.core.errors import DomainError
from qure.core.forms import add_error, attach_row_errors

EMPTY_ROWS = 3  # empty rows a new invoice starts with, and "Add more lines" adds
KIND_CHOICES = [SelectChoice(kind.value, kind.value.title()) for kind in LineKind]
# How a method is written on a page: "Cash", "Card", and UPI as itself.
METHOD_LABELS = {
    PaymentMethod.CASH: "Cash",
    PaymentMethod.CARD: "Card",
    PaymentMethod.UPI: PaymentMethod.UPI.value,
}
METHOD_CHOICES = [SelectChoice(method.value, label) for method, label in METHOD_LABELS.items()]
DISCOUNT_CHOICES = [
    SelectChoice("", "No discount"),
    SelectChoice(money.PERCENT, "Percentage (%)"),
    SelectChoice(money.AMOUNT, "Amount (₹)"),
]


def short(value: Decimal | None) -> str:
    """2.00 -> "2", 1.50 -> "1.5": a quantity as a person writes it."""
    return "" if value is None else money.quantity_text(value)


def _amount(label: str, **kwargs) -> StringField:
    return StringField(label, render_kw={"inputmode": "decimal", "autocomplete": "off"}, **kwargs)


class LineForm(Form):
    """One row of an invoice's lines (a sub-form: the outer form carries the token)."""

    description = StringField("Description", render_kw={"maxlength": 200})
    kind = SelectField(
        "Kind", choices=KIND_CHOICES, default=LineKind.PROCEDURE.value, validate_choice=False
    )
    hsn_sac = StringField("HSN/SAC", render_kw={"size": 8, "inputmode": "numeric"})
    quantity = StringField("Quantity", default="1", render_kw={"size": 5, "inputmode": "decimal"})
    unit_price = StringField("Unit price (₹)", render_kw={"size": 9, "inputmode": "decimal"})
    gst_rate = SelectField("GST rate", choices=[], validate_choice=False)
    remove = BooleanField("Remove")
    # A line made from a prescription keeps its medicine when a draft is saved again.
    medicine_id = HiddenField()

    def blank(self) -> bool:
        typed = (self.description, self.unit_price, self.hsn_sac)
        return not any((field.data or "").strip() for field in typed)

    def item(self) -> dict[str, Any]:
        """The row in the service's terms (`clean_lines` checks and types it)."""
        medicine = self.medicine_id.data
        return {
            "kind": self.kind.data,
            "description": self.description.data,
            "hsn_sac": self.hsn_sac.data,
            "quantity": self.quantity.data,
            "unit_price": self.unit_price.data,
            "gst_rate": self.gst_rate.data,
            "medicine_id": int(medicine) if medicine and medicine.isdigit() else None,
        }


class InvoiceForm(FlaskForm):
    """A new MANUAL invoice, or a DRAFT's lines and discount. Its buttons: `more` (add
    empty rows), `preview` (price without saving), `save`."""

    patient_id = HiddenField()
    lines = FieldList(FormField(LineForm), min_entries=0, max_entries=100)
    discount_type = SelectField("Discount", choices=DISCOUNT_CHOICES, validate_choice=False)
    discount_value = _amount("Discount value", description="A percentage, or rupees.")

    def rate_choices(self, default_rate: int) -> None:
        """The GST rates offered in each row, the clinic's default rate first."""
        choices = [SelectChoice("", f"Default ({default_rate}%)")] + [
            SelectChoice(str(rate), f"{rate}%") for rate in money.GST_RATES
        ]
        for row in self.lines:
            row.gst_rate.choices = choices

    def add_rows(self, count: int = EMPTY_ROWS) -> None:
        for _ in range(min(count, self.lines.max_entries - len(self.lines.entries))):
            self.lines.append_entry()

    def fill(self, invoice: dict[str, Any], extra_rows: int = 1) -> None:
        """Pre-fill from an invoice's plain values (a draft being edited)."""
        while self.lines.entries:
            self.lines.pop_entry()
        for line in invoice["lines"]:
            self.lines.append_entry(
                {
                    "description": line["description"],
                    "kind": line["kind"],
                    "hsn_sac": line["hsn_sac"] or "",
                    "quantity": short(line["quantity"]),
                    "unit_price": f"{line['unit_price']}",
                    "gst_rate": str(line["gst_rate"]),
                    "medicine_id": str(line["medicine_id"] or ""),
                }
            )
        self.add_rows(extra_rows)
        self.discount_type.data = invoice["discount_type"] or ""
        value = invoice["discount_value"]
        self.discount_value.data = short(value) if value is not None else ""

    def items(self) -> tuple[list[dict[str, Any]], list[int]]:
        """The rows that hold a line (neither blank nor marked to remove) in the
        service's terms, and the row number of each (to put its errors back)."""
        rows = [(n, row.form) for n, row in enumerate(self.lines) if not row.form.blank()]
        kept = [(n, form) for n, form in rows if not form.remove.data]
        return [form.item() for _, form in kept], [n for n, _ in kept]

    def discount(self) -> dict[str, Any] | None:
        kind = self.discount_type.data or None
        value = (self.discount_value.data or "").strip()
        if not kind and not value:
            return None
        return {"type": kind, "value": value}

    def attach(self, error: DomainError, rows: list[int]) -> None:
        """The service's field errors beside the fields: `items.N.field` on the row that
        sent item N, `discount...` on the discount; the rest above the form."""
        for name, message in error.fields.items():
            parts = name.split(".")
            if parts[0] == "items" and len(parts) == 3 and parts[1].isdigit():
                n = int(parts[1])
                row = self.lines[rows[n]].form if n < len(rows) else None
                field = getattr(row, parts[2], None) if row is not None else None
                if field is not None and parts[2] != "medicine_id":
                    add_error(field, message)
                    continue
                self.form_errors.append(f"Line {rows[n] + 1 if n < len(rows) else n}: {message}")
            elif name == "discount.type":
                add_error(self.discount_type, message)
            elif name in ("discount", "discount.value"):
                add_error(self.discount_value, message)
            elif name == "items":
                self.form_errors.append(message)
            else:
                self.form_errors.append(f"{name}: {message}")
        if not error.fields:
            self.form_errors.append(error.message)


class CancelForm(FlaskForm):
    reason = StringField("Reason", render_kw={"maxlength": 300})


class PayForm(FlaskForm):
    """Take the payment: cash (the amount tendered, to work out the change), or card or
    UPI (the transaction reference). `amount` is the total the cashier was shown; `key`
    makes a second press of the button answer the first payment again."""

    method = RadioField(
        "Method", choices=METHOD_CHOICES, default=PaymentMethod.CASH.value, validate_choice=False
    )
    tendered = _amount("Cash tendered (₹)", description="Cash only: what the patient hands over.")
    reference = StringField(
        "Transaction reference",
        description="Card or UPI only: the reference on the slip or in the app.",
        render_kw={"maxlength": 100, "autocomplete": "off"},
    )
    amount = HiddenField()
    key = HiddenField()

    def payment(self) -> dict[str, Any]:
        cash = self.method.data == PaymentMethod.CASH
        tendered = (self.tendered.data or "").strip() if cash else ""
        return {
            "method": self.method.data,
            "amount": self.amount.data,
            "tendered": tendered or None,
            "reference": None if cash else self.reference.data,
        }


class RefundLineForm(Form):
    line_id = HiddenField()
    chosen = BooleanField("Refund")
    quantity = StringField("Quantity", render_kw={"size": 5, "inputmode": "decimal"})


class RefundForm(FlaskForm):
    """A credit note: the lines (ticked) and quantities to refund, why and how."""

    lines = FieldList(FormField(RefundLineForm), max_entries=100)
    reason = StringField("Reason", render_kw={"maxlength": 300})
    method = RadioField(
        "Money goes back by",
        choices=METHOD_CHOICES,
        default=PaymentMethod.CASH.value,
        validate_choice=False,
    )

    def fill(self, lines: list[dict[str, Any]], chosen: dict[int, str] | None = None) -> None:
        """A row per line with something left to refund; `chosen` (line id -> quantity)
        ticks rows ahead, as the pharmacy's "offer the credit note" for a returned item."""
        chosen = chosen or {}
        for line in lines:
            if line["refundable"] > 0:
                self.lines.append_entry(
                    {
                        "line_id": str(line["id"]),
                        "quantity": chosen.get(line["id"]) or short(line["refundable"]),
                        "chosen": line["id"] in chosen,
                    }
                )

    def items(self) -> tuple[list[dict[str, Any]], list[int]]:
        chosen = [(n, row.form) for n, row in enumerate(self.lines) if row.form.chosen.data]
        items = [
            {
                "line_id": int(row.line_id.data) if (row.line_id.data or "").isdigit() else None,
                "quantity": row.quantity.data,
            }
            for _, row in chosen
        ]
        return items, [n for n, _ in chosen]

    def attach(self, error: DomainError, rows: list[int]) -> None:
        attach_row_errors(
            self,
            error,
            "items",
            self.lines,
            rows,
            lambda row, part: row.quantity if part == "quantity" else row.chosen,
            top=("reason", "method"),
        )


class DayCloseForm(FlaskForm):
    date = HiddenField()
    cash_counted = _amount("Cash counted (₹)", description="The cash in the drawer, counted.")
    note = TextAreaField("Note", render_kw={"maxlength": 500, "rows": 2})
