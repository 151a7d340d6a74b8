"""The billing counter: invoices made from a completed visit's prescription (AUTO) or by
hand (MANUAL), discounts, finalising, payment, cancelling, credit notes, the day's takings
and its close. Every amount is computed here through `core.money`; a client's totals are
never read. Billing owns an invoice's status: `_move` is the one place it changes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from urllib.parse import quote

from sqlalchemy import Select, String, false, func, literal, select, text, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from qure.admin import settings as clinic_settings
from qure.auth.models import User
from qure.billing.models import (
    CreditNote,
    CreditNoteLine,
    DayClose,
    Invoice,
    InvoiceLine,
    InvoiceMode,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
)
from qure.billing.numbering import CREDIT_NOTE, INVOICE, next_number
from qure.core import audit, clock, money
from qure.core.db import constraint_name, get_or_raise, max_id
from qure.core.errors import Conflict, InvalidInput, NotFound
from qure.core.pagination import Page, check_bounds, paginate
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import Patient
from qure.pharmacy.models import Medicine
from qure.prescriptions import service as prescriptions
from qure.visits import service as visits
from qure.visits.models import VisitStatus

EDITORS = (Role.ADMIN, Role.RECEPTION)
READERS = (Role.ADMIN, Role.RECEPTION, Role.PHARMACIST)

CONSULTATION_SAC = "999312"
MAX_LINES = 100
MAX_QUANTITY = Decimal("100000")
HSN_RE = re.compile(r"^[0-9]{4,8}$")
KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")
# pg_advisory_xact_lock's first key for a clinic day's takings (the second is the day).
TAKINGS_LOCK = 8008

TRANSITIONS: dict[str, frozenset[str]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.PENDING, InvoiceStatus.CANCELLED}),
    InvoiceStatus.PENDING: frozenset({InvoiceStatus.PAID, InvoiceStatus.CANCELLED}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.CANCELLED: frozenset(),
}


# ---- reading ---------------------------------------------------------------------------

# What an invoice's page, receipt and answer show of it, loaded with it.
SHOWN = (
    joinedload(Invoice.patient, innerjoin=True),
    selectinload(Invoice.lines),
    joinedload(Invoice.payment).joinedload(Payment.received_by, innerjoin=True),
    selectinload(Invoice.credit_notes).selectinload(CreditNote.lines),
)
# What a locked read loads with the invoice, in its own statement (FOR UPDATE OF invoices):
# its patient, lines and payment; credit notes only for a PAID invoice (see _locked).
LOCKED = (
    joinedload(Invoice.patient, innerjoin=True),
    joinedload(Invoice.lines),
    joinedload(Invoice.payment).joinedload(Payment.received_by, innerjoin=True),
)
NOTE_SHOWN = (
    joinedload(CreditNote.invoice, innerjoin=True).joinedload(Invoice.patient, innerjoin=True),
    joinedload(CreditNote.created_by, innerjoin=True),
    selectinload(CreditNote.lines).joinedload(CreditNoteLine.invoice_line, innerjoin=True),
)


def get_invoice(invoice_id: int) -> Invoice:
    """One invoice with its lines, payment and credit notes; NotFound otherwise."""
    return get_or_raise(Invoice, invoice_id, "No such invoice.", "invoice_not_found", options=SHOWN)


def _locked(invoice_id: int) -> Invoice:
    """The invoice, its row locked (FOR UPDATE OF invoices) until the transaction ends.

    Only a PAID invoice can have credit notes: for any other the list is known to be
    empty and is not asked for (one statement less on the way to paying)."""
    invoice = get_or_raise(
        Invoice, invoice_id, "No such invoice.", "invoice_not_found", lock=True, options=LOCKED
    )
    if invoice.status == InvoiceStatus.PAID:  # read again, with everything it shows
        return db.session.scalars(
            select(Invoice)
            .where(Invoice.id == invoice.id)
            .options(*SHOWN)
            .execution_options(populate_existing=True)
        ).one()
    set_committed_value(invoice, "credit_notes", [])
    return invoice


def refunded(invoice: Invoice) -> dict[int, Decimal]:
    """Per line id, the quantity its credit notes have refunded."""
    out: dict[int, Decimal] = {}
    for note in invoice.credit_notes:
        for line in note.lines:
            out[line.invoice_line_id] = out.get(line.invoice_line_id, Decimal(0)) + line.quantity
    return out


def refunded_amount(invoice: Invoice) -> Decimal:
    """What the invoice's credit notes have refunded, in all."""
    return sum((n.total for n in invoice.credit_notes), Decimal("0.00"))


def refundable_amount(invoice: Invoice) -> Decimal:
    """What credit notes may still refund of a PAID invoice (0 for any other)."""
    if invoice.status != InvoiceStatus.PAID:
        return Decimal("0.00")
    return invoice.total - refunded_amount(invoice)


def line_refunds(invoice: Invoice) -> dict[int, dict[str, Decimal]]:
    """Per line id: the quantity refunded and the quantity still refundable."""
    done = refunded(invoice)
    paid = invoice.status == InvoiceStatus.PAID
    return {
        line.id: {
            "refunded": done.get(line.id, Decimal(0)),
            "refundable": line.quantity - done.get(line.id, Decimal(0)) if paid else Decimal(0),
        }
        for line in invoice.lines
    }


def upi_link(invoice: Invoice, settings: dict[str, Any] | None = None) -> str | None:
    """The UPI payment link for exactly what a numbered, unpaid invoice asks, when the
    clinic's UPI ID is set: upi://pay?pa=<VPA>&pn=<name>&am=<total>&cu=INR&tn=<number>."""
    if invoice.status != InvoiceStatus.PENDING or not invoice.number:
        return None
    settings = settings or clinic_settings.get_settings()
    if not settings["upi_id"]:
        return None
    return (
        f"upi://pay?pa={quote(settings['upi_id'], safe='@')}"
        f"&pn={quote(settings['clinic_name'], safe='')}&am={invoice.total}"
        f"&cu=INR&tn={quote(invoice.number, safe='')}"
    )


