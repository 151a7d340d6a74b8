"""Dates look one way everywhere: "02 Dec 2026" on screen, typed in any common form."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms.validators import DataRequired, Optional

from qure.core import clock
from qure.core.forms import ClinicDateField
from qure.core.templating import clinic_date, clinic_iso_date

DEC_2 = date(2026, 12, 2)


@pytest.mark.parametrize(
    "typed",
    [
        "02 Dec 2026",
        "2 dec 2026",
        " 02  DEC 2026 ",
        "2 December 2026",
        "02-12-2026",
        "02/12/2026",
        "2.12.2026",
        "02-Dec-2026",
        "2026-12-02",
    ],
)
def test_every_common_way_of_typing_a_date(typed):
    assert clock.parse_day(typed) == DEC_2


@pytest.mark.parametrize("typed", ["", "tomorrow", "31 Feb 2026", "13/13/2026", "12/31/2026"])
def test_what_is_not_a_date_is_refused(typed):
    with pytest.raises(ValueError):
        clock.parse_day(typed)


def test_a_day_is_written_the_clinics_way(app):
    assert clock.format_day(DEC_2) == "02 Dec 2026"
    with app.app_context():
        # 20:00 UTC on 1 December is already 2 December in Kolkata.
        evening = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
        assert clinic_date(evening) == "02 Dec 2026"
        assert clinic_date(DEC_2) == "02 Dec 2026"
        assert clinic_iso_date(evening) == "2026-12-02"
        assert clinic_date("2026-12-02") == "02 Dec 2026"
        assert clinic_date(None) == ""


class _Form(FlaskForm):
    class Meta:
        csrf = False

    required = ClinicDateField("Follow-up", validators=[DataRequired()])
    optional = ClinicDateField("Date of birth", validators=[Optional()])


def test_the_date_field_reads_typed_text_and_shows_it_back(app):
    with app.test_request_context():
        form = _Form(formdata=MultiDict({"required": "02/12/2026", "optional": ""}))
        assert form.validate()
        assert form.required.data == DEC_2
        assert form.optional.data is None
        shown = _Form(data={"required": DEC_2})
        assert 'value="02 Dec 2026"' in str(shown.required())
        assert 'type="text"' in str(shown.required())


def test_a_bad_date_is_refused_beside_its_field_and_kept_as_typed(app):
    with app.test_request_context():
        form = _Form(formdata=MultiDict({"required": "31 Feb 2026", "optional": "soon"}))
        assert not form.validate()
        assert form.required.errors == ["Enter the date as day, month and year, like 02 Dec 2026."]
        assert form.optional.errors == ["Enter the date as day, month and year, like 02 Dec 2026."]
        assert 'value="31 Feb 2026"' in str(form.required())


@pytest.mark.parametrize(
    "typed",
    ["02 Dec 2026 13:30", "2 dec 2026, 1:30 pm", "02/12/2026 1:30PM", "2026-12-02T13:30"],
)
def test_a_date_and_time_typed_at_the_desk(typed):
    assert clock.parse_day_time(typed) == datetime(2026, 12, 2, 13, 30)


@pytest.mark.parametrize("typed", ["02 Dec 2026", "02 Dec 2026 25:00", "02 Dec 2026 13:30 pm"])
def test_a_date_without_a_real_time_is_refused(typed):
    with pytest.raises(ValueError):
        clock.parse_day_time(typed)


def test_headings_carry_the_weekday():
    assert clock.weekday_day(DEC_2) == "Wed 02 Dec 2026"


def test_the_first_and_last_days_a_date_holds_have_bounds(app):
    # day_bounds(9999-12-31) raised ValueError and (0001-01-01) OverflowError: the report
    # filters answered 500 to ?from=9999-12-31 (found by tests/test_fuzz_api).
    start, end = clock.day_bounds(date.max)
    assert start == datetime(9999, 12, 30, 18, 30, tzinfo=UTC)
    assert end == datetime.max.replace(tzinfo=UTC)
    start, end = clock.day_bounds(date.min)
    assert start == datetime.min.replace(tzinfo=UTC)
    assert end.date() == date.min  # 18:06 UTC: Kolkata's local mean time then
