"""Dead letters as an operator sees them, and the rules of their redrive. Pure: no Kafka here.

A dead letter (shared/consumer/dead_letter.py) is the original record, key, value and headers, plus
the `kafka_dlt-*` headers that say where it was and why it failed. A redrive sends the original
back: to its original topic and partition, with its key, value and event headers, the
`kafka_dlt-*` headers dropped, and a `redrive-count` header one above the dead letter's own. The
event keeps its event id, so every consumer group of the topic sees it again and the ones that had
processed it skip it as a duplicate (their processed_events rows), while the group whose
transaction failed, and so recorded nothing, processes it now.

A record that fails again is dead-lettered again with the count it carried, so the count grows
with each round and a redrive past `max_redrives` is refused: nothing loops.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from shared.consumer.dead_letter import (
    EXCEPTION_FQCN,
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    ORIGINAL_CONSUMER_GROUP,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    read_dlt_headers,
)
from shared.events.codec import Header
from shared.events.topics import DLT_SUFFIX

REDRIVE_COUNT = "redrive-count"  # how many times the record was sent back from a dead-letter topic
REDRIVEN_FROM = "redriven-from"  # the dead letter it was sent back from: "<topic>:<partition>:<offset>"
DLT_HEADER_PREFIX = "kafka_dlt-"
DEFAULT_MAX_REDRIVES = 3

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class DeadLetterRecord:
    """One record of a dead-letter topic, its headers decoded."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # when it was dead-lettered
    key: bytes | None
    value: bytes | None
    headers: Headers
    event_id: str | None  # None: the record was unreadable (no eventId header)
    event_type: str | None
    order_id: str | None  # the correlation id (the order), else the key
    original_topic: str
    original_partition: int
    original_offset: int | None
    original_timestamp_ms: int | None
    consumer_group: str | None
    cause_class: str
    cause_message: str
    stacktrace: str
    redrive_count: int | None  # None: the header is there but unreadable

    @classmethod
    def of(cls, record: ConsumerRecord) -> "DeadLetterRecord":
        headers: Headers = tuple((name, value or b"") for name, value in record.headers or ())
        dlt = read_dlt_headers(list(headers))
        event = _last_texts(headers)
        key = record.key.decode(errors="replace") if record.key is not None else None
        original_partition = dlt.get(ORIGINAL_PARTITION)
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
            headers=headers,
            event_id=event.get(Header.EVENT_ID),
            event_type=event.get(Header.EVENT_TYPE),
            order_id=event.get(Header.CORRELATION_ID, key),
            original_topic=str(dlt.get(ORIGINAL_TOPIC, record.topic.removesuffix(DLT_SUFFIX))),
            original_partition=original_partition if isinstance(original_partition, int) else record.partition,
            original_offset=_int_or_none(dlt.get(ORIGINAL_OFFSET)),
            original_timestamp_ms=_int_or_none(dlt.get(ORIGINAL_TIMESTAMP)),
            consumer_group=_str_or_none(dlt.get(ORIGINAL_CONSUMER_GROUP)),
            cause_class=str(dlt.get(EXCEPTION_FQCN, "?")),
            cause_message=str(dlt.get(EXCEPTION_MESSAGE, "")),
            stacktrace=str(dlt.get(EXCEPTION_STACKTRACE, "")),
            redrive_count=redrive_count(headers),
        )

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def cause(self) -> str:
        """The exception's class without its module, and its message: `CheckViolationError: ...`."""
        name = self.cause_class.rsplit(".", 1)[-1]
        return f"{name}: {self.cause_message}" if self.cause_message else name

    @property
    def dead_lettered_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.dead_lettered_at).total_seconds())

    def caused_by(self, text: str) -> bool:
        """Whether `text` is in the exception's class name or message (case-insensitive)."""
        wanted = text.casefold()
        return wanted in self.cause_class.casefold() or wanted in self.cause_message.casefold()

    @property
    def identity(self) -> str:
        """What makes two dead letters the same record failing again: its event id, or, for an
        unreadable record, its original position."""
        return self.event_id or f"{self.original_topic}:{self.original_partition}:{self.original_offset}"