def list_invoices(
    patient_id: int | None = None,
    status: str | None = None,
    day: date | None = None,
    number: str | None = None,
    patient_q: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """Invoices newest first, by patient (id, or a name or MRN typed), status, invoice
    date and number (the whole number or its last digits)."""
    query = select(Invoice).options(joinedload(Invoice.patient, innerjoin=True))
    if patient_id is not None:
        query = query.where(Invoice.patient_id == patient_id)
    if status:
        query = query.where(Invoice.status == status)
    if day is not None:
        query = query.where(Invoice.invoice_date == day)
    if number:
        number = number.strip().upper()
        if number.isdigit():
            query = query.where(Invoice.number.like(f"%/{int(number):06d}"))
        else:
            query = query.where(Invoice.number == number)
    if patient_q:
        like = "%" + re.sub(r"([\\%_])", r"\\\1", patient_q.strip()) + "%"
        query = query.join(Invoice.patient).where(
            (Patient.mrn == patient_q.strip().upper()) | Patient.full_name.ilike(like)
        )
    query = query.order_by(Invoice.created_at.desc(), Invoice.id.desc())
    return paginate(query, page, per_page)


# The two kinds of document in the invoices report (`documents_query`).
INVOICE_KIND, CREDIT_NOTE_KIND = "invoice", "credit_note"
DOCUMENT_KINDS = (INVOICE_KIND, CREDIT_NOTE_KIND)


def documents_query(
    kind: str | None = None,
    status: str | None = None,
    method: str | None = None,
    patient_id: int | None = None,
    start: date | None = None,
    end: date | None = None,
) -> Select:
    """Invoices and credit notes as one list of rows, newest first (by date, then when
    made), for the invoices report: `kind` (INVOICE_KIND, CREDIT_NOTE_KIND, or None for
    both), `status` (an invoice's: a credit note has none, so a status shows invoices
    only), `method` (how an invoice was paid; how a credit note refunded), `patient_id`,
    and the days `start` to `end` (both included) of the invoice date or the day a credit
    note was issued.

    A row: kind, id, number (None for a DRAFT), date, patient_id, mrn, full_name, total,
    paid (what the payment took; 0.00 unpaid), method, status, against (the invoice a
    credit note refunds). A credit note's total and paid are negative, money going back,
    so that a column's sum is the net."""
    branches = []
    invoice = (
        select(
            literal(INVOICE_KIND).label("kind"),
            Invoice.id,
            Invoice.number,
            Invoice.invoice_date.label("date"),
            Invoice.created_at,
            Patient.id.label("patient_id"),
            Patient.mrn,
            Patient.full_name,
            Invoice.total,
            func.coalesce(Payment.amount, Decimal("0.00")).label("paid"),
            Payment.method,
            Invoice.status,
            literal(None, String).label("against"),
        )
        .select_from(Invoice)
        .join(Patient, Patient.id == Invoice.patient_id)
        .outerjoin(Payment, Payment.invoice_id == Invoice.id)
    )
    if status:
        invoice = invoice.where(Invoice.status == status)
    invoice = _filtered(
        invoice, Payment.method, Invoice.invoice_date, method, patient_id, start, end
    )
    if kind in (None, INVOICE_KIND):
        branches.append(invoice)
    if kind in (None, CREDIT_NOTE_KIND) and not status:
        note = (
            select(
                literal(CREDIT_NOTE_KIND).label("kind"),
                CreditNote.id,
                CreditNote.number,
                CreditNote.issued_on.label("date"),
                CreditNote.created_at,
                Patient.id.label("patient_id"),
                Patient.mrn,
                Patient.full_name,
                (-CreditNote.total).label("total"),
                (-CreditNote.total).label("paid"),
                CreditNote.method,
                literal(None, String).label("status"),
                Invoice.number.label("against"),
            )
            .select_from(CreditNote)
            .join(Invoice, Invoice.id == CreditNote.invoice_id)
            .join(Patient, Patient.id == Invoice.patient_id)
        )
        note = _filtered(
            note, CreditNote.method, CreditNote.issued_on, method, patient_id, start, end
        )
        branches.append(note)
    if not branches:  # a status asked of credit notes only: nothing matches
        branches.append(invoice.where(false()))
    rows = union_all(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    return select(rows).order_by(
        rows.c.date.desc(), rows.c.created_at.desc(), rows.c.kind, rows.c.id.desc()
    )


def _filtered(query, method_column, day_column, method, patient_id, start, end):
    """`query` (an invoice's or a credit note's branch, both joined to the invoice) kept to
    the method, the patient and the days asked."""
    if method:
        query = query.where(method_column == method)
    if patient_id is not None:
        query = query.where(Invoice.patient_id == patient_id)
    if start is not None:
        query = query.where(day_column >= start)
    if end is not None:
        query = query.where(day_column <= end)
    return query


def _document(row) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "id": row.id,
        "number": row.number,
        "date": row.date,
        "patient": {"id": row.patient_id, "mrn": row.mrn, "full_name": row.full_name},
        "total": row.total,
        "paid": row.paid,
        "method": row.method,
        "status": row.status,
        "against": row.against,
    }


def documents_page(page: int = 1, per_page: int = 50, **filters: Any) -> Page:
    """One page of `documents_query(**filters)` as plain rows, in two statements (the
    count and the page)."""
    check_bounds(page, per_page)
    query = documents_query(**filters)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    offset = (page - 1) * per_page
    rows = db.session.execute(query.limit(per_page).offset(offset)) if offset < total else []
    return Page([_document(r) for r in rows], page, per_page, total or 0)


def documents_rows(**filters: Any) -> Iterator[dict[str, Any]]:
    """Every row of `documents_query(**filters)`, fetched 500 at a time from a
    server-side cursor (for CSV: a year of rows never sits in memory)."""
    query = documents_query(**filters).execution_options(yield_per=500)
    for row in db.session.execute(query):
        yield _document(row)


def to_bill(page: int = 1, per_page: int = 50) -> Page:
    """Completed visits without an AUTO invoice that is not cancelled, newest first
    (plain dicts: `visits.completed_page`)."""
    return visits.completed_page(_billed(), page, per_page)


@cache
def _billed() -> Select:
    """The ids of the visits billed: an AUTO invoice, not cancelled (built once)."""
    return select(Invoice.visit_id).where(
        Invoice.mode == InvoiceMode.AUTO,
        Invoice.status != InvoiceStatus.CANCELLED,
        Invoice.visit_id.is_not(None),
    )


# ---- input -----------------------------------------------------------------------------


def _decimal(value: Any, field: str, errors: dict[str, str], lowest: Decimal, highest: Decimal):
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        errors[field] = "Give a number."
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        errors[field] = "Give a number such as 2 or 1.5."
        return None
    if not number.is_finite() or number.copy_abs() > highest * 10:
        errors[field] = f"Give a number from {lowest} to {highest}."
        return None
    if number != number.quantize(money.CENT):
        errors[field] = "At most two decimal places."
        return None
    if number < lowest or number > highest:
        errors[field] = f"Give a number from {lowest} to {highest}."
        return None
    return number.copy_abs().quantize(money.CENT)  # never lowest >= 0: "-0" is 0


def _rate(value: Any, field: str, errors: dict[str, str], default: int) -> int | None:
    if value is None or value == "":
        return default
    text_value = str(value).strip()
    if isinstance(value, bool) or text_value not in {str(r) for r in money.GST_RATES}:
        errors[field] = "Choose a GST rate: " + ", ".join(f"{r}" for r in money.GST_RATES) + "."
        return None
    return int(text_value)


def _text(value: Any, field: str, limit: int) -> str | None:
    """Text as typed (see `plain_text`), or None for none. Raises InvalidInput naming
    `field` for anything that is not text: a number, a list or an object would otherwise
    be stored as its Python spelling ("['a']")."""
    if value is not None and not isinstance(value, str):
        raise InvalidInput.naming({field: "Give text."})
    return plain_text(value, field, limit)


def _money(value: Any, field: str, errors: dict[str, str]) -> Decimal | None:
    try:
        return money.parse_money(value, field)
    except InvalidInput as error:
        errors.update(error.fields)
        return None


def clean_lines(items: Any, default_rate: int) -> list[dict[str, Any]]:
    """Invoice lines as typed ({kind, description, quantity, unit_price, gst_rate?,
    hsn_sac?, medicine_id?}), checked and typed; a line without a rate takes
    `default_rate`. Raises InvalidInput naming each bad field (`items.2.quantity`). A
    typed line is never a prescription's item (only AUTO links those), whatever it says."""
    if not isinstance(items, list) or not items:
        raise InvalidInput.naming({"items": "Add at least one line."})
    if len(items) > MAX_LINES:
        raise InvalidInput.naming({"items": f"At most {MAX_LINES} lines."})
    errors: dict[str, str] = {}
    lines: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        at = f"items.{n}"
        if not isinstance(item, dict):
            errors[at] = "Give each line as an object."
            continue
        kind = item.get("kind")
        if kind not in set(LineKind):
            errors[f"{at}.kind"] = "Choose one of " + ", ".join(LineKind) + "."
        try:
            description = _text(item.get("description"), f"{at}.description", 200)
        except InvalidInput as error:
            errors.update(error.fields)
            description = ""
        if description is None:
            errors[f"{at}.description"] = "Say what the line is for."
        hsn = item.get("hsn_sac")
        hsn = str(hsn).strip() if hsn not in (None, "") else None
        if hsn is not None and not HSN_RE.match(hsn):
            errors[f"{at}.hsn_sac"] = "An HSN or SAC code has 4 to 8 digits."
        medicine_id = item.get("medicine_id")
        if medicine_id is not None and (
            isinstance(medicine_id, bool) or not isinstance(medicine_id, int)
        ):
            errors[f"{at}.medicine_id"] = "Give the medicine's id."
            medicine_id = None
        elif medicine_id is not None and not 0 < medicine_id <= max_id(Medicine):
            # No such row; asked of PostgreSQL, an id past the key's range fails the query.
            errors[f"{at}.medicine_id"] = "No such medicine."
            medicine_id = None
        lines.append(
            {
                "kind": kind,
                "description": description,
                "quantity": _decimal(
                    item.get("quantity"), f"{at}.quantity", errors, money.CENT, MAX_QUANTITY
                ),
                "unit_price": _money(item.get("unit_price"), f"{at}.unit_price", errors),
                "gst_rate": _rate(item.get("gst_rate"), f"{at}.gst_rate", errors, default_rate),
                "hsn_sac": hsn,
                "medicine_id": medicine_id,
            }
        )
    wanted = {line["medicine_id"] for line in lines if line["medicine_id"] is not None}
    if wanted:
        known = set(db.session.scalars(select(Medicine.id).where(Medicine.id.in_(wanted))))
        for n, line in enumerate(lines):
            if line["medicine_id"] is not None and line["medicine_id"] not in known:
                errors[f"items.{n}.medicine_id"] = "No such medicine."
    if errors:
        raise InvalidInput.naming(errors)
    return lines


def clean_discount(value: Any) -> tuple[str | None, Decimal | None]:
    """A discount {type: PERCENT | AMOUNT, value} (or null for none) as (type, value).
    Raises InvalidInput naming `discount.type` or `discount.value`."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise InvalidInput.naming({"discount": "Give {type, value}, or null for none."})
    kind = value.get("type")
    if kind not in (money.PERCENT, money.AMOUNT):
        raise InvalidInput.naming({"discount.type": "Choose PERCENT or AMOUNT."})
    errors: dict[str, str] = {}
    highest = Decimal(100) if kind == money.PERCENT else money.MAX_AMOUNT
    amount = _decimal(value.get("value"), "discount.value", errors, Decimal(0), highest)
    if errors:
        raise InvalidInput.naming(errors)
    return (kind, amount) if amount else (None, None)


def price_lines(lines: list[money.Line], discount) -> money.Priced:
    """Lines priced with a discount (type, value) shared before tax, as an invoice holds
    them. Raises InvalidInput `discount` for one above the subtotal, `items` for a total
    too large to store."""
    subtotal = sum((money.line_value(r.quantity, r.unit_price) for r in lines), Decimal("0.00"))
    if subtotal > money.MAX_AMOUNT:
        raise InvalidInput.naming({"items": "The invoice's total is too large."})
    priced = money.price(lines, money.discount_amount(subtotal, *discount))
    if priced.total > money.MAX_AMOUNT:
        raise InvalidInput.naming({"items": "The invoice's total is too large."})
    return priced


def line_items(invoice: Invoice) -> list[dict[str, Any]]:
    """An invoice's own lines as `clean_lines` reads them: an AUTO draft's lines priced
    again under another discount (its lines are the prescription's, never typed)."""
    return [
        {
            "kind": line.kind,
            "description": line.description,
            "hsn_sac": line.hsn_sac,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "gst_rate": line.gst_rate,
            "medicine_id": line.medicine_id,
        }
        for line in invoice.lines
    ]


def preview(items: Any, discount: Any) -> dict[str, Any]:
    """What saving these lines (as `clean_lines` reads them) with this discount ({type,
    value} or None) would price, without saving anything: each line as typed with its
    value, discount share, taxable value, CGST, SGST and total, and the invoice's totals.
    Raises InvalidInput naming each bad field, as saving would."""
    lines = clean_lines(items, clinic_settings.get_settings()["default_gst_rate"])
    priced = price_lines(
        [money.Line(line["quantity"], line["unit_price"], line["gst_rate"]) for line in lines],
        clean_discount(discount),
    )
    return {
        "lines": [
            {
                **line,
                "value": amounts.value,
                "discount": amounts.discount,
                "taxable": amounts.taxable,
                "cgst": amounts.cgst,
                "sgst": amounts.sgst,
                "total": amounts.total,
            }
            for line, amounts in zip(lines, priced.lines, strict=True)
        ],
        "subtotal": priced.subtotal,
        "discount": priced.discount,
        "taxable": priced.taxable,
        "cgst": priced.cgst,
        "sgst": priced.sgst,
        "total": priced.total,
    }


def _fill(invoice: Invoice, lines: list[dict[str, Any]] | None, discount) -> None:
    """Price the invoice: its lines (replaced when given) with the discount shared before
    tax, every amount from core.money. Raises InvalidInput `discount` for one above the
    subtotal, `items` for a total too large to store."""
    if lines is not None:
        if invoice.lines:
            invoice.lines.clear()
            db.session.flush()  # the old lines go first: a new one may take a position
        invoice.lines = [InvoiceLine(position=n, **line) for n, line in enumerate(lines, 1)]
    invoice.discount_type, invoice.discount_value = discount
    rows = invoice.lines
    priced = price_lines([money.Line(r.quantity, r.unit_price, r.gst_rate) for r in rows], discount)
    for row, amounts in zip(rows, priced.lines, strict=True):
        row.value, row.discount, row.taxable = amounts.value, amounts.discount, amounts.taxable
        row.cgst, row.sgst, row.total = amounts.cgst, amounts.sgst, amounts.total
    invoice.subtotal, invoice.discount, invoice.taxable = (
        priced.subtotal,
        priced.discount,
        priced.taxable,
    )
    invoice.cgst, invoice.sgst, invoice.total = priced.cgst, priced.sgst, priced.total


def plain(invoice: Invoice) -> dict[str, Any]:
    """What the audit trail keeps of an invoice."""
    return {
        "number": invoice.number,
        "status": invoice.status,
        "patient_id": invoice.patient_id,
        "discount": (
            {"type": invoice.discount_type, "value": invoice.discount_value}
            if invoice.discount_type
            else None
        ),
        "lines": [
            {
                "kind": line.kind,
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "gst_rate": line.gst_rate,
                "total": line.total,
            }
            for line in invoice.lines
        ],
        "total": invoice.total,
    }


# ---- making and changing invoices -------------------------------------------------------


def _auto_lines(data: dict[str, Any], settings: dict[str, Any]):
    """The visit and prescription an AUTO request names, and their lines: the consultation
    fee first (unless `include_consultation` is false), then each prescribed medicine at
    its catalogue price and GST rate, in the prescription's order."""
    include = data.get("include_consultation", True)
    if not isinstance(include, bool):
        raise InvalidInput.naming({"include_consultation": "Give true or false."})
    prescription_id, visit_id = data.get("prescription_id"), data.get("visit_id")
    for field, value in (("prescription_id", prescription_id), ("visit_id", visit_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidInput.naming({field: "Give an id."})
    if prescription_id is not None:
        prescription = prescriptions.for_billing(prescription_id=prescription_id)
        if prescription is None:
            raise NotFound("No such prescription.", "prescription_not_found")
        visit = prescription.visit
        if visit_id is not None and visit_id != visit.id:
            raise InvalidInput.naming({"visit_id": "The prescription is of another visit."})
    elif visit_id is not None:
        visit = visits.get_visit(visit_id)
        prescription = prescriptions.for_billing(visit_id=visit.id)
    else:
        raise InvalidInput.naming({"prescription_id": "Give the prescription (or the visit)."})
    if visit.status != VisitStatus.COMPLETED:
        raise Conflict(
            "The visit is not completed yet; bill it once the doctor completes it.",
            "visit_not_completed",
        )
    lines: list[dict[str, Any]] = []
    if include:
        lines.append(
            {
                "kind": LineKind.CONSULTATION,
                "description": f"Consultation, {visit.doctor.full_name}",
                "quantity": Decimal("1.00"),
                "unit_price": settings["consultation_fee"],
                "gst_rate": settings["consultation_gst_rate"],
                "hsn_sac": CONSULTATION_SAC,
            }
        )
    for item in prescription.items if prescription else ():
        medicine = item.medicine
        lines.append(
            {
                "kind": LineKind.MEDICINE,
                "description": f"{medicine.name} {medicine.strength} "
                f"{medicine.dosage_form.title()}",
                "quantity": Decimal(item.quantity),
                "unit_price": medicine.unit_price,
                "gst_rate": medicine.gst_rate,
                "hsn_sac": medicine.hsn_code,
                "medicine_id": medicine.id,
                "prescription_item_id": item.id,
            }
        )
    if not lines:
        raise InvalidInput.naming(
            {"include_consultation": "This visit has no prescription: bill the consultation."}
        )
    return visit, prescription, lines


def _existing_auto(visit_id: int) -> Invoice | None:
    query = select(Invoice).where(
        Invoice.visit_id == visit_id,
        Invoice.mode == InvoiceMode.AUTO,
        Invoice.status != InvoiceStatus.CANCELLED,
    )
    return db.session.scalars(query).first()


def _invoice_exists(existing: Invoice | None) -> Conflict:
    details = {"invoice_id": existing.id} if existing else {}
    return Conflict("This visit has an invoice already.", "invoice_exists", details=details)


def create(actor: User, data: dict[str, Any]) -> Invoice:
    """Make a DRAFT invoice.

    AUTO {prescription_id (or visit_id), include_consultation?}: from a COMPLETED visit;
    MANUAL {patient_id, visit_id?, items}. Either takes `discount`. Raises NotFound,
    Conflict `visit_not_completed` / `invoice_exists` (the existing id in details), and
    InvalidInput naming each bad field. Returns the invoice."""
    settings = clinic_settings.get_settings()
    mode = data.get("mode")
    discount = clean_discount(data.get("discount"))
    now = clock.now()
    if mode == InvoiceMode.AUTO:
        # A visit already billed is found by the partial unique indexes at the INSERT
        # (below), not by a SELECT first: one statement less for every invoice.
        visit, prescription, lines = _auto_lines(data, settings)
        invoice = Invoice(
            mode=InvoiceMode.AUTO,
            patient_id=visit.patient_id,
            patient=visit.patient,
            visit_id=visit.id,
            prescription_id=prescription.id if prescription else None,
        )
    elif mode == InvoiceMode.MANUAL:
        patient_id = data.get("patient_id")
        if isinstance(patient_id, bool) or not isinstance(patient_id, int):
            raise InvalidInput.naming({"patient_id": "Choose the patient."})
        patient = patients.get_patient(patient_id)
        visit_id = data.get("visit_id")
        if visit_id is not None:
            if isinstance(visit_id, bool) or not isinstance(visit_id, int):
                raise InvalidInput.naming({"visit_id": "Give the visit's id."})
            if visits.get_visit(visit_id).patient_id != patient.id:
                raise InvalidInput.naming({"visit_id": "That visit is another patient's."})
        lines = clean_lines(data.get("items"), settings["default_gst_rate"])
        invoice = Invoice(
            mode=InvoiceMode.MANUAL, patient_id=patient.id, patient=patient, visit_id=visit_id
        )
    else:
        raise InvalidInput.naming({"mode": "Choose AUTO or MANUAL."})
    invoice.status, invoice.invoice_date = InvoiceStatus.DRAFT, clock.today()
    invoice.created_by_id, invoice.created_at = actor.id, now
    invoice.payment, invoice.credit_notes = None, []
    _fill(invoice, lines, discount)
    try:
        with db.session.begin_nested():
            db.session.add(invoice)
            db.session.flush()
    except IntegrityError as exc:
        if constraint_name(exc) in ("uq_invoices_prescription", "uq_invoices_auto_visit"):
            # Billed before, or by another desk a moment ago (its commit is what the INSERT
            # waited on): the savepoint keeps the transaction usable to say which invoice.
            raise _invoice_exists(_existing_auto(invoice.visit_id)) from None
        raise
    audit.record(actor, "INVOICE_CREATED", ("invoice", invoice.id), None, plain(invoice))
    return invoice


def ensure_draft(invoice: Invoice) -> None:
    """Raises Conflict `invoice_not_draft` unless the invoice is a DRAFT."""
    if invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(
            f"This invoice is {invoice.status.lower()}: only a draft can be changed.",
            "invoice_not_draft",
        )


def update(actor: User, invoice_id: int, data: dict[str, Any]) -> Invoice:
    """Change a DRAFT's lines (`items`, replacing them all) and/or `discount` (null
    removes it). Raises NotFound, Conflict `invoice_not_draft`, InvalidInput. Returns the
    invoice, priced again."""
    invoice = _locked(invoice_id)
    ensure_draft(invoice)
    before = plain(invoice)
    lines = None
    if "items" in data:
        lines = clean_lines(data.get("items"), clinic_settings.get_settings()["default_gst_rate"])
    if "discount" in data:
        discount = clean_discount(data.get("discount"))
    else:
        discount = (invoice.discount_type, invoice.discount_value)
    _fill(invoice, lines, discount)
    db.session.flush()
    old, new = audit.diff(before, plain(invoice))
    if new:
        audit.record(actor, "INVOICE_UPDATED", ("invoice", invoice.id), old, new)
    return invoice


def _move(invoice: Invoice, to: str) -> str:
    """The one place an invoice's status changes, by the transition table. Raises Conflict
    `already_paid` / `invoice_cancelled` / `invoice_not_pending`. Returns the old status."""
    was = invoice.status
    if to not in TRANSITIONS[was]:
        if was == InvoiceStatus.PAID:
            raise Conflict("This invoice is paid; refund by credit note.", "already_paid")
        if was == InvoiceStatus.CANCELLED:
            raise Conflict("This invoice is cancelled.", "invoice_cancelled")
        raise Conflict(f"A {was.lower()} invoice cannot become {to.lower()}.", "invoice_state")
    invoice.status = to
    return was


def _finalize(actor: User, invoice: Invoice) -> None:
    """Number a DRAFT (the number first: a PENDING invoice always has one) and make it
    PENDING."""
    today = clock.today()
    invoice.number = next_number(INVOICE, today)
    _move(invoice, InvoiceStatus.PENDING)
    invoice.invoice_date, invoice.finalized_at = today, clock.now()
    audit.record(
        actor,
        "INVOICE_FINALIZED",
        ("invoice", invoice.id),
        {"status": InvoiceStatus.DRAFT},
        {"status": InvoiceStatus.PENDING, "number": invoice.number, "total": invoice.total},
    )


def finalize(actor: User, invoice_id: int) -> Invoice:
    """DRAFT -> PENDING: the invoice takes the next number of the financial year (no gaps:
    a counter row under lock). Raises NotFound, Conflict `invoice_not_draft`."""
    invoice = _locked(invoice_id)
    ensure_draft(invoice)
    _finalize(actor, invoice)
    db.session.flush()
    return invoice


def cancel(actor: User, invoice_id: int, data: dict[str, Any]) -> Invoice:
    """DRAFT or PENDING -> CANCELLED with a `reason` (a number it had stays used). Raises
    NotFound, Conflict `already_paid` / `invoice_cancelled`, InvalidInput `reason`."""
    reason = _text(data.get("reason"), "reason", 300)
    if not reason:
        raise InvalidInput.naming({"reason": "Say why the invoice is cancelled."})
    invoice = _locked(invoice_id)
    was = _move(invoice, InvoiceStatus.CANCELLED)
    invoice.cancel_reason, invoice.cancelled_at = reason, clock.now()
    db.session.flush()
    audit.record(
        actor,
        "INVOICE_CANCELLED",
        ("invoice", invoice.id),
        {"status": was},
        {"status": InvoiceStatus.CANCELLED, "reason": reason},
    )
    return invoice


# ---- payment ---------------------------------------------------------------------------


def _day_open(day: date) -> None:
    """Refuse money in or out on a closed day. Takes the day's takings lock shared, so a
    close (which takes it alone) waits for this transaction and counts what it writes.
    Raises Conflict `day_closed`."""
    db.session.execute(
        text("SELECT pg_advisory_xact_lock_shared(:key, :day)"),
        {"key": TAKINGS_LOCK, "day": day.toordinal()},
    )
    if db.session.scalar(select(DayClose.id).where(DayClose.day == day)) is not None:
        raise Conflict(
            f"The takings of {clock.format_day(day)} are closed; no money moves on that day.",
            "day_closed",
        )


def _digest(invoice_id: int, data: dict[str, Any]) -> str:
    body = json.dumps({"invoice_id": invoice_id, **data}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _clean_payment(data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    method = data.get("method")
    if method not in set(PaymentMethod):
        errors["method"] = "Choose CASH, CARD or UPI."
    amount = _money(data.get("amount"), "amount", errors)
    try:
        reference = _text(data.get("reference"), "reference", 100)
    except InvalidInput as error:
        errors.update(error.fields)
        reference = None
    if method in (PaymentMethod.CARD, PaymentMethod.UPI) and not reference and not errors:
        errors["reference"] = f"Give the {method} transaction reference."
    tendered = None
    if data.get("tendered") not in (None, ""):
        if method != PaymentMethod.CASH:
            errors["tendered"] = "Only a cash payment has an amount tendered."
        else:
            tendered = _money(data.get("tendered"), "tendered", errors)
    if errors:
        raise InvalidInput.naming(errors)
    return {"method": method, "amount": amount, "reference": reference, "tendered": tendered}


def pay(
    actor: User, invoice_id: int, data: dict[str, Any], idempotency_key: str | None = None
) -> tuple[Invoice, bool]:
    """Take the payment of exactly the invoice's total {method, amount, reference?,
    tendered?}: CARD and UPI need the transaction reference; cash may give the amount
    tendered (the change is worked out). A DRAFT is finalised first.

    With an `idempotency_key`, the same key and body a second time answers the first
    payment again (returns it with True); another body is Conflict
    `idempotency_key_reused`. Raises NotFound, Conflict `already_paid` (also for the
    second of two payments at once: the invoice row is locked) / `invoice_cancelled` /
    `day_closed`, InvalidInput naming the field. Returns (invoice, replayed)."""
    if idempotency_key is not None and not KEY_RE.match(idempotency_key):
        raise InvalidInput.naming({"Idempotency-Key": "At most 200 printable characters."})
    cleaned = _clean_payment(data)
    invoice = _locked(invoice_id)
    if idempotency_key is not None:
        digest = _digest(invoice_id, data)
        earlier = db.session.scalars(
            select(Payment).where(Payment.idempotency_key == idempotency_key)
        ).first()
        if earlier is not None:
            if earlier.request_digest == digest and earlier.invoice_id == invoice.id:
                return invoice, True
            raise Conflict(
                "This Idempotency-Key was used with another request.", "idempotency_key_reused"
            )
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.CANCELLED):
        _move(invoice, InvoiceStatus.PAID)  # raises already_paid / invoice_cancelled
    if cleaned["amount"] != invoice.total:
        raise InvalidInput.naming({"amount": f"The payment must be the total, {invoice.total}."})
    tendered = cleaned["tendered"]
    if tendered is not None and tendered < invoice.total:
        raise InvalidInput.naming({"tendered": f"Less than the total, {invoice.total}."})
    today = clock.today()
    _day_open(today)
    if invoice.status == InvoiceStatus.DRAFT:
        _finalize(actor, invoice)
    now = clock.now()
    payment = Payment(
        invoice_id=invoice.id,
        method=cleaned["method"],
        amount=cleaned["amount"],
        reference=cleaned["reference"],
        tendered=tendered,
        change=tendered - invoice.total if tendered is not None else None,
        paid_on=today,
        received_by_id=actor.id,
        received_by=actor,
        received_at=now,
        idempotency_key=idempotency_key,
        request_digest=_digest(invoice_id, data) if idempotency_key else None,
    )
    db.session.add(payment)
    invoice.payment = payment
    _move(invoice, InvoiceStatus.PAID)
    invoice.paid_at = now
    # One flush: the invoice's UPDATE (numbered too, when it was a DRAFT) and the payment.
    # No savepoint: the one conflict left (the same Idempotency-Key used at this moment for
    # another invoice) ends the whole request; the invoice's lock rules out the rest.
    try:
        db.session.flush()
    except IntegrityError as exc:
        if constraint_name(exc) == "payments_idempotency_key_key":
            raise Conflict(
                "This Idempotency-Key was used with another request.", "idempotency_key_reused"
            ) from None
        raise
    audit.record(
        actor,
        "INVOICE_PAID",
        ("invoice", invoice.id),
        {"status": InvoiceStatus.PENDING},
        {
            "status": InvoiceStatus.PAID,
            "number": invoice.number,
            "method": payment.method,
            "amount": payment.amount,
            "reference": payment.reference,
        },
    )
    return invoice, False


# ---- credit notes ----------------------------------------------------------------------


def get_credit_note(credit_note_id: int) -> CreditNote:
    return get_or_raise(
        CreditNote,
        credit_note_id,
        "No such credit note.",
        "credit_note_not_found",
        options=NOTE_SHOWN,
    )


def _refund_items(invoice: Invoice, items: Any) -> list[tuple[InvoiceLine, Decimal]]:
    """(line, quantity) for each line to refund: those asked for, or (no `items`) every
    line with something left. Raises InvalidInput naming the item when more is asked than
    is left, Conflict `nothing_to_refund`."""
    done = refunded(invoice)
    lines = {line.id: line for line in invoice.lines}
    left = {i: line.quantity - done.get(i, Decimal(0)) for i, line in lines.items()}
    if items is None:
        chosen = [(lines[i], q) for i, q in left.items() if q > 0]
    else:
        if not isinstance(items, list) or not items:
            raise InvalidInput.naming({"items": "Choose the lines to refund, or leave out items."})
        errors: dict[str, str] = {}
        chosen = []
        for n, item in enumerate(items):
            line_id = item.get("line_id") if isinstance(item, dict) else None
            if isinstance(line_id, bool) or line_id not in lines:
                errors[f"items.{n}.line_id"] = "Not a line of this invoice."
                continue
            if any(line.id == line_id for line, _ in chosen):
                errors[f"items.{n}.line_id"] = "This line is named twice."
                continue
            quantity = _decimal(
                item.get("quantity"), f"items.{n}.quantity", errors, money.CENT, MAX_QUANTITY
            )
            if quantity is None:
                continue
            if quantity > left[line_id]:
                errors[f"items.{n}.quantity"] = (
                    f"Only {left[line_id].normalize():f} of this line is left to refund."
                )
                continue
            chosen.append((lines[line_id], quantity))
        if errors:
            raise InvalidInput.naming(errors)
    if not chosen:
        raise Conflict("Everything on this invoice has been refunded.", "nothing_to_refund")
    return chosen


def issue_credit_note(actor: User, invoice_id: int, data: dict[str, Any]) -> CreditNote:
    """Refund part or all of a PAID invoice {items?: [{line_id, quantity}], reason,
    method}: the credit note reverses exactly those lines' taxable value, CGST and SGST
    (`core.money.reverse`), never more than was billed (the invoice row is locked while
    what is left is read), and takes the next CN number of the financial year.

    Raises NotFound, Conflict `invoice_not_paid` / `nothing_to_refund` / `day_closed`,
    InvalidInput naming the field. Returns the credit note."""
    errors: dict[str, str] = {}
    method = data.get("method")
    if method not in set(PaymentMethod):
        errors["method"] = "Choose how the money goes back: CASH, CARD or UPI."
    try:
        reason = _text(data.get("reason"), "reason", 300)
    except InvalidInput as error:
        errors.update(error.fields)
        reason = "?"
    if not reason:
        errors["reason"] = "Say why the money goes back."
    if errors:
        raise InvalidInput.naming(errors)
    invoice = _locked(invoice_id)
    if invoice.status != InvoiceStatus.PAID:
        raise Conflict("Only a paid invoice is refunded by credit note.", "invoice_not_paid")
    chosen = _refund_items(invoice, data.get("items"))
    done = refunded(invoice)
    rows = []
    for line, quantity in chosen:
        billed = money.LineAmounts(line.value, line.discount, line.taxable, line.cgst, line.sgst)
        back = money.reverse(billed, line.quantity, done.get(line.id, Decimal(0)), quantity)
        rows.append(
            CreditNoteLine(
                invoice_line_id=line.id,
                invoice_line=line,
                quantity=quantity,
                taxable=back.taxable,
                cgst=back.cgst,
                sgst=back.sgst,
                total=back.total,
            )
        )
    total = sum((row.total for row in rows), Decimal("0.00"))
    if total <= 0:
        raise Conflict("Those lines were free: there is no money to refund.", "nothing_to_refund")
    today = clock.today()
    _day_open(today)
    note = CreditNote(
        number=next_number(CREDIT_NOTE, today),
        invoice_id=invoice.id,
        invoice=invoice,
        method=method,
        reason=reason,
        taxable=sum((row.taxable for row in rows), Decimal("0.00")),
        cgst=sum((row.cgst for row in rows), Decimal("0.00")),
        sgst=sum((row.sgst for row in rows), Decimal("0.00")),
        total=total,
        issued_on=today,
        created_by_id=actor.id,
        created_by=actor,
        created_at=clock.now(),
        lines=rows,
    )
    db.session.add(note)
    db.session.flush()
    audit.record(
        actor,
        "CREDIT_NOTE_ISSUED",
        ("credit_note", note.id),
        None,
        {
            "number": note.number,
            "invoice": invoice.number,
            "method": method,
            "reason": reason,
            "total": total,
            "lines": [{"line_id": r.invoice_line_id, "quantity": r.quantity} for r in rows],
        },
    )
    return note


# ---- takings and the day's close ---------------------------------------------------------


def _zero() -> dict[str, Decimal]:
    return {method.value: Decimal("0.00") for method in PaymentMethod}


def takings(day: date) -> dict[str, Any]:
    """A clinic day's takings: per method, payments less refunds; and the totals. One
    statement."""
    paid = (
        select(literal("P").label("side"), Payment.method, func.sum(Payment.amount))
        .where(Payment.paid_on == day)
        .group_by(Payment.method)
    )
    back = (
        select(literal("R").label("side"), CreditNote.method, func.sum(CreditNote.total))
        .where(CreditNote.issued_on == day)
        .group_by(CreditNote.method)
    )
    payments, refunds = _zero(), _zero()
    for side, method, amount in db.session.execute(union_all(paid, back)):
        (payments if side == "P" else refunds)[method] = amount
    by_method = {m: payments[m] - refunds[m] for m in payments}
    total_in = sum(payments.values(), Decimal("0.00"))
    total_out = sum(refunds.values(), Decimal("0.00"))
    return {
        "date": day,
        "by_method": by_method,
        "payments_by_method": payments,
        "refunds_by_method": refunds,
        "payments": total_in,
        "refunds": total_out,
        "net": total_in - total_out,
    }


def get_close(day: date) -> DayClose | None:
    query = select(DayClose).where(DayClose.day == day).options(joinedload(DayClose.closed_by))
    return db.session.scalars(query).first()


def day_report(day: date) -> dict[str, Any]:
    """The close report of a day: the takings as they stood when it was closed (read-only
    from then on), else as they stand now, with the close when there is one."""
    close = get_close(day)
    if close is None:
        return {**takings(day), "closed": False, "close": None}
    expected = {
        PaymentMethod.CASH.value: close.expected_cash,
        PaymentMethod.CARD.value: close.expected_card,
        PaymentMethod.UPI.value: close.expected_upi,
    }
    return {
        "date": day,
        "by_method": expected,
        "payments": close.payments,
        "refunds": close.refunds,
        "net": close.payments - close.refunds,
        "closed": True,
        "close": close,
    }


def close_day(actor: User, data: dict[str, Any]) -> DayClose:
    """The cashier's close of a clinic day {date, cash_counted, note?}: the expected
    takings per method are fixed as they stand, with the cash counted and the variance
    (counted - expected cash); from then on no payment or refund lands on that day.

    Raises InvalidInput `date` (not a day, or one still to come) / `cash_counted` /
    `note`, Conflict `day_closed`. Returns the close."""
    errors: dict[str, str] = {}
    day = data.get("date")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            day = None
    if not isinstance(day, date):
        errors["date"] = "Give the day as YYYY-MM-DD."
    elif day > clock.today():
        errors["date"] = "That day has not come yet."
    counted = _money(data.get("cash_counted"), "cash_counted", errors)
    try:
        note = _text(data.get("note"), "note", 500)
    except InvalidInput as error:
        errors.update(error.fields)
    if errors:
        raise InvalidInput.naming(errors)
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(:key, :day)"),
        {"key": TAKINGS_LOCK, "day": day.toordinal()},
    )
    if get_close(day) is not None:
        raise Conflict(f"{clock.format_day(day)} is closed already.", "day_closed")
    figures = takings(day)
    expected = figures["by_method"]
    close = DayClose(
        day=day,
        expected_cash=expected[PaymentMethod.CASH],
        expected_card=expected[PaymentMethod.CARD],
        expected_upi=expected[PaymentMethod.UPI],
        payments=figures["payments"],
        refunds=figures["refunds"],
        cash_counted=counted,
        variance=counted - expected[PaymentMethod.CASH],
        note=note,
        closed_by_id=actor.id,
        closed_by=actor,
        closed_at=clock.now(),
    )
    db.session.add(close)
    db.session.flush()
    audit.record(
        actor,
        "DAY_CLOSED",
        ("day_close", close.id),
        None,
        {
            "date": day,
            "expected": expected,
            "cash_counted": counted,
            "variance": close.variance,
            "note": note,
        },
    )
    return close


def past_closes(page: int = 1, per_page: int = 50) -> Page:
    """Every day's close, the latest day first."""
    query = (
        select(DayClose)
        .options(joinedload(DayClose.closed_by, innerjoin=True))
        .order_by(DayClose.day.desc())
    )
    return paginate(query, page, per_page)
