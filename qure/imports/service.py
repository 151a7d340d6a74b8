"""CSV imports of patients and medicines: a file is checked and kept at upload, then its
rows are imported by a job, each through the owning room's own service (patients.register,
the pharmacy's create and stock_in), so validation, audit and the outbox are the real ones.

Natural keys, so that a job run twice, or the same rows in another file, add nothing twice:

- patients: the same normalised full name, date of birth and phone as a patient already on
  file (archived ones too) is a duplicate, skipped and counted. The same phone and date of
  birth under another name is refused as a possible duplicate (registering such a patient
  needs a person's confirmation, as on the registration page).
- medicines: the same name, strength and form (any case) is the medicine already in the
  catalogue, not added again; a row's opening-stock batch (batch_number, quantity,
  expiry_date, ...) is received into it unless the medicine already has that batch number.
  A row that adds neither a medicine nor a batch is a duplicate.

The exact same file (same kind and SHA-256) uploaded again is the earlier import: the
upload points to it (and starts its job again only if that job is lost); it is not read a
second time.

Each row runs in its own savepoint: a row refused changes nothing, and the good rows land.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import islice
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import load_only

from qure.auth.models import User
from qure.core import clock
from qure.core.db import get_or_raise
from qure.core.errors import Conflict, DomainError, InvalidInput, NotFound
from qure.extensions import db
from qure.imports.models import Import, ImportKind, ImportStatus
from qure.patients import service as patients
from qure.pharmacy import service as catalogue
from qure.pharmacy import stock
from qure.pharmacy.models import Medicine

CHUNK_ROWS = 200  # rows committed (and progress reported) at a time
MAX_REJECTED_KEPT = 1000  # rejected rows whose line and reason are kept (all are counted)
MAX_RECORD_LINES = 20  # a quoted cell may span lines, but not more than these
MAX_RECORD_CHARS = 20_000
MAX_FILENAME = 200
SNIFF_BYTES = 8192

# A patient's columns are the registration's fields, but for the emergency contact (a
# structured field that a spreadsheet cell does not hold).
PATIENT_COLUMNS = tuple(f for f in patients.FIELDS if f != "emergency_contact")
PATIENT_REQUIRED = ("full_name", "date_of_birth", "sex", "phone")
PATIENT_EXAMPLE = (
    "Asha Devi Sharma",
    "1984-03-21",
    "",
    "F",
    "98765 43210",
    "asha@example.in",
    "12 MG Road, Pune",
    "B+",
    "Penicillin; Sulfa",
    "Asthma",
)
BATCH_COLUMNS = (
    "batch_number",
    "quantity",
    "expiry_date",
    "mfg_date",
    "supplier",
    "purchase_price",
)
MEDICINE_COLUMNS = (
    "name",
    "generic_name",
    "dosage_form",
    "strength",
    "unit_price",
    "gst_rate",
    "drug_class",
    "manufacturer",
    "hsn_code",
    "reorder_level",
    "schedule",
    *BATCH_COLUMNS,
)
MEDICINE_REQUIRED = ("name", "generic_name", "dosage_form", "strength", "unit_price", "gst_rate")
MEDICINE_EXAMPLE = (
    "Dolo 650",
    "Paracetamol",
    "TABLET",
    "650 mg",
    "2.00",
    "12",
    "Analgesic",
    "Micro Labs",
    "30049099",
    "50",
    "NONE",
    "DL-2401",
    "500",
    "2031-06-30",
    "2024-01-15",
    "Mahaveer Medi-Sales",
    "1.40",
)
COLUMNS = {ImportKind.PATIENTS: PATIENT_COLUMNS, ImportKind.MEDICINES: MEDICINE_COLUMNS}
REQUIRED = {ImportKind.PATIENTS: PATIENT_REQUIRED, ImportKind.MEDICINES: MEDICINE_REQUIRED}
EXAMPLES = {ImportKind.PATIENTS: PATIENT_EXAMPLE, ImportKind.MEDICINES: MEDICINE_EXAMPLE}
SEX_WORDS = {"f": "F", "female": "F", "m": "M", "male": "M", "o": "O", "other": "O"}
BAD_TEXT = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


class TooLarge(DomainError):
    """An upload over the import limit (IMPORT_MAX_BYTES)."""

    status = 413
    code = "too_large"


# ---- reading a file --------------------------------------------------------------------


def template(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The header and one example row of a kind's CSV (for the template download)."""
    found = _kind(kind)
    return COLUMNS[found], EXAMPLES[found]


