"""Invoice and credit-note numbers: per series and Indian financial year, consecutive,
never repeated, never skipped, even when many are issued at the same moment."""

from __future__ import annotations

from datetime import date

import pytest

from qure.billing.numbering import CREDIT_NOTE, INVOICE, next_number
from qure.core.roles import Role
from qure.extensions import db
from tests.helpers import make_user, run_together

DECEMBER = date(2026, 12, 2)


def test_each_series_counts_from_one_in_each_financial_year():
    assert next_number(INVOICE, DECEMBER) == "INV/2026-27/000001"
    assert next_number(INVOICE, date(2027, 3, 31)) == "INV/2026-27/000002"
    assert next_number(CREDIT_NOTE, DECEMBER) == "CN/2026-27/000001"
    assert next_number(INVOICE, date(2027, 4, 1)) == "INV/2027-28/000001"
    assert next_number(INVOICE, date(2026, 3, 31)) == "INV/2025-26/000001"
    assert next_number(INVOICE, DECEMBER) == "INV/2026-27/000003"


@pytest.mark.concurrency
def test_a_transaction_that_rolls_back_gives_its_number_back(app):
    assert next_number(INVOICE, DECEMBER) == "INV/2026-27/000001"
    db.session.commit()
    assert next_number(INVOICE, DECEMBER) == "INV/2026-27/000002"
    db.session.rollback()  # the invoice was not issued after all
    assert next_number(INVOICE, DECEMBER) == "INV/2026-27/000002"
    db.session.commit()


@pytest.mark.concurrency
def test_fifty_issued_at_once_are_consecutive_and_none_repeats(app):
    user = make_user(Role.RECEPTION)
    db.session.commit()
    numbers = run_together(app, user.id, [lambda _actor: next_number(INVOICE, DECEMBER)] * 50)
    assert not [n for n in numbers if isinstance(n, Exception)], numbers
    assert sorted(numbers) == [f"INV/2026-27/{n:06d}" for n in range(1, 51)]
