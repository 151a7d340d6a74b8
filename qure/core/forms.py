"""Helpers shared by the HTML forms."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask import abort, request
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import StopValidation

from qure.core import clock
from qure.core.errors import DomainError

SMALL_NUMBER = re.compile(r"[0-9]{1,9}")


def small_int(value: str | None) -> int | None:
    """A positive id typed in a query string or hidden field, or None for anything else
    (letters, signs, other scripts' digits such as "²", numbers too long for an id)."""
    return int(value) if value and SMALL_NUMBER.fullmatch(value) else None


def int_arg(name: str) -> int | None:
    """A positive id from the query string, or None (see `small_int`)."""
    return small_int(request.args.get(name))


class ClinicDateField(StringField):
    """A date typed as text and shown as the clinic writes it ("02 Dec 2026").

    A browser's own date input shows its locale's order (12/02/2026 in an American
    browser), which a clinic in India reads as 12 February; this one looks the same
    everywhere and accepts the ways staff type a date (see `clock.parse_day`)."""

    message = "Enter the date as day, month and year, like 02 Dec 2026."

    def __init__(self, label=None, validators=None, message: str | None = None, **kwargs):
        self.message = message or self.message
        render_kw = {"placeholder": "DD Mon YYYY", "autocomplete": "off", "size": 12}
        render_kw.update(kwargs.pop("render_kw", None) or {})
        super().__init__(label, validators, render_kw=render_kw, **kwargs)

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        return clock.format_day(self.data)

    def process_formdata(self, valuelist) -> None:
        text = " ".join(valuelist or []).strip()
        self.data = None
        if text:
            try:
                self.data = clock.parse_day(text)
            except ValueError as bad:
                raise ValueError(self.message) from bad

    def pre_validate(self, form) -> None:
        # A date that could not be read keeps its own message; "required" would hide it.
        if self.process_errors:
            raise StopValidation()


class ClinicDateTimeField(StringField):
    """A clinic-local date and time typed as text ("02 Dec 2026 13:00"), for the same
    reason as `ClinicDateField`; its data is naive, in the clinic's time zone."""

    def __init__(self, label=None, validators=None, **kwargs):
        render_kw = {"placeholder": "DD Mon YYYY HH:MM", "autocomplete": "off", "size": 18}
        render_kw.update(kwargs.pop("render_kw", None) or {})
        super().__init__(label, validators, render_kw=render_kw, **kwargs)

    def _value(self) -> str:
        if self.raw_data:
            return " ".join(self.raw_data)
        if self.data is None:
            return ""
        return f"{clock.format_day(self.data.date())} {self.data:%H:%M}"

    def process_formdata(self, valuelist) -> None:
        text = " ".join(valuelist or []).strip()
        self.data = None
        if text:
            try:
                self.data = clock.parse_day_time(text)
            except ValueError as bad:
                raise ValueError("Enter the date and time like 02 Dec 2026 13:00.") from bad

    pre_validate = ClinicDateField.pre_validate


def confirmation_status(form: FlaskForm) -> int | None:
    """The first step of a page that confirms an act with a reason (cancel, no-show): on
    GET the form remembers where it was opened from (`back`); a POST that does not validate
    is shown again with 422 (400 without its CSRF token). Returns the status to show the
    page with, or None when the POST is valid and the act may run."""
    if request.method == "GET":
        form.back.data = request.args.get("back")
        return 200
    if form.validate_on_submit():
        return None
    if form.csrf_token.errors:
        abort(400)
    return 422


def checked(form: FlaskForm) -> bool:
    """A POSTed form's own checks: True when valid, False to show it again with its
    errors; a POST without its CSRF token is refused outright (400)."""
    if form.validate_on_submit():
        return True
    if form.csrf_token.errors:
        abort(400)
    return False


class ActionForm(FlaskForm):
    """A button-only form: carries the CSRF token for a POST action."""


def attach_errors(form: FlaskForm, error: DomainError, aliases: dict[str, str] | None = None):
    """Put a service's field errors beside the form fields they name.

    Errors for fields the form does not show go to `form.form_errors`. Returns the form.
    """
    aliases = aliases or {}
    for name, message in error.fields.items():
        field = getattr(form, aliases.get(name, name), None)
        if field is not None and hasattr(field, "errors"):
            field.errors = [*list(field.errors), message]
        else:
            form.form_errors.append(f"{name}: {message}")
    if not error.fields:
        form.form_errors.append(error.message)
    return form


def add_error(field, message: str) -> None:
    """One more message beside `field` (once: the same message twice shows once)."""
    if message not in (field.errors or []):
        field.errors = [*list(field.errors or []), message]


def attach_row_errors(
    form: FlaskForm,
    error: DomainError,
    collection: str,
    entries,
    rows: list[int],
    row_field: Callable[[Any, str], Any],
    top: tuple[str, ...] = (),
) -> None:
    """A service's errors on a form of rows: `<collection>.N.part` beside the field
    `row_field(sub-form, part)` of the row that sent item N (`rows[N]` is its index in
    `entries`, the FieldList), a name in `top` beside that field of `form`, and the rest
    above the form (with the error's message when it names no field)."""
    for name, message in error.fields.items():
        parts = name.split(".")
        field = None
        if parts[0] == collection and len(parts) == 3 and parts[1].isdigit():
            n = int(parts[1])
            if n < len(rows):
                field = row_field(entries[rows[n]].form, parts[2])
        elif name in top:
            field = getattr(form, name, None)
        if field is not None:
            add_error(field, message)
        else:
            form.form_errors.append(message)
    if not error.fields:
        form.form_errors.append(error.message)
