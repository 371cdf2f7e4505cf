"""Use cases: one function per command, reaction or query, each one unit of work."""
