"""Browser tests: the app served on a real port, driven by the system Chromium (Playwright).

Chromium comes from the system (Debian's `chromium`, which `make test` installs when it
can; or any Chromium named by CHROMIUM_PATH); Playwright never downloads a browser. Tests
here are marked `e2e` and commit for real.
"""

from __future__ import annotations

import os
import shutil
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def _chromium() -> str:
    path = (
        os.environ.get("CHROMIUM_PATH")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path:
        pytest.fail(
            "Chromium is not installed: run `make system-test` (or `sudo apt-get install "
            "chromium`), or set CHROMIUM_PATH."
        )
    return path


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server, java_script_enabled=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def morning_clinic(app):
    """The clinic's time zone set to one where it is mid-morning now, so that today has
    open slots ahead whenever the suite runs (a real setting, not a fake clock)."""
    saved = app.config["CLINIC_TIMEZONE"]
    now = datetime.now(ZoneInfo("UTC"))
    for offset in range(-12, 15):
        # Etc/GMT-5 is five hours ahead of UTC (POSIX signs are inverted).
        name = f"Etc/GMT{'-' if offset >= 0 else '+'}{abs(offset)}"
        if 8 <= now.astimezone(ZoneInfo(name)).hour < 12:
            app.config["CLINIC_TIMEZONE"] = name
            break
    yield app.config["CLINIC_TIMEZONE"]
    app.config["CLINIC_TIMEZONE"] = saved
