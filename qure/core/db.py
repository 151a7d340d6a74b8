"""Commit at the edge: views commit once, then run what must wait for the commit."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event

from qure.extensions import db

_AFTER_COMMIT = "qure_after_commit"


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction commits (dropped on rollback)."""
    pending = db.session.info.setdefault(_AFTER_COMMIT, [])
    if callback not in pending:
        pending.append(callback)


def commit() -> None:
    """Commit the request's transaction, then run the after-commit callbacks."""
    db.session.commit()


def _run_callbacks(session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the transaction itself is still open
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


def _drop_callbacks(session, previous_transaction) -> None:
    # A savepoint rolled back (a caught IntegrityError) leaves the outer transaction alive.
    if not previous_transaction.nested:
        session.info.pop(_AFTER_COMMIT, None)


def install_session_hooks() -> None:
    """Attach the after-commit / after-rollback hooks to every session (idempotent)."""
    from sqlalchemy.orm import Session

    if not event.contains(Session, "after_commit", _run_callbacks):
        event.listen(Session, "after_commit", _run_callbacks)
        event.listen(Session, "after_soft_rollback", _drop_callbacks)
