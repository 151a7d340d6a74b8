"""Front desk (today, check-in, walk-in), the queues, the doctor's queue, and the
waiting-room board. Thin: every change goes through the queue service."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from qure.core import clock
from qure.core.errors import DomainError, TooManyAttempts
from qure.core.forms import attach_errors, confirmation_status, int_arg, small_int
from qure.core.http import transaction
from qure.core.roles import Role, roles_required
from qure.patients import service as patients
from qure.queue import loading, service
from qure.queue.board import board_body, board_state, display_key_digest, try_display_key
from qure.queue.forms import (
    CallForm,
    DisplayKeyForm,
    NoShowForm,
    StatusForm,
    UrgentForm,
    WalkInForm,
)
from qure.queue.models import TokenKind, TokenStatus
from qure.scheduling import service as scheduling
from qure.visits import service as visits

bp = Blueprint("queue", __name__, url_prefix="/queue")
# Templates compare with the members (`e.kind == TokenKind.WALK_IN`).
bp.add_app_template_global(TokenKind, "TokenKind")
bp.add_app_template_global(TokenStatus, "TokenStatus")
BACK = {"queue.index", "queue.doctor_queue"}
DISPLAY_SESSION = "display_key"
LIVE_POLL_SECONDS = 3  # how often an open Today, Queue or My queue page asks for changes


def _back_url(endpoint: str | None) -> str:
    return url_for(endpoint if endpoint in BACK else "queue.index")


def _back(endpoint: str | None):
    return redirect(_back_url(endpoint))


def _walk_in_form() -> WalkInForm:
    form = WalkInForm()
    form.doctor_id.choices = [SelectChoice("", "First available")] + [
        SelectChoice(str(d.id), d.full_name) for d in scheduling.doctors()
    ]
    return form


# ---- pages that stay current ----------------------------------------------------------------
# Each live page has a fragment endpoint that answers the page's changing regions, tagged
# with the queue's version in Redis (and the clock's minute, for the waiting times): an
# open page polls it (static/js/live.js) and gets 304 while nothing has changed.


def _live(page: str, *parts: str) -> dict:
    """The tag of a page's live regions as of now, where the page polls for them
    (`<page>_fragment`), and the page's own address for a manual refresh."""
    minute = clock.now().astimezone(clock.clinic_tz()).strftime("%H%M")
    tag = "-".join((page, str(g.actor.id), loading.live_version(), minute, *parts))
    here = request.method == "GET" and request.endpoint == page
    return {
        "url": url_for(f"{page}_fragment"),
        "etag": tag,
        "poll": LIVE_POLL_SECONDS,
        "page": request.full_path.rstrip("?") if here else url_for(page),
    }


def _fragment(live: dict, template: str, context: Callable[[], dict]):
    """The regions of a live page, or 304 when the page already shows this version."""
    response = current_app.response_class(mimetype="text/html")
    response.set_etag(live["etag"])
    if not request.if_none_match.contains(live["etag"]):
        response.set_data(render_template(template, **context()))
    return response.make_conditional(request)


# ---- front desk ---------------------------------------------------------------------------


@bp.get("/today")
@roles_required(*service.FRONT_DESK)
def today():
    """Today's appointments per doctor with Check in, the day's walk-ins, and the walk-in
    form."""
    return _today_page(_walk_in_form(), 200)


def _today_live() -> dict:
    return _live("queue.today", scheduling.day_fingerprint(clock.today()))


def _today_lists() -> dict:
    return {"desk": service.front_desk(), "action": CallForm()}


def _today_page(form: WalkInForm, status: int):
    live = _today_live()
    q = request.args.get("q", "").strip()[:120]
    patient_id = form.patient_id.data or int_arg("patient_id")
    chosen = patients.on_file(patient_id)
    found = patients.search(q, 1, 10, False, g.actor).items if q else []
    return render_template(
        "queue/today.html",
        form=form,
        q=q,
        found=found,
        chosen=chosen,
        day=clock.today(),
        live=live,
        **_today_lists(),
    ), status


