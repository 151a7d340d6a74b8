"""Doctor slots and appointments."""
