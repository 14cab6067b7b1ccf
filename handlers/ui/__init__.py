"""Pure Block Kit builders and view-state readers (no I/O)."""
