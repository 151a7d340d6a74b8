"""`flask` commands: serve, create-user, seed-demo, worker, audit-verify, rebuild-analytics,
rebuild-queue, close-day, set-display-key."""

from __future__ import annotations

import signal
import sys
from datetime import date

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from qure import demo
from qure.auth import service as users
from qure.core import clock, documents, jobs, outbox
from qure.core.errors import DomainError
from qure.core.roles import Role
from qure.extensions import db, mongo
from qure.queue import board, loading
from qure.queue import service as queue
from qure.reports import rebuild


@click.command("create-user")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--full-name", default=None, help="Defaults to the username.")
@click.option("--email", default=None, help="Defaults to USERNAME@clinic.local.")
@click.option("--registration-number", default=None, help="Required for a DOCTOR.")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_user_command(username, role, full_name, email, registration_number, password):
    """Create a staff account (the password is prompted unless --password is given)."""
    data = {
        "username": username,
        "role": role,
        "full_name": full_name or username,
        "email": email or f"{username}@clinic.local",
        "registration_number": registration_number,
        "password": password,
    }
    try:
        user = users.create_user(None, data)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) or exc.message
        raise click.ClickException(f"Could not create user {username!r}: {detail}") from None
    click.echo(f"Created {user.username} ({user.role.value}), id {user.id}.")


@click.command("seed-demo")
@click.option(
    "--patients",
    "bulk",
    type=click.IntRange(min=0),
    default=0,
    help="Top the patients table up to this many synthetic patients (COPY).",
)
@with_appcontext
def seed_demo_command(bulk: int):
    """Load demo accounts and patients. Running it twice changes nothing."""
    accounts = demo.seed_accounts()
    created = demo.seed_patients()
    slots = demo.seed_schedule()
    medicines = demo.seed_medicines()
    batches = demo.seed_stock()
    display_key = demo.seed_display_key()
    db.session.commit()
    click.echo(
        f"Demo patients added: {created}. Demo doctor's slots added: {slots}. "
        f"Medicines added: {medicines}. Stock batches added: {batches}."
    )
    if bulk:
        added = demo.bulk_patients(bulk, progress=True)
        click.echo(f"Synthetic patients added: {added}.")
        if added:
            click.echo("Vacuuming and analysing the patient tables ...")
            demo.vacuum_patients()
    demo.print_accounts(accounts, display_key)


@click.command("worker")
@with_appcontext
def worker_command():
    """Run the RQ worker and the ticker that enqueues the periodic jobs the rooms declare
    (the outbox sweep, closing the day, ...)."""
    if mongo.embedded:
        # Its in-memory store would be private to this process: rows would be marked as
        # shipped into a store nobody can read. Embedded mode runs jobs in `flask serve`.
        raise click.ClickException(
            "flask worker needs MONGO_URL (a real MongoDB). Without one, `flask serve` "
            "runs the background jobs itself."
        )

    app = current_app._get_current_object()
    documents.ensure_indexes()
    every = ", ".join(f"{p.name} every {p.interval():g} s" for p in jobs.periodic_schedules())
    click.echo(f"Qure worker: waiting for jobs; {every} (Ctrl-C to stop).")
    jobs.run_worker(app)


@click.command("audit-verify")
@with_appcontext
def audit_verify_command():
    """Check the audit trail's hash chain in MongoDB; exit 1 if it is broken."""
    if mongo.embedded:
        # This process's store is its own: chain what waits, then copy the journal into it
        # without marking anything shipped (that is for the store of `flask serve`).
        while outbox.chain_pending():
            pass
        copied = outbox.refill()
        click.echo(f"Embedded document store: refilled {copied} records from the journal.")
    report = outbox.verify()
    for problem in report.problems:
        click.echo(f"BROKEN  {problem}", err=True)
    if not report.ok:
        raise click.ClickException(
            f"audit chain broken: {len(report.problems)} problem(s) in {report.checked} records"
        )
    click.echo(f"Audit chain intact: {report.checked} records checked.")


