"""The owner's dashboard in a real browser: the admin opens it from the admin home, sees
the last 30 days by default, switches to the last 7 days and then to a custom from/to,
and each time the charts and the tables beside them change (the number of bars and rows,
and the range's visits). Past days come from `daily_summaries`, stored by the job's own
function.

With QURE_SCREENSHOTS=<folder> each step's page is saved there as a PNG, to look at."""

from __future__ import annotations

import os
from datetime import time, timedelta
from pathlib import Path

from playwright.sync_api import expect

from qure.core import clock
from qure.core.db import commit
from qure.core.roles import Role
from qure.reports import summary
from qure.visits import service as visits
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_patient, make_user
from tests.prescriptions.test_service import start_visit


def visited(doctor, day, hour: int, code: str) -> None:
    """A completed visit of `doctor` on clinic `day` at `hour`, diagnosed `code`."""
    with clock.fixed(clock.at_clinic_time(day, time(hour))):
        visit = start_visit(doctor, make_patient(), diagnosis="As coded", icd10_code=code)
    with clock.fixed(clock.at_clinic_time(day, time(hour, 20))):
        visits.complete(doctor, visit.id)
        commit()


def test_admin_changes_the_dashboards_range_and_the_charts_follow(page, app, tmp_path):
    shots = Path(os.environ.get("QURE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"dashboard-{name}.png"), full_page=True)

    with app.app_context():
        owner = make_user(Role.ADMIN, full_name="Sunita Rao")
        doctor = make_user(Role.DOCTOR, full_name="Anil Mehta")
        today = clock.today()
        recent, older = today - timedelta(days=2), today - timedelta(days=20)
        visited(doctor, recent, 10, "J06.9")
        for hour in (9, 11, 12):
            visited(doctor, older, hour, "A09")
        summary.store(recent)
        summary.store(older)
        login = owner.username

    sign_in(page, login, PASSWORD)
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    bars = page.locator("#visits-chart rect.chart-bar")
    rows = page.locator("#visits-table tbody tr")
    expect(bars).to_have_count(30)  # the default: the last 30 days
    expect(rows).to_have_count(30)
    expect(page.locator('[data-figure="range-visits"]')).to_have_text("4")
    expect(page.locator("#diagnoses-table")).to_contain_text("A09")
    expect(page.get_by_role("img", name="Visits per day", exact=False)).to_be_visible()
    shot("30-days")

    page.get_by_role("link", name="Last 7 days").click()
    expect(bars).to_have_count(7)
    expect(rows).to_have_count(7)
    expect(page.locator('[data-figure="range-visits"]')).to_have_text("1")
    expect(page.locator("#diagnoses-table tbody tr")).to_have_count(1)
    expect(page.locator("#diagnoses-table")).to_contain_text("J06.9")
    shot("7-days")

    page.get_by_label("From", exact=True).fill(clock.format_day(older - timedelta(days=1)))
    with app.app_context():
        to_text = clock.format_day(older + timedelta(days=1))
    page.get_by_label("To", exact=True).fill(to_text)
    page.get_by_role("button", name="Show").click()
    expect(bars).to_have_count(3)
    expect(page.locator('[data-figure="range-visits"]')).to_have_text("3")
    expect(page.locator("#visits-table tbody tr").nth(1)).to_contain_text("3")
    expect(page.locator("#diagnoses-table")).not_to_contain_text("J06.9")
    shot("custom")

    page.get_by_label("To", exact=True).fill("someday")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#to-error")).to_contain_text("Enter the last day like")
    expect(bars).to_have_count(0)
