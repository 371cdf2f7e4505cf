"""The one place events become Kafka records and records become events again.

The record value is the event's JSON; the headers say which occurrence it is (id, type, version, time,
causality, trace, source). Reading is tolerant: unknown JSON fields and unknown headers are ignored.
Errors tell the consumer what to do: an `InvalidRecord` goes to the dead-letter topic, an
`UnknownEventType` is skipped and counted (another service's newer event is not a poison message).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

import orjson
from pydantic import ValidationError

from .base import Envelope, Event
from .registry import EVENT_TYPES, event_class, supported_versions

CONTENT_TYPE = "application/json"


class Header(StrEnum):
    EVENT_ID = "eventId"
    EVENT_TYPE = "eventType"
    SCHEMA_VERSION = "schemaVersion"
    OCCURRED_AT = "occurredAt"
    CORRELATION_ID = "correlationId"
    CAUSATION_ID = "causationId"
    TRACEPARENT = "traceparent"
    SOURCE = "source"
    CONTENT_TYPE = "contentType"


REQUIRED_HEADERS = (
    Header.EVENT_ID,
    Header.EVENT_TYPE,
    Header.SCHEMA_VERSION,
    Header.OCCURRED_AT,
    Header.SOURCE,
    Header.CORRELATION_ID,
)


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class InvalidRecord(Exception):
    """The record cannot be read as an event; retrying will not help, so it is dead-lettered."""


class MissingHeader(InvalidRecord):
    def __init__(self, header: str) -> None:
        self.header = str(header)  # a plain name, also when given a Header member
        super().__init__(f"required header {self.header!r} is missing")


class InvalidHeader(InvalidRecord):
    def __init__(self, header: str, problem: str) -> None:
        self.header = str(header)
        super().__init__(f"header {self.header!r} {problem}")


class MalformedPayload(InvalidRecord):
    """The value is absent, not JSON, or not a JSON object."""


class UnsupportedSchemaVersion(InvalidRecord):
    def __init__(self, event_type: str, schema_version: int) -> None:
        supported = ", ".join(map(str, supported_versions(event_type)))
        super().__init__(f"{event_type} schema version {schema_version} is not supported (this code reads {supported})")
        self.event_type = event_type
        self.schema_version = schema_version


class PayloadValidationError(InvalidRecord):
    def __init__(self, event_type: str, schema_version: int, error: ValidationError) -> None:
        super().__init__(f"{event_type} v{schema_version} payload is invalid: {_summary(error)}")
        self.event_type = event_type
        self.schema_version = schema_version


class UnknownEventType(Exception):
    """This code has no class for the event type: the consumer skips and counts the record."""

    def __init__(self, event_type: str, event_id: UUID) -> None:
        super().__init__(f"unknown event type {event_type!r} (event {event_id})")
        self.event_type = event_type
        self.event_id = event_id


def encode(envelope: Envelope) -> KafkaRecord:
    event = envelope.event
    headers = [
        (Header.EVENT_ID.value, str(envelope.event_id)),
        (Header.EVENT_TYPE.value, event.event_type),
        (Header.SCHEMA_VERSION.value, str(event.schema_version)),
        (Header.OCCURRED_AT.value, _iso_utc(envelope.occurred_at)),
        (Header.CORRELATION_ID.value, envelope.correlation_id),
    ]
    if envelope.causation_id is not None:
        headers.append((Header.CAUSATION_ID.value, str(envelope.causation_id)))
    if envelope.traceparent is not None:
        headers.append((Header.TRACEPARENT.value, envelope.traceparent))
    headers += [(Header.SOURCE.value, envelope.source), (Header.CONTENT_TYPE.value, CONTENT_TYPE)]
    return KafkaRecord(
        topic=event.topic,
        key=event.partition_key().encode(),
        value=orjson.dumps(event.model_dump(mode="json")),
        headers=[(name, text.encode()) for name, text in headers],
    )


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes | None]]) -> Envelope:
    texts = _header_texts(headers)
    for name in REQUIRED_HEADERS:
        if name not in texts:
            raise MissingHeader(name)
    event_id = _parse_uuid(Header.EVENT_ID, texts[Header.EVENT_ID])
    schema_version = _parse_version(texts[Header.SCHEMA_VERSION])
    occurred_at = _parse_time(texts[Header.OCCURRED_AT])
    causation = texts.get(Header.CAUSATION_ID)
    causation_id = _parse_uuid(Header.CAUSATION_ID, causation) if causation is not None else None
    content_type = texts.get(Header.CONTENT_TYPE, CONTENT_TYPE)
    if content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise InvalidHeader(Header.CONTENT_TYPE, f"is {content_type!r}, only {CONTENT_TYPE} is read")

    event_type = texts[Header.EVENT_TYPE]
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(event_type, event_id)
    cls = event_class(event_type, schema_version)
    if cls is None:
        raise UnsupportedSchemaVersion(event_type, schema_version)

    traceparent = texts.get(Header.TRACEPARENT)
    return Envelope(
        event=_parse_event(cls, value),
        event_id=event_id,
        occurred_at=occurred_at,
        correlation_id=texts[Header.CORRELATION_ID],
        causation_id=causation_id,
        # W3C Trace Context: a malformed traceparent is dropped (a new trace starts), not an error.
        traceparent=traceparent if traceparent is not None and is_valid_traceparent(traceparent) else None,
        source=texts[Header.SOURCE],
    )


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$")


def is_valid_traceparent(value: str) -> bool:
    """W3C Trace Context: version 00 has exactly four fields; later versions may append more."""
    match = _TRACEPARENT.match(value)
    if match is None:
        return False
    version, trace_id, parent_id, rest = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return False
    return not (version == "00" and rest is not None)


def _iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _header_texts(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    """The last value of each header we know (Kafka allows repeats; the last one wins, as in Spring)."""
    known = {header.value for header in Header}
    texts: dict[str, str] = {}
    for name, raw in headers:
        if name not in known:
            continue  # tolerant reader: other headers belong to someone else
        if raw is None:
            raise InvalidHeader(name, "has no value")
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise InvalidHeader(name, "is not valid UTF-8") from None
        if not text.strip():
            raise InvalidHeader(name, "is empty")
        texts[name] = text
    return texts


def _parse_uuid(header: str, text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise InvalidHeader(header, f"is not a UUID: {text[:64]!r}") from None


def _parse_version(text: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
        raise InvalidHeader(Header.SCHEMA_VERSION, f"is not a positive integer: {text[:64]!r}")
    return int(text)


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidHeader(Header.OCCURRED_AT, f"is not an ISO-8601 time: {text[:64]!r}") from None
    if moment.tzinfo is None:
        raise InvalidHeader(Header.OCCURRED_AT, f"has no UTC offset: {text[:64]!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: the UTC time is before year 1
        raise InvalidHeader(Header.OCCURRED_AT, f"is out of range in UTC: {text[:64]!r}") from None


def _parse_event(cls: type[Event], value: bytes | None) -> Event:
    if value is None:
        raise MalformedPayload(f"{cls.event_type} record has no value (a tombstone is not an event)")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise MalformedPayload(f"{cls.event_type} value is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise MalformedPayload(f"{cls.event_type} value is JSON {type(data).__name__}, not an object")
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise PayloadValidationError(cls.event_type, cls.schema_version, error) from None


def _summary(error: ValidationError, limit: int = 5) -> str:
    # Locations and messages only: the input values may hold a payment token, and this text ends up
    # in a dead-letter header that many people can read.
    details = error.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{'.'.join(map(str, d['loc'])) or '(payload)'}: {d['msg']}" for d in details[:limit]]
    if len(details) > limit:
        parts.append(f"and {len(details) - limit} more")
    return "; ".join(parts)
