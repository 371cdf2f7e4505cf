"""Replication slots and the WAL they hold back, read from `pg_replication_slots`.

A logical slot (each Debezium connector has one: RELAY=debezium) makes Postgres keep every WAL
segment from the position its consumer last confirmed. A connector that stops, fails or is deleted
without its slot keeps the WAL growing with every write to the database, until the disk is full. So
each slot's lag is measured from the database, not from Connect: a dead worker reports nothing, and a
slot without its connector is exactly the case to catch.

- **lag**: bytes of WAL from the slot's confirmed position (`confirmed_flush_lsn`; a physical slot's
  `restart_lsn`) to the current one. A slot that has confirmed nothing yet has none and is skipped.
- **active**: whether a walsender (the connector's task) is attached to it now.

The view and `pg_current_wal_lsn()` are readable by any role: the lag exporter's `monitor` role may
connect to the database and nothing else (infra/postgres/init.sql).
"""

from dataclasses import dataclass

import asyncpg

SLOTS_QUERY = """
    SELECT slot_name, active,
           pg_wal_lsn_diff(pg_current_wal_lsn(), coalesce(confirmed_flush_lsn, restart_lsn))::bigint AS lag_bytes
    FROM pg_replication_slots
    WHERE coalesce(confirmed_flush_lsn, restart_lsn) IS NOT NULL
    ORDER BY slot_name
"""


@dataclass(frozen=True)
class SlotLag:
    slot: str
    active: bool
    lag_bytes: int


async def read_slots(connection: asyncpg.Connection) -> list[SlotLag]:
    rows = await connection.fetch(SLOTS_QUERY)
    return [SlotLag(row["slot_name"], row["active"], row["lag_bytes"]) for row in rows]


class SlotProbe:
    """One connection to the database, opened on first use and again after a failure."""

    def __init__(self, dsn: str, *, timeout_s: float = 10.0) -> None:
        self._dsn = dsn
        self._timeout_s = timeout_s
        self._connection: asyncpg.Connection | None = None

    async def measure(self) -> list[SlotLag]:
        try:
            if self._connection is None or self._connection.is_closed():
                self._connection = await asyncpg.connect(
                    self._dsn, timeout=self._timeout_s, server_settings={"application_name": "lag-exporter"}
                )
            return await read_slots(self._connection)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()  # no round trip: the connection may be the reason we are here
