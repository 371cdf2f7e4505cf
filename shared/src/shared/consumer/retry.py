"""Which failures are worth retrying, and how long to wait before the next try.

Whether a failure is the database being away (which does not spend a record's retry budget) is
decided by `shared.outage.is_database_outage`, the same classifier the HTTP layer uses. A
concurrency conflict (deadlock, serialization failure) does not spend it either: Postgres aborted
this transaction so that another could go on, which says nothing about the record.
"""

import random

from shared.outage import sqlstates_in_chain

# SQLSTATEs of a transaction Postgres aborted in favour of another one: trying again succeeds.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


class NonRetryableError(Exception):
    """Raised by a handler for a message that can never succeed: dead-lettered at once."""


def is_concurrency_conflict(exc: BaseException) -> bool:
    return not CONFLICT_SQLSTATES.isdisjoint(sqlstates_in_chain(exc))


def conflict_backoff_seconds(conflicts: int) -> float:
    """Short and jittered, so the transactions that collided do not collide again in step."""
    return random.uniform(0.01, 0.05) * min(1 << conflicts, 20)  # 1 << n: 2**n typed as an int


def backoff_seconds(attempt: int, *, base: float, multiplier: float, cap: float) -> float:
    """Wait before retry number `attempt` (1-based): base, base*multiplier, ... capped at `cap`.
    The default multiplier of 1 gives the documented "1 s apart"."""
    return min(cap, base * multiplier ** max(0, attempt - 1))
