"""One assigned partition's records, handled strictly in order by a task of its own.

The poll loop feeds each lane what it fetched for the lane's partition and goes on polling: a slow
record holds its own partition and no other, and the consumer keeps polling (so it keeps its group
membership) however long a handler takes. A lane with a full read-ahead pauses its partition, so a
slow partition does not pile up records in memory; it resumes it once it takes the queue in hand.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

# Handles a batch of records in order; says for each record it finished by calling `finished`. It
# stops early (leaving the rest unfinished) once the lane is stopping.
BatchHandler = Callable[[list[ConsumerRecord], "PartitionLane"], Awaitable[None]]


class PartitionLane:
    def __init__(
        self,
        tp: TopicPartition,
        consumer: AIOKafkaConsumer,
        handle_batch: BatchHandler,
        on_finished: Callable[[TopicPartition, int], None],
        read_ahead: int,
        worker_stop: asyncio.Event,
    ) -> None:
        self.tp = tp
        self._consumer = consumer
        self._handle_batch = handle_batch
        self._on_finished = on_finished
        self._read_ahead = read_ahead
        self._queue: deque[ConsumerRecord] = deque()
        self._fed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._worker_stop = worker_stop  # seen at once, between two records of a batch
        self._detached = False
        self._paused = False
        self.task = asyncio.create_task(self._run(), name=f"lane {tp.topic}-{tp.partition}")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set() or self._worker_stop.is_set()

    def feed(self, records: list[ConsumerRecord]) -> None:
        if self.stopping:
            return
        self._queue.extend(records)
        self._fed.set()
        if len(self._queue) >= self._read_ahead and not self._paused:
            self._paused = True
            with contextlib.suppress(IllegalStateError):  # revoked meanwhile: nothing left to pause
                self._consumer.pause(self.tp)

    def stop(self) -> None:
        """Finish the record in hand, then end; what is queued is left for the partition's next owner."""
        self._stopping.set()
        self._queue.clear()
        self._fed.set()

    def detach(self) -> None:
        """The partition is gone and the record in hand outlived the wait for it: whatever it does now
        is not committed by this worker (the next owner gets the record again, and the dedup table
        makes it a no-op if this transaction committed after all)."""
        self._detached = True

    def finished(self, record: ConsumerRecord) -> None:
        if not self._detached:
            self._on_finished(self.tp, record.offset)

    async def wait_unless_stopping(self, seconds: float) -> bool:
        """Sleep `seconds`; False at once if the lane is told to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
            return False
        return True

    async def _run(self) -> None:
        while not self.stopping:
            if not self._queue:
                self._fed.clear()
                await self._fed.wait()
                continue
            batch = list(self._queue)
            self._queue.clear()
            self._resume()
            await self._handle_batch(batch, self)

    def _resume(self) -> None:
        if not self._paused or self.stopping:
            return
        self._paused = False
        # A rebalance may have taken the partition meanwhile; its new assignment starts unpaused.
        with contextlib.suppress(IllegalStateError):
            if self.tp in self._consumer.assignment():
                self._consumer.resume(self.tp)
