"""The printed prescription (SPEC section 6): an A5 PDF with everything the pharmacist and
the patient need (generic names in capitals, units on doses and quantities, the complaint
and findings, the temperature in the clinic's unit), made from the app's own static files
only (no network, no `file://`), in the fonts the app ships, legible in Devanagari on a
machine with no fonts of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

import pytest
from pypdf import PdfReader
from weasyprint import HTML

from qure.core import pdf as core_pdf
from qure.core.db import commit
from qure.core.pdf import STATIC_BASE, StaticOnlyFetcher
from qure.core.roles import Role
from qure.pharmacy.models import DOSAGE_FORMS
from qure.prescriptions import service
from qure.visits import service as visits
from tests.helpers import bearer, make_patient, make_user
from tests.prescriptions.test_service import item, make_medicines, start_visit

URL = "/api/v1/prescriptions"
A5 = (419.53, 595.28)  # 148 mm x 210 mm in points
PASSWD_LINE = "root:x:0:0"
ROOT = Path(__file__).resolve().parents[2]
FINDINGS = {
    "chief_complaint": "Cough and fever",
    "symptom_duration": "5 days",
    "diagnosis": "Acute bronchitis",
    "icd10_code": "J20.9",
    "follow_up_date": date(2030, 1, 14),
    "vitals": {
        "bp_systolic": 130,
        "bp_diastolic": 85,
        "temperature": 37.8,
        "pulse": 88,
        "spo2": 98,
        "weight_kg": 70,
        "height_cm": 170,
    },
}


# ---- helpers -------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """The text of every page, whitespace runs made single spaces (lines wrap anywhere)."""
    reader = PdfReader(BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def pdf_lines(data: bytes) -> list[str]:
    """Every printed line of every page, as text extraction finds them."""
    reader = PdfReader(BytesIO(data))
    return [line.strip() for page in reader.pages for line in page.extract_text().splitlines()]


def squeezed(text: str) -> str:
    """Without any whitespace: text extraction may split a word or a cluster."""
    return "".join(text.split())


def font_names(data: bytes) -> list[str]:
    reader = PdfReader(BytesIO(data))
    names = []
    for page in reader.pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        names += [str(font.get_object()["/BaseFont"]) for font in fonts.get_object().values()]
    return names


def print_as(client, user, prescription_id: int):
    return client.get(f"{URL}/{prescription_id}/print", headers=bearer(client, user))


def pdf_of(response) -> bytes:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/pdf"
    data = response.get_data()
    assert data.startswith(b"%PDF-")
    return data


class Recorder:
    """A local HTTP server that answers 200 to anything and remembers every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                recorder.requests.append(self.path)
                body = b"body { background: red }"
                self.send_response(200)
                self.send_header("Content-Type", "text/css")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _monday_ten_oclock(clinic_now):
    return clinic_now


@pytest.fixture
def meds(app):
    return make_medicines()


@pytest.fixture
def physician(app):
    return make_user(
        Role.DOCTOR,
        full_name="Dr Meera Kulkarni",
        qualification="MBBS, MD (Medicine)",
        registration_number="MMC-2011-04567",
    )


@pytest.fixture
def patient(reception):
    return make_patient(
        reception,
        full_name="Asha Devi Sharma",
        date_of_birth=date(1990, 1, 1),
        sex="F",
        allergies=["Sulfa", "Dust mites"],
    )


@pytest.fixture
def printed(physician, patient, meds):
    """A prescription with every part the print shows."""
    visit = start_visit(physician, patient, **FINDINGS)
    finding = {"category": "OBSERVATION", "text": "Wheeze over both lungs"}
    visits.add_note(physician, visit.id, finding)
    prescription = service.create(
        physician,
        {
            "visit_id": visit.id,
            "notes": "Plenty of warm fluids",
            "items": [
                item(meds["amoxil"], dose=0.5, frequency="1-0-1", instructions="after food"),
                item(meds["augmentin"], dose=1, frequency="BD"),
                item(meds["crocin"], dose=1, frequency="TDS", duration_days=3),
                item(meds["benadryl"], dose=5, frequency="HS", quantity=1, route="oral"),
                item(meds["asthalin"], dose=2, frequency="SOS", duration_days=30, quantity=1),
            ],
        },
    )
    commit()
    return prescription


