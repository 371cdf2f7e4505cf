"""Postgres adapters: the payments table and the repository that loads and saves a Payment."""
