"""Use cases: one function per event, each one unit of work inside the worker's transaction."""
