"""The offsets a worker has finished but not yet committed, per partition."""

from aiokafka import TopicPartition


class PendingOffsets:
    """Next offset to commit, per partition, kept until a commit of exactly that offset succeeded.

    A commit takes a snapshot; records finished while it is in flight move their partition past the
    snapshot, and `committed` leaves those alone. A failed commit leaves everything pending for the
    next try. Partitions the worker no longer owns are `forget`-ten: their next owner re-reads from
    the last committed offset and the dedup table turns what was already applied into no-ops.
    """

    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}

    def finished(self, tp: TopicPartition, offset: int) -> None:
        """The record at `offset` is done: the partition's next offset to commit is `offset + 1`."""
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def snapshot(self) -> dict[TopicPartition, int]:
        return dict(self._next)

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if self._next.get(tp) == offset:
                del self._next[tp]

    def forget(self, partitions: "set[TopicPartition] | list[TopicPartition]") -> None:
        for tp in partitions:
            self._next.pop(tp, None)

    def __bool__(self) -> bool:
        return bool(self._next)
