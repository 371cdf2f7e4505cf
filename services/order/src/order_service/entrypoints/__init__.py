"""The order service's processes: HTTP API, outbox relay, event worker, and the rebuild command."""
