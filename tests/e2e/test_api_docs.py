"""The interactive API docs render in a real browser from the app's own files, under the
app's Content-Security-Policy (no inline script, no CDN)."""

from __future__ import annotations

from playwright.sync_api import expect


def test_swagger_ui_renders_offline_under_the_csp(page, live_server):
    external: list[str] = []
    page.on(
        "request",
        lambda request: (
            external.append(request.url) if not request.url.startswith(live_server) else None
        ),
    )
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    page.goto("/api/docs")

    expect(page.get_by_role("heading", name="Qure API")).to_be_visible()
    expect(page.get_by_text("/api/v1/patients", exact=True).first).to_be_visible()
    assert external == []
    assert violations == []
