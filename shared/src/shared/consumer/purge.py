"""Purging the dedup table: rows older than the topics' retention can never match a redelivery."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# One short transaction per batch, so a purge never holds locks or a snapshot for long, whatever
# the backlog (the first purge after a long pause may have millions of rows to delete). Rows locked
# by someone else are skipped: the next run gets them.
_PURGE_BATCH = text(
    """
    DELETE FROM processed_events
    WHERE (consumer, event_id) IN (
        SELECT consumer, event_id FROM processed_events
        WHERE consumer = :consumer AND processed_at < now() - make_interval(secs => :retention_s)
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    )
    """
)


async def purge_processed_events(
    sessions: async_sessionmaker[AsyncSession], consumer: str, *, retention_s: float, batch_size: int
) -> int:
    """Delete `consumer`'s dedup rows older than `retention_s`, at most `batch_size` per transaction,
    until a batch comes back short. Returns how many rows went."""
    deleted = 0
    while True:
        async with sessions() as session, session.begin():
            # On the session's connection: its result is a cursor's, with the DELETE's rowcount.
            connection = await session.connection()
            result = await connection.execute(
                _PURGE_BATCH, {"consumer": consumer, "retention_s": retention_s, "batch_size": batch_size}
            )
        deleted += result.rowcount
        if result.rowcount < batch_size:
            break
    return deleted
