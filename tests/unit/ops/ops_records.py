"""Records as a consumer receives them, built without Kafka: an event's record, and its dead letter
made by the workers' own dead_letter_for."""

from aiokafka.structs import ConsumerRecord
from shared.consumer.dead_letter import dead_letter_for
from shared.events import Envelope
from shared.events.codec import encode


def record(
    envelope: Envelope, *, offset: int = 7, partition: int = 3, timestamp: int = 1_700_000_000_000, extra_headers=()
) -> ConsumerRecord:
    kafka = encode(envelope)
    return consumer_record(
        kafka.topic, partition, offset, timestamp, kafka.key, kafka.value, [*kafka.headers, *extra_headers]
    )


def consumer_record(topic, partition, offset, timestamp, key, value, headers) -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key or b""),
        serialized_value_size=len(value or b""),
        headers=list(headers),
    )


def dead_lettered(
    original: ConsumerRecord, exc: BaseException, *, group: str = "order-service", offset: int = 0, timestamp: int = 0
) -> ConsumerRecord:
    """The DLT record a worker of `group` writes for `original` failing with `exc`."""
    letter = dead_letter_for(original, exc, group)
    return consumer_record(
        letter.topic,
        letter.partition,
        offset,
        timestamp or original.timestamp + 5000,
        letter.key,
        letter.value,
        letter.headers,
    )
