"""The Content-Security-Policy holds on every main page: Chromium reports no violation
(no inline script, no inline handler, nothing from another origin) while each role opens
the pages of its day, the visit workspace and the dashboard's charts included."""

from __future__ import annotations

from qure.core.db import commit
from qure.core.roles import Role
from qure.visits import service as visits
from tests.e2e.test_front_desk import sign_in
from tests.helpers import PASSWORD, make_patient, make_user

# Each violation the page sees is kept where the test can read it (an init script runs
# before the page's own, and the policy does not apply to it).
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""

PAGES = {
    Role.RECEPTION: [
        "/home",
        "/patients/",
        "/patients/new",
        "/queue/today",
        "/appointments/book",
        "/billing",
        "/billing/day-close",
        "/queue/board",
    ],
    Role.DOCTOR: ["/home", "/queue/mine", "/patients/", "/reports/visits"],
    Role.PHARMACIST: [
        "/home",
        "/pharmacy/stock",
        "/pharmacy/alerts",
        "/pharmacy/dispense",
        "/pharmacy/h1-register",
        "/reports/stock-movements",
    ],
    Role.ADMIN: [
        "/home",
        "/admin/users",
        "/admin/settings",
        "/reports/dashboard",
        "/reports/dashboard?days=90",
        "/reports/daily-summary",
        "/reports/audit",
        "/reports/invoices",
        "/imports",
        "/admin/jobs",
        "/api/docs",
    ],
}


def _violations(page, paths: list[str]) -> list[str]:
    found = []
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security" in m.text else None)
    for path in paths:
        answer = page.goto(path)
        assert answer.status < 400, (path, answer.status)
        page.wait_for_load_state("load")
        found += [f"{path}: {v}" for v in page.evaluate("window.__violations")]
    return found + console


def test_no_main_page_breaks_the_content_security_policy(page, app):
    page.context.add_init_script(WATCH)
    with app.app_context():
        users = {role: make_user(role) for role in PAGES}
        patient = make_patient(full_name="Asha Menon")
        visit = visits.start(users[Role.DOCTOR], {"patient_id": patient.id})
        commit()
        names = {role: user.username for role, user in users.items()}
        workspace = f"/visits/{visit.id}"
    # The watch sees a violation: an inline script added to the sign-in page is refused.
    page.goto("/login")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.ran = 1'; document.body.appendChild(s); }"
    )
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.ran") is None
    problems = []
    for role, paths in PAGES.items():
        sign_in(page, names[role], PASSWORD)
        extra = [workspace] if role == Role.DOCTOR else []
        problems += _violations(page, paths + extra)
        page.context.clear_cookies()
    assert problems == []
