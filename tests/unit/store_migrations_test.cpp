#include <doctest/doctest.h>

#include <thread>

#include "rill/store.hpp"
#include "support/postgres.hpp"

using rill::store::Connection;
using rill::test::TempPostgres;

TEST_CASE("migrations create the schema once, record their versions and are idempotent") {
    TempPostgres pg;
    auto conn = Connection::open(pg.conninfo());
    CHECK(rill::store::migrate(conn) == std::vector<int>{1, 2});
    CHECK(rill::store::migrate(conn).empty());
    CHECK(pg.column("SELECT version || ' ' || name FROM schema_migrations ORDER BY version") ==
          std::vector<std::string>{"1 readings table", "2 time partitions and rollups"});
    CHECK(pg.value("SELECT count(*) FROM schema_migrations WHERE applied_at <= now()") == "2");
    // Version 2: partitioned by ts, a default partition and nothing else on a new database.
    CHECK(pg.value("SELECT partstrat FROM pg_partitioned_table "
                   "WHERE partrelid = 'readings'::regclass") == "r");
    CHECK(pg.column("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'readings'::regclass") ==
          std::vector<std::string>{"readings_default"});
    CHECK(pg.column("SELECT column_name || ':' || data_type || ':' || is_nullable "
                    "FROM information_schema.columns WHERE table_name = 'readings' "
                    "ORDER BY ordinal_position") ==
          std::vector<std::string>{"sensor:text:NO", "seq:bigint:NO",
                                   "ts:timestamp with time zone:NO", "temperature:real:YES",
                                   "humidity:real:YES", "extra:jsonb:YES"});
    CHECK(pg.value("SELECT pg_get_indexdef('readings_pkey'::regclass)").find("(sensor, seq, ts)") !=
          std::string::npos);
    CHECK(pg.value("SELECT pg_get_indexdef('readings_sensor_ts_idx'::regclass)")
              .find("(sensor, ts DESC)") != std::string::npos);
    CHECK(pg.value("SELECT pg_get_indexdef('readings_ts_brin_idx'::regclass)")
              .find("USING brin (ts)") != std::string::npos);
}

TEST_CASE("migrations started together from two connections apply each version once") {
    TempPostgres pg;
    std::vector<int> applied[2];
    std::string errors[2];
    {
        std::vector<std::jthread> threads;
        for (int i = 0; i < 2; ++i) {
            threads.emplace_back([&, i] {
                try {
                    auto conn = Connection::open(pg.conninfo());
                    applied[i] = rill::store::migrate(conn);
                } catch (const std::exception& e) {
                    errors[i] = e.what();
                }
            });
        }
    }
    CHECK(errors[0] == "");
    CHECK(errors[1] == "");
    CHECK(applied[0].size() + applied[1].size() == 2);
    CHECK(pg.value("SELECT count(*) FROM schema_migrations") == "2");
}

TEST_CASE("migrations adopt an existing readings table and keep its rows") {
    TempPostgres pg;
    pg.execute(
        "CREATE TABLE readings (sensor text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT "
        "NULL, temperature real, humidity real, extra jsonb, PRIMARY KEY (sensor, seq));"
        "INSERT INTO readings VALUES ('a', 1, now(), 20, 50, NULL), ('a', 2, now(), 21, 51, "
        "NULL)");
    auto conn = Connection::open(pg.conninfo());
    CHECK(rill::store::migrate(conn) == std::vector<int>{1, 2});
    CHECK(pg.value("SELECT count(*) FROM readings") == "2");
    CHECK(pg.value("SELECT count(*) FROM schema_migrations") == "2");
    // The old table is now the partition of everything before tomorrow, and rolled up.
    CHECK(pg.value("SELECT count(*) FROM readings_upgraded") == "2");
    CHECK(pg.value("SELECT sum(n) FROM readings_1m") == "2");
    CHECK(pg.value("SELECT sum(n) FROM readings_1h") == "2");
}
