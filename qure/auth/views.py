"""Sign-in, sign-out and each role's home page."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from qure.auth import devices, service
from qure.auth.forms import LoginForm
from qure.billing import service as billing
from qure.core.errors import TooManyAttempts, Unauthorized
from qure.core.forms import ActionForm
from qure.core.http import transaction
from qure.core.roles import Role, roles_required
from qure.patients import service as patients
from qure.pharmacy import dispensing, stock

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (never another host) is a place to return to."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    headers = {}
    if form.validate_on_submit():
        failures = (Unauthorized, TooManyAttempts)  # committed: the failure is audited
        refusals = (*failures, service.SignInUnavailable)
        with transaction(form, catch=refusals, commit_on=failures) as outcome:
            known = devices.is_known(form.username.data)
            user = service.authenticate(form.username.data, form.password.data, known)
        if not outcome.failed:
            # A fresh session: nothing set before sign-in (by whoever handed this browser
            # its cookie) survives it, the CSRF token included.
            session.clear()
            login_user(user)
            target = _safe_next(request.args.get("next")) or url_for("auth.home")
            return devices.remember(redirect(target), user.username)
        status = outcome.status
        if isinstance(outcome.error, TooManyAttempts):
            headers["Retry-After"] = str(outcome.error.retry_after)
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status, headers


@bp.post("/logout")
@roles_required()
def logout():
    if ActionForm().validate_on_submit():
        with transaction(catch=()):
            service.sign_out(g.actor)
        logout_user()
        flash("You are signed out.", "success")
    return redirect(url_for("auth.login"))


@bp.get("/home")
@roles_required()
def home():
    """Each role's own starting page."""
    role = current_user.role
    if role == Role.ADMIN:
        return redirect(url_for("admin.index"))
    recent = patients.recent(8) if role == Role.RECEPTION else []
    # The front desk bills too: how many completed visits wait for their invoice.
    to_bill = billing.to_bill(1, 1).total if role == Role.RECEPTION else 0
    pharmacist = role == Role.PHARMACIST
    to_dispense = dispensing.count_to_dispense() if pharmacist else 0
    stock_alerts = stock.alert_counts() if pharmacist else None
    template = {
        Role.RECEPTION: "auth/home_reception.html",
        Role.DOCTOR: "auth/home_doctor.html",
        Role.PHARMACIST: "auth/home_pharmacist.html",
    }[role]
    return render_template(
        template,
        recent=recent,
        to_bill=to_bill,
        to_dispense=to_dispense,
        stock_alerts=stock_alerts,
    )
