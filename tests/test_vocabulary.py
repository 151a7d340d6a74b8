"""One vocabulary (issue 9, point 8): every status, a token's kind and a note's category
are StrEnum members, declared once beside their model.

Read from the source, as the import rules are: outside an enum's own class body no module
of qure spells one of these words as a bare string, and no template does. SQL (CHECK
constraints, partial indexes) and the Redis Lua scripts name them inside longer strings,
which do not count. And the database's CHECK constraints allow exactly the enum's words.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from qure.billing.models import InvoiceMode, InvoiceStatus, LineKind, PaymentMethod
from qure.extensions import db
from qure.pharmacy.models import AdjustmentReason, DrugSchedule
from qure.prescriptions.models import DispenseStatus
from qure.queue.models import TokenKind, TokenStatus
from qure.scheduling.models import AppointmentStatus, SlotStatus
from qure.visits.models import NoteCategory, VisitStatus

# A line's kind (LineKind) is not among the words: OTHER is also a medicine's form. Nor
# is a medicine's schedule (DrugSchedule): its words (NONE, H, X) are too short to be
# only the schedule's; the CHECK below holds it to the enum. Nor a stock movement's type
# (MovementType): IN is also India's country code.
QURE = Path(__file__).resolve().parents[1] / "qure"
VOCABULARY = (
    SlotStatus,
    AppointmentStatus,
    TokenStatus,
    TokenKind,
    VisitStatus,
    NoteCategory,
    InvoiceStatus,
    InvoiceMode,
    PaymentMethod,
    DispenseStatus,
    AdjustmentReason,
)
WORDS = {member.value for enum in VOCABULARY for member in enum}
QUOTED = re.compile(r"""(['"])(""" + "|".join(sorted(WORDS)) + r""")\1""")


def _bare_words(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = {enum.__name__ for enum in VOCABULARY}
    declared = {
        id(node)
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef) and cls.name in names
        for node in ast.walk(cls)
    }
    return [
        f"{path.relative_to(QURE.parent)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in WORDS
        and id(node) not in declared
    ]


def test_python_names_statuses_by_their_members():
    found = [hit for path in sorted(QURE.rglob("*.py")) for hit in _bare_words(path)]
    assert found == []


def test_templates_name_statuses_by_their_members():
    found = [
        f"{path.relative_to(QURE.parent)}:{number}: {line.strip()}"
        for path in sorted(QURE.rglob("*.html"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if QUOTED.search(line)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("constraint", "enum"),
    [
        ("ck_slots_status", SlotStatus),
        ("ck_appointments_status", AppointmentStatus),
        ("ck_queue_status", TokenStatus),
        ("ck_queue_kind", TokenKind),
        ("ck_visits_status", VisitStatus),
        ("ck_visit_notes_category", NoteCategory),
        ("ck_invoices_status", InvoiceStatus),
        ("ck_invoices_mode", InvoiceMode),
        ("ck_invoice_lines_kind", LineKind),
        ("ck_payments_method", PaymentMethod),
        ("ck_credit_notes_method", PaymentMethod),
        ("ck_medicines_schedule", DrugSchedule),
        ("ck_prescriptions_dispense_status", DispenseStatus),
    ],
)
def test_the_database_allows_exactly_the_members(constraint, enum):
    definition = db.session.scalar(
        text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :name"),
        {"name": constraint},
    )
    assert set(re.findall(r"'([A-Z_0-9]+)'", definition)) == {m.value for m in enum}
