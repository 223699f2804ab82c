#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "rill/store.hpp"
#include "support/postgres.hpp"

using rill::store::Connection;
using rill::test::TempPostgres;

namespace {

// What check_rollups finds from `from` on, one line per mismatch ("" when exact).
std::string mismatches(Connection& conn, rill::Timestamp from) {
    std::string out;
    for (const auto& m : rill::store::check_rollups(conn, from, {}))
        out += rill::store::to_string(m) + "\n";
    return out;
}

// 100 readings of `sensor`, seqs after `last_seq`, one a second from 30 minutes ago.
std::vector<rill::Reading> recent_batch(const std::string& sensor, std::uint64_t last_seq) {
    std::vector<rill::Reading> batch;
    for (std::uint64_t seq = last_seq + 1; seq <= last_seq + 100; ++seq) {
        rill::Reading r;
        r.sensor = sensor;
        r.seq = seq;
        r.ts = rill::now() - std::chrono::minutes(30) + std::chrono::seconds(seq - last_seq);
        r.temperature = 21.5f;
        r.humidity = 45;
        batch.push_back(std::move(r));
    }
    return batch;
}

}  // namespace

TEST_CASE("migrations create the schema once, record their versions and are idempotent") {
    TempPostgres pg;
    auto conn = Connection::open(pg.conninfo());
    CHECK(rill::store::migrate(conn) == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(rill::store::migrate(conn).empty());
    CHECK(pg.column("SELECT version || ' ' || name FROM schema_migrations ORDER BY version") ==
          std::vector<std::string>{"1 readings table", "2 time partitions and rollups",
                                   "3 6-hour rollups", "4 counts of measured values in the rollups",
                                   "5 15-minute rollups"});
    CHECK(pg.value("SELECT count(*) FROM schema_migrations WHERE applied_at <= now()") == "5");
    // Version 5: readings_15m, with readings_1m's columns, key and monthly partitions.
    CHECK(pg.column("SELECT column_name || ':' || is_nullable FROM information_schema.columns "
                    "WHERE table_name = 'readings_15m' ORDER BY ordinal_position") ==
          pg.column("SELECT column_name || ':' || is_nullable FROM information_schema.columns "
                    "WHERE table_name = 'readings_1m' ORDER BY ordinal_position"));
    CHECK(pg.value("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                   "WHERE indrelid = 'readings_15m'::regclass AND indisprimary")
              .find("(sensor, bucket)") != std::string::npos);
    CHECK(pg.value("SELECT unit FROM rill_partitioning WHERE parent = 'readings_15m'") == "month");
    // Version 3: readings_6h, as readings_1h, partitioned by bucket with a default partition.
    CHECK(pg.value("SELECT partstrat FROM pg_partitioned_table "
                   "WHERE partrelid = 'readings_6h'::regclass") == "r");
    CHECK(pg.value("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                   "WHERE indrelid = 'readings_6h'::regclass AND indisprimary")
              .find("(sensor, bucket)") != std::string::npos);
    CHECK(pg.value("SELECT unit FROM rill_partitioning WHERE parent = 'readings_6h'") == "year");
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
    CHECK(applied[0].size() + applied[1].size() == 5);
    CHECK(pg.value("SELECT count(*) FROM schema_migrations") == "5");
}

TEST_CASE("migrations adopt an existing readings table and keep its rows") {
    TempPostgres pg;
    pg.execute(
        "CREATE TABLE readings (sensor text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT "
        "NULL, temperature real, humidity real, extra jsonb, PRIMARY KEY (sensor, seq));"
        "INSERT INTO readings VALUES ('a', 1, now(), 20, 50, NULL), ('a', 2, now(), 21, 51, "
        "NULL)");
    auto conn = Connection::open(pg.conninfo());
    CHECK(rill::store::migrate(conn) == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(pg.value("SELECT count(*) FROM readings") == "2");
    CHECK(pg.value("SELECT count(*) FROM schema_migrations") == "5");
    // The old table is now the partition of everything before tomorrow, and rolled up.
    CHECK(pg.value("SELECT count(*) FROM readings_upgraded") == "2");
    CHECK(pg.value("SELECT sum(n) FROM readings_1m") == "2");
    CHECK(pg.value("SELECT sum(n) FROM readings_1h") == "2");
    CHECK(pg.value("SELECT sum(n) FROM readings_6h") == "2");
}

TEST_CASE("a version-2 database upgrades in place, its 6-hour rollups computed from its hours") {
    TempPostgres pg;
    // Version 2 as released, over a version-1 table of 4 sensors, a reading every 0.5 s each
    // for 7.5 hours ending an hour ago: migration 2 rolls them up to minutes and hours.
    pg.execute(std::string(rill::store::migrations()[0].sql));
    pg.execute(
        "INSERT INTO readings SELECT 's' || (g % 4), g / 4 + 1, now() - interval '1 hour' - "
        "(216000 - g) * interval '125 milliseconds', 20 + (g % 97) * 0.125, 40 + (g % 13), NULL "
        "FROM generate_series(0, 215999) g");
    pg.execute(std::string(rill::store::migrations()[1].sql));
    // And hours whose raw rows and minutes retention dropped long ago: 12 hours of 2024-01-01,
    // two 6-hour buckets, 60 readings an hour.
    pg.execute(
        "SELECT rill_ensure_partitions('readings_1h', '2024-01-01Z', '2024-01-02Z');"
        "INSERT INTO readings_1h SELECT 'old', timestamptz '2024-01-01Z' + h * interval '1 hour', "
        "60, 60 * h, h - 1, h + 1, 600, 10, 10 FROM generate_series(0, 11) h;"
        "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now());"
        "INSERT INTO schema_migrations (version, name) VALUES (1, 'readings table'), "
        "(2, 'time partitions and rollups')");
    REQUIRE(pg.value("SELECT sum(n) FROM readings_1h WHERE sensor <> 'old'") == "216000");
    auto conn = Connection::open(pg.conninfo());
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(rill::store::migrate(conn) == std::vector<int>{3, 4, 5});
    MESSAGE("upgrade of a version-2 database of 216,000 rows to version 5 took "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
            << " s");
    CHECK(pg.value("SELECT sum(n) FROM readings_6h") == pg.value("SELECT sum(n) FROM readings_1h"));
    CHECK(pg.column("SELECT bucket AT TIME ZONE 'UTC' || ' ' || n || ' ' || t_sum || ' ' || "
                    "t_min || ' ' || t_max || ' ' || h_sum FROM readings_6h WHERE sensor = 'old' "
                    "ORDER BY bucket") ==
          std::vector<std::string>{"2024-01-01 00:00:00 360 900 -1 6 3600",
                                   "2024-01-01 06:00:00 360 3060 5 12 3600"});
    // Migration 4: rows from before it measured everything, so their counts of measured values
    // are n.
    for (const char* table : {"readings_1m", "readings_1h", "readings_6h"}) {
        CHECK(
            pg.value(std::string("SELECT count(*) FROM ") + table + " WHERE t_n = n AND h_n = n") ==
            pg.value(std::string("SELECT count(*) FROM ") + table));
    }
    CHECK(pg.value("SELECT count(*) FROM readings_1h") != "0");
    CHECK(pg.value("SELECT count(*) FROM rill_partitions('readings_6h') WHERE part::text = "
                   "'readings_6h_2024'") == "1");
    // Every 6-hour bucket of the raw rows is exact, and the writer keeps it so.
    const auto from = rill::now() - std::chrono::hours(40);
    CHECK(mismatches(conn, from) == "");
    rill::store::PostgresSink sink(pg.conninfo());
    sink.open();
    CHECK(sink.write(recent_batch("s1", 54'000)) == 100);
    CHECK(mismatches(conn, from) == "");
    CHECK(pg.value("SELECT sum(n) FROM readings_6h WHERE sensor <> 'old'") == "216100");
}

TEST_CASE(
    "a version-4 database upgrades in place, its 15-minute rollups computed from its minutes") {
    TempPostgres pg;
    // Version 4 as released, over a version-1 table of 3 sensors, a reading every second each
    // for 2 hours ending an hour ago, some without humidity: migration 2 rolls them up.
    pg.execute(std::string(rill::store::migrations()[0].sql));
    pg.execute(
        "INSERT INTO readings SELECT 's' || (g % 3), g / 3 + 1, now() - interval '1 hour' - "
        "(21600 - g) * interval '333 milliseconds', 20 + (g % 97) * 0.125, 40 + (g % 13), NULL "
        "FROM generate_series(0, 21599) g");
    for (std::size_t i = 1; i < 4; ++i)
        pg.execute(std::string(rill::store::migrations()[i].sql));
    // And minutes whose raw rows retention dropped: 2024-01-01 00:00 to 00:44, three 15-minute
    // buckets, 60 readings a minute of which 50 measured a temperature and 40 a humidity.
    pg.execute(
        "SELECT rill_ensure_partitions('readings_1m', '2024-01-01Z', '2024-01-02Z');"
        "INSERT INTO readings_1m SELECT 'old', timestamptz '2024-01-01Z' + m * interval '1 "
        "minute', 60, 50 * m, m - 1, m + 1, 400, 10, 10, 50, 40 FROM generate_series(0, 44) m;"
        "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now());"
        "INSERT INTO schema_migrations (version, name) VALUES (1, 'readings table'), "
        "(2, 'time partitions and rollups'), (3, '6-hour rollups'), "
        "(4, 'counts of measured values in the rollups')");
    REQUIRE(pg.value("SELECT sum(n) FROM readings_1m WHERE sensor <> 'old'") == "21600");
    auto conn = Connection::open(pg.conninfo());
    CHECK(rill::store::migrate(conn) == std::vector<int>{5});
    CHECK(pg.value("SELECT sum(n) || ' ' || sum(t_n) || ' ' || sum(h_n) || ' ' || sum(t_sum) "
                   "FROM readings_15m") ==
          pg.value("SELECT sum(n) || ' ' || sum(t_n) || ' ' || sum(h_n) || ' ' || sum(t_sum) "
                   "FROM readings_1m"));
    CHECK(pg.column("SELECT bucket AT TIME ZONE 'UTC' || ' ' || n || ' ' || t_n || ' ' || h_n || "
                    "' ' || t_sum || ' ' || t_min || ' ' || t_max FROM readings_15m WHERE "
                    "sensor = 'old' ORDER BY bucket") ==
          std::vector<std::string>{"2024-01-01 00:00:00 900 750 600 5250 -1 15",
                                   "2024-01-01 00:15:00 900 750 600 16500 14 30",
                                   "2024-01-01 00:30:00 900 750 600 27750 29 45"});
    CHECK(pg.value("SELECT count(*) FROM rill_partitions('readings_15m') WHERE part::text = "
                   "'readings_15m_202401'") == "1");
    // Every 15-minute bucket of the raw rows is exact, and the writer keeps it so.
    const auto from = rill::now() - std::chrono::hours(5);
    CHECK(mismatches(conn, from) == "");
    rill::store::PostgresSink sink(pg.conninfo());
    sink.open();
    CHECK(sink.write(recent_batch("s1", 7'200)) == 100);
    CHECK(mismatches(conn, from) == "");
    CHECK(pg.value("SELECT sum(n) FROM readings_15m WHERE sensor <> 'old'") == "21700");
}
