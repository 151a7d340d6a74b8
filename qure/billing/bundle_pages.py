"""The day's receipts as one PDF, from the day close: ask for it (a job makes it), follow
its progress (the page reloads itself while the job works: no JavaScript needed; the same
figures as JSON at .../progress), and download it. Thin: `billing.bundles` does the work."""

from __future__ import annotations

from datetime import date
from io import BytesIO

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, send_file, url_for

from qure.billing import bundles, service, tasks
from qure.core import clock, jobs
from qure.core.errors import DomainError
from qure.core.forms import ActionForm
from qure.core.http import error_response
from qure.core.roles import roles_required

REFRESH_SECONDS = 2


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        abort(404)


def _answer(day: date, progress: dict) -> dict:
    ready = progress["state"] == "ready"
    return {
        **progress,
        "date": day.isoformat(),
        "download_url": url_for(".receipts_pdf", day=day.isoformat()) if ready else None,
    }


@roles_required(*service.EDITORS)
def make_receipts(day: str):
    """Queue the day's bundle (once: asking twice while it is made queues nothing more)."""
    when = _day(day)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        tasks.submit_bundle(when)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for(".day_close", date=when.isoformat()))
    return redirect(url_for(".receipts", day=when.isoformat()))


@roles_required(*service.EDITORS)
def receipts(day: str):
    when = _day(day)
    try:
        progress = _answer(when, tasks.bundle_progress(when))
    except jobs.JobsUnavailable as error:
        # The page still answers, in the layout: the download waits until Redis is back.
        page = render_template(
            "billing/receipts_bundle.html",
            day=when,
            progress={"state": "unavailable"},
            unavailable=error.message,
            refresh=None,
            action=ActionForm(),
            today=clock.today(),
        )
        return page, error.status
    working = progress["state"] in {"queued", "working"}
    return render_template(
        "billing/receipts_bundle.html",
        day=when,
        progress=progress,
        refresh=REFRESH_SECONDS if working else None,
        action=ActionForm(),
        today=clock.today(),
    )


@roles_required(*service.EDITORS)
def receipts_progress(day: str):
    when = _day(day)
    try:
        return jsonify(_answer(when, tasks.bundle_progress(when)))
    except jobs.JobsUnavailable as error:
        # JSON for the page's script, outside /api/: the API's error shape all the same.
        return error_response(error.status, error.code, error.message)


@roles_required(*service.EDITORS)
def receipts_pdf(day: str):
    when = _day(day)
    bundle = bundles.get(when)
    return send_file(
        BytesIO(bundle.pdf), mimetype="application/pdf", download_name=bundles.file_name(when)
    )


def register(bp: Blueprint) -> None:
    """Add these pages to the billing blueprint (views.py calls it)."""
    bp.add_url_rule("/receipts/<day>", view_func=make_receipts, methods=["POST"])
    bp.add_url_rule("/receipts/<day>", view_func=receipts, methods=["GET"])
    bp.add_url_rule("/receipts/<day>/progress", view_func=receipts_progress, methods=["GET"])
    bp.add_url_rule("/receipts/<day>.pdf", view_func=receipts_pdf, methods=["GET"])
