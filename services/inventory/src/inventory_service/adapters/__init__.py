"""Postgres adapters: the inventory's tables and the repositories that load and save the domain."""
