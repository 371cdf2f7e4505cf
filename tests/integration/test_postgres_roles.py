"""Least privilege in Postgres (infra/postgres/init.sql): per service, a schema-owner role that runs
the migrations (DDL) and a runtime role, the one the API, relay and worker log in as, with DML only
on its own schema's tables. Neither can use another service's schema.

Every statement runs in a transaction that is rolled back, so the tests leave nothing behind.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from shared.outbox.tables import notify_channel

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
SERVICES = {"order": "orders", "payment": "payments", "inventory": "inventory"}
RUNTIME = {f"{svc}_svc": schema for svc, schema in SERVICES.items()}
OWNER = {f"{svc}_owner": schema for svc, schema in SERVICES.items()}
FOREIGN = [
    (role, schema)
    for role, own in {**RUNTIME, **OWNER}.items()
    for schema in SERVICES.values()
    if schema != own  # every role against every schema but its own
]
# Statements a runtime role must be refused in its own schema, and how Postgres words the refusal.
# processed_events is in every schema (shared/outbox/tables.py).
DDL = {
    "drop a table": ("DROP TABLE {schema}.processed_events", "must be owner of table processed_events"),
    "alter a table": ("ALTER TABLE {schema}.processed_events ADD COLUMN probe int", "must be owner of table"),
    "index a table": ("CREATE INDEX ON {schema}.processed_events (processed_at)", "must be owner of table"),
    "create a table": ("CREATE TABLE {schema}.it_probe (id int)", "permission denied for schema {schema}"),
    "empty a table": ("TRUNCATE {schema}.processed_events", "permission denied for table processed_events"),
    "drop the schema": ("DROP SCHEMA {schema} CASCADE", "must be owner of schema {schema}"),
}


@pytest.fixture
async def connect(postgres_dsns) -> AsyncIterator:
    """`await connect(role)`: a connection as that role (a runtime or an owner role; each password is
    the role's name), inside a transaction rolled back afterwards."""
    opened: list[tuple[asyncpg.Connection, object]] = []
    template = postgres_dsns["order_svc"]

    async def open_as(role: str) -> asyncpg.Connection:
        connection = await asyncpg.connect(template.replace("order_svc:order_svc@", f"{role}:{role}@"), timeout=10)
        transaction = connection.transaction()
        await transaction.start()
        # A statement that would wait for the running services' locks fails instead of stalling them.
        await connection.execute("SET LOCAL lock_timeout = '2s'")
        opened.append((connection, transaction))
        return connection

    yield open_as
    for connection, transaction in opened:
        if not connection.is_closed():
            await transaction.rollback()
            await connection.close()


def table_name() -> str:
    return f"it_probe_{uuid.uuid4().hex[:8]}"


# -- the runtime roles: DML on their own tables, nothing more ------------------------------------


@pytest.mark.parametrize("what", list(DDL))
@pytest.mark.parametrize("role", list(RUNTIME))
async def test_a_runtime_role_may_not_change_its_schema(connect, role, what):
    db = await connect(role)
    statement, refusal = (text.format(schema=RUNTIME[role]) for text in DDL[what])

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=refusal):
        await db.execute(statement)


@pytest.mark.parametrize("role", list(RUNTIME))
async def test_a_runtime_role_reads_and_writes_the_tables_of_its_schema(connect, role):
    db = await connect(role)
    event_id = uuid.uuid4()

    await db.execute("INSERT INTO processed_events (consumer, event_id) VALUES ('it-roles', $1)", event_id)
    await db.execute("UPDATE processed_events SET processed_at = now() WHERE event_id = $1", event_id)
    assert await db.fetchval("SELECT count(*) FROM processed_events WHERE event_id = $1", event_id) == 1
    await db.execute("DELETE FROM processed_events WHERE event_id = $1", event_id)
    # The outbox's insert draws its id from a sequence and fires the NOTIFY trigger (the owner's function).
    await db.execute(
        "INSERT INTO outbox (event_id, event_type, topic, key, value, headers)"
        " VALUES ($1, 'Probe', 'it-roles', 'k', '', '{}')",
        event_id,
    )


@pytest.mark.parametrize("role", list(RUNTIME))
async def test_a_runtime_role_holds_dml_and_nothing_else_on_every_table_of_its_schema(connect, role):
    db = await connect(role)
    tables = await db.fetch(
        """
        SELECT tablename,
               has_table_privilege(format('%I.%I', schemaname, tablename), 'SELECT, INSERT, UPDATE, DELETE')
                   AS dml,
               has_table_privilege(format('%I.%I', schemaname, tablename), 'TRUNCATE, REFERENCES, TRIGGER')
                   AS more
        FROM pg_tables WHERE schemaname = $1
        """,
        RUNTIME[role],
    )

    assert {"outbox", "processed_events"} <= {t["tablename"] for t in tables}
    assert [t["tablename"] for t in tables if not t["dml"]] == []
    assert [t["tablename"] for t in tables if t["more"]] == []


