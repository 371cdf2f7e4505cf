"""Which failures are worth retrying, and how long to wait before the next try.

Whether a failure is the database being away (which does not spend a record's retry budget) is
decided by `shared.outage.is_database_outage`, the same classifier the HTTP layer uses.
"""


class NonRetryableError(Exception):
    """Raised by a handler for a message that can never succeed: dead-lettered at once."""


def backoff_seconds(attempt: int, *, base: float, multiplier: float, cap: float) -> float:
    """Wait before retry number `attempt` (1-based): base, base*multiplier, ... capped at `cap`.
    The default multiplier of 1 gives DESIGN.md's "1 s apart"."""
    return min(cap, base * multiplier ** max(0, attempt - 1))
