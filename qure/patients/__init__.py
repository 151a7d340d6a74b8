"""Patients: registration, search, edits, archive and restore."""
