"""Alembic operations that create the machinery tables in a service's schema.

Each service's first migration calls `create_machinery_tables(op, schema)`, so the three schemas
get identical outbox and processed-events tables from one definition.
"""

from alembic.operations import Operations

from .tables import machinery_metadata, notify_channel, outbox, processed_events


def create_machinery_tables(op: Operations, schema: str) -> None:
    bind = op.get_bind()
    for table in (outbox, processed_events):
        table.to_metadata(machinery_metadata.__class__(), schema=schema).create(bind)
    channel = notify_channel(schema)
    # One notification per inserting statement (not per row) wakes the relay as soon as the
    # transaction commits; NOTIFY is delivered only on commit, never for a rolled-back insert.
    op.execute(
        f"""
        CREATE FUNCTION {schema}.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{channel}', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_outbox()
        """
    )


def drop_machinery_tables(op: Operations, schema: str) -> None:
    op.execute(f"DROP TRIGGER IF EXISTS outbox_notify ON {schema}.outbox")
    op.execute(f"DROP FUNCTION IF EXISTS {schema}.notify_outbox()")
    op.drop_table("processed_events", schema=schema)
    op.drop_table("outbox", schema=schema)
