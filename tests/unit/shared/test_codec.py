import json
from datetime import datetime, timedelta, timezone
from typing import ClassVar, Literal
from uuid import UUID

import orjson
import pytest
from pydantic import ValidationError
from shared.events import (
    EVENT_CLASSES,
    Envelope,
    Event,
    LowStockAlert,
    OrderCancelled,
    OrderCreated,
    registry,
)
from shared.events.codec import (
    REQUIRED_HEADERS,
    InvalidHeader,
    InvalidRecord,
    KafkaRecord,
    MalformedPayload,
    MissingHeader,
    PayloadValidationError,
    UnknownEventType,
    UnsupportedSchemaVersion,
    decode,
    encode,
    is_valid_traceparent,
)
from shared.events.samples import AT, ORDER_ID, sample_envelope, sample_event


def _id(cls: type[Event]) -> str:
    return f"{cls.event_type}.v{cls.schema_version}"


def _record(event: Event | None = None) -> KafkaRecord:
    return encode(sample_envelope(event or sample_event(OrderCreated)))


def _without(headers: list[tuple[str, bytes]], name: str) -> list[tuple[str, bytes]]:
    return [(key, value) for key, value in headers if key != name]


def _replaced(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [*_without(headers, name), (name, value)]


def _payload(record: KafkaRecord) -> dict:
    return orjson.loads(record.value)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=_id)
def test_every_event_survives_a_round_trip_through_a_record(cls: type[Event]) -> None:
    envelope = sample_envelope(sample_event(cls))
    record = encode(envelope)

    decoded = decode(record.value, record.headers)

    assert decoded == envelope
    assert type(decoded.event) is cls


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=_id)
def test_every_registered_event_class_has_a_sample(cls: type[Event]) -> None:
    assert type(sample_event(cls)) is cls


def test_a_record_carries_the_envelope_in_headers_named_as_agreed() -> None:
    envelope = sample_envelope(sample_event(OrderCreated))

    record = encode(envelope)

    assert record.headers == [
        ("eventId", str(envelope.event_id).encode()),
        ("eventType", b"OrderCreated"),
        ("schemaVersion", b"1"),
        ("occurredAt", b"2025-03-14T09:26:53.589000Z"),
        ("correlationId", str(ORDER_ID).encode()),
        ("causationId", str(envelope.causation_id).encode()),
        ("traceparent", envelope.traceparent.encode()),
        ("source", b"order"),
        ("contentType", b"application/json"),
    ]
    assert all(type(name) is str for name, _ in record.headers)


def test_a_saga_event_is_keyed_by_its_order_id_on_its_own_topic() -> None:
    record = _record()

    assert record.key == str(ORDER_ID).encode()
    assert record.topic == "order-events"


def test_a_low_stock_alert_is_keyed_by_sku() -> None:
    record = _record(sample_event(LowStockAlert))

    assert record.key == b"TEE-L"
    assert record.topic == "inventory-events"


def test_optional_headers_are_left_out_when_the_envelope_has_no_value_for_them() -> None:
    record = encode(Envelope.new(sample_event(OrderCreated)))

    names = [name for name, _ in record.headers]
    assert "causationId" not in names
    assert "traceparent" not in names
    assert decode(record.value, record.headers).causation_id is None


def test_the_value_is_compact_json_of_the_event_alone() -> None:
    record = _record()

    assert record.value == orjson.dumps(orjson.loads(record.value))
    assert _payload(record) == sample_event(OrderCreated).model_dump(mode="json")


def test_money_is_written_as_an_integer_of_minor_units() -> None:
    payload = json.loads(_record(sample_event(registry.EVENT_TYPES["PaymentProcessed"])).value)

    assert payload["amount"] == 4499
    assert type(payload["amount"]) is int


@pytest.mark.parametrize("amount", [4499.0, 44.99, "4499", True])
def test_money_that_is_not_an_integer_is_rejected(amount: object) -> None:
    record = _record(sample_event(registry.EVENT_TYPES["PaymentProcessed"]))
    value = orjson.dumps({**_payload(record), "amount": amount})

    with pytest.raises(PayloadValidationError, match="amount"):
        decode(value, record.headers)


def test_times_are_written_in_utc_whatever_offset_they_were_given_with() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = OrderCreated.model_validate(
        {**sample_event(OrderCreated).model_dump(), "created_at": datetime(2025, 1, 1, 12, tzinfo=plus_two)}
    )
    envelope = sample_envelope(event).model_copy(update={"occurred_at": datetime(2025, 1, 1, 12, tzinfo=plus_two)})

    record = encode(envelope)

    assert dict(record.headers)["occurredAt"] == b"2025-01-01T10:00:00Z"
    assert _payload(record)["created_at"] == "2025-01-01T10:00:00Z"


def test_an_event_time_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValidationError):
        OrderCreated.model_validate({**sample_event(OrderCreated).model_dump(), "created_at": datetime(2025, 1, 1)})


def test_an_occurred_at_header_with_an_offset_is_read_as_utc() -> None:
    record = _record()

    envelope = decode(record.value, _replaced(record.headers, "occurredAt", b"2025-03-14T11:26:53.589+02:00"))

    assert envelope.occurred_at == AT
    assert envelope.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("header", [h.value for h in REQUIRED_HEADERS])
def test_a_record_without_a_required_header_is_rejected(header: str) -> None:
    record = _record()

    with pytest.raises(MissingHeader, match=header):
        decode(record.value, _without(record.headers, header))