# ---- the printed prescription ----------------------------------------------------------------


def test_an_estimated_age_prints_as_estimated(client, reception, physician, meds):
    guessed = make_patient(reception, full_name="Ravi Kumar", date_of_birth=None, age_years=58)
    visit = start_visit(physician, guessed, **FINDINGS)
    prescription = service.create(
        physician, {"visit_id": visit.id, "items": [item(meds["crocin"], dose=1, frequency="TDS")]}
    )
    commit()
    text = pdf_text(pdf_of(print_as(client, reception, prescription.id)))
    assert "58 y (estimated)" in " ".join(text.split())


@pytest.mark.parametrize("role", [Role.RECEPTION, Role.PHARMACIST, Role.ADMIN, Role.DOCTOR])
def test_every_staff_role_prints_the_prescription(client, printed, patient, role):
    response = print_as(client, make_user(role), printed.id)
    data = pdf_of(response)
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert f"prescription-{patient.mrn}-{printed.id}.pdf" in disposition
    assert "Asha Devi Sharma" in pdf_text(data)


def test_the_print_carries_everything_the_spec_lists(client, reception, printed, patient):
    data = pdf_of(print_as(client, reception, printed.id))
    text = pdf_text(data)
    expected = [
        # the clinic
        "Qure Clinic",
        "12 MG Road, Pune 411001",
        "+91 20 4000 1234",
        "Clinic reg. MH/PMC/2024/0001",
        # the doctor
        "Dr Meera Kulkarni",
        "MBBS, MD (Medicine)",
        "MMC-2011-04567",
        # date, patient
        "07 Jan 2030",
        "Asha Devi Sharma",
        "40 y",
        "Female",
        f"MRN {patient.mrn}",
        "Allergies: Sulfa, Dust mites",
        # vitals, complaint, findings and diagnosis
        "BP 130/85 mmHg",
        "Temp 37.8 °C",
        "Pulse 88",
        "SpO₂ 98",
        "Weight 70 kg",
        "BMI 24.2",
        "Complaint: Cough and fever (since 5 days)",
        "Findings: Wheeze over both lungs",
        "Diagnosis: Acute bronchitis (J20.9)",
        # the medicines: the generic name in capitals, the brand with strength and form
        # below it, dose and quantity with units, frequency in words, days
        "AMOXICILLIN Amoxil 500 mg capsule",
        "after food",
        "½ cap 1-0-1: morning and night 5 5 caps",
        "AMOXICILLIN + CLAVULANIC ACID Augmentin 625 mg tablet",
        "1 tab BD: twice a day 5 10 tabs",
        "PARACETAMOL Crocin 500 mg tablet",
        "1 tab TDS: three times a day 3 9 tabs",
        "DIPHENHYDRAMINE Benadryl 12.5 mg/5 ml syrup",
        "Route: oral",
        "5 ml HS: at night 5 1 bottle",
        "SALBUTAMOL Asthalin 100 mcg inhaler",
        "2 puffs SOS: when needed 30 1 inhaler",
        # advice, follow-up, signature, page numbers
        "Plenty of warm fluids",
        "Follow-up: 14 Jan 2030",
        "Signature",
        "Page 1 of 1",
    ]
    missing = [part for part in expected if part not in text]
    assert not missing, f"missing {missing} from:\n{text}"
    assert "Amoxicillin + Clavulanic Acid" not in text


def test_the_temperature_prints_in_the_clinics_unit(app, client, reception, printed, monkeypatch):
    monkeypatch.setitem(app.config, "TEMPERATURE_UNIT", "F")
    text = pdf_text(pdf_of(print_as(client, reception, printed.id)))
    assert "Temp 100.0 °F" in text  # 37.8 °C
    assert "°C" not in text


def test_registration_numbers_never_break_across_lines(client, reception, patient, meds):
    """A number split as "2011/04567 (Maharashtra" and "Medical Council)" reads as two."""
    number = "2011/04567 (Maharashtra Medical Council)"
    doctor = make_user(Role.DOCTOR, full_name="Dr Anil Deshpande", registration_number=number)
    visit = start_visit(doctor, patient)
    prescription = service.create(doctor, {"visit_id": visit.id, "items": [item(meds["crocin"])]})
    commit()
    lines = pdf_lines(pdf_of(print_as(client, reception, prescription.id)))
    for unbroken in (number, "Clinic reg. MH/PMC/2024/0001"):
        assert any(unbroken in line for line in lines), (unbroken, lines)


