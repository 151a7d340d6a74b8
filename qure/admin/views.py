"""Admin pages: the admin's home, user management, the display key and the clinic's
settings."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from qure.admin import settings
from qure.admin.forms import SettingsForm
from qure.auth import service as users
from qure.auth.forms import PasswordResetForm, UserCreateForm, UserEditForm
from qure.core import outbox
from qure.core.errors import Conflict, Forbidden, InvalidInput
from qure.core.http import transaction
from qure.core.roles import ROLE_LABELS, Role, roles_required
from qure.patients import service as patients_service
from qure.pharmacy import stock
from qure.queue import board
from qure.queue.forms import DisplayKeyForm

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.add_app_template_global(settings.clinic_name, "clinic_name")


@bp.get("/")
@roles_required(Role.ADMIN)
def index():
    """The admin's home: staff by role, patients on file, audit backlog."""
    return render_template(
        "admin/index.html",
        by_role=users.active_staff_by_role(),
        labels=ROLE_LABELS,
        patients=patients_service.count_on_file(),
        backlog=outbox.backlog(),
        stock_alerts=stock.alert_counts(),
    )


@bp.get("/users")
@roles_required(Role.ADMIN)
def user_list():
    q = request.args.get("q", "")[:80]
    role = request.args.get("role") or None
    try:
        role = Role(role) if role else None
        page = max(1, int(request.args.get("page", 1)))
    except ValueError:
        role, page = None, 1
    result = users.list_users(q, role, None, page, 50)
    return render_template("admin/users.html", result=result, q=q, role=role, labels=ROLE_LABELS)


# A user that is not there is the 404 page, not a message on the form.
SAVE_REFUSALS = (InvalidInput, Conflict, Forbidden)


@bp.route("/users/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def user_new():
    form = UserCreateForm()
    status = 200
    if form.validate_on_submit():
        with transaction(form, catch=SAVE_REFUSALS) as outcome:
            user = users.create_user(g.actor, form.details())
        if not outcome.failed:
            flash(f"Created {user.username} ({user.role.value}).", "success")
            return redirect(url_for(".user_edit", user_id=user.id))
        status = outcome.status
    elif request.method == "POST":
        status = 422
    return render_template("admin/user_new.html", form=form), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def user_edit(user_id: int):
    user = users.get_user(user_id)
    form = UserEditForm(obj=user if request.method == "GET" else None)
    if request.method == "GET":
        form.role.data = user.role.value
    status = 200
    if form.validate_on_submit():
        with transaction(form, catch=SAVE_REFUSALS) as outcome:
            users.update_user(g.actor, user_id, form.details())
        if not outcome.failed:
            flash("Saved.", "success")
            return redirect(url_for(".user_edit", user_id=user_id))
        status = outcome.status
    elif request.method == "POST":
        status = 422
    user = users.get_user(user_id)
    return render_template(
        "admin/user_edit.html",
        user=user,
        form=form,
        reset=PasswordResetForm(formdata=None),
    ), status


@bp.post("/users/<int:user_id>/password")
@roles_required(Role.ADMIN)
def user_password(user_id: int):
    user = users.get_user(user_id)
    reset = PasswordResetForm()
    status = 200
    if reset.validate_on_submit():
        with transaction(reset, catch=SAVE_REFUSALS) as outcome:
            users.update_user(g.actor, user_id, {"password": reset.password.data})
        if not outcome.failed:
            flash(
                f"Password reset for {user.username}; their sessions have ended.",
                "success",
            )
            return redirect(url_for(".user_edit", user_id=user_id))
        status = outcome.status
    else:
        status = 422
    form = UserEditForm(obj=user)
    form.role.data = user.role.value
    return render_template("admin/user_edit.html", user=user, form=form, reset=reset), status


@bp.route("/display", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def display_key():
    """Set the key that opens the waiting-room board on an unattended screen."""
    form = DisplayKeyForm()
    new_key, status = None, 200
    if request.method == "POST":
        if form.validate_on_submit():
            with transaction(form, catch=(InvalidInput,)) as outcome:
                new_key = board.set_display_key(g.actor, form.display_key.data)
            if outcome.failed:
                new_key, status = None, 422
        else:
            status = 422
    return render_template(
        "admin/display.html",
        form=form,
        new_key=new_key,
        has_key=board.display_key_digest() is not None,
        set_at=board.display_key_set_at(),
    ), status


@bp.route("/settings", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def clinic_settings():
    """The clinic's settings: what receipts print and what billing charges by default."""
    status = 200
    if request.method == "POST":
        form = SettingsForm()
        if form.validate_on_submit():
            with transaction(form, catch=(InvalidInput,)) as outcome:
                settings.update(g.actor, form.values())
            if not outcome.failed:
                flash("The settings are saved.", "success")
                return redirect(url_for("admin.clinic_settings"))
        status = 422
    else:
        current = settings.get_settings()
        form = SettingsForm(data={k: str(v) for k, v in current.items()})
    return render_template("admin/settings.html", form=form), status
