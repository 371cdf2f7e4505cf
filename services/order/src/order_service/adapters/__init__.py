"""What the order service talks to: its tables (event store, projection, idempotency keys) and the topic."""
