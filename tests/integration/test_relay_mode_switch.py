"""Back from the Debezium relay to the built-in one: `make up` under RELAY=builtin retires the outbox's
delete-on-insert trigger (infra/scripts/connectors.py retire). Left in place, it deleted every event
as it was written, with no connector to read the WAL: a clean-clone test run on a database last run
under Debezium lost every order's events that way. Needs Postgres only; no Connect, no slot."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra/scripts"))
import connectors  # noqa: E402  (infra/scripts is not a package)
from postgres_superuser import superuser_sql  # noqa: E402

SERVICE = SCHEMA = "relay_switch_test"


@pytest.fixture
def outbox_prepared_for_debezium() -> Iterator[str]:
    superuser_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    superuser_sql(f"CREATE TABLE {SCHEMA}.outbox (LIKE orders.outbox INCLUDING ALL)")
    connectors.prepare_database(SERVICE, SCHEMA, delete_on_insert=True)
    try:
        yield SCHEMA
    finally:
        superuser_sql(f"DROP PUBLICATION IF EXISTS {SERVICE}_outbox_pub")
        superuser_sql(f"DROP SCHEMA {SCHEMA} CASCADE")
        superuser_sql(f"DROP OWNED BY {SERVICE}_cdc; DROP ROLE IF EXISTS {SERVICE}_cdc")


def insert_one_event(schema: str) -> None:
    superuser_sql(
        f"""INSERT INTO {schema}.outbox (event_id, event_type, topic, key, value, headers)
        VALUES (gen_random_uuid(), 'OrderCreated', 'order-events', 'k', '{{}}', '{{"source": "order"}}')"""
    )


def unpublished_rows(schema: str) -> int:
    return int(superuser_sql(f"SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL"))


def test_retiring_the_debezium_setup_keeps_new_events_for_the_built_in_relay(outbox_prepared_for_debezium):
    schema = outbox_prepared_for_debezium
    insert_one_event(schema)
    assert unpublished_rows(schema) == 0, "under Debezium the row is deleted as it is inserted"

    holds_a_slot = connectors.retire_database(SERVICE, schema)
    insert_one_event(schema)

    assert unpublished_rows(schema) == 1
    assert not holds_a_slot
    triggers = f"SELECT tgname FROM pg_trigger WHERE tgrelid = '{schema}.outbox'::regclass"
    assert "outbox_delete_inserted" not in superuser_sql(triggers).split()


def test_retiring_twice_is_harmless(outbox_prepared_for_debezium):
    connectors.retire_database(SERVICE, outbox_prepared_for_debezium)
    connectors.retire_database(SERVICE, outbox_prepared_for_debezium)
    insert_one_event(outbox_prepared_for_debezium)
    assert unpublished_rows(outbox_prepared_for_debezium) == 1


def test_retiring_removes_the_connectors_heartbeat_rows_the_built_in_relay_may_not_publish(
    outbox_prepared_for_debezium,
):
    schema = outbox_prepared_for_debezium
    superuser_sql(f"DROP TRIGGER outbox_delete_inserted ON {schema}.outbox")  # a heartbeat written, Connect stopped
    superuser_sql(
        f"""INSERT INTO {schema}.outbox (event_id, event_type, topic, key, value, headers)
        VALUES (gen_random_uuid(), 'heartbeat', 'connect-heartbeats', 'k', '{{}}', '{{"source": "order"}}')"""
    )

    connectors.retire_database(SERVICE, schema)

    assert unpublished_rows(schema) == 0
