"""The event base class, the envelope that carries an event's metadata, and shared value types.

An event class says what happened (its fields are the record value). The envelope says which
occurrence it is (event id, time, causality, tracing): that travels in the record headers.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Unpack
from uuid import UUID, uuid4

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    StringConstraints,
)

from shared.events.topics import WRITERS
from shared.tracing import current_traceparent

Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Strict: a float (or a bool, or a numeric string) where money is expected is a bug upstream, so it is
# rejected rather than silently truncated.
MinorUnits = Annotated[int, Field(ge=0, strict=True, description="Amount in the currency's minor units (cents)")]
Quantity = Annotated[int, Field(ge=1, le=10_000)]


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


# A naive time is ambiguous (whose local time?), so it is refused; an aware one is stored as UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class Event(BaseModel):
    """A fact that happened. Frozen; unknown fields in incoming data are ignored (tolerant reader)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    topic: ClassVar[str]
    # The field whose value is the record key. Saga events are keyed by order id, so one order's
    # events stay ordered within their topic; events about a product alone are keyed by SKU.
    key_field: ClassVar[str] = "order_id"

    def partition_key(self) -> str:
        return str(getattr(self, self.key_field))

    def correlation_id(self) -> str:
        return self.partition_key()

    def __init_subclass__(cls, **kwargs: Unpack[ConfigDict]) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__


def utc_now() -> datetime:
    return datetime.now(UTC)


# What use cases take to tell the time (`utc_now` by default), so tests can set it.
Clock = Callable[[], datetime]


def require_aware(moment: datetime) -> None:
    """The domains' guard on the times their callers pass: a naive time would be read differently by
    every reader, so it is refused."""
    if moment.tzinfo is None:
        raise ValueError("times are UTC and timezone-aware; got a naive datetime")


class Envelope(BaseModel):
    """One occurrence of an event with its metadata. `event_id` is fixed when the outbox row is
    written, so a re-send after a crash carries the same id and consumers can drop the duplicate."""

    model_config = ConfigDict(frozen=True)

    event: SerializeAsAny[Event]
    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: UtcDatetime = Field(default_factory=utc_now)
    correlation_id: str
    causation_id: UUID | None = None
    traceparent: str | None = None
    source: str

    @property
    def event_type(self) -> str:
        return self.event.event_type

    @property
    def key(self) -> str:
        return self.event.partition_key()

    @property
    def topic(self) -> str:
        return self.event.topic

    @classmethod
    def new(cls, event: Event, *, caused_by: "Envelope | None" = None, traceparent: str | None = None) -> "Envelope":
        """Wrap a new event; when it reacts to another event, inherit its correlation. The source is
        the service that owns the event's topic, the only one that writes to it.

        Its traceparent (shared.tracing) is `traceparent` if given (work done later on an event's
        behalf names the trace it continues), else the current span's (the request's, or the
        worker's span processing the cause), so the trace nests hop by hop; else, with no span
        (tracing not set up), the cause's."""
        return cls(
            event=event,
            correlation_id=caused_by.correlation_id if caused_by else event.correlation_id(),
            causation_id=caused_by.event_id if caused_by else None,
            traceparent=traceparent or current_traceparent() or (caused_by.traceparent if caused_by else None),
            source=WRITERS[event.topic],
        )
