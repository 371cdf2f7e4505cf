"""OpenTelemetry traces: one order is one trace, across the three services.

The context travels as a W3C `traceparent`: in the HTTP request (the API's server span, FastAPI's
own (shared.http), starts the trace), in each event's envelope (the outbox row's headers, then the
Kafka record's), and through every worker: a record's "process" span is the child of the record's
traceparent, and the events its handler emits carry that span's context (`Envelope.new` reads
`current_traceparent()`). So the tree nests hop by hop: POST /orders → process order-events
(inventory) → process inventory-events (payment) → ...

Each process sets up its own TracerProvider (`configure_tracing`), from the standard environment:
- `OTEL_TRACES_EXPORTER`: `none` (the default: ids are made and propagated, but spans are not
  recorded, and nothing is exported or logged), `otlp` (OTLP over HTTP/protobuf, to `OTEL_EXPORTER_OTLP_ENDPOINT` or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, default http://localhost:4318) or `console`;
- `OTEL_SERVICE_NAME`: the resource's service.name, `<service>-<process>` (order-api,
  payment-worker...) unless set; `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and
  `OTEL_BSP_*` are read by the SDK itself; `OTEL_SDK_DISABLED=true` turns tracing off.

Span names, kinds and attributes follow OpenTelemetry's messaging conventions for Kafka: `process
<topic>` (CONSUMER) per handled record, `publish <topic>` (CLIENT, see `publish_span`) per record
the relay sends (within its budget, `SpanBudget`).
"""

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

Process = Literal["api", "worker", "relay"]
EXPORTERS = ("none", "otlp", "console")

_tracer = trace.get_tracer("shared")  # follows the provider set later (a proxy until then)


class TracingConfigError(ValueError):
    """The OTEL_* environment names an exporter this code does not ship."""


def configure_tracing(
    service: str, process: Process, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """Set this process's global TracerProvider from the OTEL_* environment. Returns it, or None
    when `OTEL_SDK_DISABLED` is true (spans are then no-ops and no context is made)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    provider = tracer_provider(service, process, env)
    trace.set_tracer_provider(provider)
    return provider


def tracer_provider(service: str, process: Process, environ: Mapping[str, str]) -> TracerProvider:
    """The provider `configure_tracing` sets: the exporters OTEL_TRACES_EXPORTER names, each behind a
    BatchSpanProcessor (exported off the request and record paths)."""
    exporters = span_exporters(environ)
    # Nothing exported and no sampler named: the spans are made (their ids carry the trace from hop
    # to hop) but not recorded, which costs a fraction (a recorded span costs 35-70 us of CPU), and
    # the traceparents say so (sampled flag 0), so every later hop records nothing either.
    sampler = ParentBased(ALWAYS_OFF) if not exporters and not environ.get("OTEL_TRACES_SAMPLER") else None
    provider = TracerProvider(resource=service_resource(service, process, environ), sampler=sampler)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def service_resource(service: str, process: Process, environ: Mapping[str, str]) -> Resource:
    """service.name is `<service>-<process>` unless OTEL_SERVICE_NAME says otherwise (the SDK reads
    that, and OTEL_RESOURCE_ATTRIBUTES, from the environment)."""
    if environ.get("OTEL_SERVICE_NAME"):
        return Resource.create({SERVICE_NAME: environ["OTEL_SERVICE_NAME"]})
    return Resource.create({SERVICE_NAME: f"{service}-{process}"})


def span_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (comma-separated; `none` by default)."""
    names = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "none").split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingConfigError(f"OTEL_TRACES_EXPORTER names {unknown}; this code ships {', '.join(EXPORTERS)}")
    exporters: list[SpanExporter] = []
    if "otlp" in names:
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol not in (None, "http/protobuf"):
            raise TracingConfigError(f"OTLP protocol {protocol!r}: only http/protobuf is shipped (port 4318)")
        # Imported only when used: it brings protobuf and requests along.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())  # endpoint, headers, timeout: from the OTEL_* environment
    if "console" in names:
        exporters.append(ConsoleSpanExporter())
    return exporters


