"""The relay from the PostgreSQL outbox to MongoDB, and the audit hash chain.

Two steps, each its own short transaction:

1. chain: under an advisory lock, give every unchained audit row the next `seq` and its
   `prev_hash` / `hash`. Order is relay order, so a transaction that commits late simply
   takes a later place; the chain never has holes.
2. ship: insert chained rows into MongoDB with `_id` = `seq` (audit) or the outbox id
   (other topics), then stamp `shipped_at`. A record already there is a duplicate key
   and is skipped: shipping twice writes nothing new and never modifies a stored record,
   so a crash between the two steps is harmless.

MongoDB being down stops step 2 only; rows wait and the next run catches up.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pymongo.errors import BulkWriteError, PyMongoError
from sqlalchemy import func, select, text, update

from qure.core import clock
from qure.core.models import AUDIT_TOPIC, OutboxEvent
from qure.extensions import db, mongo

log = logging.getLogger(__name__)

CHAIN_LOCK_KEY = 0x51_75_72_65  # "Qure": the advisory lock serialising the chain
GENESIS_HASH = "0" * 64
BATCH = 500


def canonical(document: dict) -> str:
    """The exact text hashed for an audit record (sorted keys, no spaces)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, body: dict) -> str:
    """SHA-256 of the previous hash and the record body (without `hash`)."""
    return hashlib.sha256((prev_hash + canonical(body)).encode()).hexdigest()


def audit_body(row: OutboxEvent) -> dict:
    """The audit record as hashed: payload plus its place in the chain."""
    return {**row.payload, "seq": row.seq, "prev_hash": row.prev_hash}


def to_document(row: OutboxEvent) -> dict:
    """The MongoDB document for an outbox row (timestamps as BSON dates)."""
    if row.topic == AUDIT_TOPIC:
        doc = {**audit_body(row), "hash": row.hash, "_id": row.seq}
    else:
        doc = {**row.payload, "_id": row.id}
    if isinstance(doc.get("timestamp"), str):
        doc["timestamp"] = datetime.fromisoformat(doc["timestamp"]).astimezone(UTC)
    return doc


def chain_pending(limit: int = BATCH) -> int:
    """Give unchained audit rows their seq and hashes; commit. Returns how many."""
    db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})
    last = db.session.execute(
        select(OutboxEvent.seq, OutboxEvent.hash)
        .where(OutboxEvent.seq.is_not(None))
        .order_by(OutboxEvent.seq.desc())
        .limit(1)
    ).first()
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS_HASH)
    rows = db.session.scalars(
        select(OutboxEvent)
        .where(OutboxEvent.seq.is_(None), OutboxEvent.topic == AUDIT_TOPIC)
        .order_by(OutboxEvent.id)
        .limit(limit)
    ).all()
    for row in rows:
        seq += 1
        row.seq, row.prev_hash = seq, prev
        row.hash = chain_hash(prev, audit_body(row))
        prev = row.hash
    db.session.commit()
    return len(rows)


DUPLICATE_KEY = 11000


def _write(rows: list[OutboxEvent]) -> None:
    """Insert the rows' documents; documents already stored are left untouched."""
    by_topic: dict[str, list[dict]] = {}
    for row in rows:
        by_topic.setdefault(row.topic, []).append(to_document(row))
    for topic, docs in by_topic.items():
        try:
            mongo.db[topic].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise


def ship_pending(limit: int = BATCH) -> int:
    """Copy chained, unshipped rows to MongoDB and mark them shipped. Returns how many."""
    rows = db.session.scalars(
        select(OutboxEvent)
        .where(
            OutboxEvent.shipped_at.is_(None),
            (OutboxEvent.topic != AUDIT_TOPIC) | OutboxEvent.seq.is_not(None),
        )
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        db.session.rollback()
        return 0
    try:
        _write(rows)
    except PyMongoError:
        db.session.rollback()
        raise
    db.session.execute(
        update(OutboxEvent)
        .where(OutboxEvent.id.in_([r.id for r in rows]))
        .values(shipped_at=clock.now())
    )
    db.session.commit()
    return len(rows)


@dataclass
class RelayResult:
    chained: int = 0
    shipped: int = 0
    error: str | None = None


def relay(max_batches: int = 1000) -> RelayResult:
    """Chain and ship everything pending. MongoDB errors are reported, never raised."""
    result = RelayResult()
    for _ in range(max_batches):
        chained = chain_pending()
        result.chained += chained
        try:
            shipped = ship_pending()
        except PyMongoError as exc:
            result.error = type(exc).__name__
            log.warning("outbox relay: MongoDB unavailable (%s); rows wait", result.error)
            return result
        result.shipped += shipped
        if not chained and not shipped:
            break
    return result


def backlog() -> int:
    """How many outbox rows have not reached MongoDB yet."""
    return db.session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.shipped_at.is_(None))
    )


def refill(batch: int = 5000) -> int:
    """Copy every chained row into the document store again (embedded mode at start,
    and `flask rebuild-analytics`). Existing documents are left as they are."""
    total, last_id = 0, 0
    while True:
        rows = db.session.scalars(
            select(OutboxEvent)
            .where(
                OutboxEvent.id > last_id,
                (OutboxEvent.topic != AUDIT_TOPIC) | OutboxEvent.seq.is_not(None),
            )
            .order_by(OutboxEvent.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        _write(rows)
        total += len(rows)
        last_id = rows[-1].id
    db.session.rollback()
    return total


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _stored_body(doc: dict) -> dict:
    body = {k: v for k, v in doc.items() if k not in {"_id", "hash"}}
    stamp = body.get("timestamp")
    if isinstance(stamp, datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        body["timestamp"] = stamp.isoformat()
    return body


def verify(collection=None) -> VerifyReport:
    """Walk `audit_logs` in seq order and recompute the chain; report every break,
    including a chain that ends before (or differs at) the journal's last shipped record."""
    coll = collection if collection is not None else mongo.db[AUDIT_TOPIC]
    report = VerifyReport()
    prev, expected_seq = GENESIS_HASH, 1
    for doc in coll.find({}, sort=[("seq", 1)]):
        seq = doc.get("seq")
        if seq != expected_seq:
            report.problems.append(f"seq {expected_seq}: missing (found {seq} next)")
            expected_seq = seq
        if doc.get("prev_hash") != prev:
            report.problems.append(f"seq {seq}: prev_hash does not match the record before")
        body = _stored_body(doc)
        if chain_hash(body.get("prev_hash") or "", body) != doc.get("hash"):
            report.problems.append(f"seq {seq}: contents do not match its hash")
        prev = doc.get("hash")
        expected_seq += 1
        report.checked += 1
    _check_anchor(coll, report)
    return report


def _check_anchor(coll, report: VerifyReport) -> None:
    """The chain checks itself except at its end: dropping the newest records, or
    rewriting a record and recomputing every later hash, leaves a consistent chain. The
    journal's last shipped hash anchors it."""
    anchor = db.session.execute(
        select(OutboxEvent.seq, OutboxEvent.hash)
        .where(OutboxEvent.seq.is_not(None), OutboxEvent.shipped_at.is_not(None))
        .order_by(OutboxEvent.seq.desc())
        .limit(1)
    ).first()
    if anchor is None:
        return
    doc = coll.find_one({"seq": anchor.seq})
    if doc is None:
        report.problems.append(f"seq {anchor.seq}: missing (the journal shipped it)")
    elif doc.get("hash") != anchor.hash:
        report.problems.append(f"seq {anchor.seq}: hash differs from the journal's")
