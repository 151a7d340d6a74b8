"""Visits: the doctor's consultation, vitals, notes, diagnosis."""
