"""The report pages' GET forms (no CSRF token: they change nothing). Their fields are
named as the API's query (`from`, `to`, `date`), so a page's address and the API's read
alike."""

from __future__ import annotations

from flask_wtf import FlaskForm

from qure.core.forms import ClinicDateField


class RangeForm(FlaskForm):
    """A range of clinic days: from and to (both included)."""

    class Meta:
        csrf = False

    start = ClinicDateField("From", name="from", message="Enter the first day like 02 Dec 2026.")
    end = ClinicDateField("To", name="to", message="Enter the last day like 02 Dec 2026.")


class SummaryForm(RangeForm):
    """One day (`date`), or a range (from and to)."""

    day = ClinicDateField("Day", name="date", message="Enter the day like 02 Dec 2026.")
