"""End-to-end tests: the real bot over HTTP against both stand-ins (marked e2e)."""