def redrive_count(headers: Iterable[tuple[str, bytes]]) -> int | None:
    """The record's `redrive-count` (0 without the header); None if the header is not a count."""
    count = 0
    for name, value in headers:
        if name == REDRIVE_COUNT:  # the last one wins, as for the event headers
            text = value.decode(errors="replace").strip()
            count = int(text) if text.isdigit() else -1
    return None if count < 0 else count


def redriven_headers(letter: DeadLetterRecord) -> list[tuple[str, bytes]]:
    """The headers a redriven record carries: the event's own, in their order, without the
    `kafka_dlt-*` ones and the previous redrive's; then the new count and where it came from."""
    if letter.redrive_count is None:
        raise ValueError(f"{letter.position}: its {REDRIVE_COUNT} header is not a count")
    kept = [
        (name, value)
        for name, value in letter.headers
        if not name.startswith(DLT_HEADER_PREFIX) and name not in (REDRIVE_COUNT, REDRIVEN_FROM)
    ]
    return [
        *kept,
        (REDRIVE_COUNT, str(letter.redrive_count + 1).encode()),
        (REDRIVEN_FROM, letter.position.encode()),
    ]


@dataclass(frozen=True)
class Redrive:
    """A record to send back, and the dead letter it comes from."""

    letter: DeadLetterRecord
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Refused:
    letter: DeadLetterRecord
    reason: str


@dataclass(frozen=True)
class RedrivePlan:
    redrives: list[Redrive]
    refused: list[Refused]
    superseded: list[DeadLetterRecord]  # older dead letters of a record dead-lettered again since


def select(
    letters: Iterable[DeadLetterRecord],
    *,
    event_ids: Sequence[str] = (),
    cause: str | None = None,
    everything: bool = False,
) -> list[DeadLetterRecord]:
    """The dead letters chosen: of these event ids, and/or with this text in their cause; all of
    them only when `everything` is asked for explicitly (no filter selects nothing)."""
    if not event_ids and cause is None and not everything:
        return []
    wanted = {event_id.strip().lower() for event_id in event_ids}
    return [
        letter
        for letter in letters
        if (not wanted or (letter.event_id or "").lower() in wanted) and (cause is None or letter.caused_by(cause))
    ]


def plan_redrive(selected: Iterable[DeadLetterRecord], *, max_redrives: int = DEFAULT_MAX_REDRIVES) -> RedrivePlan:
    """What a redrive of the selected dead letters does. Of the dead letters of one record (its
    event id), only the latest is sent: the earlier ones were redriven and failed again, or would
    send the same event twice. One already redriven `max_redrives` times is refused."""
    latest: dict[str, DeadLetterRecord] = {}
    superseded: list[DeadLetterRecord] = []
    for letter in sorted(selected, key=lambda one: (one.redrive_count or 0, one.timestamp_ms, one.offset)):
        if letter.identity in latest:
            superseded.append(latest[letter.identity])
        latest[letter.identity] = letter
    redrives: list[Redrive] = []
    refused: list[Refused] = []
    for letter in sorted(latest.values(), key=lambda one: (one.topic, one.partition, one.offset)):
        if letter.redrive_count is None:
            refused.append(Refused(letter, f"its {REDRIVE_COUNT} header is not a count"))
        elif letter.redrive_count >= max_redrives:
            refused.append(
                Refused(
                    letter,
                    f"already redriven {letter.redrive_count} time{'' if letter.redrive_count == 1 else 's'} "
                    f"(limit {max_redrives}): "
                    "fix the cause, or raise --max-redrives knowingly",
                )
            )
        else:
            redrives.append(
                Redrive(
                    letter=letter,
                    topic=letter.original_topic,
                    partition=letter.original_partition,
                    key=letter.key,
                    value=letter.value,
                    headers=redriven_headers(letter),
                )
            )
    return RedrivePlan(redrives, refused, superseded)


def _last_texts(headers: Headers) -> dict[str, str]:
    texts: dict[str, str] = {}
    for name, value in headers:
        if not name.startswith(DLT_HEADER_PREFIX):
            texts[name] = value.decode(errors="replace")
    return texts


def _int_or_none(value: str | int | None) -> int | None:
    return value if isinstance(value, int) else None


def _str_or_none(value: str | int | None) -> str | None:
    return value if isinstance(value, str) else None