@bp.get("/today/live")
@roles_required(*service.FRONT_DESK)
def today_fragment():
    """Today's appointment and walk-in lists alone, for the open page to swap in."""
    return _fragment(_today_live(), "queue/_today_live.html", _today_lists)


@bp.post("/checkin/<int:appointment_id>")
@roles_required(*service.FRONT_DESK)
def check_in(appointment_id: int):
    if not CallForm().validate_on_submit():
        abort(400)
    with transaction() as outcome:
        entry = service.check_in(g.actor, appointment_id)
    if outcome.failed:
        return redirect(url_for(".today"))
    return redirect(url_for(".token", token=entry.token_number))


@bp.post("/walk-in")
@roles_required(*service.FRONT_DESK)
def walk_in():
    form = _walk_in_form()
    if not form.validate_on_submit():
        return _today_page(form, 422)
    with transaction(form) as outcome:
        entry = service.walk_in(g.actor, form.walk_in_data())
    if outcome.failed:
        return _today_page(form, outcome.status)
    return redirect(url_for(".token", token=entry.token_number))


@bp.get("/token/<int:token>")
@roles_required()
def token(token: int):
    """A token printed on screen in large type, for the patient to note."""
    entry = service.get_token(token)
    return render_template("queue/token.html", entry=entry)


# ---- the queues ---------------------------------------------------------------------------


def _queue_lists() -> dict:
    queue = service.today()
    current = [d["current"] for d in queue["doctors"] if d["current"]]
    return {
        "queue": queue,
        "visit_of": service.open_visit_ids(current),
        "now": clock.now(),
        "status_form": StatusForm(),
        "urgent_form": UrgentForm(),
        "call_form": CallForm(),
        "back": "queue.index",
    }


@bp.get("/")
@roles_required()
def index():
    """Every doctor's queue: position, token, full name, kind, waiting time, actions."""
    live = _live("queue.index")
    return render_template("queue/index.html", live=live, **_queue_lists())


@bp.get("/live")
@roles_required()
def index_fragment():
    """The doctors' queues alone, for the open Queue page to swap in."""
    return _fragment(_live("queue.index"), "queue/_queue_live.html", _queue_lists)


def _mine_lists() -> dict:
    queue = service.today(g.actor.id)
    mine = queue["doctors"][0] if queue["doctors"] else None
    current = mine["current"] if mine else None
    open_visits = service.open_visit_ids([current] if current else [])
    return {
        "mine": mine,
        "visit_id": open_visits.get(current.id) if current else None,
        "now": clock.now(),
        "status_form": StatusForm(),
        "call_form": CallForm(),
        "back": "queue.doctor_queue",
    }


@bp.get("/mine")
@roles_required(Role.DOCTOR)
def doctor_queue():
    """The doctor's own waiting list and current patient, with Call next; the patient
    with the doctor is completed through their visit."""
    live = _live("queue.doctor_queue")
    return render_template("queue/mine.html", live=live, **_mine_lists())


@bp.get("/mine/live")
@roles_required(Role.DOCTOR)
def doctor_queue_fragment():
    """The doctor's current patient and waiting list alone, for the open page."""
    return _fragment(_live("queue.doctor_queue"), "queue/_mine_live.html", _mine_lists)


@bp.post("/next")
@roles_required(*service.CALLERS)
def call_next():
    """Call next: shows who is next and opens the called patient's page."""
    form = CallForm()
    if not form.validate_on_submit():
        abort(400)
    doctor_id = small_int(form.doctor_id.data)
    if g.actor.role == Role.DOCTOR:
        doctor_id = None
    with transaction() as outcome:
        entry, visit = visits.call_next(g.actor, doctor_id)
    if outcome.failed:
        return _back("queue.doctor_queue" if g.actor.role == Role.DOCTOR else "queue.index")
    waiting = service.today(entry.doctor_id)["doctors"][0]["waiting"]
    following = (
        f" Next: {service.display(waiting[0].token_number)} {waiting[0].patient.full_name}."
        if waiting
        else " Nobody else is waiting."
    )
    flash(
        f"Token {service.display(entry.token_number)} called: {entry.patient.full_name}."
        + following,
        "success",
    )
    if visit is not None:
        return redirect(url_for("visits.workspace", visit_id=visit.id))
    return redirect(url_for("patients.view", patient_id=entry.patient_id))


