"""Use cases: one function per command or event, each one unit of work inside the caller's transaction."""
