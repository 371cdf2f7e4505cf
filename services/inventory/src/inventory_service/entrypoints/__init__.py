"""The inventory's processes: HTTP API, event worker, outbox relay."""
