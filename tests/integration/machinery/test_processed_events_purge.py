"""The purge of the dedup table: a consumer's rows older than the retention go, in transactions of
a bounded size that never wait for a row someone else holds."""

import asyncio

import pytest
from shared.consumer.purge import purge_processed_events
from sqlalchemy import text

pytestmark = [pytest.mark.infra, pytest.mark.timeout(60)]

INSERT_ROWS = """
    INSERT INTO processed_events (consumer, event_id, processed_at)
    SELECT :consumer, gen_random_uuid(), now() - make_interval(secs => :age_s) FROM generate_series(1, :count)
"""


async def rows(db, consumer: str, *, older_than_s: float = 0) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM processed_events"
        " WHERE consumer = :consumer AND processed_at <= now() - make_interval(secs => :age)",
        consumer=consumer,
        age=older_than_s,
    )


async def test_the_purge_deletes_a_consumers_expired_rows_in_batches_and_keeps_recent_rows_and_other_consumers_rows(
    db,
):
    await db.execute(INSERT_ROWS, consumer="c", age_s=7200, count=25)
    await db.execute(INSERT_ROWS, consumer="c", age_s=60, count=3)
    await db.execute(INSERT_ROWS, consumer="other", age_s=7200, count=4)

    deleted = await purge_processed_events(db.sessions, "c", retention_s=3600, batch_size=10)

    assert deleted == 25
    assert (await rows(db, "c"), await rows(db, "other")) == (3, 4)


async def test_the_purge_skips_a_row_another_transaction_holds_instead_of_waiting_for_it(db):
    await db.execute(INSERT_ROWS, consumer="c", age_s=7200, count=5)
    async with db.engine.connect() as holder, holder.begin():
        await holder.execute(text("SELECT 1 FROM processed_events WHERE consumer = 'c' LIMIT 1 FOR UPDATE"))

        deleted = await asyncio.wait_for(
            purge_processed_events(db.sessions, "c", retention_s=3600, batch_size=2), timeout=10
        )

    assert deleted == 4
    assert await rows(db, "c") == 1, "the held row is left for the next purge"
