"""The UPI payment link as a QR code, drawn offline by segno: inline SVG for the invoice
page, a PNG for the receipt PDF (WeasyPrint parses an SVG path of a few thousand segments
in about 30 ms, a 2 kB PNG in well under one). Both come from the same segno code, so
what the patient scans on the screen and on paper is the same link for the same amount."""

from __future__ import annotations

import io
from functools import lru_cache

import segno
from markupsafe import Markup


@lru_cache(maxsize=512)
def qr_svg(payload: str, scale: int = 4) -> Markup:
    """An `<svg>` element (no XML declaration, no size in the markup beyond its own width
    and height) encoding the payload with medium error correction and the standard quiet
    zone, black on white so every phone camera reads it.

    Kept per process for the last 512 payloads: choosing the best of the eight masks
    costs about 10 ms, and the same unpaid invoice's code is drawn again and again (its
    page, the A4 receipt, the roll, a reprint). The markup is immutable text."""
    code = segno.make(payload, error="m", micro=False)
    svg = code.svg_inline(scale=scale, dark="#000", light="#fff", border=4)
    # segno draws the payload as modules, never as text, so the markup is its own.
    return Markup(svg)  # nosec B704


@lru_cache(maxsize=512)
def qr_png(payload: str) -> bytes:
    """The same code as a black-and-white PNG of 8 pixels a module (quiet zone included),
    for printing: the PDF shows it without smoothing (`image-rendering: pixelated`), so
    every module stays a sharp square at any size. Kept per payload as qr_svg is."""
    buffer = io.BytesIO()
    segno.make(payload, error="m", micro=False).save(
        buffer, kind="png", scale=8, border=4, dark="#000", light="#fff"
    )
    return buffer.getvalue()
