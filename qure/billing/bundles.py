"""A clinic day's receipts as one PDF, for the day's file: the receipt of every invoice
paid on the day (the payments the day close counts), in invoice-number order, one after
another, made by a job (`billing.tasks.bundle_receipts`) that reports its progress, and
kept in `receipt_bundles` (PostgreSQL: the web and the worker processes both reach it)
until it is made again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from qure.billing import receipts
from qure.billing.models import Invoice, Payment, ReceiptBundle
from qure.core import clock
from qure.core.errors import Conflict, NotFound
from qure.extensions import db


def job_id(day: date) -> str:
    """The bundle job's id for `day`: submitting the same day twice queues it once."""
    return f"receipts-{day.isoformat()}"


def file_name(day: date) -> str:
    return f"receipts-{day.isoformat()}.pdf"


def paid_invoice_ids(day: date) -> list[int]:
    """Ids of the invoices paid on clinic day `day`, by invoice number."""
    query = (
        select(Invoice.id)
        .join(Payment, Payment.invoice_id == Invoice.id)
        .where(Payment.paid_on == day)
        .order_by(Invoice.number, Invoice.id)
    )
    return list(db.session.scalars(query))


def no_receipts(day: date) -> Conflict:
    return Conflict(f"Nothing was paid on {clock.format_day(day)}: no receipts.", "no_receipts")


def receipt_count(day: date) -> int:
    """How many receipts the day's bundle holds (one statement)."""
    return db.session.scalar(
        select(func.count()).select_from(Payment).where(Payment.paid_on == day)
    )


def make(day: date, progress: Callable[[int, int], None] | None = None) -> ReceiptBundle:
    """Render the receipt of every invoice paid on `day` into one PDF and keep it as the
    day's bundle (replacing an older one); `progress(done, total)` is told after each
    receipt. Raises Conflict `no_receipts` when nothing was paid that day. Flushes."""
    ids = paid_invoice_ids(day)
    if not ids:
        raise no_receipts(day)
    # WeasyPrint takes about a second to import: loaded at the first bundle, not at start.
    from qure.core.pdf import join

    documents = []
    for done, invoice_id in enumerate(ids, 1):
        documents.append(receipts.receipt_document(invoice_id))
        if progress is not None:
            progress(done, len(ids))
    values = {"pdf": join(documents), "receipts": len(ids), "made_at": clock.now()}
    db.session.execute(
        insert(ReceiptBundle)
        .values(day=day, **values)
        .on_conflict_do_update(index_elements=["day"], set_=values)
    )
    db.session.flush()
    return db.session.get(ReceiptBundle, day, populate_existing=True)


def get(day: date) -> ReceiptBundle:
    """The day's bundle; NotFound `bundle_not_found` when none was made."""
    found = db.session.get(ReceiptBundle, day)
    if found is None:
        raise NotFound(
            f"The receipts of {clock.format_day(day)} have not been put together yet.",
            "bundle_not_found",
        )
    return found


def made(day: date) -> dict | None:
    """When the day's bundle was made and how many receipts it holds (not the PDF), or
    None."""
    row = db.session.execute(
        select(ReceiptBundle.receipts, ReceiptBundle.made_at).where(ReceiptBundle.day == day)
    ).first()
    return None if row is None else {"receipts": row.receipts, "made_at": row.made_at}
