"""`dlt list`, `dlt show` and `dlt redrive`: the dead-letter topics read whole (they are small and
kept 30 days), and the planned redrives sent back (dead_letters.py decides what is sent)."""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from shared.events.topics import DLT_SUFFIX, EVENT_TOPICS, dead_letter_topic

from .dead_letters import REDRIVEN_FROM, DeadLetterRecord, Redrive
from .kafka_reading import KafkaReader, Progress, ranges_since, read_ranges, whole_ranges

DEAD_LETTER_TOPICS = tuple(dead_letter_topic(topic) for topic in EVENT_TOPICS)


def dead_letter_topic_named(name: str) -> str:
    """`order-events.DLT`, or the original topic's name `order-events` for it."""
    return name if name.endswith(DLT_SUFFIX) else dead_letter_topic(name)


async def count_dead_letters(kafka: KafkaReader, topics: Sequence[str]) -> int:
    """How many records the topics hold now (what a full read will go through)."""
    total = 0
    for topic in topics:
        total += sum(
            end - start for start, end in (await whole_ranges(kafka.consumer, await kafka.partitions(topic))).values()
        )
    return total


async def read_dead_letters(
    kafka: KafkaReader, topics: Sequence[str], *, progress: Progress = lambda _count: None
) -> list[DeadLetterRecord]:
    """Every record the dead-letter topics hold, oldest first."""
    ranges = {}
    for topic in topics:
        ranges.update(await whole_ranges(kafka.consumer, await kafka.partitions(topic)))
    letters = [DeadLetterRecord.of(record) for record in await read_ranges(kafka.consumer, ranges, progress=progress)]
    return sorted(letters, key=lambda letter: (letter.timestamp_ms, letter.topic, letter.partition, letter.offset))


async def times_sent_back(
    kafka: KafkaReader, letters: Sequence[DeadLetterRecord], *, progress: Progress = lambda _count: None
) -> Counter[str]:
    """How many times each dead letter (by position) was sent back: the records of its original
    partition that name it in their `redriven-from` header, read from the oldest of these dead
    letters on (a redrive comes after its dead letter). Reads as much of the original partitions as
    was written since: quick for recent dead letters, longer for old ones."""
    since: dict[TopicPartition, int] = {}
    for letter in letters:
        tp = TopicPartition(letter.original_topic, letter.original_partition)
        since[tp] = min(since.get(tp, letter.timestamp_ms), letter.timestamp_ms)
    ranges = {}
    for tp, ms in since.items():
        ranges.update(await ranges_since(kafka.consumer, [tp], datetime.fromtimestamp(ms / 1000, UTC)))
    copies = await read_ranges(
        kafka.consumer,
        ranges,
        keep=lambda record: any(name == REDRIVEN_FROM for name, _ in record.headers or ()),
        progress=progress,
    )
    return Counter(
        value.decode(errors="replace") for record in copies for name, value in record.headers if name == REDRIVEN_FROM
    )


def find(letters: Sequence[DeadLetterRecord], position: str) -> list[DeadLetterRecord]:
    """The dead letters at `PARTITION:OFFSET`, or at `OFFSET` in any partition (then maybe several)."""
    partition_text, _, offset_text = position.rpartition(":")
    offset = int(offset_text)
    partition = int(partition_text) if partition_text else None
    return [
        letter for letter in letters if letter.offset == offset and (partition is None or letter.partition == partition)
    ]


async def send(
    producer: AIOKafkaProducer, redrives: Sequence[Redrive], *, progress: Progress = lambda _count: None
) -> list[RecordMetadata]:
    """Send each record back to its original topic and partition, each acknowledged before the next
    (a redrive that raises has sent those before it); where each one landed."""
    sent = []
    for redrive in redrives:
        delivery = await producer.send(
            redrive.topic, value=redrive.value, key=redrive.key, headers=redrive.headers, partition=redrive.partition
        )
        sent.append(await delivery)
        progress(1)
    return sent
