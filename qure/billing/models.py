"""Billing's tables."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from qure.extensions import db


class DocumentCounter(db.Model):
    """The last number given in one series (INV, CN) of one financial year ("2026-27").

    Numbers are taken by incrementing this row in the transaction that issues the
    document: the row stays locked until that transaction ends, so numbers come out one
    at a time, and a transaction that rolls back gives its number back (no gaps, no
    duplicates; never max() + 1 over the documents)."""

    __tablename__ = "document_counters"
    __table_args__ = (CheckConstraint("last_number > 0", name="ck_document_counters_positive"),)

    series: Mapped[str] = mapped_column(String(8), primary_key=True)
    financial_year: Mapped[str] = mapped_column(String(7), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, nullable=False)
