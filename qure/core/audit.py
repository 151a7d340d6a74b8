"""The audit trail: one outbox row per audited act, in the caller's transaction.

`record()` never talks to MongoDB. The relay (`qure.core.outbox`) ships rows in order,
chaining a SHA-256 over them. Who acted, from which address and in which request comes
from `AuditContext`, set by the request hooks (services never read `flask.request`).
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from qure.core import clock
from qure.core.db import add_at_commit, after_commit
from qure.core.models import AUDIT_TOPIC, OutboxEvent
from qure.core.tasks import schedule_relay


@dataclass(frozen=True)
class AuditContext:
    ip: str | None = None
    request_id: str | None = None


_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "qure_audit_context", default=None
)


def set_context(ip: str | None, request_id: str | None = None) -> None:
    _context.set(AuditContext(ip=ip, request_id=request_id or uuid.uuid4().hex))


def clear_context() -> None:
    """Forget the request's address and id once it ends (the thread may run other work)."""
    _context.set(None)


def current_context() -> AuditContext:
    return _context.get() or AuditContext()


def plain(value: Any) -> Any:
    """A JSON value for `value`: dates as ISO strings, Decimals as strings, enums by value."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def actor_of(user) -> dict | None:
    """The `user` part of an audit record."""
    if user is None:
        return None
    return {"id": user.id, "name": user.full_name, "role": str(user.role)}


def diff(before: dict | None, after: dict | None) -> tuple[dict | None, dict | None]:
    """Keep only the keys whose values changed (both sides), for update records."""
    if before is None or after is None:
        return before, after
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def record(
    actor,
    action: str,
    resource: tuple[str, Any],
    before: dict | None = None,
    after: dict | None = None,
    user: dict | None = None,
) -> OutboxEvent:
    """Write an audit outbox row in the current transaction and schedule the relay.

    `actor` is the User acting (or None); `user` overrides the recorded user (a failed
    sign-in names the username tried). Returns the outbox row, which is written at commit
    (`core.db.add_at_commit`): the request's outbox rows go in one INSERT. A savepoint
    that rolls back drops the rows it recorded.
    """
    ctx = current_context()
    stamp = clock.now()
    stamp = stamp.replace(microsecond=stamp.microsecond // 1000 * 1000)
    resource_type, resource_id = resource
    payload = {
        "timestamp": stamp.isoformat(),
        "user": user if user is not None else actor_of(actor),
        "action": action,
        "resource": {"type": resource_type, "id": plain(resource_id)},
        "changes": {"old": plain(before), "new": plain(after)},
        "ip": ctx.ip,
        "request_id": ctx.request_id,
    }
    row = OutboxEvent(topic=AUDIT_TOPIC, payload=payload)
    add_at_commit(row)
    after_commit(schedule_relay)
    return row


def publish(topic: str, document: dict) -> OutboxEvent:
    """Write a read-model document (a visit's history snapshot, say) to the outbox in the
    current transaction; the relay copies it to the MongoDB collection named `topic`."""
    if topic == AUDIT_TOPIC:
        raise ValueError("audit records go through record()")
    row = OutboxEvent(topic=topic, payload=plain(document))
    add_at_commit(row)
    after_commit(schedule_relay)
    return row
