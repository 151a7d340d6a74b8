"""The printed prescription (SPEC section 6): an A5 PDF with everything the pharmacist and
the patient need, made from the app's own static files only (no network, no `file://`),
legible in Devanagari."""

from __future__ import annotations

import threading
from datetime import date
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
from qure.prescriptions import service
from qure.visits import service as visits
from tests.helpers import bearer, make_patient, make_user
from tests.prescriptions.test_service import item, make_medicines, start_visit

URL = "/api/v1/prescriptions"
A5 = (419.53, 595.28)  # 148 mm x 210 mm in points
PASSWD_LINE = "root:x:0:0"
FINDINGS = {
    "diagnosis": "Acute bronchitis",
    "icd10_code": "J20.9",
    "follow_up_date": "2030-01-14",
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
    prescription = service.create(
        physician,
        {
            "visit_id": visit.id,
            "notes": "Plenty of warm fluids",
            "items": [
                item(meds["amoxil"], dose=0.5, frequency="1-0-1", instructions="after food"),
                item(meds["crocin"], dose=1, frequency="TDS", duration_days=3),
                item(meds["benadryl"], dose=5, frequency="HS", quantity=1, route="oral"),
                item(meds["asthalin"], dose=2, frequency="SOS", duration_days=30, quantity=1),
            ],
        },
    )
    commit()
    return prescription


# ---- the printed prescription ----------------------------------------------------------------


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
        "40 years",
        "Female",
        f"MRN {patient.mrn}",
        "Allergies: Sulfa, Dust mites",
        # vitals and diagnosis
        "BP 130/85 mmHg",
        "37.8 °C",
        "Pulse 88",
        "SpO₂ 98",
        "Weight 70 kg",
        "BMI 24.2",
        "Acute bronchitis (J20.9)",
        # the medicines: strength and form, dose, frequency in words, days, quantity
        "Amoxil 500 mg capsule",
        "Amoxicillin",
        "after food",
        "½ 1-0-1: morning and night 5 5",
        "Crocin 500 mg tablet",
        "1 TDS: three times a day 3 9",
        "Benadryl 12.5 mg/5 ml syrup",
        "Route: oral",
        "5 HS: at night 5 1",
        "Asthalin 100 mcg inhaler",
        "2 SOS: when needed 30 1",
        # advice, follow-up, signature, page numbers
        "Plenty of warm fluids",
        "Follow-up: 14 Jan 2030",
        "Signature",
        "Page 1 of 1",
    ]
    missing = [part for part in expected if part not in text]
    assert not missing, f"missing {missing} from:\n{text}"


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


# ---- Devanagari -------------------------------------------------------------------------------


def test_a_devanagari_name_prints_legibly(client, reception, physician, meds):
    name = "राम कुमार"
    visit = start_visit(physician, make_patient(full_name=name, sex="M"))
    prescription = service.create(
        physician, {"visit_id": visit.id, "items": [item(meds["crocin"])]}
    )
    commit()
    data = pdf_of(print_as(client, reception, prescription.id))
    assert squeezed(name) in squeezed(pdf_text(data))
    fonts = font_names(data)
    # DejaVu draws the Latin text but has no Devanagari: a Devanagari face must be embedded.
    assert any("Lohit" in font or "Noto" in font for font in fonts), fonts
