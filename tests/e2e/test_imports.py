"""An import in a real browser: the admin uploads a CSV of 300 patients with a few bad
rows, watches the progress bar reach the end (the page polls its progress with
static/js/import-progress.js), and reads the refused rows with their lines and reasons.
Jobs run in-process, as in embedded mode (`jobs.InProcessJobs`)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from qure.core import jobs
from qure.core.roles import Role
from qure.extensions import db
from qure.patients.models import Patient
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_user
from tests.imports.helpers import PATIENT_HEADER, csv_bytes, patient_rows


@pytest.fixture
def background(app):
    worker = jobs.InProcessJobs(app)
    yield worker
    worker.stop()


def test_admin_imports_patients_and_watches_the_progress(page, app, background, tmp_path):
    with app.app_context():
        admin = make_user(Role.ADMIN, full_name="Anita Rao")
        login = admin.username
    rows = patient_rows(297)
    rows[40] = ("Bad Date", "32/13/1990", "F", "9811111111", "")  # line 42
    rows[150] = ("Bad Phone", "1990-01-01", "M", "12", "")  # line 152
    rows[250] = ("Too", "Few")  # line 252
    rows += patient_rows(3, start=297)
    path = tmp_path / "patients-300.csv"
    path.write_bytes(csv_bytes(PATIENT_HEADER, rows))

    sign_in(page, login, PASSWORD)
    page.goto("/admin/")
    page.get_by_role("link", name="Import patients or medicines").click()
    page.get_by_label("What the file holds").select_option("patients")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload and import").click()

    bar = page.locator("#import-bar")
    expect(bar).to_have_attribute("max", "300")
    expect(page.locator("#rejected-rows")).to_be_visible(timeout=60_000)
    bar = page.locator("#import-bar")
    assert bar.evaluate("el => el.value === el.max")
    expect(page.locator("#import-count")).to_have_text("300 of 300 rows")
    expect(page.locator("#count-imported")).to_have_text("297")
    expect(page.locator("#count-rejected")).to_have_text("3")
    lines = page.locator("#rejected-rows tbody tr td:first-child").all_inner_texts()
    assert lines == ["42", "152", "252"]
    expect(page.locator("#rejected-rows")).to_contain_text("date_of_birth:")
    expect(page.locator("#rejected-rows")).to_contain_text("phone:")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Patient)) == 297
