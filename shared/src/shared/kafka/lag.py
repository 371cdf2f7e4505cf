"""Consumer lag per group and partition, in records and in seconds, from the brokers' offsets alone:
no record is fetched, so the principal that measures it needs Describe and nothing more
(shared.kafka.acls.monitor_acls).

- **Records**: how many records of the partition the group has still to consume: the log end offset
  (the high watermark) minus the group's position. The position is its committed offset; where it
  has committed none, or one below the log start (those records were deleted by retention), it would
  start at the log start (the workers' auto_offset_reset is earliest), so the position is the log
  start. (`kafka-consumer-groups` counts from the committed offset, deleted records included, and
  shows no lag where nothing is committed.)
- **Seconds**: how old the oldest record the group has not consumed (the one at its position) is:
  now minus its timestamp; 0.0 when the group is not behind. The timestamp is found without reading
  the record. ListOffsets by timestamp answers, for a time T, the first offset whose record has a
  timestamp >= T (and that timestamp). That offset is at or before the position exactly when some
  record up to the position is stamped T or later, so bisecting T finds the newest timestamp among
  the records up to the position (`TimestampSearch`): the position's own when timestamps grow with
  offsets. They do here: each topic is written by one relay at a time, in order, stamped by the
  producer (CreateTime); at a failover two relays' clocks may differ, and the age is then
  underestimated by at most the difference.

Cost: the committed offsets (one request per group), the partitions, the log start and end offsets
(a request per broker each), and for the lagging partitions of each group one ListOffsets round per
bisection step, every partition at once: about 25 steps for a lag of a minute, none when nothing lags.
"""

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndTimestamp

from shared.kafka.acls import CONSUMES, consumer_group

# The services' groups, and the topics each consumes: a group's partitions without a committed
# offset (nothing consumed yet) lag too.
SERVICE_GROUPS: dict[str, tuple[str, ...]] = {consumer_group(service): CONSUMES[service] for service in CONSUMES}


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group has committed no offset for the partition
    end: int  # the log end offset (the high watermark)
    records: int  # end - the group's position (its committed offset, or the log start: see above)
    seconds: float  # the age of the oldest record the group has not consumed; 0.0 when records == 0


def position(committed: int | None, log_start: int) -> int:
    """Where the group would read next: its committed offset, or the log start if it committed none
    or the records from its committed offset on were deleted."""
    return log_start if committed is None else max(committed, log_start)


def lag_seconds(newest_timestamp_ms: int | None, now: float) -> float:
    """The age of a record stamped `newest_timestamp_ms`, never negative (the producer's clock may
    be ahead of ours); 0.0 for none (the group is not behind)."""
    if newest_timestamp_ms is None:
        return 0.0
    return max(0.0, now - newest_timestamp_ms / 1000)


@dataclass
class TimestampSearch:
    """The newest timestamp among a partition's records up to `position`, found by asking the broker
    for the first record stamped at or after a time (ListOffsets by timestamp) and bisecting the time.

    `next_probe()` is the next time to ask about (None once found), `answer()` takes the broker's
    reply: the first record stamped at or after the probe, None if there is none. Invariant: some
    record up to the position is stamped `low` or later; none is stamped `high` or later. First the
    probe at now (a record stamped in the future: nothing to search), then back from now in doubling
    steps until a record up to the position answers, then bisection down to the millisecond. An
    answer up to the position raises `low` to that record's own timestamp, often far past the probe."""

    position: int
    now_ms: int
    low: int | None = None
    high: int | None = None
    _step_ms: int = field(default=1000, repr=False)

    @property
    def newest_ms(self) -> int | None:
        """The timestamp, once found."""
        return self.low if self.next_probe() is None else None

    def next_probe(self) -> int | None:
        if self.high is None:
            return self.now_ms
        if self.low is None:
            return max(0, self.high - self._step_ms)
        if self.high - self.low <= 1:
            return None
        return (self.low + self.high) // 2

    def answer(self, probe: int, first_at_or_after: OffsetAndTimestamp | None) -> None:
        if first_at_or_after is not None and first_at_or_after.offset <= self.position:
            self.low = max(self.low or 0, first_at_or_after.timestamp)
            if self.high is None:  # stamped now or later: the age is 0
                self.high = self.low + 1
        elif probe == 0:
            # No record up to the position is left (deleted by retention since its offsets were
            # read): the oldest unconsumed record is the first one left, if any.
            self.low = first_at_or_after.timestamp if first_at_or_after is not None else self.now_ms
            self.high = self.low + 1
        else:
            self.high = probe
            if self.low is None:
                self._step_ms *= 2


