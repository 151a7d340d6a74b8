"""Receipt and credit-note PDFs (being built)."""

from __future__ import annotations


def receipt_pdf(invoice_id: int, thermal: bool = False) -> tuple[bytes, str]:
    raise NotImplementedError


def credit_note_pdf(credit_note_id: int) -> tuple[bytes, str]:
    raise NotImplementedError
