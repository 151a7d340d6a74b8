"""Reading the pharmacy pages as a person does: a table's rows as text, a field's errors."""

from __future__ import annotations

import re

from qure.core import clock
from qure.extensions import db
from qure.pharmacy.models import Batch
from tests.pharmacy.helpers import in_days


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def table(page: str, table_id: str) -> list[list[str]]:
    """The body rows of `<table id=table_id>`, each a list of its cells' text."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert found, f"no table {table_id} on the page"
    body = found.group(1).split("<tbody>", 1)[1]
    return [
        [_text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def names(page: str, table_id: str) -> list[str]:
    """The first cell of each row up to its strength: the medicine's name."""
    return [row[0].split(" 500 mg")[0] for row in table(page, table_id)]


def cell_errors(page: str, name: str) -> list[str]:
    """The error messages shown in the table cell or field block holding input `name`."""
    for block in re.findall(r'<td class="[^"]*">(.*?)</td>', page, re.S) + re.findall(
        r'<div class="field[^"]*">.*?\n</div>', page, re.S
    ):
        if f'name="{name}"' in block:
            return re.findall(r'<p class="error">(.*?)</p>', block, re.S)
    raise AssertionError(f"no input {name} on the page")


def expired_batch(actor, med, number: str, quantity: int, days_ago: int = 1) -> Batch:
    """A batch that expired `days_ago` days ago (stock-in refuses one: put on the shelf
    before it expired)."""
    batch = Batch(
        medicine_id=med.id,
        batch_number=number,
        quantity=quantity,
        expiry_date=in_days(-days_ago),
        received_by_id=actor.id,
        received_at=clock.now(),
    )
    db.session.add(batch)
    db.session.commit()
    return batch


def quantity_of(batch: Batch) -> int:
    return db.session.get(Batch, batch.id, populate_existing=True).quantity
