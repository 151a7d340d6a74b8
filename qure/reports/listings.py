"""Listing reports: visit history and stock movements (MongoDB read models), invoices and
credit notes (PostgreSQL, through billing's service). Each report is a page of plain rows
(`*_page`) and a stream of every row for CSV (`*_rows`, read in batches: a year of rows
never sits in memory), with the same filters and the same order, newest first.

Who sees what (SPEC section 0):
- Visit history: an ADMIN every visit. A DOCTOR the visits of their own patients: the
  patients they have completed at least one visit with (as `visit_history` records it),
  and of those the whole history, other doctors' visits included, since treating a
  patient means knowing what was done before. Nothing of a patient they never saw: a
  `patient_id` filter naming one is refused (403 `not_your_patient`), a `doctor_id`
  filter only narrows the doctor's own patients' visits.
- Stock movements: ADMIN and PHARMACIST.
- Invoices and credit notes: ADMIN.

Days (`start`, `end`) are clinic days, both included (`clock.day_bounds`).

Every filter combination of the two MongoDB reports has its declared index: the equality
fields, then `timestamp` and `_id` descending (the order of the list; `_id` breaks ties so
that pages never overlap).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from qure.auth.models import User
from qure.billing import service as billing
from qure.core import clock, documents, money
from qure.core.documents import reading
from qure.core.errors import Forbidden, InvalidInput
from qure.core.pagination import Page, check_bounds
from qure.core.roles import Role
from qure.extensions import mongo
from qure.pharmacy.models import MovementType

VISITS = "visit_history"
MOVEMENTS = "stock_movements"
NEWEST = [("timestamp", -1), ("_id", -1)]

VISIT_READERS = (Role.ADMIN, Role.DOCTOR)
MOVEMENT_READERS = (Role.ADMIN, Role.PHARMACIST)
INVOICE_READERS = (Role.ADMIN,)

# The equality fields each report's filters put in its query, in index order.
VISIT_FIELDS = ("patient.id", "doctor.id")
MOVEMENT_FIELDS = ("medicine.id", "type")


def _declare(collection: str, fields: tuple[str, ...]) -> None:
    """An index for every subset of `fields` (kept in their order), then the list's order."""
    for mask in range(1 << len(fields)):
        chosen = [f for n, f in enumerate(fields) if mask >> n & 1]
        documents.index(collection, *((f, 1) for f in chosen), *NEWEST)


_declare(VISITS, VISIT_FIELDS)
_declare(MOVEMENTS, MOVEMENT_FIELDS)


# ---- shared ------------------------------------------------------------------------------


def check_days(start: date | None, end: date | None) -> None:
    """Raise InvalidInput naming `from` when the first day comes after the last."""
    clock.check_span(start, end)


def _time_range(start: date | None, end: date | None) -> dict[str, datetime]:
    check_days(start, end)
    return documents.day_range(start, end)


