"""Administration pages: users (and, later, clinic settings)."""
