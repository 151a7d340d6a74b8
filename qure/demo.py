"""Demo data: one account per role, a few realistic patients, and bulk synthetic patients.

Demo passwords are random, made at the first seed and kept in `instance/demo_accounts.json`
(never committed); `make run` prints them each time.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import func, select, text

from qure.auth import service as users
from qure.auth.models import User
from qure.core import audit, clock
from qure.core.money import round_money
from qure.extensions import db
from qure.patients import service as patients
from qure.patients.models import Patient
from qure.pharmacy import service as pharmacy
from qure.pharmacy import stock
from qure.pharmacy.catalogue import COMMON_MEDICINES
from qure.pharmacy.models import Batch, DrugSchedule, Medicine, MovementType
from qure.queue import board
from qure.scheduling import service as scheduling

DEMO_USERS = [
    {"username": "admin", "full_name": "Anita Desai", "role": "ADMIN"},
    {
        "username": "dr.sharma",
        "full_name": "Dr. Rohan Sharma",
        "role": "DOCTOR",
        "registration_number": "MMC-2011-04567",
        "qualification": "MBBS, MD (General Medicine)",
    },
    {
        "username": "pharma",
        "full_name": "Meera Iyer",
        "role": "PHARMACIST",
        "registration_number": "PCI-MH-88213",
    },
    {"username": "reception", "full_name": "Kavya Nair", "role": "RECEPTION"},
]

DEMO_PATIENTS = [
    (
        "Aarav Mehta",
        "1986-03-14",
        "M",
        "+919820011001",
        ["Penicillin"],
        ["Hypertension"],
    ),
    ("Priya Venkataraman", "1992-11-02", "F", "+919820011002", [], ["Asthma"]),
    (
        "Mohammed Irfan Shaikh",
        "1975-06-21",
        "M",
        "+919820011003",
        ["Sulfa drugs"],
        ["Type 2 diabetes"],
    ),
    (
        "Lakshmi Narayanan",
        "1958-01-30",
        "F",
        "+919820011004",
        [],
        ["Hypothyroidism", "Osteoarthritis"],
    ),
    ("Rahul Gupta", "2001-08-09", "M", "+919820011005", [], []),
    ("Sneha Kulkarni", "1996-04-17", "F", "+919820011006", ["Ibuprofen"], []),
    (
        "Gurpreet Singh Bedi",
        "1969-12-05",
        "M",
        "+919820011007",
        [],
        ["Hypertension", "Dyslipidaemia"],
    ),
    ("Fatima Begum", "1983-09-25", "F", "+919820011008", ["Latex"], []),
    ("Ananya Chatterjee", "2015-02-11", "F", "+919820011009", [], []),
    ("José D'Souza", "1990-07-19", "M", "+919820011010", [], []),
    (
        "Rekha Pillai",
        "1964-05-03",
        "F",
        "+919820011011",
        ["Aspirin"],
        ["Chronic kidney disease"],
    ),
    ("Vikram Reddy", "1979-10-28", "M", "+919820011012", [], ["Gout"]),
    ("अमित शर्मा", "1988-12-12", "M", "+919820011013", [], []),
    ("Sunita Yadav", "1973-03-08", "F", "+919820011014", [], ["Type 2 diabetes"]),
    ("Arjun Menon", "2019-06-30", "M", "+919820011015", ["Egg"], []),
]

FIRST = [
    "Aarav",
    "Vivaan",
    "Aditya",
    "Vihaan",
    "Arjun",
    "Sai",
    "Reyansh",
    "Ayaan",
    "Krishna",
    "Ishaan",
    "Shaurya",
    "Atharv",
    "Rohan",
    "Rahul",
    "Amit",
    "Sanjay",
    "Vikram",
    "Rajesh",
    "Suresh",
    "Ramesh",
    "Mahesh",
    "Anil",
    "Sunil",
    "Vijay",
    "Manoj",
    "Deepak",
    "Ajay",
    "Nikhil",
    "Karan",
    "Kunal",
    "Harsh",
    "Yash",
    "Dev",
    "Imran",
    "Farhan",
    "Salman",
    "Joseph",
    "Thomas",
    "George",
    "Gurpreet",
    "Harpreet",
    "Ananya",
    "Diya",
    "Saanvi",
    "Aadhya",
    "Pari",
    "Anika",
    "Navya",
    "Myra",
    "Sara",
    "Ira",
    "Priya",
    "Pooja",
    "Neha",
    "Sneha",
    "Kavya",
    "Divya",
    "Anjali",
    "Sunita",
    "Rekha",
    "Lakshmi",
    "Meena",
    "Geeta",
    "Seema",
    "Asha",
    "Usha",
    "Nisha",
    "Ritu",
    "Swati",
    "Shreya",
    "Tanvi",
    "Isha",
    "Riya",
    "Zara",
    "Fatima",
    "Ayesha",
    "Mary",
    "Grace",
    "Simran",
    "Jaspreet",
    "Lata",
    "Kamala",
    "Radha",
]
LAST = [
    "Sharma",
    "Verma",
    "Gupta",
    "Singh",
    "Kumar",
    "Patel",
    "Shah",
    "Mehta",
    "Joshi",
    "Desai",
    "Iyer",
    "Iyengar",
    "Nair",
    "Menon",
    "Pillai",
    "Reddy",
    "Rao",
    "Naidu",
    "Chowdary",
    "Banerjee",
    "Chatterjee",
    "Mukherjee",
    "Das",
    "Bose",
    "Ghosh",
    "Sen",
    "Dutta",
    "Roy",
    "Mishra",
    "Tiwari",
    "Pandey",
    "Dubey",
    "Shukla",
    "Tripathi",
    "Yadav",
    "Chauhan",
    "Rathore",
    "Thakur",
    "Malhotra",
    "Kapoor",
    "Khanna",
    "Chopra",
    "Bhatia",
    "Sethi",
    "Arora",
    "Kulkarni",
    "Deshpande",
    "Patil",
    "Pawar",
    "Jadhav",
    "Shinde",
    "Gaikwad",
    "Kamble",
    "Shaikh",
    "Khan",
    "Ansari",
    "Qureshi",
    "Siddiqui",
    "Syed",
    "Fernandes",
    "DSouza",
    "Pereira",
    "Rodrigues",
    "Gomes",
    "Dsilva",
    "Bedi",
    "Gill",
    "Sandhu",
    "Dhillon",
    "Grewal",
    "Bajwa",
    "Agarwal",
    "Goyal",
    "Bansal",
    "Jain",
    "Mittal",
    "Saxena",
    "Srivastava",
    "Bhatt",
    "Trivedi",
    "Vyas",
    "Dave",
    "Pandya",
    "Naik",
    "Hegde",
    "Shetty",
    "Kamath",
    "Prabhu",
    "Krishnan",
    "Subramanian",
]
MIDDLE = (
    "",
    "",
    "",
    "Kumar ",
    "Prasad ",
    "Devi ",
    "Lal ",
    "Chandra ",
    "Mohan ",
    "Rani ",
)
ALLERGENS = (
    "Penicillin",
    "Sulfa drugs",
    "Aspirin",
    "Ibuprofen",
    "Latex",
    "Peanuts",
    "Dust",
)
CONDITIONS = ("Hypertension", "Type 2 diabetes", "Asthma", "Hypothyroidism", "Migraine")


@dataclass
class Accounts:
    rows: list[dict] = field(default_factory=list)
    created: int = 0


def _accounts_file() -> Path:
    configured = current_app.config.get("DEMO_ACCOUNTS_FILE")
    return (
        Path(configured) if configured else Path(current_app.instance_path) / "demo_accounts.json"
    )


def seed_accounts() -> Accounts:
    """Create the demo accounts that do not exist yet (random passwords, kept in instance/)."""
    path = _accounts_file()
    saved = json.loads(path.read_text()) if path.exists() else {}
    result = Accounts()
    for spec in DEMO_USERS:
        name = spec["username"]
        exists = db.session.scalar(select(User).where(func.lower(User.username) == name))
        if exists is None:
            password = secrets.token_urlsafe(9)
            users.create_user(
                None, {**spec, "email": f"{name}@demo.qure.local", "password": password}
            )
            saved[name] = password
            result.created += 1
        result.rows.append({**spec, "password": saved.get(name)})
    if result.created:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=2))
        path.chmod(0o600)
    return result


def print_accounts(accounts: Accounts, display_key: str | None = None) -> None:
    click.echo("\nDemo accounts (passwords kept in instance/demo_accounts.json):")
    for row in accounts.rows:
        password = row["password"] or "(set before this folder's demo file; use flask create-user)"
        click.echo(f"  {row['role']:<11} {row['username']:<12} {password}")
    if display_key:
        click.echo(f"  Waiting-room board: /queue/board, display key {display_key}")
    click.echo("")


def seed_schedule(days: int = 14) -> int:
    """Give the demo doctor slots for the coming two weeks (Monday to Saturday, 09:00 to
    17:00 with lunch 13:00-14:00) and, when today's slots are new, book a few demo patients
    into today's open slots. Existing slots are kept. Returns the slots created."""

    admin = db.session.scalar(select(User).where(User.username == "admin"))
    doctor = db.session.scalar(select(User).where(User.username == "dr.sharma"))
    if admin is None or doctor is None or not doctor.is_active:
        return 0
    today = clock.today()
    result = scheduling.bulk_create(
        admin,
        {
            "doctor_id": doctor.id,
            "start_date": today,
            "end_date": today + timedelta(days=days - 1),
            "weekdays": {1, 2, 3, 4, 5, 6},  # Monday to Saturday
            "start_time": clock_time(9, 0),
            "end_time": clock_time(17, 0),
            "duration_minutes": 15,
            "breaks": [(clock_time(13, 0), clock_time(14, 0))],
        },
    )
    fresh_today = [s for s in result["slots"] if clock.clinic_day(s.start_at) == today]
    demo_patients = db.session.scalars(
        select(Patient).where(Patient.phone.in_([p[3] for p in DEMO_PATIENTS])).order_by(Patient.id)
    ).all()
    for slot, patient in zip(fresh_today[::3], demo_patients[:4], strict=False):
        scheduling.book(admin, {"patient_id": patient.id, "slot_id": slot.id, "reason": "Review"})
    return result["created"]


