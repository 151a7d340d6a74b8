"""Prescriptions (SPEC section 6)."""