def _instant(value: Any) -> datetime | None:
    """A stored timestamp as an aware instant in the clinic's zone (a client that is not
    tz-aware gives naive UTC)."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(clock.clinic_tz())


def _day(value: Any) -> date | None:
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return value if isinstance(value, date) else None


def _page(collection: str, query: dict, page: int, per_page: int, row) -> Page:
    found = documents.page_of(collection, query, NEWEST, page, per_page)
    found.items = [row(d) for d in found.items]
    return found


def _stream(collection: str, query: dict, row) -> Iterator[dict[str, Any]]:
    """Every row, read in batches. The first batch is read before this returns, so that a
    MongoDB that does not answer is a 503 before a download starts, not a cut-off file."""
    with reading():
        cursor = mongo.db[collection].find(query, sort=NEWEST, batch_size=500)
        first = next(cursor, None)

    def rows() -> Iterator[dict[str, Any]]:
        if first is None:
            return
        yield row(first)
        with reading():
            for document in cursor:
                yield row(document)

    return rows()


# ---- visit history -----------------------------------------------------------------------


def visit_query(
    actor: User,
    patient_id: int | None = None,
    doctor_id: int | None = None,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, Any]:
    """The `visit_history` query of these filters for `actor` (see the module's note on
    who sees what). Raises Forbidden (a role that reads no visit history; a doctor naming
    a patient of someone else's), InvalidInput `from`, AnalyticsUnavailable."""
    if actor.role not in VISIT_READERS:
        raise Forbidden("Your role does not read visit history.", "forbidden")
    query: dict[str, Any] = {}
    if actor.role == Role.DOCTOR:
        with reading():
            own = mongo.db[VISITS].distinct("patient.id", {"doctor.id": actor.id})
        if patient_id is not None and patient_id not in own:
            raise Forbidden(
                "You have not seen this patient: their history is for their doctors.",
                "not_your_patient",
            )
        query["patient.id"] = patient_id if patient_id is not None else {"$in": sorted(own)}
    elif patient_id is not None:
        query["patient.id"] = patient_id
    if doctor_id is not None:
        query["doctor.id"] = doctor_id
    when = _time_range(start, end)
    if when:
        query["timestamp"] = when
    return query


def _medicine_name(item: dict[str, Any]) -> str:
    medicine = item.get("medicine") or {}
    return " ".join(filter(None, [medicine.get("name"), medicine.get("strength")]))


def visit_row(document: dict[str, Any]) -> dict[str, Any]:
    """A `visit_history` document as the report shows it."""
    patient = document.get("patient") or {}
    doctor = document.get("doctor") or {}
    prescription = document.get("prescription") or {}
    names = [_medicine_name(item) for item in prescription.get("items") or []]
    return {
        "visit_id": document.get("visit_id"),
        "completed_at": _instant(document.get("timestamp")),
        "patient": {
            "id": patient.get("id"),
            "mrn": patient.get("mrn"),
            "full_name": patient.get("full_name"),
        },
        "doctor": {"id": doctor.get("id"), "full_name": doctor.get("full_name")},
        "icd10_code": document.get("icd10_code"),
        "diagnosis": document.get("diagnosis"),
        "chief_complaint": document.get("chief_complaint"),
        "medicines_count": len(names),
        "medicines": names,
    }


def visit_history(actor: User, page: int = 1, per_page: int = 50, **filters: Any) -> Page:
    """One page of visit history rows, newest completion first (filters as `visit_query`).
    Raises Forbidden, InvalidInput, AnalyticsUnavailable."""
    check_bounds(page, per_page)
    return _page(VISITS, visit_query(actor, **filters), page, per_page, visit_row)


def visit_history_rows(actor: User, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every visit history row of the filters, in the page's order (for CSV)."""
    return _stream(VISITS, visit_query(actor, **filters), visit_row)


VISIT_CSV = (
    "Completed at",
    "MRN",
    "Patient",
    "Doctor",
    "ICD-10",
    "Diagnosis",
    "Chief complaint",
    "Medicines",
    "Prescribed",
)


def visit_csv_row(row: dict[str, Any]) -> list[Any]:
    return [
        row["completed_at"].isoformat() if row["completed_at"] else "",
        row["patient"]["mrn"],
        row["patient"]["full_name"],
        row["doctor"]["full_name"],
        row["icd10_code"],
        row["diagnosis"],
        row["chief_complaint"],
        row["medicines_count"],
        "; ".join(row["medicines"]),
    ]


# ---- stock movements ---------------------------------------------------------------------


def movement_query(
    actor: User,
    medicine_id: int | None = None,
    kind: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> dict[str, Any]:
    """The `stock_movements` query of these filters (`kind`: a MovementType). Raises
    Forbidden (a role that reads no stock movements), InvalidInput `type` or `from`."""
    if actor.role not in MOVEMENT_READERS:
        raise Forbidden("Your role does not read stock movements.", "forbidden")
    query: dict[str, Any] = {}
    if medicine_id is not None:
        query["medicine.id"] = medicine_id
    if kind:
        if kind not in set(MovementType):
            raise InvalidInput.naming({"type": "Choose IN, OUT, ADJUSTMENT or RETURN."})
        query["type"] = str(kind)
    when = _time_range(start, end)
    if when:
        query["timestamp"] = when
    return query


def _reference(document: dict[str, Any]) -> str:
    if document.get("dispensing_id"):
        return f"dispensing {document['dispensing_id']}"
    return str(document.get("reference") or "")


def movement_row(document: dict[str, Any]) -> dict[str, Any]:
    """A `stock_movements` document as the report shows it."""
    medicine = document.get("medicine") or {}
    batch = document.get("batch") or {}
    user = document.get("user") or {}
    return {
        "id": document.get("_id"),
        "timestamp": _instant(document.get("timestamp")),
        "type": document.get("type"),
        "medicine": {
            "id": medicine.get("id"),
            "name": medicine.get("name"),
            "strength": medicine.get("strength"),
        },
        "batch": {
            "id": batch.get("id"),
            "batch_number": batch.get("batch_number"),
            "expiry_date": _day(batch.get("expiry_date")),
        },
        "quantity": document.get("quantity"),
        "balance": document.get("balance"),
        "user": {"id": user.get("id"), "name": user.get("name")} if user else None,
        "reason": document.get("reason"),
        "note": document.get("note"),
        "reference": _reference(document),
    }


def stock_movements(actor: User, page: int = 1, per_page: int = 50, **filters: Any) -> Page:
    """One page of stock movements, newest first (filters as `movement_query`). Raises
    Forbidden, InvalidInput, AnalyticsUnavailable."""
    check_bounds(page, per_page)
    return _page(MOVEMENTS, movement_query(actor, **filters), page, per_page, movement_row)


def stock_movement_rows(actor: User, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every stock movement of the filters, in the page's order (for CSV)."""
    return _stream(MOVEMENTS, movement_query(actor, **filters), movement_row)


MOVEMENT_CSV = (
    "Time",
    "Type",
    "Medicine",
    "Strength",
    "Batch",
    "Expiry",
    "Quantity",
    "Balance",
    "By",
    "Reason",
    "Reference",
)


def movement_csv_row(row: dict[str, Any]) -> list[Any]:
    return [
        row["timestamp"].isoformat() if row["timestamp"] else "",
        row["type"],
        row["medicine"]["name"],
        row["medicine"]["strength"],
        row["batch"]["batch_number"],
        row["batch"]["expiry_date"].isoformat() if row["batch"]["expiry_date"] else "",
        row["quantity"],
        row["balance"],
        (row["user"] or {}).get("name"),
        row["reason"],
        row["reference"],
    ]


# ---- invoices and credit notes -----------------------------------------------------------


def _invoice_filters(actor: User, filters: dict[str, Any]) -> dict[str, Any]:
    if actor.role not in INVOICE_READERS:
        raise Forbidden("Only an admin reads the invoices report.", "forbidden")
    check_days(filters.get("start"), filters.get("end"))
    return filters


def invoices(actor: User, page: int = 1, per_page: int = 50, **filters: Any) -> Page:
    """One page of invoices and credit notes, newest first, in two statements (see
    `billing.service.documents_query` for the filters and the rows). Raises Forbidden,
    InvalidInput."""
    return billing.documents_page(page, per_page, **_invoice_filters(actor, filters))


def invoice_rows(actor: User, **filters: Any) -> Iterator[dict[str, Any]]:
    """Every invoice and credit note of the filters, in the page's order (for CSV)."""
    return billing.documents_rows(**_invoice_filters(actor, filters))


INVOICE_CSV = (
    "Kind",
    "Number",
    "Date",
    "MRN",
    "Patient",
    "Total",
    "Paid",
    "Method",
    "Status",
    "Against invoice",
)


def invoice_csv_row(row: dict[str, Any]) -> list[Any]:
    return [
        row["kind"],
        row["number"],
        row["date"].isoformat(),
        row["patient"]["mrn"],
        row["patient"]["full_name"],
        money.round_money(row["total"]),
        money.round_money(row["paid"]),
        row["method"],
        row["status"],
        row["against"],
    ]
