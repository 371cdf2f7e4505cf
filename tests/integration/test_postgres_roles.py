"""Each service's login role owns its schema and can touch nothing else (infra/postgres/init.sql).

Every statement runs in a transaction that is rolled back, so the tests leave no tables behind.
"""

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

pytestmark = pytest.mark.infra

SCHEMA_OF = {"order_svc": "orders", "payment_svc": "payments", "inventory_svc": "inventory"}
FOREIGN = [(role, schema) for role in SCHEMA_OF for schema in SCHEMA_OF.values() if schema != SCHEMA_OF[role]]


@pytest.fixture
async def connect(postgres_dsns) -> AsyncIterator:
    """`await connect(role)`: a connection as that role, inside a transaction rolled back afterwards."""
    opened: list[tuple[asyncpg.Connection, object]] = []

    async def open_as(role: str) -> asyncpg.Connection:
        connection = await asyncpg.connect(postgres_dsns[role], timeout=10)
        transaction = connection.transaction()
        await transaction.start()
        opened.append((connection, transaction))
        return connection

    yield open_as
    for connection, transaction in opened:
        if not connection.is_closed():
            await transaction.rollback()
            await connection.close()


def table_name() -> str:
    return f"it_probe_{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("role", list(SCHEMA_OF))
async def test_a_service_role_creates_writes_and_reads_a_table_in_its_own_schema(connect, role):
    db = await connect(role)
    table = f"{SCHEMA_OF[role]}.{table_name()}"

    await db.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, note text NOT NULL)")
    await db.execute(f"INSERT INTO {table} VALUES (1, 'written')")
    await db.execute(f"UPDATE {table} SET note = 'updated' WHERE id = 1")

    assert await db.fetchval(f"SELECT note FROM {table} WHERE id = 1") == "updated"


@pytest.mark.parametrize("role", list(SCHEMA_OF))
async def test_a_service_roles_unqualified_names_resolve_to_its_own_schema(connect, role):
    db = await connect(role)
    table = table_name()

    await db.execute(f"CREATE TABLE {table} (id int)")

    assert await db.fetchval("SELECT current_schema()") == SCHEMA_OF[role]
    assert await db.fetchval("SELECT to_regclass($1)::text", f"{SCHEMA_OF[role]}.{table}") is not None


@pytest.mark.parametrize(("role", "schema"), FOREIGN)
async def test_a_service_role_may_not_create_tables_in_another_services_schema(connect, role, schema):
    db = await connect(role)

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"permission denied for schema {schema}"):
        await db.execute(f"CREATE TABLE {schema}.{table_name()} (id int)")


@pytest.mark.parametrize(("role", "schema"), FOREIGN)
async def test_a_service_role_may_not_read_another_services_schema(connect, role, schema):
    db = await connect(role)

    # The schema's USAGE privilege is checked before the table is looked up, so no table needs to exist.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=f"permission denied for schema {schema}"):
        await db.fetch(f"SELECT * FROM {schema}.{table_name()}")


@pytest.mark.parametrize(("role", "schema"), FOREIGN)
async def test_a_service_role_holds_no_privilege_on_another_services_schema(connect, role, schema):
    db = await connect(role)

    assert await db.fetchval("SELECT has_schema_privilege($1, 'USAGE')", schema) is False
    assert await db.fetchval("SELECT has_schema_privilege($1, 'CREATE')", schema) is False


@pytest.mark.parametrize("role", list(SCHEMA_OF))
async def test_a_service_role_may_not_create_tables_in_public(connect, role):
    db = await connect(role)

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for schema public"):
        await db.execute(f"CREATE TABLE public.{table_name()} (id int)")


@pytest.mark.parametrize("role", list(SCHEMA_OF))
async def test_the_database_writes_a_logical_wal_for_change_data_capture(connect, role):
    db = await connect(role)

    assert await db.fetchval("SHOW wal_level") == "logical"
