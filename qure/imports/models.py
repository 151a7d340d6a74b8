"""An uploaded CSV import and what became of its rows."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from qure.extensions import db


class ImportKind(enum.StrEnum):
    """What a file's rows are."""

    PATIENTS = "patients"
    MEDICINES = "medicines"


class ImportStatus(enum.StrEnum):
    """An import's progress: its job is queued, reading rows, or has read them all."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"


class Import(db.Model):
    """One uploaded file. The job reads `content` (the bytes as sent) from here, given only
    the import's id; `processed` rows are done and committed with the counts, so a job run
    again goes on from there. `rejected_rows` keeps {line, reason, values} of the first
    MAX_REJECTED_KEPT rows refused (`rejected` counts them all)."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False)
    filename: Mapped[str] = mapped_column(String(200), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    status: Mapped[str] = mapped_column(String(10), nullable=False, default=ImportStatus.QUEUED)
    job_id: Mapped[str] = mapped_column(String(64), nullable=False)
    total_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    processed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    imported: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rejected_rows: Mapped[list] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('patients', 'medicines')", name="ck_imports_kind"),
        CheckConstraint("status IN ('QUEUED', 'RUNNING', 'FINISHED')", name="ck_imports_status"),
        CheckConstraint("processed <= total_rows", name="ck_imports_processed"),
        Index("uq_imports_kind_sha256", "kind", "sha256", unique=True),
        Index("ix_imports_created", "created_at", "id"),
    )
