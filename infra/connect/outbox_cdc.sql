-- What one service's outbox needs to be read by Debezium (RELAY=debezium only; the built-in relay
-- needs none of it). Idempotent. Run as the superuser by infra/scripts/connectors.py, with psql
-- variables: svc (order), schema (orders), delete_on_insert (on|off).
--
--   <svc>_cdc            a login role with REPLICATION, SELECT/INSERT/DELETE on <schema>.outbox and
--                        nothing else: the connector's. Its development password is its name.
--                        INSERT for its heartbeat (connector.json heartbeat.action.query): every
--                        10 s a row routed to connect-heartbeats, so that the connector confirms a
--                        recent LSN while the service is quiet and the slot releases the WAL other
--                        tables' writes made meanwhile (Postgres 15 sends nothing of a transaction
--                        that touches no published table, and the connector confirms only LSNs of
--                        records Connect committed: one an SMT filtered out is never committed).
--   <svc>_outbox_pub     a publication of <schema>.outbox alone, inserts only.
--   cdc_* columns        each header of the row's `headers` JSON in a column of its own, filled by a
--                        BEFORE INSERT trigger: Debezium's Outbox Event Router places columns as
--                        headers, and logical replication in Postgres 15 carries no generated column.
--   cdc_route            the row's topic, suffixed with which optional headers the row lacks
--                        (~, then c: no causationId, t: no traceparent): the router adds every
--                        configured header, a NULL one too, and the consumers refuse a header without
--                        a value; Kafka's DropHeaders, predicated on that suffix, removes those, and a
--                        RegexRouter strips the suffix from the topic (infra/connect/connector.json).
--   delete_on_insert     the Debezium outbox convention: each row is deleted in the transaction that
--                        inserts it (the WAL keeps the insert for the slot), so the table stays empty
--                        and nothing marks or purges it.
\set ON_ERROR_STOP on
SELECT :'svc' || '_cdc' AS cdc_role, :'svc' || '_outbox_pub' AS publication \gset

SELECT format('CREATE ROLE %I LOGIN REPLICATION PASSWORD %L', :'cdc_role', :'cdc_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'cdc_role') \gexec

BEGIN;
GRANT CONNECT ON DATABASE ecommerce TO :"cdc_role";
GRANT USAGE ON SCHEMA :"schema" TO :"cdc_role";
-- DELETE: with delete_on_insert, its heartbeat row is deleted as it is inserted, in its session.
GRANT SELECT, INSERT, DELETE ON :"schema".outbox TO :"cdc_role";
ALTER ROLE :"cdc_role" SET search_path = :"schema";

ALTER TABLE :"schema".outbox
    ADD COLUMN IF NOT EXISTS cdc_route text,
    ADD COLUMN IF NOT EXISTS cdc_source text,
    ADD COLUMN IF NOT EXISTS cdc_occurred_at text,
    ADD COLUMN IF NOT EXISTS cdc_causation_id text,
    ADD COLUMN IF NOT EXISTS cdc_content_type text,
    ADD COLUMN IF NOT EXISTS cdc_traceparent text,
    ADD COLUMN IF NOT EXISTS cdc_correlation_id text,
    ADD COLUMN IF NOT EXISTS cdc_schema_version text;

-- Schema-qualified names only: the trigger runs in whichever session inserts.
CREATE OR REPLACE FUNCTION :"schema".outbox_cdc_headers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.cdc_route := NEW.topic || '~'
        || CASE WHEN NEW.headers ? 'causationId' THEN '' ELSE 'c' END
        || CASE WHEN NEW.headers ? 'traceparent' THEN '' ELSE 't' END;
    NEW.cdc_source := NEW.headers ->> 'source';
    NEW.cdc_occurred_at := NEW.headers ->> 'occurredAt';
    NEW.cdc_causation_id := NEW.headers ->> 'causationId';
    NEW.cdc_content_type := NEW.headers ->> 'contentType';
    NEW.cdc_traceparent := NEW.headers ->> 'traceparent';
    NEW.cdc_correlation_id := NEW.headers ->> 'correlationId';
    NEW.cdc_schema_version := NEW.headers ->> 'schemaVersion';
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER outbox_cdc_headers BEFORE INSERT ON :"schema".outbox
    FOR EACH ROW EXECUTE FUNCTION :"schema".outbox_cdc_headers();

CREATE OR REPLACE FUNCTION :"schema".outbox_delete_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.%I WHERE id IN (SELECT id FROM inserted)', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    RETURN NULL;
END $$;
\if :delete_on_insert
CREATE OR REPLACE TRIGGER outbox_delete_inserted AFTER INSERT ON :"schema".outbox
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION :"schema".outbox_delete_inserted();
\else
DROP TRIGGER IF EXISTS outbox_delete_inserted ON :"schema".outbox;
\endif

COMMIT;

-- Inserts only: the deletes of delete_on_insert (and the built-in relay's marks and purges, were it
-- running) never reach the connector.
SELECT format('CREATE PUBLICATION %I FOR TABLE %I.outbox WITH (publish = %L)', :'publication', :'schema', 'insert')
WHERE NOT EXISTS (SELECT FROM pg_publication WHERE pubname = :'publication') \gexec
ALTER PUBLICATION :"publication" SET TABLE :"schema".outbox;