@pytest.mark.parametrize("role", list(RUNTIME))
async def test_a_runtime_role_may_listen_for_its_outbox_like_the_relay(connect, role):
    db = await connect(role)

    await db.execute(f"LISTEN {notify_channel(RUNTIME[role])}")


@pytest.mark.parametrize("role", list(RUNTIME))
async def test_a_runtime_roles_unqualified_names_resolve_to_its_own_schema(connect, role):
    db = await connect(role)

    assert await db.fetchval("SELECT current_schema()") == RUNTIME[role]
    assert await db.fetchval(
        "SELECT to_regclass('processed_events') = to_regclass($1)", f"{RUNTIME[role]}.processed_events"
    )


# -- the owner roles: DDL in their schema, and every later table open to the runtime role ----------


@pytest.mark.parametrize("owner", list(OWNER))
async def test_the_owner_role_owns_its_schema_and_every_table_in_it(connect, owner):
    db = await connect(owner)
    schema = OWNER[owner]

    assert await db.fetchval("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", schema) == owner
    others = await db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tableowner <> $2", schema, owner)
    assert others == []


@pytest.mark.parametrize("owner", list(OWNER))
async def test_a_table_a_later_migration_creates_is_open_to_the_runtime_role_for_dml_only(connect, owner):
    db = await connect(owner)
    schema, runtime = OWNER[owner], owner.replace("_owner", "_svc")
    table = f"{schema}.{table_name()}"

    await db.execute(f"CREATE TABLE {table} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)")
    sequence = await db.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)

    assert await db.fetchval("SELECT has_table_privilege($1, $2, 'SELECT, INSERT, UPDATE, DELETE')", runtime, table)
    assert not await db.fetchval("SELECT has_table_privilege($1, $2, 'TRUNCATE, REFERENCES, TRIGGER')", runtime, table)
    assert await db.fetchval("SELECT has_sequence_privilege($1, $2, 'USAGE')", runtime, sequence)


@pytest.mark.parametrize("svc", list(SERVICES))
def test_the_migrations_run_as_the_owner_role_and_at_head_change_nothing(svc, postgres_dsns):
    alembic = Path(sys.executable).with_name("alembic")
    ini = REPO / "services" / svc / "alembic.ini"
    owner = f"{svc}_owner"
    owner_url = postgres_dsns["order_svc"].replace(
        "postgresql://order_svc:order_svc@", f"postgresql+asyncpg://{owner}:{owner}@"
    )
    environment = {**os.environ, f"{svc.upper()}_MIGRATION_DATABASE_URL": owner_url}

    upgrade = subprocess.run([alembic, "-c", ini, "upgrade", "head"], env=environment, capture_output=True, text=True)
    current = subprocess.run([alembic, "-c", ini, "current"], env=environment, capture_output=True, text=True)

    assert upgrade.returncode == 0, upgrade.stderr
    assert "Running upgrade" not in upgrade.stderr
    assert "(head)" in current.stdout, current.stdout + current.stderr


# -- every role: its own schema only ----------------------------------------------------------------


@pytest.mark.parametrize(("role", "schema"), FOREIGN)
async def test_a_role_may_not_read_another_services_schema(connect, role, schema):
    db = await connect(role)

    # The schema's USAGE privilege is checked before the table is looked up, so no table needs to exist.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"permission denied for schema {schema}"):
        await db.fetch(f"SELECT * FROM {schema}.processed_events")


@pytest.mark.parametrize(("role", "schema"), FOREIGN)
async def test_a_role_may_not_create_tables_in_another_services_schema(connect, role, schema):
    db = await connect(role)

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"permission denied for schema {schema}"):
        await db.execute(f"CREATE TABLE {schema}.{table_name()} (id int)")


@pytest.mark.parametrize(("role", "schema"), FOREIGN)
async def test_a_role_holds_no_privilege_on_another_services_schema(connect, role, schema):
    db = await connect(role)

    assert await db.fetchval("SELECT has_schema_privilege($1, 'USAGE')", schema) is False
    assert await db.fetchval("SELECT has_schema_privilege($1, 'CREATE')", schema) is False


@pytest.mark.parametrize("role", [*RUNTIME, *OWNER])
async def test_a_role_may_not_create_tables_in_public(connect, role):
    db = await connect(role)

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema public"):
        await db.execute(f"CREATE TABLE public.{table_name()} (id int)")


@pytest.mark.parametrize("role", list(RUNTIME))
async def test_the_database_writes_a_logical_wal_for_change_data_capture(connect, role):
    db = await connect(role)

    assert await db.fetchval("SHOW wal_level") == "logical"
