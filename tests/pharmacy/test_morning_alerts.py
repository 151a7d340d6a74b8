"""The morning's stock alerts: raised once a day after STOCK_ALERT_HOUR (a day's row, an
audit record STOCK_ALERTS_RAISED) and told to each active pharmacist through the sender."""

from __future__ import annotations

import logging
import smtplib

import pytest
from sqlalchemy import func, select

from qure.core import clock
from qure.core.models import OutboxEvent
from qure.core.roles import Role
from qure.extensions import db
from qure.pharmacy import alerts, tasks
from qure.pharmacy.models import Batch, StockAlertDay, StockAlertTold
from tests import smtp
from tests.helpers import NOW, TODAY, make_user
from tests.pharmacy.helpers import in_days, medicine, stocked

MORNING = NOW.replace(hour=8, minute=5)


def _shelf(pharmacist):
    """Paracip low (5 left, reorder at 20) expiring in 20 days; Amoxy fine but one batch
    expiring in 45 days and one in 80; one expired batch of Amoxy still on the shelf."""
    para = medicine("Paracip", "2.50", 12, reorder_level=20)
    amoxy = medicine("Amoxy", "4.00", 12, reorder_level=10)
    stocked(pharmacist, para, ("PC-1", 5, 20))
    stocked(pharmacist, amoxy, ("AM-45", 50, 45), ("AM-80", 50, 80), ("AM-400", 50, 400))
    db.session.add(
        Batch(
            medicine_id=amoxy.id,
            batch_number="AM-OLD",
            quantity=7,
            expiry_date=in_days(-3),
            received_by_id=pharmacist.id,
            received_at=clock.now(),
        )
    )
    db.session.commit()


def _raised_audits() -> list[dict]:
    payloads = db.session.scalars(select(OutboxEvent.payload)).all()
    return [p for p in payloads if p.get("action") == "STOCK_ALERTS_RAISED"]


def test_the_counts_cover_each_expiry_window(app, pharmacist, clinic_now):
    _shelf(pharmacist)
    assert alerts.counts() == {
        "low_stock": 1,
        "expiring_30": 1,
        "expiring_60": 2,
        "expiring_90": 3,
        "expired": 1,
    }


def test_the_morning_raises_once_and_tells_each_active_pharmacist(app, pharmacist, caplog):
    with clock.fixed(NOW):
        _shelf(pharmacist)
        other = make_user(Role.PHARMACIST)
    with clock.fixed(NOW.replace(hour=7, minute=59)):
        assert tasks.raise_morning_alerts() == {"day": None, "raised": False, "told": 0}
    with clock.fixed(MORNING), caplog.at_level(logging.INFO):
        first = tasks.raise_morning_alerts()
        second = tasks.raise_morning_alerts()
    assert first["raised"] is True and first["told"] == 2
    assert first["low_stock"] == 1 and first["expired"] == 1
    assert second == {"day": TODAY.isoformat(), "raised": False, "told": 0}
    lines = [r.getMessage() for r in caplog.records if r.name == "qure.core.notify"]
    summary = "1 low, 1 expired, 1 expiring within 30 days"
    assert lines == [
        f"stock alerts {TODAY.isoformat()} for pharmacist {pharmacist.id}: {summary}, via log",
        f"stock alerts {TODAY.isoformat()} for pharmacist {other.id}: {summary}, via log",
    ]
    assert db.session.scalar(select(func.count()).select_from(StockAlertDay)) == 1
    (audited,) = _raised_audits()
    assert audited["resource"] == {"type": "stock_alert", "id": TODAY.isoformat()}
    assert audited["changes"]["new"]["expiring_90"] == 3
    with clock.fixed(MORNING):
        assert alerts.raised(TODAY)["expiring_60"] == 2


def test_the_message_names_what_to_reorder_and_pull(app, pharmacist, clinic_now):
    _shelf(pharmacist)
    text = alerts.body(TODAY, alerts.counts())
    assert "Low stock, to reorder (1):\n  - Paracip: 5 left (reorder at 20)" in text
    assert "Expired on the shelf, to pull (1):\n  - Amoxy, batch AM-OLD: 7" in text
    assert "Expiring within 30 days (1):\n  - Paracip, batch PC-1: 5" in text
    assert "Expiring within 60 days: 2; within 90 days: 3." in text


def test_a_quiet_morning_is_recorded_but_tells_nobody(app, pharmacist):
    with clock.fixed(MORNING):
        result = tasks.raise_morning_alerts()
    assert result["raised"] is True and result["told"] == 0
    assert _raised_audits() == []
    assert db.session.get(StockAlertDay, TODAY) is not None


@pytest.fixture
def refusing_smtp(app):
    with smtp.serving(app) as inbox:
        yield inbox


def _told() -> list[int]:
    return list(db.session.scalars(select(StockAlertTold.user_id).order_by(StockAlertTold.user_id)))


def test_a_send_that_fails_for_one_pharmacist_keeps_the_day_and_the_retry_mails_only_them(
    app, pharmacist, refusing_smtp
):
    with clock.fixed(NOW):
        _shelf(pharmacist)
        second = make_user(Role.PHARMACIST)
        third = make_user(Role.PHARMACIST)
    refusing_smtp.refused = {second.email}
    with clock.fixed(MORNING), pytest.raises(smtplib.SMTPRecipientsRefused):
        tasks.raise_morning_alerts()
    db.session.rollback()
    assert [m.rcpt_tos for m in refusing_smtp.messages] == [[pharmacist.email]]
    assert db.session.get(StockAlertDay, TODAY) is not None  # the day stays raised
    assert _told() == [pharmacist.id]
    assert len(_raised_audits()) == 1

    refusing_smtp.refused = set()  # the mailbox is back: the job's retry
    with clock.fixed(MORNING):
        retried = tasks.raise_morning_alerts()
        again = tasks.raise_morning_alerts()
    assert retried == {"day": TODAY.isoformat(), "raised": False, "told": 2}
    assert again == {"day": TODAY.isoformat(), "raised": False, "told": 0}
    assert [m.rcpt_tos for m in refusing_smtp.messages] == [
        [pharmacist.email],
        [second.email],
        [third.email],
    ]
    assert _told() == [pharmacist.id, second.id, third.id]
    assert len(_raised_audits()) == 1  # raised once, however many runs told it
