"""shared.tracing's pure parts: the provider from the OTEL_* environment, the traceparent in and out,
and which trace a new event's envelope names."""

import uuid

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from shared.events import Envelope, OrderCreated, StockReserved
from shared.events.codec import is_valid_traceparent
from shared.events.samples import sample_event
from shared.tracing import (
    SpanBudget,
    TracingConfigError,
    configure_tracing,
    context_from,
    current_traceparent,
    is_sampled,
    process_span,
    publish_span,
    service_resource,
    span_exporters,
    traceparent_of,
    tracer_provider,
)

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7

_exporter: InMemorySpanExporter | None = None


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The spans the process ends during the test, in memory (the global provider is set once per
    process: another test module may have set it already)."""
    global _exporter
    if _exporter is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    _exporter.clear()
    return _exporter


def test_nothing_is_exported_by_default() -> None:
    assert span_exporters({}) == []
    assert span_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []


def test_with_no_exporter_spans_are_not_recorded_yet_each_has_ids_of_its_own_in_the_trace() -> None:
    tracer = tracer_provider("order", "worker", {}).get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        child = tracer.start_span("process")
    assert not request.is_recording() and not child.is_recording()
    assert request.get_span_context().is_valid
    assert child.get_span_context().trace_id == request.get_span_context().trace_id
    assert child.get_span_context().span_id != request.get_span_context().span_id
    traceparent = traceparent_of(child)
    assert traceparent is not None and is_valid_traceparent(traceparent) and not is_sampled(traceparent)


def test_with_an_exporter_or_a_sampler_named_spans_are_recorded() -> None:
    for environ in ({"OTEL_TRACES_EXPORTER": "console"}, {"OTEL_TRACES_SAMPLER": "always_on"}):
        tracer = tracer_provider("order", "api", environ).get_tracer("test")
        assert tracer.start_span("request").is_recording(), environ


@pytest.mark.parametrize(
    ("traceparent", "sampled"),
    [(PARENT, True), (PARENT[:-2] + "00", False), (PARENT[:-2] + "03", True), ("00-nonsense", False)],
)
def test_the_sampled_flag_says_whether_a_trace_is_recorded(traceparent: str, sampled: bool) -> None:
    assert is_sampled(traceparent) is sampled


def test_otlp_exports_over_http_to_the_configured_endpoint() -> None:
    (exporter,) = span_exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"})
    assert type(exporter).__module__ == "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def test_the_console_exporter_may_be_added_to_otlp() -> None:
    exporters = span_exporters({"OTEL_TRACES_EXPORTER": "otlp, console"})
    assert [type(e).__name__ for e in exporters] == ["OTLPSpanExporter", "ConsoleSpanExporter"]
    assert isinstance(exporters[1], ConsoleSpanExporter)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "jaeger"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_an_exporter_this_code_does_not_ship_is_refused_at_start_up(environ: dict[str, str]) -> None:
    with pytest.raises(TracingConfigError):
        span_exporters(environ)


def test_the_service_name_is_the_service_and_process_unless_otel_service_name_says_otherwise() -> None:
    assert service_resource("order", "api", {}).attributes["service.name"] == "order-api"
    named = service_resource("order", "api", {"OTEL_SERVICE_NAME": "shop-orders"})
    assert named.attributes["service.name"] == "shop-orders"


def test_a_disabled_sdk_sets_up_no_provider() -> None:
    assert configure_tracing("order", "worker", {"OTEL_SDK_DISABLED": "true"}) is None


def test_a_traceparent_read_in_names_the_same_span_when_written_out() -> None:
    parent = trace.get_current_span(context_from(PARENT))
    assert parent.get_span_context().trace_id == TRACE_ID
    assert parent.get_span_context().span_id == SPAN_ID
    assert traceparent_of(parent) == PARENT


@pytest.mark.parametrize("value", [None, "", "00-nonsense", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "zz-x-y-z"])
def test_no_or_a_malformed_traceparent_gives_no_parent(value: str | None) -> None:
    assert not trace.get_current_span(context_from(value)).get_span_context().is_valid


def test_without_a_span_there_is_no_current_traceparent() -> None:
    assert current_traceparent() is None


def test_a_process_span_is_the_consumer_child_of_the_records_traceparent(spans: InMemorySpanExporter) -> None:
    event_id = str(uuid.uuid4())
    with process_span(
        traceparent=PARENT,
        topic="order-events",
        key="k-1",
        event_id=event_id,
        consumer_group="g",
        partition=3,
        offset=7,
    ) as span:
        inside = current_traceparent()
    (finished,) = spans.get_finished_spans()
    assert finished.name == "process order-events"
    assert finished.kind is SpanKind.CONSUMER
    assert finished.parent is not None and finished.parent.span_id == SPAN_ID
    assert finished.context.trace_id == TRACE_ID
    assert inside == traceparent_of(span)
    assert dict(finished.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "order-events",
        "messaging.kafka.message.key": "k-1",
        "messaging.message.id": event_id,
        "messaging.consumer.group.name": "g",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 7,
    }


def test_a_record_without_a_traceparent_starts_a_trace_of_its_own_not_the_current_one(
    spans: InMemorySpanExporter,
) -> None:
    with trace.use_span(trace.NonRecordingSpan(trace.get_current_span(context_from(PARENT)).get_span_context())):
        with process_span(traceparent=None, topic="t", key="k", event_id="e", consumer_group="g"):
            pass
    (finished,) = spans.get_finished_spans()
    assert finished.parent is None
    assert finished.context.trace_id != TRACE_ID


def test_a_publish_span_is_a_client_child_of_the_rows_traceparent(spans: InMemorySpanExporter) -> None:
    publish_span(traceparent=PARENT, topic="order-events", key="k", event_id="e").end()
    (finished,) = spans.get_finished_spans()
    assert (finished.name, finished.kind) == ("publish order-events", SpanKind.CLIENT)
    assert finished.parent is not None and finished.parent.span_id == SPAN_ID
    assert finished.attributes is not None and finished.attributes["messaging.operation.type"] == "publish"


def test_a_new_event_carries_the_current_spans_traceparent_not_its_causes(spans: InMemorySpanExporter) -> None:
    cause = Envelope.new(sample_event(OrderCreated)).model_copy(update={"traceparent": PARENT})
    with process_span(
        traceparent=cause.traceparent, topic=cause.topic, key=cause.key, event_id="e", consumer_group="g"
    ):
        reaction = Envelope.new(sample_event(StockReserved), caused_by=cause)
        processing = current_traceparent()
    assert reaction.traceparent == processing
    assert reaction.traceparent != PARENT
    assert reaction.traceparent is not None and is_valid_traceparent(reaction.traceparent)
    assert reaction.traceparent.split("-")[1] == f"{TRACE_ID:032x}"


def test_without_a_span_a_new_event_keeps_its_causes_traceparent() -> None:
    cause = Envelope.new(sample_event(OrderCreated)).model_copy(update={"traceparent": PARENT})
    assert Envelope.new(sample_event(StockReserved), caused_by=cause).traceparent == PARENT
    assert Envelope.new(sample_event(OrderCreated)).traceparent is None


def test_a_traceparent_given_outright_wins_over_the_current_span(spans: InMemorySpanExporter) -> None:
    given = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    with process_span(traceparent=PARENT, topic="t", key="k", event_id="e", consumer_group="g"):
        envelope = Envelope.new(sample_event(OrderCreated), traceparent=given)
    assert envelope.traceparent == given


def test_a_span_budget_grants_at_most_its_rate_in_a_burst_and_none_when_zero() -> None:
    budget = SpanBudget(3)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert not SpanBudget(0).take()