# Ingredients of the demo catalogue on Schedule H1 of the Drugs and Cosmetics Rules (the
# 2013 list: third- and fourth-generation cephalosporins, newer fluoroquinolones, tramadol,
# the benzodiazepines, ...): a medicine with one of them is added as an H1 medicine.
H1_INGREDIENTS = frozenset({"Alprazolam", "Cefixime", "Ceftriaxone", "Levofloxacin", "Tramadol"})
DEMO_REORDER_LEVEL = 20


def demo_schedule(generic_name: str) -> DrugSchedule:
    """H1 when one of the medicine's ingredients is on Schedule H1, else NONE."""
    return DrugSchedule.H1 if H1_INGREDIENTS & set(generic_name.split(" + ")) else DrugSchedule.NONE


def seed_medicines() -> int:
    """Add the common medicines (qure.pharmacy.catalogue) the catalogue lacks, those with a
    Schedule H1 ingredient as H1 medicines; returns how many were added."""

    admin = db.session.scalar(select(User).where(User.username == "admin"))
    have = {
        (name.lower(), strength.lower(), form)
        for name, strength, form in db.session.execute(
            select(Medicine.name, Medicine.strength, Medicine.dosage_form)
        )
    }
    added = 0
    for name, generic, drug_class, form, strength, maker, price, gst in COMMON_MEDICINES:
        if (name.lower(), strength.lower(), form) in have:
            continue
        pharmacy.create(
            admin,
            {
                "name": name,
                "generic_name": generic,
                "drug_class": drug_class,
                "dosage_form": form,
                "strength": strength,
                "manufacturer": maker,
                "unit_price": price,
                "gst_rate": gst,
                "hsn_code": "3004",
                "reorder_level": DEMO_REORDER_LEVEL,
                "schedule": demo_schedule(generic),
            },
        )
        added += 1
    return added


