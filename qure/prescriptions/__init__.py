"""Prescriptions."""