@pytest.mark.parametrize(
    ("amount", "form", "packs", "printed"),
    [
        (Decimal("0.5"), "TABLET", False, "½ tab"),
        (Decimal("1"), "TABLET", False, "1 tab"),
        (Decimal("1.5"), "TABLET", False, "1½ tabs"),
        (9, "TABLET", True, "9 tabs"),
        (1, "TABLET", True, "1 tab"),
        (Decimal("1"), "CAPSULE", False, "1 cap"),
        (14, "CAPSULE", True, "14 caps"),
        (Decimal("2.5"), "SYRUP", False, "2.5 ml"),
        (Decimal("10"), "SUSPENSION", False, "10 ml"),
        (1, "SYRUP", True, "1 bottle"),
        (2, "SUSPENSION", True, "2 bottles"),
        (Decimal("2"), "DROPS", False, "2 drops"),
        (Decimal("1"), "DROPS", False, "1 drop"),
        (1, "DROPS", True, "1 bottle"),
        (Decimal("2"), "INHALER", False, "2 puffs"),
        (1, "INHALER", True, "1 inhaler"),
        (Decimal("1"), "OINTMENT", False, "1 appl."),
        (2, "CREAM", True, "2 tubes"),
        (Decimal("1"), "INJECTION", False, "1"),
        (5, "INJECTION", True, "5 vials"),
        (Decimal("0.25"), "OTHER", False, "0.25"),
        (3, "OTHER", True, "3 packs"),
    ],
)
def test_doses_and_quantities_carry_their_forms_unit(amount, form, packs, printed):
    assert service.in_units(amount, form, packs=packs) == printed


def test_every_dosage_form_has_units():
    assert set(service.UNITS) == set(DOSAGE_FORMS)


def test_the_print_is_one_a5_page(client, pharmacist, printed):
    reader = PdfReader(BytesIO(pdf_of(print_as(client, pharmacist, printed.id))))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx(A5, abs=0.5)


def test_a_long_prescription_numbers_its_pages(client, pharmacist, physician, patient, meds):
    visit = start_visit(physician, patient, **FINDINGS)
    items = [
        item(meds["crocin"], instructions=f"Item {n}: after food, with a full glass of water")
        for n in range(1, 31)
    ]
    prescription = service.create(physician, {"visit_id": visit.id, "items": items})
    commit()
    data = pdf_of(print_as(client, pharmacist, prescription.id))
    reader = PdfReader(BytesIO(data))
    pages = len(reader.pages)
    assert pages >= 2
    for number, page in enumerate(reader.pages, start=1):
        box = page.mediabox
        assert (float(box.width), float(box.height)) == pytest.approx(A5, abs=0.5)
        assert f"Page {number} of {pages}" in " ".join(page.extract_text().split())
    assert "Item 30: after food" in pdf_text(data)


def test_a_patient_without_allergies_prints_none_recorded(client, reception, physician, meds):
    visit = start_visit(physician, make_patient(full_name="Ravi Kumar Iyer", sex="M"))
    prescription = service.create(
        physician, {"visit_id": visit.id, "items": [item(meds["crocin"])]}
    )
    commit()
    text = pdf_text(pdf_of(print_as(client, reception, prescription.id)))
    assert "Ravi Kumar Iyer" in text
    assert "Male" in text
    assert "Allergies: none recorded" in text


def test_printing_an_unknown_prescription_is_not_found(client, reception):
    response = print_as(client, reception, 999_999)
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "prescription_not_found"


# ---- nothing is fetched ------------------------------------------------------------------------


