"""Doctor slots and appointments (SPEC section 3)."""