# Demo stock: who delivered it, and the three medicines the pharmacy's alerts point at.
SUPPLIERS = (
    "Shree Ganesh Pharma Distributors",
    "Sai Medical Agencies",
    "Navkar Pharma Wholesale",
    "Apollo Pharmacy Supply",
)
LOW_STOCK = ("Dolo 650", "650 mg", "TABLET")  # two small batches: at its reorder level
EXPIRING_SOON = ("Cetzine", "10 mg", "TABLET")  # one batch expires in three weeks
EXPIRED_ON_SHELF = ("Brufen", "400 mg", "TABLET")  # one batch expired last month, not disposed


def _demo_batches(name: str, strength: str, form: str, price: Decimal, today: date) -> list:
    """The batches a demo medicine is stocked with: (number, quantity, expiry, supplier,
    purchase price), the same for the same medicine on the same day. Numbers read like
    the packs' ("AM2411": letters of the name, then a year and a month)."""
    # Made-up demo data, not a secret: a text seed gives the same batches on every run.
    rng = random.Random(f"{name}|{strength}|{form}")  # nosec B311
    prefix = "".join(c for c in name.upper() if c.isalpha())[:2]
    key = (name, strength, form)
    # The expired batch on the shelf is the third of its medicine's.
    count = 2 if key in (LOW_STOCK, EXPIRED_ON_SHELF) else rng.choice((2, 3))
    rows = []
    for k in range(count):
        number = f"{prefix}{24 + k}{rng.randint(1, 12):02d}"  # the year makes each distinct
        quantity = rng.randint(20, 300)
        expiry = today + timedelta(days=rng.randint(61, 730))  # 2 to 24 months ahead
        cost = round_money(price * Decimal(rng.choice(("0.68", "0.72", "0.75"))))
        rows.append([number, quantity, expiry, rng.choice(SUPPLIERS), cost])
    if key == LOW_STOCK:
        rows[0][1], rows[1][1] = 8, DEMO_REORDER_LEVEL - 8
    elif key == EXPIRING_SOON:
        rows[0][2] = today + timedelta(days=21)
    return [tuple(row) for row in rows]


