-- Roles, privileges and schemas: least privilege, one schema per service and two login roles each.
--   <svc>_owner  owns the service's schema and everything in it: the migrations run as it (DDL).
--   <svc>_svc    the role the API, relay and worker log in as: DML on its own schema's tables and
--                nothing else. It cannot drop, alter, truncate or create tables, nor use another schema.
-- Idempotent, and it converges an older cluster (where each <svc>_svc owned its schema) to this one.
-- Run by infra/postgres/postgres.sh locally and by the postgres image's /docker-entrypoint-initdb.d
-- in docker-compose.yml (same file, same result). The passwords are development defaults, set only
-- when a role is created: a deployment sets its own (docs/runbook.md) and passes them to the
-- services' settings, which refuse these in production.
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', role, role)
FROM unnest(ARRAY['order_owner', 'payment_owner', 'inventory_owner', 'order_svc', 'payment_svc', 'inventory_svc']) AS role
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role) \gexec

SELECT 'CREATE DATABASE ecommerce'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ecommerce') \gexec

\connect ecommerce

-- One transaction: a running service never sees its privileges half changed.
BEGIN;
REVOKE ALL ON DATABASE ecommerce FROM PUBLIC;
-- TEMPORARY: a session's own scratch tables (pg_temp), gone with the session; tests shadow a service's
-- tables with them. They cannot touch the service's schema.
GRANT CONNECT, TEMPORARY ON DATABASE ecommerce
    TO order_owner, payment_owner, inventory_owner, order_svc, payment_svc, inventory_svc;
-- Nobody but the superuser creates anything in public: a service's tables live in its schema.
REVOKE ALL ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS orders AUTHORIZATION order_owner;
CREATE SCHEMA IF NOT EXISTS payments AUTHORIZATION payment_owner;
CREATE SCHEMA IF NOT EXISTS inventory AUTHORIZATION inventory_owner;

-- An older cluster: the runtime role owned its schema, its tables, sequences and the outbox's trigger
-- function. They pass to the owner role (in this database only; a no-op once done). Altering a
-- table's owner takes its lock for a moment: running services wait, they do not fail.
REASSIGN OWNED BY order_svc TO order_owner;
REASSIGN OWNED BY payment_svc TO payment_owner;
REASSIGN OWNED BY inventory_svc TO inventory_owner;
ALTER SCHEMA orders OWNER TO order_owner;
ALTER SCHEMA payments OWNER TO payment_owner;
ALTER SCHEMA inventory OWNER TO inventory_owner;

REVOKE ALL ON SCHEMA orders, payments, inventory FROM PUBLIC;
GRANT USAGE ON SCHEMA orders TO order_svc;
GRANT USAGE ON SCHEMA payments TO payment_svc;
GRANT USAGE ON SCHEMA inventory TO inventory_svc;

-- What exists now, and (default privileges) what the owner's later migrations create. No TRUNCATE,
-- REFERENCES or TRIGGER; sequences: nextval and currval, not setval. The outbox's NOTIFY trigger
-- fires with the inserting statement, whoever runs it; EXECUTE covers any function a query calls.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA orders TO order_svc;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA orders TO order_svc;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA orders TO order_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE order_owner IN SCHEMA orders GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO order_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE order_owner IN SCHEMA orders GRANT USAGE, SELECT ON SEQUENCES TO order_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE order_owner IN SCHEMA orders GRANT EXECUTE ON FUNCTIONS TO order_svc;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA payments TO payment_svc;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA payments TO payment_svc;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA payments TO payment_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner IN SCHEMA payments GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO payment_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner IN SCHEMA payments GRANT USAGE, SELECT ON SEQUENCES TO payment_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE payment_owner IN SCHEMA payments GRANT EXECUTE ON FUNCTIONS TO payment_svc;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA inventory TO inventory_svc;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA inventory TO inventory_svc;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA inventory TO inventory_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE inventory_owner IN SCHEMA inventory GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO inventory_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE inventory_owner IN SCHEMA inventory GRANT USAGE, SELECT ON SEQUENCES TO inventory_svc;
ALTER DEFAULT PRIVILEGES FOR ROLE inventory_owner IN SCHEMA inventory GRANT EXECUTE ON FUNCTIONS TO inventory_svc;

-- Unqualified names resolve to the role's own schema (the services set search_path too).
ALTER ROLE order_owner SET search_path = orders;
ALTER ROLE payment_owner SET search_path = payments;
ALTER ROLE inventory_owner SET search_path = inventory;
ALTER ROLE order_svc SET search_path = orders;
ALTER ROLE payment_svc SET search_path = payments;
ALTER ROLE inventory_svc SET search_path = inventory;
COMMIT;

-- The lag exporter's role (shared.lag_exporter): each replication slot's lag, the Debezium relay's
-- safety net. pg_replication_slots and pg_current_wal_lsn() are readable by every role, so CONNECT
-- is all it gets: no schema, no table, not pg_monitor (which would let it read every session's query).
SELECT 'CREATE ROLE monitor LOGIN PASSWORD ''monitor'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'monitor') \gexec
GRANT CONNECT ON DATABASE ecommerce TO monitor;