def _kind(kind: str) -> ImportKind:
    try:
        return ImportKind(kind)
    except ValueError:
        raise InvalidInput.naming({"kind": "Choose patients or medicines."}) from None


def _text_of(content: bytes) -> str:
    """The file as text: UTF-8 (a spreadsheet's byte-order mark dropped); bytes that are
    not UTF-8 are kept as escapes, so that only their rows are refused."""
    return content.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


# A physical line and its end: only \r\n, \n and \r end one (as csv reads a file opened
# with newline=""); str.splitlines would also break on \x0c, \x1c-\x1e, \x85, \u2028
# and \u2029, which are text inside a cell.
LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def records(text: str) -> Iterator[tuple[int, list[str] | None, str | None]]:
    """(line, cells, None) for each CSV record of `text`, or (line, None, reason) for one
    that cannot be read; `line` is the physical line it starts on (the header is line 1).
    A quoted cell may span lines; a quote never closed spoils only its own line: reading
    goes on from the next one. Blank lines are skipped. Read lazily, a record at a time."""
    source = (found.group() for found in LINE.finditer(text))
    ahead: deque[str] = deque()  # lines read past a quote never closed, to read again
    line = 0  # the physical lines read so far

    def next_line() -> str | None:
        return ahead.popleft() if ahead else next(source, None)

    while (first := next_line()) is not None:
        line += 1
        start = line
        if not first.strip():
            continue
        taken = [first]
        chunk = first
        while chunk.count('"') % 2 and len(taken) < MAX_RECORD_LINES:
            if len(chunk) > MAX_RECORD_CHARS or (more := next_line()) is None:
                break
            taken.append(more)
            chunk += more
        if chunk.count('"') % 2:
            yield start, None, 'A quote (") is opened and never closed.'
            ahead.extendleft(reversed(taken[1:]))
            continue
        line += len(taken) - 1
        try:
            rows = list(csv.reader([chunk.rstrip("\r\n")], strict=True))
        except csv.Error as exc:
            yield start, None, f"Not a readable CSV line ({exc})."
            continue
        yield start, rows[0] if rows else [], None


def _header(content: bytes, kind: ImportKind) -> list[str]:
    """The file's columns, checked against the kind's; InvalidInput naming `file`."""
    if not content:
        raise InvalidInput.naming({"file": "The file is empty."})
    if b"\x00" in content[:SNIFF_BYTES]:
        raise InvalidInput.naming({"file": "This is not a CSV text file."})
    first = next(records(_text_of(content[: 64 * 1024])), None)
    if first is None or first[1] is None or BAD_TEXT.search(",".join(first[1])):
        raise InvalidInput.naming({"file": "This is not a CSV file with a header line."})
    columns = [" ".join(c.split()).lower().replace(" ", "_") for c in first[1]]
    expected = ", ".join(COLUMNS[kind])
    missing = [c for c in REQUIRED[kind] if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS[kind]]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or twice:
        problems = []
        if missing:
            problems.append("missing " + ", ".join(missing))
        if unknown:
            problems.append("unknown " + ", ".join(c or "(empty)" for c in unknown))
        if twice:
            problems.append("given twice " + ", ".join(twice))
        raise InvalidInput.naming(
            {
                "file": f"The header line does not fit a {kind.value} import "
                f"({'; '.join(problems)}). The columns are: {expected}."
            }
        )
    return columns


def _safe_filename(name: str | None) -> str:
    cleaned = " ".join((name or "").replace("\x00", "").split()).rpartition("/")[2]
    return cleaned.rpartition("\\")[2][:MAX_FILENAME] or "upload.csv"


# ---- receiving a file ------------------------------------------------------------------