@bp.post("/<int:token>/status")
@roles_required(*service.MOVERS)
def set_status(token: int):
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400)
    if form.status.data == TokenStatus.NO_SHOW:
        # A no-show is confirmed with a reason on its own page.
        return redirect(url_for(".no_show", token=token, back=form.back.data))
    with transaction() as outcome:
        entry = service.set_status(g.actor, token, form.status.data)
    if not outcome.failed:
        flash(
            f"Token {service.display(token)}: {entry.status.replace('_', ' ').lower()}.",
            "success",
        )
    return _back(form.back.data)


@bp.route("/<int:token>/no-show", methods=["GET", "POST"])
@roles_required(*service.MOVERS)
def no_show(token: int):
    """Confirm a no-show, with the reason (kept on the token and audited)."""
    form = NoShowForm()
    status = confirmation_status(form)
    if status is None:
        with transaction(lambda error: _fields_or_flash(form, error)) as outcome:
            service.set_status(g.actor, token, TokenStatus.NO_SHOW, form.reason.data)
        if not outcome.failed:
            flash(f"Token {service.display(token)}: no show.", "success")
            return _back(form.back.data)
        if not outcome.error.fields:
            return _back(form.back.data)  # the refusal is flashed
        status = outcome.status
    entry = service.get_token(token)
    return render_template(
        "queue/no_show.html", entry=entry, form=form, back_url=_back_url(form.back.data)
    ), status


def _fields_or_flash(form, error: DomainError) -> None:
    """An error naming fields goes beside them; one that names none is flashed."""
    if error.fields:
        attach_errors(form, error)
    else:
        flash(error.message, "error")


@bp.post("/<int:token>/urgent")
@roles_required(*service.FRONT_DESK)
def mark_urgent(token: int):
    form = UrgentForm()
    if not form.validate_on_submit():
        flash("Say why the patient is urgent.", "error")
        return _back(form.back.data)
    with transaction() as outcome:
        service.mark_urgent(g.actor, token, form.reason.data)
    if not outcome.failed:
        flash(f"Token {service.display(token)} is urgent: it goes ahead.", "success")
    return _back(form.back.data)


# ---- the waiting-room board ----------------------------------------------------------------


def _board_allowed(digest: str | None) -> bool:
    """Staff signed in, or a screen opened with the current display key (`digest`)."""
    opened_with = session.get(DISPLAY_SESSION)
    if opened_with and digest and hmac.compare_digest(opened_with, digest):
        return True
    return current_user.is_authenticated


@bp.get("/board")
def board():
    """The full-screen board for the waiting-room TV (or the display-key form)."""
    if not _board_allowed(display_key_digest()):
        return render_template("queue/board_key.html", form=DisplayKeyForm())
    return render_template(
        "queue/board.html", poll_seconds=current_app.config["BOARD_POLL_SECONDS"]
    )


@bp.post("/board/key")
def board_key():
    form = DisplayKeyForm()
    try:
        digest = try_display_key(form.display_key.data) if form.validate() else None
    except TooManyAttempts as exc:
        form.display_key.errors = [exc.message]
        headers = {"Retry-After": str(exc.retry_after)}
        return render_template("queue/board_key.html", form=form), 429, headers
    if not digest:
        form.display_key.errors = [*list(form.display_key.errors), "That is not the display key."]
        return render_template("queue/board_key.html", form=form), 401
    session[DISPLAY_SESSION] = digest
    return redirect(url_for(".board"))


@bp.get("/board/data")
def board_data():
    """The board's few bytes: polled every couple of seconds, 304 when nothing changed."""
    state = board_state()
    if not _board_allowed(state.display_digest):
        return {"error": {"code": "unauthorized", "message": "Open the board with the key."}}, 401
    response = current_app.response_class(mimetype="application/json")
    response.set_etag(state.version)
    if request.if_none_match.contains(state.version):
        return response.make_conditional(request)
    response.set_data(board_body(state))
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)