def test_markup_typed_by_users_prints_as_text_and_fetches_nothing(
    client, pharmacist, physician, meds
):
    with Recorder() as recorder:
        image = f'<img src="{recorder.url("x")}">'
        sheet = f'<link rel=stylesheet href="{recorder.url("y.css")}">'
        hostile = f"file:///etc/passwd {sheet}"
        patient = make_patient(full_name=image)
        visit = start_visit(physician, patient, diagnosis=f"Viral fever {hostile}")
        visits.add_note(physician, visit.id, {"category": "OBSERVATION", "text": hostile})
        prescription = service.create(
            physician,
            {
                "visit_id": visit.id,
                "notes": hostile,
                "items": [
                    item(
                        meds["crocin"],
                        instructions='<iframe src="file:///etc/passwd"></iframe>',
                    )
                ],
            },
        )
        commit()
        data = pdf_of(print_as(client, pharmacist, prescription.id))
        assert recorder.requests == []

    reader = PdfReader(BytesIO(data))
    text = pdf_text(data)
    for shown in (image, sheet, "file:///etc/passwd", '<iframe src="file:///etc/passwd">'):
        assert squeezed(shown) in squeezed(text), f"{shown} not printed as text in:\n{text}"
    assert PASSWD_LINE not in text
    assert not reader.attachments
    # The app's own stylesheet still applies (A5, not the default A4).
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx(A5, abs=0.5)


def hostile_page(recorder: Recorder) -> str:
    """Markup that would make a permissive renderer fetch from the recorder and read files."""
    return f"""<!doctype html><html><head>
<link rel="stylesheet" href="{recorder.url("linked.css")}">
<link rel="stylesheet" href="file:///etc/passwd">
<link rel="attachment" href="file:///etc/passwd">
<style>
@import url("{recorder.url("imported.css")}");
@font-face {{ font-family: Remote; src: url("{recorder.url("font.ttf")}"); }}
body {{ font-family: Remote; background: url("{recorder.url("background.png")}"); }}
p {{ background-image: url("file:///etc/passwd"); }}
</style></head><body>
<p>Hostile page</p>
<img src="{recorder.url("image.png")}">
<img src="file:///etc/passwd">
<img src="../../config.py">
<object data="file:///etc/passwd"></object>
<embed src="{recorder.url("embedded.svg")}">
<a rel="attachment" href="file:///etc/passwd">attached</a>
</body></html>"""


def test_markup_that_got_through_still_fetches_nothing(app, monkeypatch):
    """Even if a template let markup through unescaped, render_pdf's fetcher serves only the
    app's static files: no request reaches the network, no local file is read."""
    with Recorder() as recorder:
        page = hostile_page(recorder)
        monkeypatch.setattr(core_pdf, "render_template", lambda template, **values: page)
        with app.test_request_context():
            data = core_pdf.render_pdf("pdf/prescription.html")
        assert recorder.requests == []

    reader = PdfReader(BytesIO(data))
    assert "Hostile page" in pdf_text(data)
    assert PASSWD_LINE not in pdf_text(data)
    assert not reader.attachments


def test_the_hostile_page_would_fetch_with_a_permissive_renderer(app):
    """The control for the test above: rendered with WeasyPrint's default fetcher, the same
    markup does reach the recorder, so its silence above is the fetcher's doing."""
    with Recorder() as recorder:
        page = hostile_page(recorder).replace("file:///etc/passwd", recorder.url("passwd"))
        page = page.replace('<img src="../../config.py">', "")  # would look up a .invalid host
        HTML(string=page, base_url=STATIC_BASE).write_pdf()
        assert "/linked.css" in recorder.requests
        assert "/image.png" in recorder.requests


# ---- the fetcher itself ------------------------------------------------------------------------


@pytest.fixture
def fetcher(app) -> StaticOnlyFetcher:
    return StaticOnlyFetcher(app.static_folder)


def test_the_fetcher_serves_the_apps_static_files(app, fetcher):
    expected = (Path(app.static_folder) / "css" / "pdf.css").read_bytes()
    for url in (STATIC_BASE + "css/pdf.css", STATIC_BASE + "css/pdf.css?v=2#top"):
        response = fetcher.fetch(url)
        assert response.read() == expected
        assert response.headers.get_content_type() == "text/css"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x",
        "https://127.0.0.1:9/x",
        "file:///etc/passwd",
        "data:text/css,body{}",
        "ftp://127.0.0.1/x",
        STATIC_BASE + "../../qure/config.py",
        STATIC_BASE + "../config.py",
        STATIC_BASE + "css/../../config.py",
        STATIC_BASE + "/etc/passwd",
        STATIC_BASE + "%2e%2e/%2e%2e/qure/config.py",
        STATIC_BASE + "css",
        STATIC_BASE + "css/missing.css",
        "https://pdf.qure.invalid/static-other/css/pdf.css",
        "https://pdf.qure.invalid/config.py",
    ],
)
def test_the_fetcher_refuses_everything_else(fetcher, url):
    with pytest.raises(ValueError):
        fetcher.fetch(url)