def receive(
    actor: User, kind: str, filename: str | None, content: bytes, limit: int
) -> tuple[Import, bool]:
    """Keep an uploaded CSV file for import, after checking that it is one: not empty, text,
    with a header naming the kind's columns (InvalidInput naming `file`), at most `limit`
    bytes (TooLarge). Returns (the import, True), or (the earlier import, False) when the
    same file of the same kind was uploaded before."""
    found_kind = _kind(kind)
    if len(content) > limit:
        raise TooLarge(f"The file is larger than {limit // (1024 * 1024)} MB.", "too_large")
    _header(content, found_kind)
    rows = sum(1 for _record in records(_text_of(content))) - 1  # the header is no row
    if rows < 1:
        raise InvalidInput.naming({"file": "The file has its header line but no rows."})
    digest = hashlib.sha256(content).hexdigest()
    db.session.execute(
        select(func.pg_advisory_xact_lock(func.hashtext(f"import:{found_kind}:{digest}")))
    )
    earlier = db.session.scalar(
        select(Import).where(Import.kind == found_kind.value, Import.sha256 == digest)
    )
    if earlier is not None:
        return earlier, False
    upload = Import(
        kind=found_kind.value,
        filename=_safe_filename(filename),
        sha256=digest,
        size=len(content),
        content=content,
        created_by_id=actor.id,
        status=ImportStatus.QUEUED,
        job_id="",
        total_rows=rows,
    )
    db.session.add(upload)
    db.session.flush()
    upload.job_id = job_id_of(upload.id)
    db.session.flush()
    return upload, True


def job_id_of(import_id: int) -> str:
    """The RQ job id of an import's job (one per import: submitting it twice is once)."""
    return f"import-{import_id}"


# ---- reading imports -------------------------------------------------------------------

LISTED = (
    Import.id,
    Import.kind,
    Import.filename,
    Import.size,
    Import.created_by_id,
    Import.created_at,
    Import.status,
    Import.job_id,
    Import.total_rows,
    Import.processed,
    Import.imported,
    Import.duplicates,
    Import.rejected,
    Import.finished_at,
)


def get_import(import_id: int) -> Import:
    """The import with this id (without its content); NotFound otherwise."""
    return get_or_raise(
        Import,
        import_id,
        "No such import.",
        "import_not_found",
        options=(load_only(*LISTED[1:], Import.rejected_rows),),
    )