@click.command("rebuild-analytics")
@with_appcontext
def rebuild_analytics_command():
    """Rebuild every MongoDB read model from PostgreSQL: relay what is pending, copy every
    journalled record MongoDB lacks (audit trail, visit history, stock movements), and
    store again the summary of every past day that had activity.

    Audit records already in MongoDB are never modified or deleted (append-only).
    """
    if mongo.embedded:
        raise click.ClickException(
            "rebuild-analytics needs MONGO_URL. The embedded store is rebuilt from the "
            "journal each time `flask serve` starts."
        )
    result = rebuild.rebuild()
    if result.error:
        raise click.ClickException(f"MongoDB unavailable ({result.error}); nothing rebuilt.")
    click.echo(
        f"Relayed {result.relayed} pending, re-checked {result.copied} journalled records, "
        f"stored {len(result.days)} daily summaries."
    )


@click.command("rebuild-queue")
@click.option("--date", "day", default=None, help="Clinic date YYYY-MM-DD (default: today).")
@with_appcontext
def rebuild_queue_command(day: str | None):
    """Load a day's live queue into Redis again from PostgreSQL (same order, same
    current tokens, the token sequence continued)."""
    try:
        when = date.fromisoformat(day) if day else clock.today()
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from None
    loaded = loading.reload(when)
    db.session.commit()
    click.echo(f"Queue of {when.isoformat()} rebuilt: {loaded} waiting or current tokens.")


@click.command("close-day")
@click.option("--date", "day", default=None, help="Clinic date YYYY-MM-DD (default: today).")
@with_appcontext
def close_day_command(day: str | None):
    """End a clinic day: tokens still waiting (or skipped) and appointments nobody checked
    in become NO_SHOW. Safe to run twice."""
    try:
        when = date.fromisoformat(day) if day else clock.today()
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--date") from None
    counts = queue.close_day(None, when)
    db.session.commit()
    click.echo(
        f"Closed {when.isoformat()}: {counts['tokens']} tokens and "
        f"{counts['appointments']} appointments marked no-show."
    )


@click.command("set-display-key")
@click.option("--key", default=None, help="At least 12 characters; a random one if omitted.")
@with_appcontext
def set_display_key_command(key: str | None):
    """Set the key that opens the waiting-room board (as the admin's settings page does)."""
    try:
        chosen = board.set_display_key(None, key)
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"Display key set: {chosen}")


@click.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@with_appcontext
def serve_command(host: str, port: int):
    """Migrate, seed demo data the first time, and serve (embedded mode: one process,
    threads, background jobs in-process). Ctrl-C stops everything it started."""
    app = current_app._get_current_object()
    # SIGTERM ends like Ctrl-C, so the embedded servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    click.echo("Migrating the database ...")
    upgrade()
    accounts = demo.seed_accounts()
    if accounts.created:
        demo.seed_patients()
    demo.seed_schedule()  # the demo doctor always has the coming two weeks of slots
    demo.seed_medicines()
    demo.seed_stock(fresh_only=True)  # a new demo's pharmacy, never one in use
    display_key = demo.seed_display_key()
    db.session.commit()
    documents.ensure_indexes()
    if mongo.embedded:
        copied = outbox.refill()
        click.echo(f"Embedded document store: {copied} audit records reloaded from the journal.")
    background = jobs.InProcessJobs(app)
    demo.print_accounts(accounts, display_key)
    click.echo(f"Qure is at http://{host}:{port}/  (Ctrl-C to stop)")
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
    finally:
        click.echo("Stopping background jobs and the embedded servers ...")
        background.stop()


def init_app(app: Flask) -> None:
    for command in (
        create_user_command,
        seed_demo_command,
        worker_command,
        audit_verify_command,
        rebuild_analytics_command,
        rebuild_queue_command,
        close_day_command,
        set_display_key_command,
        serve_command,
    ):
        app.cli.add_command(command)