def test_the_fetcher_is_what_weasyprint_calls(fetcher):
    with pytest.raises(ValueError):
        fetcher("file:///etc/passwd")
    assert fetcher(STATIC_BASE + "css/pdf.css").read()


# ---- fonts: shipped with the app -------------------------------------------------------------

SHIPPED = {
    "Qure-Noto-Sans",
    "Qure-Noto-Sans-Bold",
    "Qure-Noto-Sans-Devanagari",
    "Qure-Noto-Sans-Devanagari-Bold",
}


def base_names(fonts: list[str]) -> set[str]:
    """The font names without their subset tag: "/ABCDEF+Qure-Noto-Sans" -> "Qure-Noto-Sans"."""
    return {font.lstrip("/").split("+")[-1] for font in fonts}


def test_a_devanagari_name_prints_in_the_shipped_font(client, reception, physician, meds):
    name = "राम कुमार"
    visit = start_visit(physician, make_patient(full_name=name, sex="M"))
    prescription = service.create(
        physician, {"visit_id": visit.id, "items": [item(meds["crocin"])]}
    )
    commit()
    data = pdf_of(print_as(client, reception, prescription.id))
    assert squeezed(name) in squeezed(pdf_text(data))
    fonts = base_names(font_names(data))
    # Every glyph comes from the fonts under static/fonts/, none from the system's.
    assert any("NotoSansDevanagari" in font.replace("-", "") for font in fonts), fonts
    assert fonts <= SHIPPED, fonts


NO_SYSTEM_FONTS = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig><cachedir>{cache}</cachedir></fontconfig>
"""
RENDER_WITHOUT_FONTS = """
import json, sys
from datetime import date
from qure import create_app
from qure.core.pdf import render_pdf
app = create_app({"TESTING": True, "QURE_ENV": "testing", "SECRET_KEY": "x" * 64})
values = json.loads(sys.argv[1])
with app.test_request_context():
    pdf = render_pdf("pdf/prescription.html", date=date(2030, 1, 7), **values)
sys.stdout.buffer.write(pdf)
"""


def test_the_print_needs_no_system_fonts(tmp_path):
    """Rendered where fontconfig knows no font at all, the prescription still prints its
    Latin and Devanagari text, in the shipped fonts."""
    (tmp_path / "fonts.conf").write_text(NO_SYSTEM_FONTS.format(cache=tmp_path / "cache"))
    values = {
        "clinic": {"name": "Qure Clinic", "address": "", "phone": "", "registration": ""},
        "doctor": {"full_name": "Dr Meera Kulkarni", "registration_number": "MMC-2011-04567"},
        "patient": {"full_name": "राम कुमार", "age": "40 y", "sex": "Male", "mrn": "QC-000001"},
        "vitals": {},
        "findings": {},
        "items": [],
    }
    env = {**os.environ, "FONTCONFIG_FILE": str(tmp_path / "fonts.conf")}
    done = subprocess.run(
        [sys.executable, "-c", RENDER_WITHOUT_FONTS, json.dumps(values)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert b"No fonts configured" in done.stderr  # the system really has none
    data = done.stdout
    assert squeezed("राम कुमार") in squeezed(pdf_text(data))
    assert "MMC-2011-04567" in pdf_text(data)
    fonts = base_names(font_names(data))
    assert fonts <= SHIPPED, fonts
    assert any("NotoSansDevanagari" in font.replace("-", "") for font in fonts), fonts


def test_the_print_carries_the_clinic_settings_an_admin_saved(client, reception, printed):
    from qure.admin import settings

    settings.update(
        make_user(Role.ADMIN),
        {"clinic_name": "Shanti Clinic", "address": "4 FC Road, Pune 411004", "phone": ""},
    )
    commit()
    text = " ".join(pdf_text(pdf_of(print_as(client, reception, printed.id))).split())
    assert "Shanti Clinic" in text
    assert "4 FC Road, Pune 411004" in text
    assert "Qure Clinic" not in text and "+91 20 4000 1234" not in text
