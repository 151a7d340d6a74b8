"""Stock: batches received (stock-in), adjusted with a reason, and what is usable.

A batch is expired on and after its expiry date, on the clinic's date (`clock.today()`):
its stock then counts as none everywhere (usable stock, low stock, dispensing). Every
change of a batch's quantity is a `stock_movements` document (IN, OUT, ADJUSTMENT,
RETURN) written through the outbox in the same transaction, and an audit record."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import and_, case, exists, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from qure.auth.models import User
from qure.core import audit, clock
from qure.core.db import constraint_name, get_or_raise
from qure.core.errors import Conflict, InvalidInput
from qure.core.money import parse_money
from qure.core.pagination import MAX_OFFSET, Page, check_bounds, paginate
from qure.core.roles import Role
from qure.core.text import plain_text
from qure.extensions import db
from qure.pharmacy import service as catalogue
from qure.pharmacy.models import AdjustmentReason, Batch, Medicine, MovementType

EDITORS = (Role.ADMIN, Role.PHARMACIST)  # who receives and adjusts stock
MOVEMENTS_TOPIC = "stock_movements"
MAX_BATCHES = 50
BATCH_EXISTS = "batch_exists"  # the code of a refusal naming only batches the medicine has
HELD = "This medicine already has this batch."
MAX_QUANTITY = 1_000_000
EXPIRING_DAYS = (30, 60, 90)


# ---- input -----------------------------------------------------------------------------


def whole_number(value: Any, field: str, errors: dict[str, str], low: int, high: int) -> int:
    """A whole number from `low` to `high` (an int, or its digits as text)."""
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    if number is None or not low <= number <= high:
        errors[field] = f"A whole number from {low:,} to {high:,}."
        return 0
    return number


MONTH_YEAR = re.compile(r"(?P<month>0?[1-9]|1[0-2])\s*[/.-]\s*(?P<year>(?:19|20)\d{2})")


def pack_month(text: str, last_day: bool) -> date | None:
    """A month as a pack prints it ("EXP 06/2031", "MFG 01-2030", "Jun 2031"): its last
    day for an expiry (a pack is good through its month; the clinic treats the batch as
    expired on that day), its first for a manufacturing date. None if it is no month."""
    typed = " ".join(text.upper().replace("EXP", " ").replace("MFG", " ").split())
    found = MONTH_YEAR.fullmatch(typed)
    if found:
        year, month = int(found["year"]), int(found["month"])
    else:
        try:
            parsed = datetime.strptime(typed.title(), "%b %Y")
        except ValueError:
            return None
        year, month = parsed.year, parsed.month
    if not last_day:
        return date(year, month, 1)
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


def _day(
    value: Any, field: str, errors: dict[str, str], required: bool, last_day: bool = False
) -> date | None:
    if isinstance(value, date):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[field] = "Give the date."
        return None
    try:
        return clock.parse_day(str(value))
    except ValueError:
        month = pack_month(str(value), last_day) if isinstance(value, str) else None
        if month is None:
            errors[field] = "Not a date (e.g. 30/06/2030, or 06/2030 as the pack prints it)."
        return month


def _text(value: Any, field: str, errors: dict[str, str], high: int) -> str | None:
    """`core.text.plain_text`, its refusal collected with the rest of the input's."""
    try:
        return plain_text(value, field, high)
    except InvalidInput as exc:
        errors.update(exc.fields)
        return None


