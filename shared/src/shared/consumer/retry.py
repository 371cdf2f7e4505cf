"""Which failures are worth retrying, and how long to wait before the next try."""

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

# SQLSTATE codes of failures that a retry of the same message can cure.
RETRYABLE_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement timeout)
}


class NonRetryableError(Exception):
    """Raised by a handler for a message that can never succeed: dead-lettered at once."""


def is_infrastructure_outage(exc: BaseException) -> bool:
    """The database is unreachable: not this message's fault, so it does not spend its retry budget
    (dead-lettering every message while Postgres restarts would empty the topic into the DLT)."""
    if isinstance(exc, (OSError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return isinstance(exc.orig, (OSError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError))
    return False


def backoff_seconds(attempt: int, *, base: float, multiplier: float, cap: float) -> float:
    """Wait before retry number `attempt` (1-based): base, base*multiplier, ... capped at `cap`.
    The default multiplier of 1 gives DESIGN.md's "1 s apart"."""
    return min(cap, base * multiplier ** max(0, attempt - 1))
