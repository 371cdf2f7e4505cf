"""Group commit of the lanes' batches (shared/consumer/grouping.py): what queues while a transaction
runs goes into the next one, and a failure goes back to the lane that caused it."""

import asyncio
from collections.abc import Sequence

from aiokafka.structs import ConsumerRecord
from shared.consumer.grouping import GroupedTransactions
from shared.consumer.transaction import Applied, BatchFailed, BatchItem


def items(lane: str, count: int) -> list[BatchItem]:
    return [
        BatchItem(ConsumerRecord(lane, 0, n, 0, 0, None, None, None, 0, 0, ()), event_type=f"{lane}{n}")
        for n in range(count)
    ]


class Transactions:
    """Records each transaction's items; fails the one that holds `poison`, or fails as `outage`."""

    def __init__(self, poison: str | None = None, outage: bool = False) -> None:
        self.ran: list[list[str]] = []
        self.poison, self.outage = poison, outage
        self.release = asyncio.Event()

    async def __call__(self, batch: Sequence[BatchItem]) -> list[Applied]:
        self.ran.append([item.event_type for item in batch])
        await self.release.wait()
        if self.outage:
            raise BatchFailed(None, ConnectionError("database away"))
        for index, item in enumerate(batch):
            if item.event_type == self.poison:
                raise BatchFailed(index, RuntimeError("bad record"))
        return [Applied(item, "processed", 0.0) for item in batch]


class HangsOnSlow:
    """A transaction that hangs while it holds the lane "slow"'s record, until `hanging` is set."""

    def __init__(self) -> None:
        self.hanging = asyncio.Event()

    async def __call__(self, batch: Sequence[BatchItem]) -> list[Applied]:
        if batch[0].event_type == "slow0":
            await self.hanging.wait()
        return [Applied(item, "processed", 0.0) for item in batch]


async def test_batches_queued_while_a_transaction_runs_share_the_next_transaction_in_lane_order():
    run = Transactions()
    grouped = GroupedTransactions(run, max_records=100, in_flight=1)
    first = asyncio.create_task(grouped.apply(items("a", 1)))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(grouped.apply(items(lane, 2))) for lane in "bcd"]
    await asyncio.sleep(0)
    run.release.set()
    results = await asyncio.gather(first, *queued)

    assert run.ran == [["a0"], ["b0", "b1", "c0", "c1", "d0", "d1"]]
    assert [[a.item.event_type for a in applied] for applied in results] == [
        ["a0"],
        ["b0", "b1"],
        ["c0", "c1"],
        ["d0", "d1"],
    ]
    await grouped.close()


async def test_a_transaction_takes_queued_batches_up_to_its_record_limit():
    run = Transactions()
    run.release.set()
    grouped = GroupedTransactions(run, max_records=4, in_flight=1)
    await asyncio.gather(*(grouped.apply(items(lane, 2)) for lane in "abc"))

    assert run.ran == [["a0", "a1", "b0", "b1"], ["c0", "c1"]]
    await grouped.close()


async def test_a_record_that_fails_the_transaction_fails_its_own_batch_only_and_the_others_commit_in_the_next():
    run = Transactions(poison="b1")
    run.release.set()
    grouped = GroupedTransactions(run, max_records=100, in_flight=1)
    a, b, c = await asyncio.gather(*(grouped.apply(items(lane, 2)) for lane in "abc"), return_exceptions=True)

    assert isinstance(b, BatchFailed) and b.index == 1, "the index points into the failing lane's own batch"
    assert [x.item.event_type for x in a] == ["a0", "a1"] and [x.item.event_type for x in c] == ["c0", "c1"]
    assert run.ran == [["a0", "a1", "b0", "b1", "c0", "c1"], ["a0", "a1", "c0", "c1"]]
    await grouped.close()


async def test_a_failure_that_is_no_records_doing_fails_every_batch_in_the_transaction():
    run = Transactions(outage=True)
    run.release.set()
    grouped = GroupedTransactions(run, max_records=100, in_flight=1)
    results = await asyncio.gather(*(grouped.apply(items(lane, 1)) for lane in "ab"), return_exceptions=True)

    assert all(isinstance(r, BatchFailed) and r.index is None for r in results)
    await grouped.close()


async def test_with_two_in_flight_a_transaction_that_hangs_does_not_hold_the_batches_queued_after_it():
    run = HangsOnSlow()
    grouped = GroupedTransactions(run, max_records=100, in_flight=2)
    slow = asyncio.create_task(grouped.apply(items("slow", 1)))
    await asyncio.sleep(0.01)
    fast = await asyncio.wait_for(grouped.apply(items("fast", 1)), timeout=1)

    assert [a.item.event_type for a in fast] == ["fast0"] and not slow.done()
    run.hanging.set()
    await slow
    await grouped.close()


async def test_while_transactions_are_quick_a_second_slot_stays_closed_so_batches_grow():
    running = most = 0

    async def run(batch: Sequence[BatchItem]) -> list[Applied]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1
        return [Applied(item, "processed", 0.0) for item in batch]

    grouped = GroupedTransactions(run, max_records=100, in_flight=2, slow_after_s=0.2)
    submitted = []
    for lane in "abcdefghij":
        submitted.append(asyncio.create_task(grouped.apply(items(lane, 1))))
        await asyncio.sleep(0.005)
    await asyncio.gather(*submitted)

    assert most == 1
    await grouped.close()


async def test_the_second_slot_opens_once_the_first_transaction_has_run_for_slow_after():
    run = HangsOnSlow()
    grouped = GroupedTransactions(run, max_records=100, in_flight=2, slow_after_s=0.3)
    slow = asyncio.create_task(grouped.apply(items("slow", 1)))
    await asyncio.sleep(0.01)
    fast = asyncio.create_task(grouped.apply(items("fast", 1)))
    await asyncio.sleep(0.1)
    assert not fast.done()  # the first transaction is not slow yet

    await asyncio.wait_for(fast, timeout=1)
    run.hanging.set()
    await slow
    await grouped.close()
