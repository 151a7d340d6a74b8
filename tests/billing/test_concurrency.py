"""The billing counter's rules when many desks act at the same moment, against real
PostgreSQL with real commits: one payment per invoice, one invoice per prescription,
gapless numbers, never more refunded than billed, and a day close that counts every
payment it lets through."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from qure.billing import service
from qure.billing.models import CreditNote, Invoice, InvoiceStatus, Payment
from qure.core.db import commit
from qure.core.errors import Conflict, InvalidInput
from qure.extensions import db
from tests.billing.helpers import completed_visit, medicine
from tests.helpers import NOW, make_patient, run_together

pytestmark = pytest.mark.concurrency

LINE = {"kind": "PROCEDURE", "description": "Dressing", "quantity": "1", "unit_price": "100"}


def draft(actor, patient, items=None) -> int:
    invoice = service.create(
        actor, {"mode": "MANUAL", "patient_id": patient.id, "items": items or [LINE]}
    )
    commit()
    return invoice.id


def pending(actor, patient, items=None) -> Invoice:
    invoice = service.finalize(actor, draft(actor, patient, items))
    commit()
    return invoice


def codes(results) -> list[str]:
    """Each result's error code, or "ok"; anything else unexpected fails the test."""
    out = []
    for result in results:
        if isinstance(result, Conflict | InvalidInput):
            out.append(result.code)
        elif isinstance(result, Exception):
            raise result
        else:
            out.append("ok")
    return out


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def test_twenty_payments_of_one_invoice_make_one(app, reception):
    invoice = pending(reception, make_patient())
    body = {"method": "CASH", "amount": f"{invoice.total}"}
    results = run_together(
        app,
        reception.id,
        [lambda actor: service.pay(actor, invoice.id, body)] * 20,
        now=NOW,
    )
    assert sorted(codes(results)) == ["already_paid"] * 19 + ["ok"]
    assert count(Payment) == 1
    assert db.session.get(Invoice, invoice.id).status == InvoiceStatus.PAID


def test_twenty_replays_of_one_idempotency_key_make_one_payment(app, reception):
    invoice = pending(reception, make_patient())
    body = {"method": "UPI", "amount": f"{invoice.total}", "reference": "UPI-1"}
    results = run_together(
        app,
        reception.id,
        [lambda actor: service.pay(actor, invoice.id, body, "key-1")[1]] * 20,
        now=NOW,
    )
    assert sorted(results) == [False] + [True] * 19  # one paid, the others replayed it
    assert count(Payment) == 1


def test_one_idempotency_key_sent_for_ten_invoices_at_once_pays_one(app, reception):
    """A client reusing its key across invoices, all at the same moment: the unique key
    pays one, the others are told the key is taken, and nothing of theirs stays."""
    patient = make_patient()
    invoices = [pending(reception, patient) for _ in range(10)]

    def job(invoice):
        body = {"method": "UPI", "amount": f"{invoice.total}", "reference": f"UPI-{invoice.id}"}
        return lambda actor: service.pay(actor, invoice.id, body, "shared-key")[0].id

    results = run_together(app, reception.id, [job(i) for i in invoices], now=NOW)
    assert sorted(codes(results)) == ["idempotency_key_reused"] * 9 + ["ok"]
    assert count(Payment) == 1
    paid = db.session.scalars(select(Invoice.id).where(Invoice.status == InvoiceStatus.PAID))
    assert list(paid) == [r for r in results if isinstance(r, int)]


def test_ten_auto_invoices_for_one_prescription_make_one(app, reception, doctor):
    para = medicine("Paracip", "2.50", 12)
    _, prescription = completed_visit(doctor, [(para, 10)])
    body = {"mode": "AUTO", "prescription_id": prescription.id}
    results = run_together(
        app, reception.id, [lambda actor: service.create(actor, body).id] * 10, now=NOW
    )
    assert sorted(codes(results)) == ["invoice_exists"] * 9 + ["ok"]
    (made,) = [r for r in results if isinstance(r, int)]
    assert {r.details["invoice_id"] for r in results if isinstance(r, Conflict)} == {made}
    assert count(Invoice) == 1


def test_fifty_finalisations_at_once_number_1_to_50(app, reception):
    patient = make_patient()
    drafts = [draft(reception, patient) for _ in range(50)]

    def job(invoice_id):
        return lambda actor: service.finalize(actor, invoice_id).number

    results = run_together(app, reception.id, [job(i) for i in drafts], now=NOW)
    assert sorted(results) == [f"INV/2029-30/{n:06d}" for n in range(1, 51)]


def test_ten_credit_notes_for_the_whole_invoice_refund_it_once(app, reception):
    invoice = pending(reception, make_patient(), [LINE, {**LINE, "quantity": "3"}])
    service.pay(reception, invoice.id, {"method": "CASH", "amount": f"{invoice.total}"})
    commit()
    body = {"reason": "Returned", "method": "CASH"}
    results = run_together(
        app,
        reception.id,
        [lambda actor: service.issue_credit_note(actor, invoice.id, body).total] * 10,
        now=NOW,
    )
    assert sorted(codes(results)) == ["nothing_to_refund"] * 9 + ["ok"]
    db.session.expire_all()
    refunded = db.session.scalar(select(func.sum(CreditNote.total)))
    assert refunded == invoice.total == Decimal("472.00")


def test_ten_credit_notes_for_one_line_never_refund_more_than_it(app, reception):
    invoice = pending(reception, make_patient(), [{**LINE, "quantity": "4", "unit_price": "2.5"}])
    service.pay(reception, invoice.id, {"method": "CASH", "amount": f"{invoice.total}"})
    commit()
    (line,) = invoice.lines
    body = {"reason": "Returned", "method": "CASH", "items": [{"line_id": line.id, "quantity": 1}]}
    results = run_together(
        app,
        reception.id,
        [lambda actor: service.issue_credit_note(actor, invoice.id, body).number] * 10,
        now=NOW,
    )
    assert sorted(codes(results)) == ["invalid_input"] * 6 + ["ok"] * 4
    assert sorted(r for r in results if isinstance(r, str)) == [
        f"CN/2029-30/{n:06d}" for n in range(1, 5)
    ]
    db.session.expire_all()
    assert db.session.scalar(select(func.sum(CreditNote.total))) == invoice.total


def test_a_day_close_racing_payments_counts_each_payment_it_lets_through(app, reception):
    patient = make_patient()
    invoices = [pending(reception, patient) for _ in range(10)]  # 118.00 each

    def payment(invoice):
        body = {"method": "CASH", "amount": f"{invoice.total}"}
        return lambda actor: service.pay(actor, invoice.id, body)[0].id

    def close(actor):
        done = service.close_day(actor, {"date": NOW.date().isoformat(), "cash_counted": "0"})
        return done.expected_cash, done.payments

    jobs = [*(payment(i) for i in invoices[:5]), close, *map(payment, invoices[5:])]
    results = run_together(app, reception.id, jobs, now=NOW)
    assert isinstance(results[5], tuple), results[5]
    expected_cash, payments = results[5]
    paid = [r for r in results[:5] + results[6:] if isinstance(r, int)]
    refused = [r for r in results[:5] + results[6:] if not isinstance(r, int)]
    assert all(isinstance(r, Conflict) and r.code == "day_closed" for r in refused), refused
    db.session.expire_all()
    assert count(Payment) == len(paid)
    assert expected_cash == payments == Decimal("118.00") * len(paid)
