"""Visits: the doctor's consultation, vitals, notes, diagnosis (SPEC section 5)."""
