"""Dead-letter records in Spring Kafka's format, so any Spring-style tooling can read and replay them.

The record keeps the original key, value and headers; the `kafka_dlt-*` headers say where it came
from and why it failed. Partition is a 4-byte and offset/timestamp 8-byte big-endian integers, as
Spring's DeadLetterPublishingRecoverer writes them.
"""

import struct
import traceback
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from shared.events.topics import dead_letter_topic

ORIGINAL_TOPIC = "kafka_dlt-original-topic"
ORIGINAL_PARTITION = "kafka_dlt-original-partition"
ORIGINAL_OFFSET = "kafka_dlt-original-offset"
ORIGINAL_TIMESTAMP = "kafka_dlt-original-timestamp"
ORIGINAL_TIMESTAMP_TYPE = "kafka_dlt-original-timestamp-type"
ORIGINAL_CONSUMER_GROUP = "kafka_dlt-original-consumer-group"
EXCEPTION_FQCN = "kafka_dlt-exception-fqcn"
EXCEPTION_MESSAGE = "kafka_dlt-exception-message"
EXCEPTION_STACKTRACE = "kafka_dlt-exception-stacktrace"

MAX_STACKTRACE_BYTES = 16 * 1024
MAX_MESSAGE_BYTES = 4096


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def exception_fqcn(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def dead_letter_for(record: ConsumerRecord, exc: BaseException, group_id: str) -> DeadLetter:
    """The DLT record for `record`: same partition number, original bytes, the cause in headers."""
    stacktrace = _utf8_cut("".join(traceback.format_exception(exc)), -MAX_STACKTRACE_BYTES)
    headers = [
        *(record.headers or ()),
        (ORIGINAL_TOPIC, record.topic.encode()),
        (ORIGINAL_PARTITION, struct.pack(">i", record.partition)),
        (ORIGINAL_OFFSET, struct.pack(">q", record.offset)),
        (ORIGINAL_TIMESTAMP, struct.pack(">q", record.timestamp)),
        (ORIGINAL_TIMESTAMP_TYPE, b"CreateTime" if record.timestamp_type == 0 else b"LogAppendTime"),
        (ORIGINAL_CONSUMER_GROUP, group_id.encode()),
        (EXCEPTION_FQCN, exception_fqcn(exc).encode()),
        (EXCEPTION_MESSAGE, _utf8_cut(str(exc), MAX_MESSAGE_BYTES)),
        (EXCEPTION_STACKTRACE, stacktrace),
    ]
    return DeadLetter(
        topic=dead_letter_topic(record.topic),
        partition=record.partition,
        key=record.key,
        value=record.value,
        headers=headers,
    )


def _utf8_cut(text: str, limit: int) -> bytes:
    """The first `limit` bytes of the text's UTF-8 (the last `-limit` if negative), never cutting a
    character in two: the headers stay valid UTF-8 for whoever reads them as strings (a lone
    surrogate in an exception message is escaped rather than failing the dead-lettering)."""
    encoded = text.encode(errors="backslashreplace")
    cut = encoded[:limit] if limit >= 0 else encoded[limit:]
    return cut.decode(errors="ignore").encode()


def read_dlt_headers(headers: list[tuple[str, bytes]]) -> dict[str, str | int]:
    """Decode the `kafka_dlt-*` headers of a dead letter (for tests, tools and replays)."""
    decoded: dict[str, str | int] = {}
    for name, value in headers:
        if name in (ORIGINAL_PARTITION,):
            decoded[name] = struct.unpack(">i", value)[0]
        elif name in (ORIGINAL_OFFSET, ORIGINAL_TIMESTAMP):
            decoded[name] = struct.unpack(">q", value)[0]
        elif name.startswith("kafka_dlt-"):
            decoded[name] = value.decode(errors="replace")
    return decoded
