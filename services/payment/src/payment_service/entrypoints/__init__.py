"""The payment service's processes: HTTP API, event worker, outbox relay."""