def test_a_record_without_an_event_id_header_is_rejected() -> None:
    record = _record()

    with pytest.raises(InvalidRecord, match="'eventId' is missing"):
        decode(record.value, _without(record.headers, "eventId"))


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("eventId", b"not-a-uuid"),
        ("causationId", b"42"),
        ("schemaVersion", b"one"),
        ("schemaVersion", b"0"),
        ("schemaVersion", b"-1"),
        ("occurredAt", b"yesterday"),
        ("occurredAt", b"2025-03-14T09:26:53"),
        ("source", b"\xff\xfe"),
        ("source", b""),
        ("contentType", b"application/avro"),
    ],
)
def test_a_header_with_a_malformed_value_is_rejected(header: str, value: bytes) -> None:
    record = _record()

    with pytest.raises(InvalidHeader, match=header):
        decode(record.value, _replaced(record.headers, header, value))


def test_an_unknown_event_type_is_reported_apart_from_invalid_records_so_it_can_be_skipped() -> None:
    record = _record()
    headers = _replaced(record.headers, "eventType", b"OrderTeleported")

    with pytest.raises(UnknownEventType) as raised:
        decode(b"not even json", headers)

    assert not isinstance(raised.value, InvalidRecord)
    assert raised.value.event_type == "OrderTeleported"
    assert raised.value.event_id == UUID(dict(record.headers)["eventId"].decode())


def test_a_schema_version_this_code_does_not_know_is_rejected() -> None:
    record = _record()

    with pytest.raises(UnsupportedSchemaVersion, match="reads 1") as raised:
        decode(b"not even json", _replaced(record.headers, "schemaVersion", b"7"))

    assert (raised.value.event_type, raised.value.schema_version) == ("OrderCreated", 7)


@pytest.mark.parametrize("value", [None, b"", b"{not json", b"[1, 2]", b"null", b'"text"', b"\xff\xfe"])
def test_a_value_that_is_not_a_json_object_is_a_malformed_payload(value: bytes | None) -> None:
    with pytest.raises(MalformedPayload):
        decode(value, _record().headers)


def test_a_payload_that_fails_validation_names_the_fields_but_not_their_values() -> None:
    record = _record()
    payload = {**_payload(record), "items": [{"sku": "MUG-BLUE", "quantity": 0}]}
    del payload["customer_id"]

    with pytest.raises(PayloadValidationError) as raised:
        decode(orjson.dumps(payload), record.headers)

    message = str(raised.value)
    assert "items.0.quantity" in message
    assert "customer_id: Field required" in message
    assert "tok_visa" not in message  # a payment token must never end up in a dead-letter header


def test_header_problems_are_reported_before_event_type_problems() -> None:
    headers = _replaced(_without(_record().headers, "source"), "eventType", b"OrderTeleported")

    with pytest.raises(MissingHeader):
        decode(b"{}", headers)


def test_unknown_fields_in_the_payload_are_ignored() -> None:
    record = _record()
    value = orjson.dumps({**_payload(record), "loyalty_points": 12, "gift": {"wrap": True}})

    assert decode(value, record.headers).event == sample_event(OrderCreated)


def test_unknown_headers_are_ignored() -> None:
    record = _record()
    headers = [("x-datadog-sampling", b"\x01"), *record.headers, ("kafka_dlt-original-offset", b"\x00")]

    assert decode(record.value, headers) == sample_envelope(sample_event(OrderCreated))


def test_the_last_of_repeated_headers_wins() -> None:
    record = _record()

    envelope = decode(record.value, [*record.headers, ("source", b"replayer")])

    assert envelope.source == "replayer"


def test_a_malformed_traceparent_is_dropped_rather_than_rejected() -> None:
    record = _record()

    envelope = decode(record.value, _replaced(record.headers, "traceparent", b"00-nonsense"))

    assert envelope.traceparent is None


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
    ],
)
def test_traceparent_validity_follows_w3c_trace_context(value: str, valid: bool) -> None:
    assert is_valid_traceparent(value) is valid


class _OrderCancelledV2(Event):
    """What a breaking change looks like: a new class for the same event type, next to the old one."""

    event_type = "OrderCancelled"
    schema_version = 2
    topic: ClassVar[str] = "order-events"
    order_id: UUID
    reason: Literal["customer_request", "payment_failed", "fraud"]
    cancelled_by: str


def test_two_schema_versions_of_one_event_type_are_read_by_their_own_classes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry.EVENT_VERSIONS, ("OrderCancelled", 2), _OrderCancelledV2)
    v1 = sample_envelope(sample_event(OrderCancelled))
    v2 = sample_envelope(_OrderCancelledV2(order_id=ORDER_ID, reason="fraud", cancelled_by="risk-team"))
    assert registry.supported_versions("OrderCancelled") == (1, 2)

    for envelope in (v1, v2):
        record = encode(envelope)
        assert decode(record.value, record.headers) == envelope


def test_every_event_class_is_registered_once_per_type_and_version() -> None:
    assert len(registry.EVENT_VERSIONS) == len(EVENT_CLASSES)
    assert set(registry.EVENT_TYPES) == {cls.event_type for cls in EVENT_CLASSES}


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=_id)
def test_the_key_field_of_every_event_is_one_of_its_fields(cls: type[Event]) -> None:
    event = sample_event(cls)

    assert cls.key_field in cls.model_fields
    assert event.partition_key() == str(getattr(event, cls.key_field))
