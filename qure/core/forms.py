"""Helpers shared by the HTML forms."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm

from qure.core.errors import DomainError

SMALL_NUMBER = re.compile(r"[0-9]{1,9}")


def small_int(value: str | None) -> int | None:
    """A positive id typed in a query string or hidden field, or None for anything else
    (letters, signs, other scripts' digits such as "²", numbers too long for an id)."""
    return int(value) if value and SMALL_NUMBER.fullmatch(value) else None


def int_arg(name: str) -> int | None:
    """A positive id from the query string, or None (see `small_int`)."""
    from flask import request

    return small_int(request.args.get(name))


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
