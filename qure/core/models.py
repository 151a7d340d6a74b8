"""Tables owned by the core: the outbox journal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from qure.extensions import db

# The outbox topic (and MongoDB collection) of the audit trail: the relay chains these rows.
AUDIT_TOPIC = "audit_logs"


class OutboxEvent(db.Model):
    """A record for MongoDB, written in the same transaction as the change it describes.

    Rows are kept as a journal: `seq`, `prev_hash` and `hash` place an audit record in the
    chain (assigned by the relay, in relay order), `shipped_at` says it reached MongoDB.
    The embedded document store is refilled from here when the app starts.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    topic: Mapped[str] = mapped_column(String(40), nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(Text)
    hash: Mapped[str | None] = mapped_column(Text)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_outbox_unchained",
            "id",
            postgresql_where=text("seq IS NULL AND topic = 'audit_logs'"),
        ),
        Index("ix_outbox_unshipped", "id", postgresql_where=text("shipped_at IS NULL")),
    )