def seed_stock(fresh_only: bool = False) -> int:
    """Stock every demo medicine (qure.pharmacy.catalogue) that has never had a batch with
    2 or 3 batches received by the demo pharmacist, as `stock.stock_in` receives them
    (audited, one IN movement each): quantities 20-300, expiring 2 to 24 months from
    today. So that each of the pharmacy's alerts has something to show, Dolo 650 is left at
    its reorder level, a batch of Cetzine expires within 30 days, and Brufen keeps a batch
    that expired last month (written directly: stock-in refuses expired stock). A medicine
    that has a batch is left alone, so a second run adds nothing; with `fresh_only`
    nothing is added once the pharmacy holds any batch at all (`flask serve` stocks a new
    demo, never a pharmacy in use). Returns the batches added."""
    pharmacist = db.session.scalar(select(User).where(User.username == "pharma"))
    if pharmacist is None or not pharmacist.is_active:
        return 0
    if fresh_only and db.session.scalar(select(Batch.id).limit(1)) is not None:
        return 0
    today = clock.today()
    medicines = {
        (m.name.lower(), m.strength.lower(), m.dosage_form): m
        for m in db.session.scalars(select(Medicine))
    }
    stocked = set(db.session.scalars(select(Batch.medicine_id).distinct()))
    added = 0
    for name, _, _, form, strength, _, price, _ in COMMON_MEDICINES:
        medicine = medicines.get((name.lower(), strength.lower(), form))
        if medicine is None or medicine.id in stocked:
            continue
        rows = _demo_batches(name, strength, form, Decimal(price), today)
        received = stock.stock_in(
            pharmacist,
            {
                "medicine_id": medicine.id,
                "batches": [
                    {
                        "batch_number": number,
                        "quantity": quantity,
                        "expiry_date": expiry,
                        "mfg_date": expiry - timedelta(days=730),
                        "supplier": supplier,
                        "purchase_price": cost,
                    }
                    for number, quantity, expiry, supplier, cost in rows
                ],
            },
        )
        added += len(received)
        if (name, strength, form) == EXPIRED_ON_SHELF:
            _expired_batch(pharmacist, medicine, rows[-1][3], rows[-1][4], today)
            added += 1
    return added


def _expired_batch(
    pharmacist: User, medicine: Medicine, supplier: str, cost: Decimal, today: date
) -> None:
    """A batch that expired last month with stock still on the shelf, received (audited,
    an IN movement) as if before it expired."""
    expiry = today - timedelta(days=25)
    prefix = "".join(c for c in medicine.name.upper() if c.isalpha())[:2]
    batch = Batch(
        medicine_id=medicine.id,
        medicine=medicine,
        batch_number=f"{prefix}2309",
        quantity=40,
        expiry_date=expiry,
        mfg_date=expiry - timedelta(days=730),
        supplier=supplier,
        purchase_price=cost,
        received_by_id=pharmacist.id,
        received_at=clock.now(),
    )
    db.session.add(batch)
    db.session.flush()
    audit.record(
        pharmacist,
        "STOCK_RECEIVED",
        ("batch", batch.id),
        None,
        {
            "medicine_id": medicine.id,
            **{k: getattr(batch, k) for k in sorted(stock.BATCH_FIELDS)},
        },
    )
    stock.movement(MovementType.IN, pharmacist, batch, medicine, batch.quantity)


