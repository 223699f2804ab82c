-- The role Grafana's rill data source logs in as (provisioning/datasources/rill.yml): it can
-- read readings and their rollups and nothing else, every transaction it runs is read only, and
-- a query that runs away (a year of raw readings asked for by hand) is cancelled.
-- Run as a superuser or the owner of rill's tables (store-sub's role), then give it a password:
--   psql -d rill -f grafana-role.sql && psql -d rill -c '\password rill_grafana'
CREATE ROLE rill_grafana LOGIN;
ALTER ROLE rill_grafana SET default_transaction_read_only = on;
ALTER ROLE rill_grafana SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE rill TO rill_grafana;
GRANT USAGE ON SCHEMA public TO rill_grafana;
-- rill_partitions() (which levels retention has kept) is executable by everyone already.
GRANT SELECT ON readings, readings_1m, readings_15m, readings_1h, readings_6h TO rill_grafana;
