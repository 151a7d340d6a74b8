"""Document numbers per series and Indian financial year: INV/2026-27/000123."""

from __future__ import annotations

from datetime import date

from sqlalchemy.dialects.postgresql import insert

from qure.billing.models import DocumentCounter
from qure.core.money import financial_year
from qure.extensions import db

INVOICE, CREDIT_NOTE = "INV", "CN"


def next_number(series: str, day: date) -> str:
    """The next number of `series` in the financial year of clinic day `day`, taken in the
    current transaction: one upsert that creates the year's counter at 1 or increments
    it, holding its row lock until the transaction ends (a second issuer waits, then
    takes the next number; a rollback gives the number back)."""
    year = financial_year(day)
    statement = (
        insert(DocumentCounter)
        .values(series=series, financial_year=year, last_number=1)
        .on_conflict_do_update(
            index_elements=[DocumentCounter.series, DocumentCounter.financial_year],
            set_={"last_number": DocumentCounter.last_number + 1},
        )
        .returning(DocumentCounter.last_number)
    )
    number = db.session.execute(statement).scalar_one()
    return f"{series}/{year}/{number:06d}"