def _clean_batch(raw: Any, at: str, today: date, errors: dict[str, str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors[at] = "Give the batch's number, quantity and expiry date."
        return {}
    for key in sorted(set(raw) - BATCH_FIELDS):
        errors[f"{at}.{key}"] = "Unknown field."
    number = _text(raw.get("batch_number"), f"{at}.batch_number", errors, 40)
    if not number and f"{at}.batch_number" not in errors:
        errors[f"{at}.batch_number"] = "Give the batch number printed on the pack."
    quantity = whole_number(raw.get("quantity"), f"{at}.quantity", errors, 1, MAX_QUANTITY)
    expiry = _day(raw.get("expiry_date"), f"{at}.expiry_date", errors, required=True, last_day=True)
    mfg = _day(raw.get("mfg_date"), f"{at}.mfg_date", errors, required=False)
    if expiry is not None and expiry <= today:
        errors[f"{at}.expiry_date"] = "This stock has expired: it cannot be received."
    if mfg is not None and mfg > today:
        errors[f"{at}.mfg_date"] = "The manufacturing date is in the future."
    if mfg is not None and expiry is not None and mfg > expiry:
        errors[f"{at}.mfg_date"] = "The manufacturing date is after the expiry date."
    price = None
    if raw.get("purchase_price") not in (None, ""):
        try:
            price = parse_money(raw.get("purchase_price"), f"{at}.purchase_price")
        except InvalidInput as exc:
            errors.update(exc.fields)
    return {
        "batch_number": (number or "").upper(),
        "quantity": quantity,
        "expiry_date": expiry,
        "mfg_date": mfg,
        "supplier": _text(raw.get("supplier"), f"{at}.supplier", errors, 120),
        "purchase_price": price,
    }


BATCH_FIELDS = frozenset(
    {"batch_number", "quantity", "expiry_date", "mfg_date", "supplier", "purchase_price"}
)


# ---- movements -------------------------------------------------------------------------


def movement(
    kind: MovementType,
    actor: User | None,
    batch: Batch,
    medicine: Medicine,
    quantity: int,
    **extra: Any,
) -> None:
    """Publish one `stock_movements` document through the outbox (in this transaction).
    `quantity` is what moved (signed for an ADJUSTMENT); `balance` the batch's quantity
    after it. The timestamp becomes a BSON date when shipped; dates go as ISO text."""
    audit.publish(
        MOVEMENTS_TOPIC,
        {
            "type": kind,
            "timestamp": clock.now(),
            "day": clock.today(),
            "medicine": {"id": medicine.id, "name": medicine.name, "strength": medicine.strength},
            "batch": {
                "id": batch.id,
                "batch_number": batch.batch_number,
                "expiry_date": batch.expiry_date,
            },
            "quantity": quantity,
            "balance": batch.quantity,
            "user": audit.actor_of(actor),
            **extra,
        },
    )


# ---- reading ---------------------------------------------------------------------------


def is_expired(batch: Batch, today: date | None = None) -> bool:
    return batch.expiry_date <= (today or clock.today())


def levels(medicine_ids: list[int] | None = None) -> dict[int, tuple[int, date | None]]:
    """Per medicine id: its usable stock and its next expiry (None without usable stock)."""
    query = (
        select(Batch.medicine_id, func.sum(Batch.quantity), func.min(Batch.expiry_date))
        .where(Batch.quantity > 0, Batch.expiry_date > clock.today())
        .group_by(Batch.medicine_id)
    )
    if medicine_ids is not None:
        if not medicine_ids:
            return {}
        query = query.where(Batch.medicine_id.in_(medicine_ids))
    return {mid: (int(total), soonest) for mid, total, soonest in db.session.execute(query)}


def _usable():
    """Per medicine: usable stock and next expiry, as a subquery."""
    return (
        select(
            Batch.medicine_id.label("medicine_id"),
            func.sum(Batch.quantity).label("usable"),
            func.min(Batch.expiry_date).label("next_expiry"),
        )
        .where(Batch.quantity > 0, Batch.expiry_date > clock.today())
        .group_by(Batch.medicine_id)
        .subquery()
    )


@cache
def _medicine_keys() -> tuple[str, ...]:
    return tuple(c.key for c in Medicine.__mapper__.column_attrs)


@cache
def _listed_columns() -> tuple:
    """The medicine's columns a list answers (not its search text), selected as columns:
    a page of rows as tuples, no ORM objects to build."""
    keys = ["id", *(k for k in _medicine_keys() if k not in ("id", "search_text"))]
    return tuple(Medicine.__table__.c[key] for key in keys)


def _listed_row(values, usable: int, next_expiry: date | None) -> dict[str, Any]:
    row = dict(zip((c.key for c in _listed_columns()), values, strict=False))
    row.update(
        usable_stock=usable,
        next_expiry=next_expiry,
        low_stock=usable <= row["reorder_level"],
    )
    return row


def medicine_row(medicine: Medicine, usable: int, next_expiry: date | None) -> dict[str, Any]:
    """A medicine as the inventory shows it: its catalogue fields and its stock."""
    row = {key: getattr(medicine, key) for key in _medicine_keys()}
    row.update(
        usable_stock=usable,
        next_expiry=next_expiry,
        low_stock=usable <= medicine.reorder_level,
    )
    return row


STOCK_FILTERS = ("low", "out", "expiring")


def inventory(
    q: str | None = None,
    active_only: bool = True,
    page: int = 1,
    per_page: int = 50,
    stock_filter: str | None = None,
) -> Page:
    """The catalogue search (`service.search`) answering each medicine's usable stock and
    next expiry too; `stock_filter` keeps the low (at or below the reorder level), out
    (no usable stock) or expiring (usable stock expiring within 30 days) ones."""
    if stock_filter is not None and stock_filter not in STOCK_FILTERS:
        raise InvalidInput.naming({"stock": "One of low, out or expiring."})
    unordered, ordering = catalogue.search_parts(q, active_only)
    unordered = unordered.with_only_columns(*_listed_columns(), maintain_column_froms=True)
    query = unordered.order_by(*ordering)
    if stock_filter is None:
        return _stocked_page(unordered, ordering, page, per_page)
    if stock_filter == "low":
        usable = _usable()
        stock = func.coalesce(usable.c.usable, 0)
        query = (
            query.add_columns(stock, usable.c.next_expiry)
            .outerjoin(usable, usable.c.medicine_id == Medicine.id)
            .where(stock <= Medicine.reorder_level)
        )
        return _rows_page(query, page, per_page)
    # Out and expiring ask the FEFO index whether a medicine has such a batch (no sum of
    # every batch in stock); an expiring page then reads its own stock, as the plain list.
    today = clock.today()
    usable_batch = select(Batch.id).where(
        Batch.medicine_id == Medicine.id, Batch.quantity > 0, Batch.expiry_date > today
    )
    if stock_filter == "out":
        return _rows_page(query.where(~exists(usable_batch)), page, per_page, none_usable=True)
    soon = usable_batch.where(Batch.expiry_date <= today + timedelta(days=30))
    return _stocked_page(unordered.where(exists(soon)), ordering, page, per_page)


def low_stock(page: int = 1, per_page: int = 50) -> Page:
    """Every active medicine whose usable stock is at or below its reorder level: zero
    stock, expired stock only, and no batch at all included. Emptiest first."""
    usable = _usable()
    stock = func.coalesce(usable.c.usable, 0)
    query = (
        select(*_listed_columns(), stock, usable.c.next_expiry)
        .outerjoin(usable, usable.c.medicine_id == Medicine.id)
        .where(Medicine.is_active.is_(True), stock <= Medicine.reorder_level)
        .order_by(stock, func.lower(Medicine.name), Medicine.id)
    )
    return _rows_page(query, page, per_page)


def _rows_page(query, page: int, per_page: int, none_usable: bool = False) -> Page:
    """One page of medicine rows, counted in the same statement (`count(*) OVER ()` is
    computed before LIMIT); a page past the last asks the count alone. The query's rows
    are the medicine's listed columns (`_listed_columns`, its id first), then its usable
    stock and next expiry; or the columns alone with `none_usable` (the out-of-stock list).
    Items are plain dicts."""
    check_bounds(page, per_page)
    found = Page([], page, per_page, 0)
    offset = (page - 1) * per_page
    rows = []
    if offset < MAX_OFFSET:
        counted = query.add_columns(func.count().over()).limit(per_page).offset(offset)
        rows = db.session.execute(counted).all()
    if rows:
        found.total = rows[0][-1]
    elif page > 1:
        counting = select(func.count()).select_from(query.order_by(None).subquery())
        found.total = db.session.scalar(counting) or 0
    width = len(_listed_columns())  # the medicine's columns come first, the id first of all
    if none_usable:
        found.items = [_listed_row(r[:width], 0, None) for r in rows]
    else:
        found.items = [_listed_row(r[:width], int(r[width]), r[width + 1]) for r in rows]
    return found


def _stocked_page(query, ordering: list, page: int, per_page: int) -> Page:
    """One page of medicine rows (`query`: the listed columns, unordered) in `ordering`,
    with each one's usable stock and next expiry: the page is cut first (in the order of
    an index, so PostgreSQL stops at the page), then only its rows look up their batches
    (a LATERAL join on the FEFO index), in one statement; the total is counted apart (a
    count over every match would sort them all before the page is cut)."""
    check_bounds(page, per_page)
    found = Page([], page, per_page, 0)
    offset = (page - 1) * per_page
    rows = []
    if offset < MAX_OFFSET:
        keys = [order.label(f"order_{n}") for n, order in enumerate(ordering)]
        cut = query.add_columns(*keys).order_by(*ordering).limit(per_page).offset(offset)
        cut = cut.subquery("cut")
        batches = (
            select(
                func.coalesce(func.sum(Batch.quantity), 0).label("usable"),
                func.min(Batch.expiry_date).label("next_expiry"),
            )
            .where(
                Batch.medicine_id == cut.c.id,
                Batch.quantity > 0,
                Batch.expiry_date > clock.today(),
            )
            .lateral("stock")
        )
        statement = (
            select(*(cut.c[c.key] for c in _listed_columns()), batches.c.usable)
            .add_columns(batches.c.next_expiry)
            .select_from(cut)
            .join(batches, true())
            .order_by(*(cut.c[f"order_{n}"] for n in range(len(ordering))))
        )
        rows = db.session.execute(statement).all()
    counting = select(func.count()).select_from(query.subquery())
    found.total = db.session.scalar(counting) or 0
    width = len(_listed_columns())
    found.items = [_listed_row(r[:width], int(r[width]), r[width + 1]) for r in rows]
    return found


BATCH_SHOWN = (joinedload(Batch.medicine, innerjoin=True),)


def batches(medicine_id: int, page: int = 1, per_page: int = 50) -> Page:
    """A medicine's batches, earliest expiry first (empty ones included)."""
    catalogue.get_medicine(medicine_id)
    query = (
        select(Batch)
        .where(Batch.medicine_id == medicine_id)
        .order_by(Batch.expiry_date, Batch.id)
        .options(*BATCH_SHOWN)
    )
    return paginate(query, page, per_page)


def expiring(days: int, page: int = 1, per_page: int = 50) -> Page:
    """Batches still holding stock that expire within `days` (30, 60 or 90) and have not
    expired yet, soonest first."""
    if days not in EXPIRING_DAYS:
        raise InvalidInput.naming({"days": "One of 30, 60 or 90."})
    today = clock.today()
    query = (
        select(Batch)
        .where(
            Batch.quantity > 0,
            Batch.expiry_date > today,
            Batch.expiry_date <= today + timedelta(days=days),
        )
        .order_by(Batch.expiry_date, Batch.id)
        .options(*BATCH_SHOWN)
    )
    return paginate(query, page, per_page)


def expired(page: int = 1, per_page: int = 50) -> Page:
    """Expired batches still holding stock (to be disposed of), oldest expiry first."""
    query = (
        select(Batch)
        .where(Batch.quantity > 0, Batch.expiry_date <= clock.today())
        .order_by(Batch.expiry_date, Batch.id)
        .options(*BATCH_SHOWN)
    )
    return paginate(query, page, per_page)


def alert_counts() -> dict[str, int]:
    """The counts the home pages show: low stock, expiring within 30 days, expired."""
    today = clock.today()
    usable = _usable()
    low = db.session.scalar(
        select(func.count())
        .select_from(Medicine)
        .outerjoin(usable, usable.c.medicine_id == Medicine.id)
        .where(
            Medicine.is_active.is_(True),
            func.coalesce(usable.c.usable, 0) <= Medicine.reorder_level,
        )
    )
    soon, gone = db.session.execute(
        select(
            func.count(case((Batch.expiry_date > today, 1))),
            func.count(case((Batch.expiry_date <= today, 1))),
        ).where(Batch.quantity > 0, Batch.expiry_date <= today + timedelta(days=30))
    ).one()
    return {"low_stock": low or 0, "expiring_30": soon or 0, "expired": gone or 0}


def get_batch(batch_id: int) -> Batch:
    return get_or_raise(Batch, batch_id, "No such batch.", "batch_not_found", options=BATCH_SHOWN)


def batch_row(batch: Batch, today: date | None = None) -> dict[str, Any]:
    """A batch as the API and pages show it."""
    return {
        "id": batch.id,
        "medicine_id": batch.medicine_id,
        "medicine": batch.medicine,
        "batch_number": batch.batch_number,
        "quantity": batch.quantity,
        "expiry_date": batch.expiry_date,
        "mfg_date": batch.mfg_date,
        "supplier": batch.supplier,
        "purchase_price": batch.purchase_price,
        "received_by_id": batch.received_by_id,
        "received_at": batch.received_at,
        "expired": is_expired(batch, today),
    }


# ---- changing --------------------------------------------------------------------------


def stock_in(actor: User, data: dict[str, Any]) -> list[Batch]:
    """Receive one or more batches of a medicine {medicine_id, batches: [{batch_number,
    quantity, expiry_date, mfg_date?, supplier?, purchase_price?}]} (one supplier's
    delivery). Refuses expired stock, a manufacturing date after expiry (or in the
    future), a quantity under 1 and a batch number the medicine already has, naming
    `batches.N.field` (InvalidInput); NotFound for the medicine. Publishes IN movements."""
    errors: dict[str, str] = {}
    for key in sorted(set(data) - {"medicine_id", "batches"}):
        errors[key] = "Unknown field."
    medicine_id = data.get("medicine_id")
    if not isinstance(medicine_id, int) or isinstance(medicine_id, bool):
        errors["medicine_id"] = "Choose the medicine."
    raw = data.get("batches")
    if not isinstance(raw, list) or not raw:
        errors["batches"] = "Give at least one batch."
        raw = []
    elif len(raw) > MAX_BATCHES:
        errors["batches"] = f"At most {MAX_BATCHES} batches at once."
        raw = []
    today = clock.today()
    cleaned = [_clean_batch(b, f"batches.{n}", today, errors) for n, b in enumerate(raw)]
    if errors:
        raise InvalidInput.naming(errors)
    medicine = catalogue.get_medicine(medicine_id)
    numbers = [b["batch_number"] for b in cleaned]
    taken = set(
        db.session.scalars(
            select(Batch.batch_number).where(
                Batch.medicine_id == medicine.id, Batch.batch_number.in_(numbers)
            )
        )
    )
    seen: set[str] = set()
    for n, number in enumerate(numbers):
        if number in taken:
            errors[f"batches.{n}.batch_number"] = HELD
        elif number in seen:
            errors[f"batches.{n}.batch_number"] = "This batch number is given twice."
        seen.add(number)
    if errors:
        refused = InvalidInput.naming(errors)
        if all(message == HELD for message in errors.values()):
            # Only batches it has already: a code of its own (an import skips such a row).
            refused.code = BATCH_EXISTS
        raise refused
    now = clock.now()
    received = [
        Batch(
            medicine_id=medicine.id,
            medicine=medicine,
            received_by_id=actor.id,
            received_at=now,
            **values,
        )
        for values in cleaned
    ]
    try:
        with db.session.begin_nested():
            db.session.add_all(received)
    except IntegrityError as exc:  # received at the same moment by someone else
        if constraint_name(exc) == "uq_batches_medicine_number":
            raise Conflict(
                "This medicine already has one of these batches.",
                BATCH_EXISTS,
                fields={"batches": "This medicine already has one of these batches."},
            ) from None
        raise
    for batch in received:
        audit.record(
            actor,
            "STOCK_RECEIVED",
            ("batch", batch.id),
            None,
            {"medicine_id": medicine.id, **{k: getattr(batch, k) for k in sorted(BATCH_FIELDS)}},
        )
        movement(MovementType.IN, actor, batch, medicine, batch.quantity)
    return received


def adjust(actor: User, batch_id: int, data: dict[str, Any]) -> Batch:
    """Change a batch's quantity by `delta` (signed) for a `reason` (DAMAGED,
    EXPIRED_DISPOSAL, COUNT_CORRECTION, RETURN_TO_SUPPLIER), under the batch's row lock.
    Conflict `stock_below_zero` when the result would be below zero. Publishes an
    ADJUSTMENT movement (signed)."""
    errors: dict[str, str] = {}
    for key in sorted(set(data) - {"delta", "reason", "note"}):
        errors[key] = "Unknown field."
    delta = whole_number(data.get("delta"), "delta", errors, -MAX_QUANTITY, MAX_QUANTITY)
    if "delta" not in errors and delta == 0:
        errors["delta"] = "Give how many units to add (+) or take away (-)."
    reason = data.get("reason")
    if reason not in set(AdjustmentReason):
        errors["reason"] = "One of " + ", ".join(AdjustmentReason) + "."
    note = _text(data.get("note"), "note", errors, 300)
    if errors:
        raise InvalidInput.naming(errors)
    batch = get_or_raise(
        Batch, batch_id, "No such batch.", "batch_not_found", lock=True, options=BATCH_SHOWN
    )
    before = batch.quantity
    if before + delta < 0:
        raise Conflict(
            f"The batch holds {before}: it cannot go below zero.",
            "stock_below_zero",
            fields={"delta": f"The batch holds {before}; take away at most that."},
            details={"quantity": before},
        )
    batch.quantity = before + delta
    db.session.flush()
    audit.record(
        actor,
        "BATCH_ADJUSTED",
        ("batch", batch.id),
        {"quantity": before},
        {"quantity": batch.quantity, "delta": delta, "reason": reason, "note": note},
    )
    movement(MovementType.ADJUSTMENT, actor, batch, batch.medicine, delta, reason=reason, note=note)
    return batch


def lock_usable(medicine_ids: list[int]) -> list[Batch]:
    """The usable batches (not expired, holding stock) of these medicines, locked FOR
    UPDATE in one statement in (expiry_date, id) order: every dispensing takes its locks
    in that one order, so two never deadlock."""
    return usable_batches(medicine_ids, lock=True)


def usable_batches(medicine_ids: list[int], lock: bool = False) -> list[Batch]:
    """The usable batches of these medicines in (expiry_date, id) order, the order
    dispensing takes them in; with `lock`, FOR UPDATE (see `lock_usable`)."""
    if not medicine_ids:
        return []
    query = (
        select(Batch)
        .where(
            Batch.medicine_id.in_(sorted(set(medicine_ids))),
            and_(Batch.quantity > 0, Batch.expiry_date > clock.today()),
        )
        .order_by(Batch.expiry_date, Batch.id)
    )
    if lock:
        query = query.with_for_update(of=Batch).execution_options(populate_existing=True)
    return list(db.session.scalars(query))


def lock_batches(batch_ids: list[int]) -> dict[int, Batch]:
    """These batches, locked FOR UPDATE in (expiry_date, id) order (see `lock_usable`)."""
    query = (
        select(Batch)
        .where(Batch.id.in_(sorted(set(batch_ids))))
        .order_by(Batch.expiry_date, Batch.id)
        .with_for_update(of=Batch)
        .execution_options(populate_existing=True)
        .options(*BATCH_SHOWN)
    )
    return {b.id: b for b in db.session.scalars(query)}
