"""core.phone: one stored form for a phone number, and one way of showing it."""

from __future__ import annotations

import pytest
from flask import render_template_string

from qure.core import phone


@pytest.mark.parametrize(
    "typed",
    [
        "98765 43210",
        "+91 98765 43210",
        "09876543210",
        "+91-98765-43210",
        "(098765) 43210",
        "0091 98765 43210",
        "98765\u00a043210",  # a no-break space, as pasted from a chat
    ],
)
def test_every_common_way_of_typing_an_indian_mobile_is_one_number(typed):
    assert phone.normalize(typed) == "+919876543210"


def test_another_country_needs_its_code():
    assert phone.normalize("+44 20 7946 0958") == "+442079460958"
    assert phone.normalize("0044 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "Give a phone number"),
        ("98765", "Too short for a phone number"),
        ("98765 43210 98765 43210", "Too long for one phone number"),
        ("5555555555", "Not an Indian number in use"),
        ("+999 1234567", "Unknown country code"),
        ("98765 ABCDE", "Not a phone number"),
        ("98765 43210 #12", "Leave out the extension"),
        ("9" * 41, "Too long for one phone number"),
    ],
)
def test_a_bad_number_is_refused_with_a_reason(typed, reason):
    with pytest.raises(ValueError, match=f"^{reason}"):
        phone.normalize(typed)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("+919876543210", "+91 98765 43210"),
        ("+442079460958", "+44 20 7946 0958"),
        ("not a number", "not a number"),  # an old value the migration left as it was
        ("", ""),
        (None, ""),
    ],
)
def test_display(stored, shown):
    assert phone.display(stored) == shown


def test_the_phone_filter_shows_a_number_the_indian_way(app):
    with app.test_request_context():
        assert render_template_string("{{ n|phone }}", n="+919876543210") == "+91 98765 43210"
        assert render_template_string("{{ missing|phone }}") == ""