def recent(limit: int = 20) -> list[dict[str, Any]]:
    """The latest imports, newest first, with who uploaded them (one statement)."""
    query = (
        select(*LISTED, User.full_name.label("uploaded_by"))
        .join(User, User.id == Import.created_by_id)
        .order_by(Import.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in db.session.execute(query)]


def summary(upload: Import) -> dict[str, Any]:
    """An import's figures as pages and the API show them."""
    return {
        "id": upload.id,
        "kind": upload.kind,
        "filename": upload.filename,
        "status": upload.status,
        "job_id": upload.job_id,
        "created_at": upload.created_at,
        "finished_at": upload.finished_at,
        "done": upload.processed,
        "total": upload.total_rows,
        "imported": upload.imported,
        "duplicates": upload.duplicates,
        "rejected": upload.rejected,
        "finished": upload.status == ImportStatus.FINISHED,
    }


# ---- importing rows --------------------------------------------------------------------


@dataclass
class Tally:
    imported: int = 0
    duplicates: int = 0
    refused: list[dict] = field(default_factory=list)


def _reason(error: DomainError) -> str:
    if error.fields:
        return "; ".join(f"{name}: {message}" for name, message in error.fields.items())
    return error.message


def _cells(columns: list[str], cells: list[str]) -> dict[str, str]:
    return {c: v.strip() for c, v in zip(columns, cells, strict=True)}


def _optional(values: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    return {k: values[k] for k in keys if values.get(k)}


def _day(value: str, column: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        return clock.parse_day(value)
    except ValueError:
        errors[column] = "Not a date (YYYY-MM-DD or DD/MM/YYYY)."
        return None


def _whole(value: str, column: str, errors: dict[str, str]) -> int | None:
    if not value:
        return None
    typed = value.removesuffix("%").strip()
    if not re.fullmatch(r"-?[0-9]{1,9}", typed):
        errors[column] = "Not a whole number."
        return None
    return int(typed)


def _patient_data(values: dict[str, str]) -> dict[str, Any]:
    """A CSV row as patients.register takes it; InvalidInput naming the columns it cannot
    read (the service checks the rest)."""
    errors: dict[str, str] = {}
    data: dict[str, Any] = {
        "full_name": values.get("full_name", ""),
        "phone": values.get("phone", ""),
        "date_of_birth": _day(values.get("date_of_birth", ""), "date_of_birth", errors),
    }
    age = _whole(values.get("age_years", ""), "age_years", errors)
    if age is not None:
        data["age_years"] = age
    sex = values.get("sex", "")
    data["sex"] = SEX_WORDS.get(sex.lower(), sex)
    if sex and sex.lower() not in SEX_WORDS:
        errors["sex"] = "F, M or O (or Female, Male, Other)."
    data.update(_optional(values, ("email", "address", "blood_group")))
    data.update(_optional(values, ("allergies", "chronic_conditions")))
    if errors:
        raise InvalidInput.naming(errors)
    return data


def import_patient(actor: User, values: dict[str, str]) -> bool:
    """Register one row's patient; False when the same person is on file already.
    Raises InvalidInput (bad fields) and Conflict (a possible duplicate, another name)."""
    data = _patient_data(values)
    try:
        patients.register(actor, data)
    except Conflict as exc:
        if exc.code != "possible_duplicate":
            raise
        name = patients.normalise_name(data["full_name"])
        candidates = exc.details.get("candidates", [])
        if any(patients.normalise_name(c["full_name"]) == name for c in candidates):
            return False
        mrns = ", ".join(c["mrn"] for c in candidates)
        raise Conflict(
            f"phone, date_of_birth: the same as {mrns} under another name; register this "
            "patient by hand if they are someone else.",
            "possible_duplicate",
        ) from None
    return True


def _medicine_data(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    errors: dict[str, str] = {}
    data: dict[str, Any] = {k: values.get(k, "") for k in ("name", "generic_name", "strength")}
    data["dosage_form"] = values.get("dosage_form", "")
    data["unit_price"] = values.get("unit_price", "")
    data["gst_rate"] = _whole(values.get("gst_rate", ""), "gst_rate", errors)
    data.update(_optional(values, ("drug_class", "manufacturer", "hsn_code", "schedule")))
    level = _whole(values.get("reorder_level", ""), "reorder_level", errors)
    if level is not None:
        data["reorder_level"] = level
    batch = None
    if any(values.get(k) for k in BATCH_COLUMNS):
        batch = {k: values[k] for k in BATCH_COLUMNS if values.get(k)}
    if errors:
        raise InvalidInput.naming(errors)
    return data, batch


def _existing_medicine(data: dict[str, Any]) -> Medicine | None:
    values = catalogue.clean(data)
    return catalogue.find_medicine(values["name"], values["strength"], values["dosage_form"])


def _receive_batch(actor: User, medicine: Medicine, batch: dict[str, Any]) -> bool:
    """Receive the row's batch into the medicine; False when it has that batch already."""
    try:
        stock.stock_in(actor, {"medicine_id": medicine.id, "batches": [batch]})
    except (InvalidInput, Conflict) as exc:
        if exc.code == stock.BATCH_EXISTS:
            return False
        if isinstance(exc, Conflict):
            raise
        # The stock-in form's names ("batches.0.quantity") are this file's columns.
        fields = {k.removeprefix("batches.0."): v for k, v in exc.fields.items()}
        raise InvalidInput(exc.message, fields=fields) from None
    return True


def import_medicine(actor: User, values: dict[str, str]) -> bool:
    """Add one row's medicine (unless the catalogue has it) and receive its opening-stock
    batch (unless the medicine has that batch number); False when the row adds nothing.
    Raises InvalidInput naming the columns."""
    data, batch = _medicine_data(values)
    medicine = _existing_medicine(data)
    added = medicine is None
    if medicine is None:
        medicine = catalogue.create(actor, data)
    if batch is None:
        return added
    return _receive_batch(actor, medicine, batch) or added


IMPORTERS = {ImportKind.PATIENTS: import_patient, ImportKind.MEDICINES: import_medicine}
# Importers whose every refusal comes before their first write (a patient's row: the
# checks, the duplicate search, then one INSERT), so a refused row needs no savepoint of
# its own; a medicine's row may create the medicine and then refuse its batch.
CHECKS_BEFORE_WRITES = {ImportKind.PATIENTS}


def _import_row(
    actor: User,
    kind: ImportKind,
    columns: list[str],
    record: Record,
    tally: Tally,
    own_savepoint: bool = True,
) -> None:
    """One record: imported, a duplicate, or refused with its reason. In its own savepoint
    unless the importer refuses before writing (`CHECKS_BEFORE_WRITES`)."""
    line, cells, bad = record
    if bad is None and len(cells) != len(columns):
        bad = f"Has {len(cells)} columns; the header has {len(columns)}."
    if bad is None:
        spoiled = [c for c, v in zip(columns, cells, strict=True) if BAD_TEXT.search(v)]
        if spoiled:
            bad = f"{spoiled[0]}: not UTF-8 text (save the file as CSV UTF-8)."
    if bad is None:
        try:
            if own_savepoint:
                with db.session.begin_nested():
                    added = IMPORTERS[kind](actor, _cells(columns, cells))
            else:
                added = IMPORTERS[kind](actor, _cells(columns, cells))
        except DomainError as exc:
            bad = _reason(exc)
        except SQLAlchemyError as exc:
            if not own_savepoint:
                raise  # the chunk's savepoint is spoiled: run again a savepoint a row
            bad = _refused_by_database(exc)
        else:
            if added:
                tally.imported += 1
            else:
                tally.duplicates += 1
            return
    shown = [BAD_TEXT.sub("\ufffd", v)[:200] for v in (cells or [])][: len(columns) + 5]
    tally.refused.append({"line": line, "reason": bad[:500], "values": shown})


def _refused_by_database(exc: SQLAlchemyError) -> str:
    """A row the checks let through but the database refused (a constraint, a trigger):
    named by the database's own words, not the row's values."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    named = getattr(diag, "constraint_name", None) or getattr(diag, "message_primary", None)
    return (
        f"The database refused this row ({named})." if named else ("The database refused this row.")
    )


def _import_chunk(actor: User, kind: ImportKind, columns: list[str], rows: list[Record]) -> Tally:
    """A chunk of records. Where refusals come before writes, the chunk runs in one
    savepoint (two statements a row fewer); should the database refuse a statement all
    the same, the chunk is rolled back to it and run again a savepoint a row."""
    if kind in CHECKS_BEFORE_WRITES:
        tally = Tally()
        try:
            with db.session.begin_nested():
                for record in rows:
                    _import_row(actor, kind, columns, record, tally, own_savepoint=False)
            return tally
        except SQLAlchemyError:
            pass
    tally = Tally()
    for record in rows:
        _import_row(actor, kind, columns, record, tally)
    return tally


def begin(import_id: int) -> Import | None:
    """Mark an import as being read (locked, so two runs do not read it at once); None
    when it has been read to the end already."""
    upload = get_or_raise(Import, import_id, "No such import.", "import_not_found", lock=True)
    if upload.status == ImportStatus.FINISHED:
        return None
    upload.status = ImportStatus.RUNNING
    db.session.flush()
    return upload


Record = tuple[int, list[str] | None, str | None]


def pending_rows(import_id: int, start: int) -> tuple[list[str], Iterator[Record]]:
    """An import's columns and its records from the `start`th on (0: the first after the
    header), read lazily from the kept file as the caller takes them."""
    content = db.session.scalar(select(Import.content).where(Import.id == import_id))
    if content is None:
        raise NotFound("No such import.", "import_not_found")
    reader = records(_text_of(content))
    _line, header, _bad = next(reader)
    columns = [" ".join(c.split()).lower().replace(" ", "_") for c in header or []]
    return columns, islice(reader, start, None)


def import_rows(import_id: int, columns: list[str], rows: list[Record], start: int) -> Import:
    """Import these records of an import, the ones from its `start`th (from
    `pending_rows`), as the admin who uploaded it, and add them to its counts. Runs under
    the import's row lock, so a second run of the same job waits; when the import is no
    longer at `start` (that run did these rows, or the import is finished) nothing is done
    and the import is returned as it is, for the caller to read on from its `processed`.
    Returns the import."""
    upload = get_or_raise(Import, import_id, "No such import.", "import_not_found", lock=True)
    if upload.status == ImportStatus.FINISHED or upload.processed != start:
        return upload
    actor = db.session.get(User, upload.created_by_id)
    kind = ImportKind(upload.kind)
    tally = _import_chunk(actor, kind, columns, rows)
    upload.processed = min(upload.processed + len(rows), upload.total_rows)
    upload.imported += tally.imported
    upload.duplicates += tally.duplicates
    upload.rejected += len(tally.refused)
    room = MAX_REJECTED_KEPT - len(upload.rejected_rows)
    if tally.refused and room > 0:
        upload.rejected_rows = [*upload.rejected_rows, *tally.refused[:room]]
    db.session.flush()
    return upload


def finish(import_id: int) -> Import:
    """Mark an import read to the end. Returns it."""
    upload = get_or_raise(Import, import_id, "No such import.", "import_not_found", lock=True)
    if upload.status != ImportStatus.FINISHED:
        upload.processed = upload.total_rows
        upload.status = ImportStatus.FINISHED
        upload.finished_at = clock.now()
        db.session.flush()
    return upload
