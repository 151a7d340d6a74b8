"""Commit at the edge: views commit once, then run what must wait for the commit.

`after_commit` work (publishing to Redis, enqueueing jobs) runs only once the transaction
is committed; `on_rollback` work (undoing a Redis change made ahead of the commit) runs
only when the transaction ends without committing, however it ends.
"""

from __future__ import annotations

import logging
import os
import select
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, event, func, inspect, literal_column
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.orm import Session

from qure.core.errors import NotFound
from qure.extensions import db

M = TypeVar("M")

# The largest id an INTEGER key holds (BIGINT keys hold up to MAX_BIG_ID): a larger id
# names nobody, and PostgreSQL would refuse to compare it with the column.
MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1

log = logging.getLogger(__name__)

_AFTER_COMMIT = "qure_after_commit"
_ON_ROLLBACK = "qure_on_rollback"
_AT_COMMIT = "qure_at_commit"
_MARKS = "qure_at_commit_marks"


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction commits (dropped on rollback)."""
    pending = db.session.info.setdefault(_AFTER_COMMIT, [])
    if callback not in pending:
        pending.append(callback)


def on_rollback(callback: Callable[[], None]) -> None:
    """Run `callback` if the current transaction ends without committing."""
    db.session.info.setdefault(_ON_ROLLBACK, []).append(callback)


def add_at_commit(row: Any) -> None:
    """Write `row` (a new ORM object) when the transaction commits, not now: rows nothing in
    the request reads back (the outbox) go in at the commit, one INSERT of SQLAlchemy Core
    for all of a table's (no unit of work: `_write_held_rows`), instead of being flushed
    with each query that follows. A savepoint that rolls back drops the rows added inside
    it, and a rollback drops them all. The object itself never joins the session (no id
    is read back); `add_pending` adds the held rows now, to read them in the transaction."""
    db.session.info.setdefault(_AT_COMMIT, []).append(row)


def add_pending(session: Session | None = None) -> None:
    """Put the rows `add_at_commit` holds into the session now (to read them back before
    the commit; the next query's autoflush then writes them)."""
    session = session or db.session
    rows = session.info.pop(_AT_COMMIT, None)
    if rows:
        session.add_all(rows)
        session.info.pop(_MARKS, None)  # a savepoint rolled back now drops them itself


def commit() -> None:
    """Commit the request's transaction, then run the after-commit callbacks."""
    db.session.commit()


def max_id(model: type) -> int:
    """The largest id `model`'s primary key can hold."""
    (key,) = inspect(model).primary_key
    return MAX_BIG_ID if isinstance(key.type, BigInteger) else MAX_ID


def get_or_none(
    model: type[M], ident: int | None, *, lock: bool = False, options: Sequence = ()
) -> M | None:
    """The row of `model` with this id, or None (also for no id, or one its key cannot hold).

    `lock` reads it under `SELECT ... FOR UPDATE` (of this table only) and re-reads a row
    loaded earlier in the transaction."""
    if ident is None or not 0 < ident <= max_id(model):
        return None
    extra: dict[str, Any] = {"options": list(options) or None}
    if lock:
        extra.update(with_for_update={"of": model}, populate_existing=True)
    return db.session.get(model, ident, **extra)


def get_or_raise(
    model: type[M],
    ident: int | None,
    message: str,
    code: str,
    *,
    lock: bool = False,
    options: Sequence = (),
) -> M:
    """The row of `model` with this id; NotFound(message, code) when there is none or the
    id is out of the key's range. `lock` and `options` as for `get_or_none`."""
    row = get_or_none(model, ident, lock=lock, options=options)
    if row is None:
        raise NotFound(message, code)
    return row


def rows_stamp(model: type) -> ColumnElement[str]:
    """An aggregate over the rows a query selects of `model`'s table (not aliased) that
    changes whenever one of them is inserted, updated or deleted: their count and the sum
    of their PostgreSQL row versions (`xmin`, new on every write). Unlike a latest
    `updated_at` (the start of its transaction), it cannot miss a write that committed
    late. For answers cached until what they show changes."""
    versions = literal_column(f"{model.__tablename__}.xmin::text::bigint")
    return func.concat(func.count(), ".", func.sum(versions))


# Indexes on an expression, which Alembic's autogenerate cannot compare with what it reads
# back from PostgreSQL: it would drop and create each again in every new migration.
EXPRESSION_INDEXES = frozenset({"ix_patients_name_prefix"})


def comparable(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's `include_object` for autogenerate (migrations/env.py): every table, column,
    constraint and index but the EXPRESSION_INDEXES."""
    return not (type_ == "index" and name in EXPRESSION_INDEXES)


def constraint_name(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError broke (PostgreSQL reports it)."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def _run(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception as exc:  # the transaction is over; one failure must not stop others
            # Type and frames only: an exception's message can carry a row's values.
            frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
            log.error("post-transaction callback failed: %s\n%s", type(exc).__name__, frames)


def _run_callbacks(session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the transaction itself is still open
    session.info.pop(_ON_ROLLBACK, None)
    _run(session.info.pop(_AFTER_COMMIT, []))


def _drop_callbacks(session, previous_transaction) -> None:
    # A savepoint rolled back (a caught IntegrityError) leaves the outer transaction alive,
    # without the rows its work added for the commit. A flush that fails rolls back its
    # own subtransaction, and with it the nearest savepoint (the only event SQLAlchemy
    # sends for that savepoint): the rows go from that savepoint's mark.
    rolled_back = previous_transaction
    while not rolled_back.nested and rolled_back.parent is not None:
        rolled_back = rolled_back.parent
    if rolled_back.nested:
        mark = session.info.get(_MARKS, {}).pop(rolled_back, None)
        if mark is not None:
            del session.info.get(_AT_COMMIT, [])[mark:]
    else:
        session.info.pop(_AFTER_COMMIT, None)


def _savepoint_mark(session, transaction) -> None:
    if transaction.nested:
        held = len(session.info.get(_AT_COMMIT, ()))
        session.info.setdefault(_MARKS, {})[transaction] = held


def _write_held_rows(session) -> None:
    """At the transaction's own commit (not a savepoint's): the rows `add_at_commit` holds,
    as Core INSERTs of the values set on them, one executemany per table and set of
    columns. The ORM's flush of the same rows cost a unit of work per commit (sorting,
    state tracking, reading back the keys) for rows nothing reads again."""
    if session.in_nested_transaction():
        return
    rows = session.info.pop(_AT_COMMIT, None)
    session.info.pop(_MARKS, None)
    if not rows:
        return
    batches: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        state = inspect(row)
        values = {
            prop.columns[0].key: state.dict[prop.key]
            for prop in state.mapper.column_attrs
            if prop.key in state.dict
        }
        batches.setdefault((state.mapper.local_table, tuple(values)), []).append(values)
    connection = session.connection()
    for (table, _), values in batches.items():
        connection.execute(table.insert(), values)


def _transaction_end(session, transaction) -> None:
    # (A savepoint's mark stays until the transaction ends: this event comes before
    # after_soft_rollback, which needs it.)
    if transaction.nested or transaction.parent is not None:
        return
    # Still here after the root transaction ended: it did not commit (rollback, close, or a
    # failed COMMIT).
    session.info.pop(_AFTER_COMMIT, None)
    session.info.pop(_AT_COMMIT, None)
    session.info.pop(_MARKS, None)
    _run(session.info.pop(_ON_ROLLBACK, []))


def install_session_hooks() -> None:
    """Attach the commit / rollback hooks to every session (idempotent)."""
    if not event.contains(Session, "after_commit", _run_callbacks):
        event.listen(Session, "after_commit", _run_callbacks)
        event.listen(Session, "after_soft_rollback", _drop_callbacks)
        event.listen(Session, "after_transaction_end", _transaction_end)
        event.listen(Session, "after_transaction_create", _savepoint_mark)
        event.listen(Session, "before_commit", _write_held_rows)


# ---- the connection pool -------------------------------------------------------------------

# A connection attempt that gets no answer (a host gone without a word, a server or a proxy
# that accepts and then says nothing) fails after this long, a 503 for the request, instead
# of holding it until gunicorn kills the worker at 30 s (psycopg's own default is 130 s;
# it takes no less than 2).
CONNECT_TIMEOUT_SECONDS = 5


def with_connect_timeout(uri: str) -> str:
    """A PostgreSQL `uri` with libpq's connect_timeout of CONNECT_TIMEOUT_SECONDS, unless
    the URL gives its own or PGCONNECT_TIMEOUT is set."""
    url = make_url(uri)
    if (
        not url.drivername.startswith("postgresql")
        or "connect_timeout" in url.query
        or os.environ.get("PGCONNECT_TIMEOUT")
    ):
        return uri
    url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
    return url.render_as_string(hide_password=False)


# A pooled connection unused this long is checked (SELECT 1) before a request gets it.
IDLE_PING_SECONDS = 10.0


def _server_hung_up(dbapi_connection) -> bool:
    """Whether the server has sent something to a connection nobody is using. An idle
    connection gets nothing unasked, unless its backend is going away: a restart, a
    shutdown or pg_terminate_backend sends a FATAL message and closes the socket, which
    then reads as ready. One poll() of the socket, with no wait and no round trip."""
    try:
        fd = dbapi_connection.fileno()
    except Exception:  # closed already, or not a socket: let the ping decide
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # (no poll() on Windows)
    return bool(readable)


def ping_idle_connections(engine) -> None:
    """pool_pre_ping's check, but only for a connection that may be dead: one the server
    hung up on while it sat in the pool (a database restart, pg_terminate_backend: seen
    without a round trip, `_server_hung_up`), or one unused for IDLE_PING_SECONDS (a
    firewall's idle timeout, a server gone without a word). A dead one is replaced before
    a request uses it. A connection in steady use on a database that is up costs one
    poll() of its socket at checkout: no round trip. A request already using a connection
    when the database goes away fails (503 `database_unavailable`, core.http), and
    SQLAlchemy then replaces every connection the pool held before it (as on any
    disconnect)."""

    def mark_idle(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection, record, _proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None:
            return  # new: it has just connected
        if time.monotonic() - since < IDLE_PING_SECONDS and not _server_hung_up(dbapi_connection):
            return  # back from a request a moment ago, and the server has said nothing
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # whatever the driver raises for a dead connection
            alive = False
        if not alive:
            raise DisconnectionError("a pooled connection went away while idle")  # retried

    event.listen(engine, "checkin", mark_idle)
    event.listen(engine, "checkout", ping_if_idle)


# ---- a database that is away, or takes no changes ------------------------------------------

# What `unavailable` tells: the database reads but refuses changes (read-only: a standby,
# default_transaction_read_only; or its disk is full), or it cannot be reached (down,
# restarting, shutting down, out of connections, the connection lost).
REFUSES_CHANGES = "refuses_changes"
UNREACHABLE = "unreachable"

# PostgreSQL's SQLSTATEs (Appendix A of its manual) that say the database, not the request,
# is at fault: 25006 read_only_sql_transaction and 53100 disk_full refuse changes; class
# 08 (connection exception), class 53 (insufficient resources: out of memory, too many
# connections) and 57P (admin_shutdown, crash_shutdown, cannot_connect_now,
# database_dropped, idle_session_timeout) mean it cannot serve the request just now.
_REFUSING = frozenset({"25006", "53100"})
_AWAY = ("08", "53", "57P")


def unavailable(error: BaseException | None) -> str | None:
    """REFUSES_CHANGES or UNREACHABLE when `error` says the database is away or will not
    take changes just now (a 503 for the caller, not a bug); None for any other error,
    a genuine fault (a 500). A connection lost in the middle of a request (SQLAlchemy has
    invalidated it) and a connection that could not be opened at all (the driver's
    OperationalError without a SQLSTATE) are UNREACHABLE."""
    if not isinstance(error, DBAPIError):
        return None
    sqlstate = sqlstate_of(error)
    if sqlstate in _REFUSING:
        return REFUSES_CHANGES
    if sqlstate is not None and sqlstate.startswith(_AWAY):
        return UNREACHABLE
    if error.connection_invalidated:
        return UNREACHABLE
    if sqlstate is None and isinstance(error, OperationalError | InterfaceError):
        return UNREACHABLE
    return None


def sqlstate_of(error: DBAPIError) -> str | None:
    """The SQLSTATE PostgreSQL gave for `error` (None when the driver raised it itself)."""
    return getattr(error.orig, "sqlstate", None) or None
