"""CSV downloads: formula cells neutralised, rows streamed in chunks."""

from __future__ import annotations

import csv
import io

from qure.core import exports


def test_cells_a_spreadsheet_would_run_get_an_apostrophe():
    assert exports.cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert exports.cell("+91 98") == "'+91 98"
    assert exports.cell("-2") == "'-2"
    assert exports.cell("@SUM(A1)") == "'@SUM(A1)"
    assert exports.cell("\t=1") == "'\t=1"
    assert exports.cell("Asha = 2") == "Asha = 2"
    assert exports.cell(None) == "" and exports.cell(12) == "12"


def test_numbers_stay_numbers_so_a_column_still_sums():
    from decimal import Decimal

    assert exports.cell(Decimal("-100.00")) == "-100.00"
    assert exports.cell(-3) == "-3" and exports.cell(-2.5) == "-2.5"
    assert exports.cell("-100.00") == "'-100.00"  # text is text, whatever it looks like
    assert exports.cell(True) == "True"


def test_lines_come_in_chunks_and_read_back_as_the_rows():
    rows = [(n, f"name {n}") for n in range(1, exports.CHUNK_ROWS * 2 + 3)]
    chunks = list(exports.lines(["n", "name"], rows))
    assert len(chunks) == 3
    read = list(csv.reader(io.StringIO("".join(chunks))))
    assert read[0] == ["n", "name"]
    assert read[1:] == [[str(n), name] for n, name in rows]


def test_the_caller_asks_for_csv_by_format_or_accept(app):
    with app.test_request_context("/x?format=csv"):
        assert exports.wants_csv()
    with app.test_request_context("/x", headers={"Accept": "text/csv"}):
        assert exports.wants_csv()
    with app.test_request_context("/x", headers={"Accept": "application/json"}):
        assert not exports.wants_csv()
    with app.test_request_context("/x", headers={"Accept": "*/*"}):
        assert not exports.wants_csv()
