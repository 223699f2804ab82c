// Numbered schema migrations, applied under an advisory lock.
#include <array>
#include <set>
#include <string>

#include "rill/store.hpp"

namespace rill::store {

namespace {

// Key of the transaction-scoped advisory lock that serialises migrate() across processes:
// the bytes of "rillmigr" read as a big-endian int64.
constexpr long long migration_lock_key = 0x72696c6c6d696772LL;

// Migrations are append-only: a released version is never edited, a change is a new version.
// Each one is written to be harmless if its objects already exist (IF NOT EXISTS), so that a
// table created by hand or by an older tool is adopted instead of failing; none drops data.
//
// Indexes of version 1:
//  - the primary key (sensor, seq) is the exactly-once truth and serves replay-range queries;
//  - (sensor, ts DESC) answers "latest reading per sensor" with one index probe per sensor and
//    "sensor S between t1 and t2" with one range scan;
//  - a BRIN index on ts, not a btree, for "all sensors between t1 and t2": readings are appended
//    roughly in time order (replays of old data are a small, bounded share), so the heap is
//    strongly correlated with ts and a BRIN summary of 128-page ranges prunes nearly as well
//    as a btree while being thousands of times smaller and almost free on insert. A btree on
//    ts would be a third full-size index maintained by every COPY, and COPY speed is what the
//    store is measured on. If readings ever arrive badly out of order (huge backfills), add a
//    btree in a later migration.
constexpr std::array<Migration, 5> all_migrations = {{
    {1, "readings table",
     R"sql(
CREATE TABLE IF NOT EXISTS readings (
    sensor      text        NOT NULL,
    seq         bigint      NOT NULL,
    ts          timestamptz NOT NULL,
    temperature real,
    humidity    real,
    extra       jsonb       NULL,
    PRIMARY KEY (sensor, seq)
);
CREATE INDEX IF NOT EXISTS readings_sensor_ts_idx ON readings (sensor, ts DESC);
CREATE INDEX IF NOT EXISTS readings_ts_brin_idx ON readings USING brin (ts);
)sql"},
    // Version 2 (issue 13): readings partitioned by day, exact 1-minute and 1-hour rollups,
    // the bookkeeping of retention. docs/storage.md explains the design; in short:
    //  - a partitioned table's primary key must contain the partition key, so the key becomes
    //    (sensor, seq, ts). A replayed reading carries the ts it was stored with (the outbox
    //    keeps the bytes), so it meets its own key in the same partition; the writer's islands
    //    by (sensor, seq) drop replays before they reach the table anyway;
    //  - one partition per UTC day (readings), month (readings_1m), year (readings_1h), made
    //    by rill_ensure_partitions() ahead of time and on demand for older days; a DEFAULT
    //    partition holds what is too far in the future, and gives its rows up to the partition
    //    made for them later;
    //  - an existing table is attached whole as readings_upgraded (MINVALUE .. tomorrow): no row
    //    is copied, only the new key's index is built and the rollups computed.
    {2, "time partitions and rollups",
     R"sql(
-- How each partitioned table is cut: one row per table, the step is a calendar unit in UTC.
CREATE TABLE IF NOT EXISTS rill_partitioning (
    parent text PRIMARY KEY,
    unit   text NOT NULL CHECK (unit IN ('day', 'month', 'year'))
);
INSERT INTO rill_partitioning VALUES ('readings', 'day'), ('readings_1m', 'month'),
    ('readings_1h', 'year') ON CONFLICT DO NOTHING;

-- Per sensor, the seqs whose raw rows retention dropped: every seq <= seq was stored once and
-- is no longer held raw (its readings live on in the rollups). The writer treats them as
-- stored, so a replay of a dropped range is never counted twice.
CREATE TABLE IF NOT EXISTS rill_retired (
    sensor text PRIMARY KEY,
    seq    bigint NOT NULL
);

-- The partitions of a parent with their bounds (the default partition, which has none, is not
-- listed; a MINVALUE lower bound is -infinity).
CREATE OR REPLACE FUNCTION rill_partitions(parent regclass)
RETURNS TABLE (part regclass, lo timestamptz, hi timestamptz)
LANGUAGE sql STABLE AS $f$
    SELECT c.oid::regclass,
           CASE WHEN b.m[1] = 'MINVALUE' THEN '-infinity'::timestamptz
                ELSE trim(both '''' FROM b.m[1])::timestamptz END,
           CASE WHEN b.m[2] = 'MAXVALUE' THEN 'infinity'::timestamptz
                ELSE trim(both '''' FROM b.m[2])::timestamptz END
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                            '^FOR VALUES FROM \((.*)\) TO \((.*)\)$') AS m) b
    WHERE i.inhparent = parent AND b.m IS NOT NULL
    ORDER BY 2
$f$;

-- Makes sure every instant of [lo, hi) of table `tbl` has a partition of its own: creates the
-- missing ones (one per calendar unit of rill_partitioning, in UTC, named parent_YYYYMMDD /
-- _YYYYMM / _YYYY), moving the rows the default partition holds for that range into it first.
-- Ranges already covered (also partly, e.g. by an upgraded table's one big partition) are left
-- alone. Serialised across sessions by an advisory lock; returns the number created.
CREATE OR REPLACE FUNCTION rill_ensure_partitions(tbl regclass, lo timestamptz, hi timestamptz)
RETURNS int LANGUAGE plpgsql AS $f$
DECLARE
    step_unit text;
    step interval;
    fmt text;
    def regclass;
    key text;
    t timestamptz;
    t_next timestamptz;
    name text;
    created int := 0;
BEGIN
    SELECT unit INTO step_unit FROM rill_partitioning WHERE parent = tbl::text;
    IF step_unit IS NULL THEN
        RAISE EXCEPTION 'rill_ensure_partitions: % is not in rill_partitioning', tbl;
    END IF;
    step := ('1 ' || step_unit)::interval;
    fmt := CASE step_unit WHEN 'day' THEN 'YYYYMMDD' WHEN 'month' THEN 'YYYYMM' ELSE 'YYYY' END;
    key := CASE tbl::text WHEN 'readings' THEN 'ts' ELSE 'bucket' END;
    -- 'rillpart' as a big-endian int64, plus nothing: one lock for all partition DDL.
    PERFORM pg_advisory_xact_lock(8244232263541436788);
    SELECT c.oid INTO def FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partdefid
        WHERE p.partrelid = tbl;
    t := date_trunc(step_unit, lo, 'UTC');
    WHILE t < hi LOOP
        t_next := (t AT TIME ZONE 'UTC' + step) AT TIME ZONE 'UTC';
        IF NOT EXISTS (SELECT 1 FROM rill_partitions(tbl) p WHERE p.lo < t_next AND p.hi > t) THEN
            name := tbl::text || '_' || to_char(t AT TIME ZONE 'UTC', fmt);
            EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           name, tbl);
            IF def IS NOT NULL THEN
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
                               'INSERT INTO %I SELECT * FROM moved', def, key, key, name)
                    USING t, t_next;
            END IF;
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           tbl, name, t, t_next);
            created := created + 1;
        END IF;
        t := t_next;
    END LOOP;
    RETURN created;
END
$f$;

-- readings becomes partitioned by ts. An existing (version 1) table is renamed and attached
-- whole as the partition for everything before tomorrow (UTC), its rows untouched; later days
-- get a partition each.
DO $do$
DECLARE
    upper_bound timestamptz := date_trunc('day', now(), 'UTC') + interval '1 day';
BEGIN
    -- A table with inheritance children is a TimescaleDB hypertable (its chunks inherit from
    -- it): it is cut by time already and keeps its (sensor, seq, ts) key; leave it as it is.
    IF to_regclass('readings') IS NOT NULL
       AND EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'readings'::regclass)
       AND (SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass) = 'r' THEN
        RETURN;
    END IF;
    IF to_regclass('readings') IS NOT NULL
       AND (SELECT relkind FROM pg_class WHERE oid = 'readings'::regclass) = 'r' THEN
        ALTER TABLE readings RENAME TO readings_upgraded;
        -- Its key (sensor, seq) gives way to the partitioned table's (sensor, seq, ts), which
        -- ATTACH builds.
        ALTER TABLE readings_upgraded DROP CONSTRAINT readings_pkey;
        ALTER INDEX IF EXISTS readings_sensor_ts_idx RENAME TO readings_upgraded_sensor_ts_idx;
        ALTER INDEX IF EXISTS readings_ts_brin_idx RENAME TO readings_upgraded_ts_brin_idx;
    END IF;
    CREATE TABLE readings (
        sensor      text        NOT NULL,
        seq         bigint      NOT NULL,
        ts          timestamptz NOT NULL,
        temperature real,
        humidity    real,
        extra       jsonb       NULL,
        PRIMARY KEY (sensor, seq, ts)
    ) PARTITION BY RANGE (ts);
    CREATE INDEX readings_sensor_ts_idx ON readings (sensor, ts DESC);
    CREATE INDEX readings_ts_brin_idx ON readings USING brin (ts);
    CREATE TABLE readings_default PARTITION OF readings DEFAULT;
    IF to_regclass('readings_upgraded') IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM readings_upgraded) THEN
        DROP TABLE readings_upgraded;  -- a new database: nothing to keep
    END IF;
    IF to_regclass('readings_upgraded') IS NOT NULL THEN
        -- Rows dated tomorrow or later (skewed clocks) move to the default partition.
        WITH moved AS (DELETE FROM readings_upgraded WHERE ts >= upper_bound RETURNING *)
        INSERT INTO readings_default SELECT * FROM moved;
        EXECUTE format('ALTER TABLE readings ATTACH PARTITION readings_upgraded '
                       'FOR VALUES FROM (MINVALUE) TO (%L)', upper_bound);
    END IF;
