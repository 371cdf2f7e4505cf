"""A payment token never leaves the payment service in clear (docs/security.md): after a confirmed
order and a declined one, each placed with a token no other order uses, neither token is found in
any table of any schema (searched as the superuser), in any record or header of any topic or
dead-letter topic, or in any log line under .run/logs. Each search first finds the order's id where
it must be, so a search that sees nothing cannot pass for one that found nothing."""

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from postgres_superuser import superuser_sql
from shared.events.topics import EVENT_TOPICS, PARTITIONS, dead_letter_topic
from shared.kafka.security import admin_client_config

from .conftest import REPO
from .dead_letters import BOOTSTRAP
from .storefront import Storefront, eventually

ALL_TOPICS = [*EVENT_TOPICS, *(dead_letter_topic(topic) for topic in EVENT_TOPICS)]

# Every ordinary table of every schema (none named in advance: a new table is searched too), each
# scanned once, with one count per needle of the rows that contain it as text. Only the rows
# written (inserted or updated) since the transaction `{since}`: the needles are new to the test, so
# no older row can hold one, and a database grown by benchmarks is not turned into text row by row.
# age() counts transactions back from now, through the 32-bit xid's wraparound.
COUNTS_PER_TABLE = """
SELECT name, {columns}
FROM (SELECT table_schema || '.' || table_name AS name,
             query_to_xml(format('SELECT {counts} FROM %I.%I t WHERE age(t.xmin) <= age(''{since}''::xid)',
                                 table_schema, table_name), false, true, '') AS x
      FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')) AS tables
ORDER BY name
"""


def distinct(card: str) -> str:
    """A token the test gateway treats as `card` (payment domain/gateway.py), used by no other order."""
    return f"{card}_{uuid.uuid4().hex}"


def current_transaction() -> str:
    """A transaction id of now, as a row's xmin shows it (32 bits), for tables_containing's `since`."""
    return superuser_sql("SELECT (txid_current() % 4294967296)::text")


def tables_containing(*needles: str, since: str) -> dict[str, list[str]]:
    """As the superuser (`make psql`'s way in): for each needle, the tables that hold it in a row
    written since the transaction `since` (current_transaction())."""
    assert since.isdigit()
    for needle in needles:
        assert needle.replace("_", "").replace("-", "").isalnum(), "a needle goes into the SQL as a literal"
    sql = COUNTS_PER_TABLE.format(
        since=since,
        columns=", ".join(f"(xpath('/row/n{i}/text()', x))[1]::text" for i in range(len(needles))),
        counts=", ".join(f"count(*) FILTER (WHERE {_matches(needle)}) AS n{i}" for i, needle in enumerate(needles)),
    )
    for attempt in range(3):  # a table dropped while the query runs (a test's scratch schema): once more
        try:
            output = superuser_sql(sql)
            break
        except RuntimeError as error:
            if "does not exist" not in str(error) or attempt == 2:
                raise
    rows = [line.split("|") for line in output.splitlines()]
    assert len(rows) > 10, f"too few tables searched: {rows}"
    return {needle: [row[0] for row in rows if int(row[i + 1]) > 0] for i, needle in enumerate(needles)}


def _matches(needle: str) -> str:
    """A row's text holds the needle as text, or as a bytea column shows it (the outboxes' values): in
    hex. Written for the inner query of format(), so its quotes are doubled."""
    return " OR ".join(f"strpos(t::text, ''{form}'') > 0" for form in (needle, needle.encode().hex()))


async def records_since(start_ms: int) -> list[tuple[str, bytes]]:
    """Every record of every topic and dead-letter topic written since `start_ms`: (topic, the
    record's key, value and headers as one byte string)."""
    consumer = AIOKafkaConsumer(
        **admin_client_config(BOOTSTRAP), enable_auto_commit=False, client_id="e2e-token-search"
    )
    await consumer.start()
    found: list[tuple[str, bytes]] = []
    try:
        partitions = [TopicPartition(topic, partition) for topic in ALL_TOPICS for partition in range(PARTITIONS)]
        starts = await consumer.offsets_for_times({tp: start_ms for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        first = {tp: found_at.offset for tp, found_at in starts.items() if found_at is not None}
        remaining = {tp: offset for tp, offset in first.items() if ends[tp] > offset}
        if not remaining:
            return found
        consumer.assign(list(remaining))
        for tp, offset in remaining.items():
            consumer.seek(tp, offset)
        async with asyncio.timeout(120):
            while remaining:
                for tp, records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).items():
                    for record in records:
                        if record.offset < ends[tp]:
                            parts = [record.key or b"", record.value or b""]
                            parts += [name.encode() + b"=" + value for name, value in record.headers]
                            found.append((tp.topic, b"\n".join(parts)))
                    if records and records[-1].offset + 1 >= ends[tp]:
                        remaining.pop(tp, None)
    finally:
        await consumer.stop()
    return found


def log_files_containing(needle: str) -> list[Path]:
    logs = REPO / ".run/logs"
    files = [path for path in logs.rglob("*") if path.is_file()]
    assert files, f"no log files under {logs}"
    return [path for path in files if needle.encode() in path.read_bytes()]


async def test_no_payment_token_is_found_in_clear_in_any_table_topic_dead_letter_or_log(shop: Storefront) -> None:
    start_ms = int(time.time() * 1000) - 5_000  # broker and test clocks are the same host's
    since = current_transaction()
    product = await shop.stock_product(available=10, unit_price=1500)
    approved, declined = distinct("tok_visa"), distinct("tok_chargeDeclined")

    confirmed = await shop.wait_until_terminal((await shop.place_order([(product, 1)], token=approved))["order_id"])
    cancelled = await shop.wait_until_terminal((await shop.place_order([(product, 1)], token=declined))["order_id"])
    assert (confirmed["status"], cancelled["status"]) == ("CONFIRMED", "CANCELLED")
    assert cancelled["cancellation_reason"] == "payment_failed"

    async def settled() -> bool:
        payments = [await shop.payment(order["order_id"]) for order in (confirmed, cancelled)]
        return [payment and payment["status"] for payment in payments] == ["CHARGED", "DECLINED"]

    await eventually(settled, timeout=30, what="the charge and the decline recorded by payment")

    # The searches see what they must: the order's id is in each service's tables and on the topics.
    order_id = confirmed["order_id"]
    found = tables_containing(order_id, approved, declined, since=since)
    assert {"orders.order_events", "orders.orders", "payments.payments", "inventory.reservations"} <= set(
        found[order_id]
    )
    records = await records_since(start_ms)
    assert {topic for topic, record in records if order_id.encode() in record} >= set(EVENT_TOPICS)

    for token in (approved, declined):
        assert found[token] == [], f"{token} in clear in a table"
        assert [topic for topic, record in records if token.encode() in record] == [], f"{token} on a topic"
        assert log_files_containing(token) == [], f"{token} in a log"
