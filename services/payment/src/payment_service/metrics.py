"""The payment service's own Prometheus metrics (served on the worker's metrics port)."""

from prometheus_client import Counter

# outcome: approved, declined, refunded, refused (answers), timeout, unavailable, error (no answer).
GATEWAY_CALLS = Counter("payment_gateway_calls", "Gateway calls made by the executor", ["call", "outcome"])
