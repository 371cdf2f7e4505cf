"""The arithmetic of consumer lag (shared.kafka.lag): the group's position, the age of a record, and
the search for a record's timestamp through offsets by timestamp, against a partition simulated as
a list of timestamps (what a broker's ListOffsets answers, without a broker)."""

import pytest
from aiokafka.structs import OffsetAndTimestamp
from shared.kafka.lag import TimestampSearch, lag_seconds, position

NOW_MS = 1_800_000_000_000


def test_the_position_is_the_committed_offset():
    assert position(committed=120, log_start=0) == 120


def test_a_group_that_committed_nothing_starts_at_the_log_start():
    assert position(committed=None, log_start=40) == 40


def test_a_committed_offset_whose_records_were_deleted_counts_from_the_log_start():
    assert position(committed=10, log_start=40) == 40


def test_the_age_is_now_minus_the_records_timestamp():
    assert lag_seconds(NOW_MS - 2_500, now=NOW_MS / 1000) == pytest.approx(2.5)


def test_no_record_behind_is_no_age_and_a_record_from_the_future_is_not_a_negative_one():
    assert lag_seconds(None, now=NOW_MS / 1000) == 0.0
    assert lag_seconds(NOW_MS + 5_000, now=NOW_MS / 1000) == 0.0


class SimulatedPartition:
    """Offset i holds a record stamped timestamps[i]; `first_at_or_after` is ListOffsets by time."""

    def __init__(self, timestamps: list[int], log_start: int = 0) -> None:
        self.timestamps = timestamps
        self.log_start = log_start
        self.requests = 0

    def first_at_or_after(self, probe_ms: int) -> OffsetAndTimestamp | None:
        self.requests += 1
        for offset in range(self.log_start, len(self.timestamps)):
            if self.timestamps[offset] >= probe_ms:
                return OffsetAndTimestamp(offset, self.timestamps[offset])
        return None

    def search(self, position: int) -> tuple[int | None, int]:
        """The timestamp found for `position`, and how many requests it took."""
        search = TimestampSearch(position, now_ms=NOW_MS)
        while (probe := search.next_probe()) is not None:
            search.answer(probe, self.first_at_or_after(probe))
        return search.newest_ms, self.requests


def one_a_second(count: int, first_age_s: int) -> list[int]:
    """Records stamped once a second, the first `first_age_s` seconds ago, plus a few ms of jitter."""
    return [NOW_MS - (first_age_s - i) * 1000 + (i * 7) % 13 for i in range(count)]


@pytest.mark.parametrize("position", [0, 1, 17, 59, 99])
def test_the_search_finds_the_exact_timestamp_of_the_record_at_the_position(position):
    timestamps = one_a_second(100, first_age_s=100)

    found, _ = SimulatedPartition(timestamps).search(position)

    assert found == timestamps[position]


def test_with_timestamps_out_of_order_it_finds_the_newest_one_up_to_the_position():
    timestamps = [NOW_MS - 60_000, NOW_MS - 10_000, NOW_MS - 50_000, NOW_MS - 40_000]

    found, _ = SimulatedPartition(timestamps).search(2)

    assert found == NOW_MS - 10_000  # record 1's, newer than record 2's own: an age of 10 s, not 50 s


def test_a_record_stamped_in_the_future_needs_one_request_and_ages_zero():
    found, requests = SimulatedPartition([NOW_MS + 3_000, NOW_MS + 4_000]).search(0)

    assert (found, requests) == (NOW_MS + 3_000, 1)
    assert lag_seconds(found, now=NOW_MS / 1000) == 0.0


def test_records_deleted_up_to_the_position_give_the_first_record_left():
    partition = SimulatedPartition(one_a_second(10, first_age_s=10), log_start=6)

    found, _ = partition.search(3)

    assert found == partition.timestamps[6]


@pytest.mark.parametrize(("age_s", "most_requests"), [(1, 16), (60, 30), (3600, 40), (7 * 24 * 3600, 52)])
def test_the_search_takes_a_few_dozen_requests_at_most(age_s, most_requests):
    """Doubling back from now, then bisecting to the millisecond: about 2 x log2(age) requests."""
    timestamps = one_a_second(min(age_s, 500), first_age_s=age_s)

    found, requests = SimulatedPartition(timestamps).search(0)

    assert found == timestamps[0]
    assert requests <= most_requests