END
$do$;

-- The rollups: per sensor and UTC minute / hour, the number of readings stored and the sum,
-- min and max of temperature and humidity (NULL values are not counted into sums, min, max).
CREATE TABLE readings_1m (
    sensor text             NOT NULL,
    bucket timestamptz      NOT NULL,
    n      bigint           NOT NULL,
    t_sum  double precision NOT NULL,
    t_min  real,
    t_max  real,
    h_sum  double precision NOT NULL,
    h_min  real,
    h_max  real,
    PRIMARY KEY (sensor, bucket)
) PARTITION BY RANGE (bucket);
CREATE TABLE readings_1m_default PARTITION OF readings_1m DEFAULT;
CREATE TABLE readings_1h (LIKE readings_1m INCLUDING ALL) PARTITION BY RANGE (bucket);
CREATE TABLE readings_1h_default PARTITION OF readings_1h DEFAULT;

-- Rollups of the rows an upgraded table brought along.
DO $do$
DECLARE
    lo timestamptz;
    hi timestamptz;
BEGIN
    SELECT min(ts), max(ts) INTO lo, hi FROM readings;
    IF lo IS NULL THEN RETURN; END IF;
    PERFORM rill_ensure_partitions('readings_1m', lo, hi + interval '1 microsecond');
    PERFORM rill_ensure_partitions('readings_1h', lo, hi + interval '1 microsecond');
    INSERT INTO readings_1m
    SELECT sensor, date_trunc('minute', ts, 'UTC'), count(*), coalesce(sum(temperature::float8), 0),
           min(temperature), max(temperature), coalesce(sum(humidity::float8), 0), min(humidity),
           max(humidity)
    FROM readings GROUP BY 1, 2;
    INSERT INTO readings_1h
    SELECT sensor, date_trunc('hour', bucket, 'UTC'), sum(n), sum(t_sum), min(t_min), max(t_max),
           sum(h_sum), min(h_min), max(h_max)
    FROM readings_1m GROUP BY 1, 2;