def seed_display_key() -> str | None:
    """A display key for the demo board, kept with the demo passwords (None when one is
    already set and its text is not known here)."""
    path = _accounts_file()
    saved = json.loads(path.read_text()) if path.exists() else {}
    if board.display_key_digest() is None:
        saved["display_key"] = board.set_display_key(None)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(saved, indent=2))
        path.chmod(0o600)
    return saved.get("display_key")


def seed_patients() -> int:
    """Register the demo patients that are not there yet; returns how many were added."""
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    added = 0
    for name, born, sex, phone, allergies, conditions in DEMO_PATIENTS:
        if db.session.scalar(select(Patient.id).where(Patient.phone == phone).limit(1)):
            continue
        patients.register(
            admin,
            {
                "full_name": name,
                "date_of_birth": date.fromisoformat(born),
                "sex": sex,
                "phone": phone,
                "allergies": allergies,
                "chronic_conditions": conditions,
            },
            confirm_new=True,
        )
        added += 1
    return added


def _synthetic_rows(count: int, seed: int, today: date):
    # Made-up demo patients: a seeded generator, not a secret.
    rng = random.Random(seed)  # nosec B311
    for _ in range(count):
        sex = rng.choice("FM")
        name = f"{rng.choice(FIRST)} {rng.choice(MIDDLE)}{rng.choice(LAST)}"
        born = today - timedelta(days=rng.randint(0, 90 * 365))
        phone = f"+91{rng.randint(6_000_000_000, 9_999_999_999)}"
        allergies = [rng.choice(ALLERGENS)] if rng.random() < 0.08 else []
        conditions = [rng.choice(CONDITIONS)] if rng.random() < 0.15 else []
        yield (
            name,
            patients.normalise_name(name),
            born,
            False,
            sex,
            phone,
            phone[1:],
            allergies,
            conditions,
        )


def bulk_patients(target: int, progress: bool = False) -> int:
    """Top the patients table up to `target` rows with synthetic patients, through COPY.

    Returns how many were added (0 when there are already that many). One audit record
    (PATIENTS_BULK_LOADED) covers the load.
    """
    existing = db.session.scalar(select(func.count()).select_from(Patient)) or 0
    missing = max(0, target - existing)
    if not missing:
        return 0
    columns = (
        "full_name, name_search, date_of_birth, dob_estimated, sex, phone, phone_digits, "
        "allergies, chronic_conditions"
    )
    started = time.monotonic()
    last_id = db.session.scalar(select(func.coalesce(func.max(Patient.id), 0)))
    # One set-based pass fills the name-word index after the COPY, instead of the trigger
    # firing a million times (the trigger steps aside for this transaction only).
    db.session.execute(text("SET LOCAL qure.bulk_load = 'on'"))
    raw = db.session.connection().connection.driver_connection
    rows = _synthetic_rows(missing, seed=existing + target, today=clock.today())
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY patients ({columns}) FROM STDIN") as copy,
        click.progressbar(
            rows,
            length=missing,
            label="Loading patients",
            show_pos=True,
            hidden=not progress,
        ) as bar,
    ):
        for row in bar:
            copy.write_row(row)
    db.session.execute(
        text(
            "INSERT INTO patient_search_terms (term, patient_id, pos) "
            "SELECT t.term, p.id, t.pos FROM patients p "
            "CROSS JOIN LATERAL qure_name_terms(p.name_search) AS t "
            "WHERE p.id > :last AND p.archived_at IS NULL"
        ),
        {"last": last_id},
    )
    db.session.execute(
        text(
            "INSERT INTO search_words (word) SELECT DISTINCT term FROM patient_search_terms "
            "WHERE patient_id > :last ON CONFLICT DO NOTHING"
        ),
        {"last": last_id},
    )
    # Back on before the commit: inside an enclosing transaction (the tests') a SET LOCAL
    # would outlive the savepoint this commit releases.
    db.session.execute(text("SET LOCAL qure.bulk_load = 'off'"))
    audit.record(None, "PATIENTS_BULK_LOADED", ("patient", None), None, {"count": missing})
    db.session.commit()
    if progress:
        click.echo(f"{missing} patients in {time.monotonic() - started:.1f} s")
    return missing


def vacuum_patients() -> None:
    """VACUUM (ANALYZE) the patient tables after a bulk load, so that searches start with
    planner statistics and a visibility map (index-only scans that need not visit the
    table) instead of waiting for autovacuum. VACUUM cannot run inside a transaction: it
    uses a connection of its own."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("patients", "patient_search_terms", "search_words"):
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))