# -- the traceparent, in and out ---------------------------------------------------------------------


def traceparent_of(span: Span) -> str | None:
    """The W3C traceparent naming `span`, or None if it has no valid context (no tracing set up)."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The current span's traceparent: what an event created now carries."""
    return traceparent_of(trace.get_current_span())


def is_sampled(traceparent: str) -> bool:
    """Whether the trace is being recorded (the traceparent's sampled flag): a span of an unsampled
    trace would be dropped, so work that only makes spans (the relay) can skip it outright."""
    flags = traceparent.split("-")[3] if traceparent.count("-") >= 3 else ""
    try:
        return bool(int(flags[:2], 16) & 0x01)
    except ValueError:
        return False


def context_from(traceparent: str | None) -> Context:
    """A context whose (remote) parent is the span `traceparent` names. For no or a malformed
    traceparent, an empty context: a span started in it begins a trace of its own, rather than
    joining whatever span happens to be current (another order's)."""
    if not traceparent:
        return Context()
    parts = traceparent.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) < 2:
        return Context()
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return Context()
    parent = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=True, trace_flags=TraceFlags(flags & 0x01))
    if not parent.is_valid:
        return Context()
    return trace.set_span_in_context(NonRecordingSpan(parent))


# -- messaging spans (OpenTelemetry messaging conventions, Kafka) ------------------------------------


def _messaging_attributes(
    operation: Literal["publish", "process"], topic: str, key: str, event_id: str
) -> dict[str, str]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": operation,
        "messaging.operation.name": "send" if operation == "publish" else "process",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key,  # an order id or a SKU: never a secret
        "messaging.message.id": event_id,
    }


@contextmanager
def process_span(
    *,
    traceparent: str | None,
    topic: str,
    key: str,
    event_id: str,
    consumer_group: str,
    partition: int | None = None,
    offset: int | None = None,
) -> Iterator[Span]:
    """The span of a worker handling one record: CONSUMER, the child of the record's traceparent,
    current while the handler runs, so the events it emits continue it. An exception escaping the
    handler is recorded on it (and re-raised)."""
    attributes: dict[str, str | int] = {
        **_messaging_attributes("process", topic, key, event_id),
        "messaging.consumer.group.name": consumer_group,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    if offset is not None:
        attributes["messaging.kafka.offset"] = offset
    with _tracer.start_as_current_span(
        f"process {topic}", context=context_from(traceparent), kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


class SpanBudget:
    """At most `per_second` spans a second, for a path where a span costs more than the work it
    describes: a bucket of one second's worth, refilled continuously."""

    def __init__(self, per_second: float) -> None:
        self._rate = per_second
        self._tokens = per_second
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def publish_span(*, traceparent: str, topic: str, key: str, event_id: str) -> Span:
    """A started span for the relay's sending of one record, the child of the context the outbox row
    holds. The caller ends it when the broker acknowledges. The record keeps the row's traceparent:
    the conventions call it the message's creation context (where the event was created), which an
    intermediary does not change; so the span is not the creation context, and its kind is CLIENT."""
    return _tracer.start_span(
        f"publish {topic}",
        context=context_from(traceparent),
        kind=SpanKind.CLIENT,
        attributes=_messaging_attributes("publish", topic, key, event_id),
    )


@contextmanager
def continued(
    traceparent: str | None,
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str] | None = None,
) -> Iterator[Span]:
    """A current span, the child of `traceparent`: for work that acts later on an event's behalf (the
    payment executor's gateway call, the saga deadline), so the events it emits stay in that trace."""
    with _tracer.start_as_current_span(
        name, context=context_from(traceparent), kind=kind, attributes=attributes
    ) as span:
        yield span