class LagProbe:
    """The clients a measurement needs, kept open between measurements (the exporter measures every
    few seconds; a new SASL login per round would cost more than the round): an admin client for
    the committed offsets and the partitions, a consumer in no group for the offsets."""

    def __init__(self, config: Mapping[str, Any], *, now: Callable[[], float] = time.time) -> None:
        self._admin = AIOKafkaAdminClient(**config, client_id="lag-probe")
        self._consumer = AIOKafkaConsumer(**config, client_id="lag-probe", group_id=None, enable_auto_commit=False)
        self._now = now

    async def start(self) -> None:
        try:
            await self._admin.start()
            await self._consumer.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def __aenter__(self) -> "LagProbe":
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """Every partition of the topics (those that exist and this principal may describe)."""
        described = await self._admin.describe_topics(list(topics))
        return [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            if topic["error_code"] == 0
            for partition in topic["partitions"]
        ]

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """The log end offset of every partition of the topics."""
        partitions = await self.partitions(topics)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions) if partitions else {}
        return ends

    async def measure(self, groups: Sequence[str] | None = None) -> list[PartitionLag]:
        """The lag of each group (the services' by default) on every partition of the topics it
        consumes or has committed offsets for, sorted by group, topic and partition."""
        groups = list(SERVICE_GROUPS if groups is None else groups)
        committed = dict(zip(groups, await asyncio.gather(*(self._committed(g) for g in groups)), strict=True))
        topics_of = {g: {*SERVICE_GROUPS.get(g, ()), *(tp.topic for tp in committed[g])} for g in groups}
        partitions = await self.partitions(sorted(set().union(*topics_of.values())))
        if not partitions:
            return []
        starts = await self._consumer.beginning_offsets(partitions)
        ends = await self._consumer.end_offsets(partitions)
        now = self._now()
        positions = {
            g: {tp: position(committed[g].get(tp), starts[tp]) for tp in partitions if tp.topic in topics_of[g]}
            for g in groups
        }
        newest = await asyncio.gather(
            *(
                self._newest_timestamps({tp: at for tp, at in positions[g].items() if ends[tp] > at}, now)
                for g in groups
            )
        )
        lags = [
            PartitionLag(
                group=g,
                topic=tp.topic,
                partition=tp.partition,
                committed=committed[g].get(tp),
                end=ends[tp],
                records=max(0, ends[tp] - at),
                seconds=lag_seconds(newest_of_group.get(tp), now),
            )
            for g, newest_of_group in zip(groups, newest, strict=True)
            for tp, at in positions[g].items()
        ]
        return sorted(lags, key=lambda lag: (lag.group, lag.topic, lag.partition))

    async def _committed(self, group: str) -> dict[TopicPartition, int]:
        offsets = await self._admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def _newest_timestamps(
        self, positions: Mapping[TopicPartition, int], now: float
    ) -> dict[TopicPartition, int]:
        """For each partition, the newest timestamp of its records up to its position: every
        partition's bisection advances by one step per ListOffsets round."""
        searches = {tp: TimestampSearch(at, now_ms=int(now * 1000)) for tp, at in positions.items()}
        while probes := {tp: t for tp, search in searches.items() if (t := search.next_probe()) is not None}:
            answers = await self._consumer.offsets_for_times(dict(probes))  # it rewrites the dict it is given
            for tp, probe in probes.items():
                searches[tp].answer(probe, answers.get(tp))
        return {tp: newest for tp, search in searches.items() if (newest := search.newest_ms) is not None}


async def measure_lag(
    config: Mapping[str, Any], groups: Sequence[str] | None = None, *, now: Callable[[], float] = time.time
) -> list[PartitionLag]:
    """One measurement with clients of its own (a command-line tool's; the exporter keeps a LagProbe).
    `config`: an aiokafka client's settings (shared.kafka.security); `groups`: the services' by default."""
    async with LagProbe(config, now=now) as probe:
        return await probe.measure(groups)
