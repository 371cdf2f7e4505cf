-- Roles, database privileges and schemas: one schema per service, one login role per service that
-- can use only its own schema. Idempotent. Run by infra/postgres/postgres.sh locally and by the
-- postgres image's /docker-entrypoint-initdb.d in docker-compose.yml (same file, same result).
-- Passwords are development defaults; deployments pass their own through the services' settings.
SELECT 'CREATE ROLE order_svc LOGIN PASSWORD ''order_svc'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'order_svc') \gexec
SELECT 'CREATE ROLE payment_svc LOGIN PASSWORD ''payment_svc'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'payment_svc') \gexec
SELECT 'CREATE ROLE inventory_svc LOGIN PASSWORD ''inventory_svc'''
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'inventory_svc') \gexec

SELECT 'CREATE DATABASE ecommerce'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ecommerce') \gexec

\connect ecommerce

REVOKE ALL ON DATABASE ecommerce FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE ecommerce TO order_svc, payment_svc, inventory_svc;
-- Nobody but the superuser creates anything in public: a service's tables live in its schema.
REVOKE ALL ON SCHEMA public FROM PUBLIC;

-- The owner of a schema can create and use what is in it; no other role gets USAGE on it.
CREATE SCHEMA IF NOT EXISTS orders AUTHORIZATION order_svc;
CREATE SCHEMA IF NOT EXISTS payments AUTHORIZATION payment_svc;
CREATE SCHEMA IF NOT EXISTS inventory AUTHORIZATION inventory_svc;
REVOKE ALL ON SCHEMA orders, payments, inventory FROM PUBLIC;

ALTER ROLE order_svc SET search_path = orders;
ALTER ROLE payment_svc SET search_path = payments;
ALTER ROLE inventory_svc SET search_path = inventory;
