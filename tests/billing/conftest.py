"""What every billing test starts from: the clinic's clock on a Monday at 10:00 (the
financial year 2029-30), a signed-in reception desk on the billing API, a patient."""

from __future__ import annotations

import pytest

from tests.billing.helpers import Desk
from tests.helpers import make_patient


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


@pytest.fixture
def desk(client, reception):
    return Desk(client, reception)


@pytest.fixture
def patient(app):
    return make_patient(full_name="Meera Iyer")
