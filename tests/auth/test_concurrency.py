"""Users and sign-in under real concurrency: threads, real commits, real row locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from qure.auth import service
from qure.auth.models import User
from qure.core.errors import Conflict, DomainError, TooManyAttempts, Unauthorized
from qure.core.roles import Role
from qure.extensions import db
from tests.helpers import PASSWORD, make_user

pytestmark = pytest.mark.concurrency


def run_at_once(app, jobs: list[Callable[[], object]]) -> list[object]:
    """Run each job in its own thread with its own app context and session, all released
    together; a job's result is what it returned (after commit) or the DomainError it
    raised (after rollback)."""
    barrier = threading.Barrier(len(jobs), timeout=10)
    results: list[object] = [None] * len(jobs)

    def worker(i: int, job: Callable[[], object]) -> None:
        with app.app_context():
            try:
                barrier.wait()
                results[i] = job()
                db.session.commit()
            except DomainError as exc:
                db.session.rollback()
                results[i] = exc
            except Exception as exc:
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def active_admins() -> list[int]:
    db.session.expire_all()
    return db.session.scalars(
        select(User.id).where(User.role == Role.ADMIN, User.is_active.is_(True))
    ).all()


def test_two_admins_deactivating_each_other_leave_one_active(app):
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)

    def deactivate(actor_id: int, target_id: int) -> Callable[[], int]:
        def job() -> int:
            actor = db.session.get(User, actor_id)
            return service.update_user(actor, target_id, {"is_active": False}).id

        return job

    results = run_at_once(app, [deactivate(first.id, second.id), deactivate(second.id, first.id)])
    done = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(done) == 1, results
    assert len(refused) == 1 and isinstance(refused[0], Conflict), results
    assert refused[0].code == "last_admin"
    survivors = active_admins()
    assert len(survivors) == 1
    assert survivors[0] != done[0]


def test_two_admins_demoting_each_other_leave_one_admin(app):
    first, second = make_user(Role.ADMIN), make_user(Role.ADMIN)

    def demote(actor_id: int, target_id: int) -> Callable[[], int]:
        def job() -> int:
            actor = db.session.get(User, actor_id)
            return service.update_user(actor, target_id, {"role": "RECEPTION"}).id

        return job

    results = run_at_once(app, [demote(first.id, second.id), demote(second.id, first.id)])
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and getattr(refused[0], "code", None) == "last_admin", results
    assert len(active_admins()) == 1


def test_ten_creations_of_one_username_make_one_user(app):
    def create(i: int) -> Callable[[], int]:
        def job() -> int:
            data = {
                "username": "same.name",
                "full_name": f"Contender {i}",
                "email": f"contender{i}@clinic.test",
                "role": "RECEPTION",
                "password": "a-long-password",
            }
            return service.create_user(None, data).id

        return job

    results = run_at_once(app, [create(i) for i in range(10)])
    created = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(created) == 1, results
    assert len(refused) == 9
    assert all(isinstance(r, Conflict) and r.code == "username_taken" for r in refused), results
    db.session.expire_all()
    count = db.session.scalar(
        select(func.count()).select_from(User).where(User.username == "same.name")
    )
    assert count == 1


def test_concurrent_failures_lock_the_username(app):
    username = make_user(Role.RECEPTION).username  # threads must not touch this session

    def wrong() -> None:
        service.authenticate(username, "not-the-password")

    results = run_at_once(app, [wrong] * 10)
    assert all(isinstance(r, Unauthorized | TooManyAttempts) for r in results), results
    with app.app_context():
        with pytest.raises(TooManyAttempts) as caught:
            service.authenticate(username, PASSWORD)
        assert 0 < caught.value.retry_after <= 900


def test_concurrent_guesses_get_no_more_than_five_tries(app):
    """Ten guesses fired at once must not all be checked: only five may be failures, the
    rest are refused as locked (otherwise parallel requests would get round the limit)."""
    username = make_user(Role.RECEPTION).username  # threads must not touch this session

    def wrong() -> None:
        service.authenticate(username, "not-the-password")

    results = run_at_once(app, [wrong] * 10)
    checked = [r for r in results if isinstance(r, Unauthorized)]
    locked = [r for r in results if isinstance(r, TooManyAttempts)]
    assert len(checked) == 5, results
    assert len(locked) == 5
