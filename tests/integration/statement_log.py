"""The statements a test's sessions send to Postgres, counted where they leave: SQLAlchemy's, and
those the hot paths send on the driver itself (shared.db.driver_connection)."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# asyncpg's own type lookup (with JIT off around it), once per connection and type: not the code's.
INTROSPECTION = ("typeinfo_tree", "'jit'")


@contextmanager
def statements_sent(
    sessions: async_sessionmaker[AsyncSession], on_each: Callable[[str], None] = lambda _statement: None
) -> Iterator[list[str]]:
    """`with statements_sent(sessions) as sent:` every statement the sessions' connections send to
    Postgres in the block, in order, as its SQL text: SQLAlchemy's, those the hot paths send on the
    driver itself (shared.db.driver_connection), and asyncpg's BEGIN and COMMIT. An executemany
    is one statement (one text sent with many parameter sets). `on_each(statement)` is called as
    each one has run."""
    engine = sessions.kw["bind"].sync_engine
    sent: list[str] = []
    watched: list[Any] = []

    def note(statement: str) -> None:
        sent.append(statement)
        on_each(statement)

    def on_sqlalchemy(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, many: bool) -> None:
        if not many:  # asyncpg logs its executemany itself (below)
            note(statement)

    def on_driver(query: Any) -> None:  # asyncpg logs what runs through it, not SQLAlchemy's prepared statements
        if not any(mark in query.query for mark in INTROSPECTION):
            note(query.query)

    def on_checkout(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(on_driver)
        watched.append(dbapi_connection.driver_connection)

    event.listen(engine, "after_cursor_execute", on_sqlalchemy)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield sent
    finally:
        event.remove(engine, "after_cursor_execute", on_sqlalchemy)
        event.remove(engine.pool, "checkout", on_checkout)
        for connection in watched:
            connection.remove_query_logger(on_driver)


def statement_kinds(sent: list[str]) -> list[str]:
    """Each statement's first word (BEGIN, SELECT, INSERT, ...)."""
    return [statement.split()[0].rstrip(";").upper() for statement in sent]
