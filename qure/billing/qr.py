"""The UPI payment link as a QR code, drawn offline by segno as inline SVG: the invoice
page and the receipt PDF embed the same markup, so what the patient scans on the screen
and on paper is the same code for the same amount."""

from __future__ import annotations

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
    return Markup(svg)