END
$do$;
)sql"},
    // Version 3 (issue 13): readings_6h, the 6-hour rollups (buckets from the Unix epoch: 00, 06,
    // 12 and 18 UTC), so that charts of months and years read a quarter-day row, not 6 hourly
    // ones. 6 hours divides every width of the series ladder from 6 h on (6h 12h 1d 2d 7d ...),
    // where a day would not serve the 12 h buckets of a year in 1000 points. One partition per
    // UTC year as readings_1h. An existing database computes it from readings_1h, the level held
    // longest, under a SHARE lock on readings_1h so that no writer adds an hour meanwhile; every
    // writer from this version on adds to it in the transaction of its raw rows (rollup.cpp).
    {3, "6-hour rollups",
     R"sql(
INSERT INTO rill_partitioning VALUES ('readings_6h', 'year') ON CONFLICT DO NOTHING;
CREATE TABLE readings_6h (LIKE readings_1h INCLUDING ALL) PARTITION BY RANGE (bucket);
CREATE TABLE readings_6h_default PARTITION OF readings_6h DEFAULT;

DO $do$
DECLARE
    lo timestamptz;
    hi timestamptz;
BEGIN
    LOCK TABLE readings_1h IN SHARE MODE;
    SELECT min(bucket), max(bucket) INTO lo, hi FROM readings_1h;
    IF lo IS NULL THEN RETURN; END IF;
    PERFORM rill_ensure_partitions('readings_6h', lo, hi + interval '1 microsecond');
    INSERT INTO readings_6h
    SELECT sensor, date_bin('6 hours', bucket, timestamptz '1970-01-01 00:00:00+00'), sum(n),
           sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max)
    FROM readings_1h GROUP BY 1, 2;
