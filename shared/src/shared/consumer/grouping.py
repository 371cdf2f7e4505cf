"""Group commit for the worker's lanes: the batches that lanes submit while a transaction runs are
handled together in the next one.

Each partition has its own lane (lane.py), so at a moderate rate each lane holds a record or two at
a time; a transaction per lane batch would pay the fixed costs (claim, loads, flush, commit) per
record. The lanes' batches instead queue here, and one transaction takes all that queued (up to
`max_records`), each lane's records in its partition's order. Records of different partitions have
no order between them, so one transaction after the other is as good as any interleaving.

A worker has `in_flight` transaction slots, but runs one transaction at a time while transactions
are quick: a further slot opens only once every slot before it has run its transaction for
`slow_after_s`. So batches grow with the load (what queues while one runs goes into the next), two
transactions of one worker do not wait on each other's row locks, and yet a transaction that is
slow (a lock held elsewhere, a slow handler) holds the records grouped with it and no other lane.

If the transaction fails because of a record, the batch of that record's lane fails (its lane handles
it again one record at a time); the other lanes' batches go into the next transaction. If it fails
through no record's doing (the database away, a conflict), every batch in it fails and each lane
goes its one-at-a-time way, which waits out an outage or retries a conflict.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .transaction import Applied, BatchFailed, BatchItem

RunTransaction = Callable[[Sequence[BatchItem]], Awaitable[list[Applied]]]


@dataclass
class _Submitted:
    items: Sequence[BatchItem]
    done: asyncio.Future[list[Applied]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupedTransactions:
    def __init__(
        self, run_transaction: RunTransaction, max_records: int, in_flight: int = 1, slow_after_s: float = 0.2
    ) -> None:
        self._run_transaction = run_transaction
        self._max_records = max_records
        self._slow_after_s = slow_after_s
        self._queue: list[_Submitted] = []
        self._queued = asyncio.Event()
        self._started: list[float | None] = [None] * in_flight  # when each slot's transaction began
        self._tasks = [asyncio.create_task(self._run(n), name=f"grouped transactions {n}") for n in range(in_flight)]

    async def apply(self, items: Sequence[BatchItem]) -> list[Applied]:
        """The items' outcomes once their transaction committed; raises BatchFailed (index into `items`)."""
        submitted = _Submitted(items)
        self._queue.append(submitted)
        self._queued.set()
        return await submitted.done

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for submitted in self._queue:
            submitted.done.cancel()

    async def _run(self, slot: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            not_yet = self._seconds_until_open(slot, loop.time())
            if not_yet > 0:
                await asyncio.sleep(not_yet)  # then look again: a slot before may have taken the queue
                continue
            group = self._take()
            self._started[slot] = loop.time()
            try:
                applied = await self._run_transaction([item for s in group for item in s.items])
            except BatchFailed as failed:
                self._fail(group, failed)
            except Exception as exc:  # not raised by apply_batch, which wraps every failure: fail safe
                self._fail(group, BatchFailed(None, exc))
            else:
                self._succeed(group, applied)
            finally:
                self._started[slot] = None

    def _seconds_until_open(self, slot: int, now: float) -> float:
        """0 when the slot may start a transaction: it is the first, or every slot before it has run
        its transaction for slow_after_s. A slot before it that is idle takes the queue itself."""
        before = self._started[:slot]
        if not before:
            return 0.0
        if any(started is None for started in before):
            return self._slow_after_s / 2
        return max(0.0, max(s for s in before if s is not None) + self._slow_after_s - now)

    def _take(self) -> list[_Submitted]:
        group: list[_Submitted] = []
        count = 0
        while self._queue and (not group or count + len(self._queue[0].items) <= self._max_records):
            submitted = self._queue.pop(0)
            if submitted.done.done():  # its lane was cancelled meanwhile
                continue
            group.append(submitted)
            count += len(submitted.items)
        return group

    def _succeed(self, group: list[_Submitted], applied: list[Applied]) -> None:
        start = 0
        for submitted in group:
            end = start + len(submitted.items)
            _resolve(submitted, applied[start:end])
            start = end

    def _fail(self, group: list[_Submitted], failed: BatchFailed) -> None:
        if failed.index is None:
            for submitted in group:
                _reject(submitted, BatchFailed(None, failed.cause))
            return
        start, retry = 0, []
        for submitted in group:
            end = start + len(submitted.items)
            if start <= failed.index < end:
                _reject(submitted, BatchFailed(failed.index - start, failed.cause))
            else:
                retry.append(submitted)  # not its doing: into the next transaction, first in line
            start = end
        self._queue[:0] = retry


def _resolve(submitted: _Submitted, applied: list[Applied]) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):  # cancelled: its lane is gone
        submitted.done.set_result(applied)


def _reject(submitted: _Submitted, failed: BatchFailed) -> None:
    with contextlib.suppress(asyncio.InvalidStateError):
        submitted.done.set_exception(failed)
