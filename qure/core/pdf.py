"""Printed documents: HTML templates rendered to PDF by WeasyPrint.

Templates get plain values (dicts, strings, numbers), never ORM objects. Jinja escapes
everything a user typed, so a patient named `<img src=...>` prints as text; and the URL
fetcher serves only the app's own static files, so even markup that got through could make
the server fetch nothing else: no network, no `file://`.

Fonts ship with the app (static/fonts/: Noto Sans and Noto Sans Devanagari, regular and
bold, under the SIL Open Font License). The stylesheet names them in `@font-face` rules,
whose URLs this fetcher serves like any static file; the stylesheet and its fonts are
loaded once per thread into one FontConfiguration that every document of that thread
uses. So a prescription prints the same, Hindi and Marathi names included, on a machine
with no fonts of its own.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from pathlib import Path

from flask import current_app, render_template
from weasyprint import CSS, HTML
from weasyprint.formatting_structure.boxes import MarginBox
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

log = logging.getLogger(__name__)

# A base that names nothing on the network: relative URLs in templates resolve under it,
# and the fetcher maps it to the static folder.
STATIC_BASE = "https://pdf.qure.invalid/static/"
# Images a document is given in memory (a QR code drawn for it) are named under this base.
MEMORY_BASE = "https://pdf.qure.invalid/memory/"


class StaticOnlyFetcher(URLFetcher):
    """Serves files under the app's static folder, and the in-memory images the document
    was given (`images`: name -> PNG bytes, at MEMORY_BASE + name); refuses every other
    URL."""

    def __init__(self, static_folder: str, images: dict[str, bytes] | None = None) -> None:
        super().__init__(allowed_protocols=("https",))
        self.root = Path(static_folder).resolve()
        self.images = images or {}

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        if url.startswith(MEMORY_BASE) and url[len(MEMORY_BASE) :] in self.images:
            body = self.images[url[len(MEMORY_BASE) :]]
            return URLFetcherResponse(url, body=body, headers={"Content-Type": "image/png"})
        if not url.startswith(STATIC_BASE):
            log.warning("PDF rendering refused a resource outside the app's static files")
            raise ValueError("only the app's static files may be used in a PDF")
        relative = url[len(STATIC_BASE) :].split("?")[0].split("#")[0]
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise ValueError("no such static file")
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": mime})


_cache = threading.local()


def _styles(static_folder: str, stylesheet: str) -> tuple[CSS, FontConfiguration]:
    """The parsed stylesheet and the font configuration holding its @font-face fonts, made
    once per thread and stylesheet (a prescription and a receipt in turn parse neither
    again): parsing them for every document costs a third of its time. The sheet's base
    is its own URL, so `url(../fonts/...)` names a file beside css/."""
    sheets = getattr(_cache, "sheets", None)
    if sheets is None:
        sheets = _cache.sheets = {}
    key = (static_folder, stylesheet)
    if key not in sheets:
        fonts = FontConfiguration()
        path = (Path(static_folder) / stylesheet).resolve()
        styles = CSS(
            string=path.read_text(encoding="utf-8"),
            base_url=STATIC_BASE + stylesheet,
            url_fetcher=StaticOnlyFetcher(static_folder),
            font_config=fonts,
        )
        sheets[key] = (styles, fonts)
    return sheets[key]


def _cut_to_content(document) -> None:
    """A roll (a thermal printer's paper) has no page height: its one page, laid out
    taller than any receipt, is cut below the last thing printed on it plus the page's
    bottom margin. Content is placed from the top, so only the page box shrinks."""
    if len(document.pages) != 1:
        return  # longer than the tall page: printed as it is, in pieces
    page = document.pages[0]
    box = page._page_box
    bottom = max(
        (
            child.position_y + child.margin_height()
            for child in box.children
            if not isinstance(child, MarginBox)  # a page number at the foot of the page
        ),
        default=0,
    )
    page.height = min(page.height, bottom + box.margin_bottom)


def render_pdf(
    template: str,
    stylesheet: str = "css/pdf.css",
    roll: bool = False,
    images: dict[str, bytes] | None = None,
    **values,
) -> bytes:
    """Render a template (under templates/pdf/) with plain values, styled by a static
    stylesheet, to PDF bytes. With `roll`, the one page is as tall as its content (the
    stylesheet gives the roll's width and a page taller than any such document).
    `images` are PNGs made for this document (name -> bytes); the template shows one as
    `<img src="{{ memory_base }}name">`."""
    html = render_template(template, memory_base=MEMORY_BASE, **values)
    static = current_app.static_folder
    styles, fonts = _styles(static, stylesheet)
    fetcher = StaticOnlyFetcher(static, images)
    document = HTML(string=html, base_url=STATIC_BASE, url_fetcher=fetcher)
    if not roll:
        return document.write_pdf(stylesheets=[styles], font_config=fonts)
    rendered = document.render(stylesheets=[styles], font_config=fonts)
    _cut_to_content(rendered)
    return rendered.write_pdf()


def render_document(
    template: str,
    stylesheet: str = "css/pdf.css",
    images: dict[str, bytes] | None = None,
    **values,
):
    """As `render_pdf` (A4 pages), but the laid-out WeasyPrint document, for `join` to
    put several documents in one file."""
    html = render_template(template, memory_base=MEMORY_BASE, **values)
    static = current_app.static_folder
    styles, fonts = _styles(static, stylesheet)
    fetcher = StaticOnlyFetcher(static, images)
    document = HTML(string=html, base_url=STATIC_BASE, url_fetcher=fetcher)
    return document.render(stylesheets=[styles], font_config=fonts)


def join(documents: list) -> bytes:
    """One PDF holding the pages of every rendered document, in order (a day's receipts)."""
    if not documents:
        raise ValueError("no documents to join")
    pages = [page for document in documents for page in document.pages]
    return documents[0].copy(pages).write_pdf()
