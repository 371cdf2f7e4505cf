"""Is this failure the database being away, rather than something wrong with the work at hand?

Used by the HTTP layer (an outage is a 503 with Retry-After, not a 500) and by the consumer runtime
(an outage does not spend a record's retry budget). Classified by SQLSTATE class, looked up along
the whole exception chain, because what reaches the caller is SQLAlchemy's wrapper around the
driver adapter's wrapper around asyncpg's exception, and each layer keeps a different piece.
"""

import socket

import asyncpg
from sqlalchemy.exc import DBAPIError

# SQLSTATEs that mean "the server is not there for you right now", whatever the statement was.
_OUTAGE_SQLSTATE_CLASSES = ("08",)  # connection_exception and all its subclasses
_OUTAGE_SQLSTATES = frozenset(
    {
        "57P01",  # admin_shutdown: the backend was terminated (fast shutdown, pg_terminate_backend)
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up, shutting down, in recovery
        "57P05",  # idle_session_timeout
        "53300",  # too_many_connections
    }
)
# Driver-level failures that carry no SQLSTATE but mean the connection is gone.
_OUTAGE_DRIVER_ERRORS = (
    asyncpg.ConnectionDoesNotExistError,  # a 08003 subclass, listed for clarity
    asyncpg.exceptions.InternalClientError,  # "cannot switch to state N; another operation is in progress"
    asyncpg.InterfaceError,  # the connection was closed under a running operation
    ConnectionError,  # refused, reset, aborted: the OSError subclasses of a dead TCP peer
    socket.gaierror,
)


def is_outage_sqlstate(sqlstate: str | None) -> bool:
    if not sqlstate:
        return False
    return sqlstate in _OUTAGE_SQLSTATES or sqlstate.startswith(_OUTAGE_SQLSTATE_CLASSES)


def is_database_outage(exc: BaseException) -> bool:
    """True when Postgres is unreachable, restarting or refusing connections.

    A handler bug, a constraint violation or a deadlock is not an outage. A bare `OSError` that is
    not a connection error (a full disk, a timeout of some other call) is not one either: callers
    must wrap calls to other systems (a payment gateway) in errors of their own."""
    for link in _chain(exc):
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        if is_outage_sqlstate(getattr(link, "sqlstate", None)):
            return True
        if isinstance(link, _OUTAGE_DRIVER_ERRORS):
            return True
    return False


def sqlstates_in_chain(exc: BaseException) -> set[str]:
    """Every SQLSTATE carried anywhere in the exception chain."""
    return {state for link in _chain(exc) if isinstance(state := getattr(link, "sqlstate", None), str)}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, SQLAlchemy's `orig`, and every `__cause__`/`__context__` below them, once each."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        link = todo.pop()
        if link is None or any(link is s for s in seen) or len(seen) > 20:
            continue
        seen.append(link)
        todo.extend([getattr(link, "orig", None), link.__cause__, link.__context__])
    return seen
