"""Prometheus metrics of the shared machinery. Names are what infra/monitoring's dashboards query.
(The lag exporter's are its own, in shared.lag_exporter: only its process serves them.)"""

from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_PUBLISHED = Counter(
    "outbox_events_published", "Outbox rows published to Kafka and acknowledged", ["service", "topic"]
)
UNPUBLISHED_EVENTS = Gauge("outbox_unpublished_events", "Outbox rows not yet published", ["service"])
PUBLISH_BATCH_SECONDS = Histogram(
    "outbox_publish_batch_seconds",
    "Time to send a batch, await its acks and mark it published",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RELAY_IS_LEADER = Gauge("relay_is_leader", "1 while this relay holds the publishing lock", ["service"])
# Every relay reports it, leader or not (shared.outbox.relay): a dashboard takes the max per service.
OLDEST_UNPUBLISHED_AGE = Gauge(
    "outbox_oldest_unpublished_age_seconds",
    "Seconds the next outbox row to publish has waited (0 when none waits)",
    ["service"],
)

CONSUMED_EVENTS = Counter(
    "consumer_events",
    "Records seen by a worker, by outcome (processed, duplicate, skipped, dead_lettered, retried, "
    "conflict_retried, waited_for_database)",
    ["service", "topic", "event_type", "outcome"],
)
# Eager rebalancing: all of a worker's partitions are revoked, then the new set assigned.
ASSIGNED_PARTITIONS = Gauge(
    "consumer_assigned_partitions", "Partitions assigned to this worker (0 while its group rebalances)", ["service"]
)
HANDLE_SECONDS = Histogram(
    "consumer_handle_seconds",
    "Time to handle one event in its transaction",
    ["service", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

SAGA_TIMEOUTS = Counter(
    "saga_timeouts", "Orders cancelled because their saga was not finished by its deadline", ["service"]
)
# Counted by the order worker's deadline sweep after each run: orders it should have cancelled and
# has not (locked elsewhere, an unreadable history, or more than it keeps up with).
SAGA_OVERDUE_ORDERS = Gauge(
    "saga_overdue_orders", "Orders still PENDING or AWAITING_PAYMENT past their saga deadline", ["service"]
)
# The payment executor's gateway calls. outcome: approved, declined, refunded, refused (answers);
# timeout, unavailable, error (no answer).
GATEWAY_CALLS = Counter("payment_gateway_calls", "Gateway calls made by the executor", ["call", "outcome"])

HTTP_REQUESTS = Counter("http_requests", "HTTP requests", ["service", "method", "route", "status"])
HTTP_REQUEST_SECONDS = Histogram("http_request_seconds", "HTTP request latency", ["service", "method", "route"])


def serve_metrics(port: int, host: str) -> WSGIServer:
    """Expose /metrics for a process that has no HTTP server of its own (relay, worker), on `host`
    (the settings' metrics_host: loopback unless a deployment's scraper needs another address)."""
    server, _ = start_http_server(port, addr=host)
    return server
