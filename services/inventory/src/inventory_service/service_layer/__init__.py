"""Use cases: one function per command (its own transaction) or event (inside the worker's)."""