END
$do$;
)sql"},
    // Version 4 (issue 16): readings may leave temperature or humidity NULL (not measured: a
    // DS18B20 has no humidity), so an average is a sum over the count of the values measured,
    // not over n. t_n and h_n count the non-NULL temperatures and humidities of each rollup row.
    // Until this version every writer refused a reading without both values, so existing rows
    // measured everything: their counts are n. NOT NULL without a default: a writer of an older
    // version, which does not know the columns, fails loudly instead of adding rows it does not
    // count.
    {4, "counts of measured values in the rollups",
     R"sql(
ALTER TABLE readings_1m ADD COLUMN t_n bigint, ADD COLUMN h_n bigint;
ALTER TABLE readings_1h ADD COLUMN t_n bigint, ADD COLUMN h_n bigint;
ALTER TABLE readings_6h ADD COLUMN t_n bigint, ADD COLUMN h_n bigint;
UPDATE readings_1m SET t_n = n, h_n = n;
UPDATE readings_1h SET t_n = n, h_n = n;
UPDATE readings_6h SET t_n = n, h_n = n;
ALTER TABLE readings_1m ALTER COLUMN t_n SET NOT NULL, ALTER COLUMN h_n SET NOT NULL;
ALTER TABLE readings_1h ALTER COLUMN t_n SET NOT NULL, ALTER COLUMN h_n SET NOT NULL;
ALTER TABLE readings_6h ALTER COLUMN t_n SET NOT NULL, ALTER COLUMN h_n SET NOT NULL;
)sql"},
    // Version 5 (issue 13): readings_15m, the 15-minute rollups (buckets from the Unix epoch:
    // :00, :15, :30 and :45 of every UTC hour), so that a 7-day chart of 1000 points (15-minute
    // buckets) reads one row per bucket, not 15 one-minute ones. Columns as readings_1m (with
    // t_n and h_n), one partition per UTC month as readings_1m. An existing database computes it
    // from readings_1m (an exact sum of its minutes) under a SHARE lock on readings_1m so that
    // no writer adds a minute meanwhile; every writer from this version on adds to it in the
    // transaction of its raw rows (rollup.cpp). Hours readings_1m no longer holds (retention)
    // are not back-filled: the reader takes readings_1h for a range that starts before.
    {5, "15-minute rollups",
     R"sql(
INSERT INTO rill_partitioning VALUES ('readings_15m', 'month') ON CONFLICT DO NOTHING;
CREATE TABLE readings_15m (LIKE readings_1m INCLUDING ALL) PARTITION BY RANGE (bucket);
CREATE TABLE readings_15m_default PARTITION OF readings_15m DEFAULT;

DO $do$
DECLARE
    lo timestamptz;
    hi timestamptz;
BEGIN
    LOCK TABLE readings_1m IN SHARE MODE;
    SELECT min(bucket), max(bucket) INTO lo, hi FROM readings_1m;
    IF lo IS NULL THEN RETURN; END IF;
    PERFORM rill_ensure_partitions('readings_15m', lo, hi + interval '1 microsecond');
    INSERT INTO readings_15m (sensor, bucket, n, t_sum, t_min, t_max, h_sum, h_min, h_max, t_n, h_n)
    SELECT sensor, date_bin('15 minutes', bucket, timestamptz '1970-01-01 00:00:00+00'), sum(n),
           sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max), sum(t_n),
           sum(h_n)
    FROM readings_1m GROUP BY 1, 2;
END
$do$;
)sql"},
}};

}  // namespace

std::span<const Migration> migrations() noexcept {
    return all_migrations;
}

std::vector<int> migrate(Connection& conn) {
    std::vector<int> applied;
    conn.exec("BEGIN", "begin the schema migration");
    try {
        conn.exec("SELECT pg_advisory_xact_lock(" + std::to_string(migration_lock_key) + ")",
                  "take the schema migration lock");
        conn.exec(R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
))sql",
                  "create schema_migrations");
        const Result done =
            conn.exec("SELECT version FROM schema_migrations", "read schema_migrations");
        std::set<int> have;
        for (int i = 0; i < done.rows(); ++i)
            have.insert(std::stoi(std::string(done.value(i, 0))));
        for (const auto& m : all_migrations) {
            if (have.contains(m.version)) continue;
            const std::string what =
                "apply migration " + std::to_string(m.version) + " (" + std::string(m.name) + ")";
            conn.exec(std::string(m.sql), what);
            conn.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                             {std::to_string(m.version), std::string(m.name)}, what);
            applied.push_back(m.version);
        }
        conn.exec("COMMIT", "commit the schema migration");
    } catch (...) {
        if (conn.connected()) {
            try {
                conn.exec("ROLLBACK", "roll back the schema migration");
            } catch (...) {
            }
        }
        throw;
    }
    return applied;
}

}  // namespace rill::store
