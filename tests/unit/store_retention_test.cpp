#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "rill/metrics.hpp"
#include "rill/store.hpp"
#include "support/postgres.hpp"
#include "support/readings.hpp"

using namespace std::chrono_literals;
using rill::store::Connection;
using rill::store::maintain;
using rill::store::MaintenanceReport;
using rill::store::RetentionPolicy;
using rill::test::TempPostgres;

namespace {

// 2026-03-15T12:00:00Z: the `now` of the planted histories.
const rill::Timestamp march_15 = *rill::parse_time("2026-03-15T12:00:00Z");

Connection open_migrated(const TempPostgres& pg) {
    auto conn = Connection::open(pg.conninfo());
    (void)rill::store::migrate(conn);
    return conn;
}

std::vector<std::string> partitions(const TempPostgres& pg, const std::string& table) {
    return pg.column("SELECT part::text FROM rill_partitions('" + table + "') ORDER BY lo");
}

const rill::store::TableMaintenance& table(const MaintenanceReport& r, const std::string& name) {
    for (const auto& t : r.tables) {
        if (t.table == name) return t;
    }
    FAIL("no report for " << name);
    return r.tables.front();
}

// Raw readings of March 1..15 2026 (sensor a every day, b on the 1st to 3rd, seqs day * 100 + k),
// 1-minute rollups of October 2025 .. March 2026, 1-hour rollups of 2019 .. 2026, 6-hour rollups
// of 2015 .. 2026, and two raw rows no partition covers (in 2025 and 2027), which go to the
// default partition.
void plant_history(const TempPostgres& pg) {
    pg.execute(R"sql(
SELECT rill_ensure_partitions('readings', '2026-03-01Z', '2026-03-16Z');
INSERT INTO readings (sensor, seq, ts, temperature, humidity)
SELECT 'a', d * 100 + k, timestamptz '2026-03-01Z' + (d - 1) * interval '1 day' + k * interval '1 min',
       20, 40
FROM generate_series(1, 15) d, generate_series(0, 9) k;
INSERT INTO readings (sensor, seq, ts, temperature, humidity)
SELECT 'b', d * 100 + k, timestamptz '2026-03-01Z' + (d - 1) * interval '1 day' + k * interval '1 min',
       20, 40
FROM generate_series(1, 3) d, generate_series(0, 4) k;
INSERT INTO readings (sensor, seq, ts, temperature, humidity) VALUES
    ('c', 1, '2025-01-01Z', 1, 1), ('c', 2, '2027-06-01Z', 1, 1);
SELECT rill_ensure_partitions('readings_1m', '2025-10-01Z', '2026-04-01Z');
INSERT INTO readings_1m
SELECT 'a', m, 1, 20, 20, 20, 40, 40, 40, 1, 1
FROM generate_series(timestamptz '2025-10-01Z', '2026-03-01Z', interval '1 month') m;
SELECT rill_ensure_partitions('readings_1h', '2019-01-01Z', '2027-01-01Z');
INSERT INTO readings_1h
SELECT 'a', y, 1, 20, 20, 20, 40, 40, 40, 1, 1
FROM generate_series(timestamptz '2019-01-01Z', '2026-01-01Z', interval '1 year') y;
SELECT rill_ensure_partitions('readings_6h', '2015-01-01Z', '2027-01-01Z');
INSERT INTO readings_6h
SELECT 'a', y, 1, 20, 20, 20, 40, 40, 40, 1, 1
FROM generate_series(timestamptz '2015-01-01Z', '2026-01-01Z', interval '1 year') y;
)sql");
}

std::vector<std::string> days(int from, int to) {
    std::vector<std::string> out;
    for (int d = from; d <= to; ++d) {
        out.push_back("readings_202603" + std::string(d < 10 ? "0" : "") + std::to_string(d));
    }
    return out;
}

}  // namespace

TEST_CASE("maintenance drops only whole expired partitions and keeps the default partitions") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    const RetentionPolicy keep{.raw = 72h, .minute = 90 * 24h, .hour = 5 * 365 * 24h};

    const auto report = maintain(conn, keep, march_15);

    REQUIRE(report.ran);
    // Raw: cut at March 12 12:00; the 11th ends at midnight, the 12th is kept whole.
    CHECK(table(report, "readings").dropped == days(1, 11));
    const auto raw = partitions(pg, "readings");
    CHECK(raw == days(12, 22));  // 12..15 planted, 16..22 made ahead (today + 7)
    CHECK(table(report, "readings").created == 7);
    CHECK(pg.value("SELECT count(*) FROM readings WHERE sensor = 'a'") == "40");  // days 12..15
    CHECK(pg.value("SELECT min(seq) FROM readings WHERE sensor = 'a'") == "1200");
    CHECK(pg.value("SELECT count(*) FROM readings WHERE sensor = 'b'") == "0");
    // The default partition and its rows stay, also an old one no partition covers.
    CHECK(pg.value("SELECT count(*) FROM readings_default") == "2");
    CHECK(pg.value("SELECT to_regclass('readings_default') IS NOT NULL") == "t");
    REQUIRE(report.oldest_raw);
    CHECK(rill::to_iso8601(*report.oldest_raw) == "2025-01-01T00:00:00.000000Z");

    // 1-minute rollups: cut at 2025-12-15 12:00: October and November go, December stays.
    CHECK(table(report, "readings_1m").dropped ==
          std::vector<std::string>{"readings_1m_202510", "readings_1m_202511"});
    CHECK(partitions(pg, "readings_1m") ==
          std::vector<std::string>{"readings_1m_202512", "readings_1m_202601", "readings_1m_202602",
                                   "readings_1m_202603", "readings_1m_202604"});
    CHECK(pg.value("SELECT count(*) FROM readings_1m") == "4");
    CHECK(pg.value("SELECT to_regclass('readings_1m_default') IS NOT NULL") == "t");

    // 1-hour rollups: cut at 2021-03-16 12:00: 2019 and 2020 go, 2021 stays; 2027 made ahead.
    CHECK(table(report, "readings_1h").dropped ==
          std::vector<std::string>{"readings_1h_2019", "readings_1h_2020"});
    const auto hourly = partitions(pg, "readings_1h");
    CHECK(hourly.front() == "readings_1h_2021");
    CHECK(hourly.back() == "readings_1h_2027");
    CHECK(pg.value("SELECT count(*) FROM readings_1h") == "6");

    // 6-hour rollups: kept forever by default; 2027 made ahead.
    CHECK(keep.six_hour == 0s);
    CHECK(table(report, "readings_6h").dropped.empty());
    CHECK(table(report, "readings_6h").created == 1);
    const auto six_hourly = partitions(pg, "readings_6h");
    CHECK(six_hourly.front() == "readings_6h_2015");
    CHECK(six_hourly.back() == "readings_6h_2027");
    CHECK(pg.value("SELECT count(*) FROM readings_6h") == "12");

    CHECK(report.summary(keep).starts_with(
        "retention: dropped readings_20260301 (raw older than 3d), readings_20260302 (raw older "
        "than 3d)"));
    CHECK(report.summary(keep).find("readings_1m_202510 (1-minute rollups older than 90d)") !=
          std::string::npos);
    CHECK(report.summary(keep).find("retired seqs of 2 sensors; created 12 partitions ahead") !=
          std::string::npos);

    MaintenanceReport rollups_only;
    rollups_only.ran = true;
    rollups_only.tables.push_back({.table = "readings_1h", .dropped = {"readings_1h_2019"}});
    CHECK(rollups_only.summary(keep) ==
          "retention: dropped readings_1h_2019 (1-hour rollups older than 5y)");
    rollups_only.tables.push_back({.table = "readings", .dropped = {"readings_20260301"}});
    rollups_only.sensors_retired = 1;
    CHECK(rollups_only.summary(keep).ends_with("(raw older than 3d), retired seqs of 1 sensor"));

    // A second run finds nothing to do.
    const auto again = maintain(conn, keep, march_15);
    CHECK(again.ran);
    CHECK_FALSE(again.changed());
    CHECK(again.summary(keep).empty());
}

TEST_CASE("6-hour rollups are dropped by whole years once older than their keep") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    // Cut at 2016-03-16 12:00: 2015 ends before it and goes, 2016 stays.
    const RetentionPolicy keep{.raw = 0s, .minute = 0s, .hour = 0s, .six_hour = 10 * 365 * 24h};
    const auto report = maintain(conn, keep, march_15);
    REQUIRE(report.ran);
    CHECK(table(report, "readings_6h").dropped == std::vector<std::string>{"readings_6h_2015"});
    CHECK(partitions(pg, "readings_6h").front() == "readings_6h_2016");
    CHECK(pg.value("SELECT count(*) FROM readings_6h") == "11");
    CHECK(pg.value("SELECT to_regclass('readings_6h_default') IS NOT NULL") == "t");
    CHECK(table(report, "readings_1h").dropped.empty());
    CHECK(report.summary(keep).find("readings_6h_2015 (6-hour rollups older than 10y)") !=
          std::string::npos);
}

TEST_CASE("15-minute rollups are dropped by whole months once older than their keep") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    pg.execute(
        "SELECT rill_ensure_partitions('readings_15m', '2025-01-01Z', '2026-04-01Z');"
        "INSERT INTO readings_15m SELECT 'a', m, 1, 20, 20, 20, 40, 40, 40, 1, 1 FROM "
        "generate_series(timestamptz '2025-01-01Z', '2026-03-01Z', interval '1 month') m");
    // The default keeps a year: cut at 2025-03-15 12:00, January and February 2025 go, March
    // stays; April 2026 (next month) is made ahead.
    const RetentionPolicy keep{.raw = 0s, .minute = 0s, .hour = 0s};
    CHECK(keep.fifteen_minute == 365 * 24h);
    const auto report = maintain(conn, keep, march_15);
    REQUIRE(report.ran);
    CHECK(table(report, "readings_15m").dropped ==
          std::vector<std::string>{"readings_15m_202501", "readings_15m_202502"});
    CHECK(table(report, "readings_15m").created == 1);
    CHECK(partitions(pg, "readings_15m").front() == "readings_15m_202503");
    CHECK(partitions(pg, "readings_15m").back() == "readings_15m_202604");
    CHECK(pg.value("SELECT count(*) FROM readings_15m") == "13");
    CHECK(pg.value("SELECT to_regclass('readings_15m_default') IS NOT NULL") == "t");
    CHECK(table(report, "readings_1m").dropped.empty());
    CHECK(report.summary(keep).find("readings_15m_202501 (15-minute rollups older than 1y)") !=
          std::string::npos);
    // Kept forever with 0.
    const auto forever = maintain(conn, RetentionPolicy{.fifteen_minute = 0s}, march_15);
    CHECK(table(forever, "readings_15m").dropped.empty());
}

TEST_CASE("dropping raw partitions records each sensor's greatest dropped seq in rill_retired") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    // Retired entries from before: a's lower (raised), d's untouched, c not in a dropped partition.
    pg.execute("INSERT INTO rill_retired VALUES ('a', 5), ('d', 77)");
    const auto report = maintain(conn, {.raw = 72h, .minute = 0s, .hour = 0s}, march_15);
    CHECK(report.sensors_retired == 2);
    CHECK(pg.column("SELECT sensor || ':' || seq FROM rill_retired ORDER BY sensor") ==
          std::vector<std::string>{"a:1109", "b:304", "d:77"});
    // Keeps of 0 drop nothing.
    CHECK(table(report, "readings_1m").dropped.empty());
    CHECK(table(report, "readings_1h").dropped.empty());
    CHECK(partitions(pg, "readings_1h").front() == "readings_1h_2019");
    // A later run with a later now raises them again, never lowers them.
    pg.execute("UPDATE rill_retired SET seq = 5000 WHERE sensor = 'b'");
    (void)maintain(conn, {.raw = 24h, .minute = 0s, .hour = 0s}, march_15 + 24h);
    CHECK(pg.column("SELECT sensor || ':' || seq FROM rill_retired ORDER BY sensor") ==
          std::vector<std::string>{"a:1409", "b:5000", "d:77"});
}

TEST_CASE("a writer opened after retention dropped raw days treats their seqs as stored") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    (void)maintain(conn, {.raw = 72h, .minute = 0s, .hour = 0s}, march_15);  // a through 1109
    const std::string rollups = "SELECT coalesce(sum(n), 0) FROM readings_1m";
    const std::string before = pg.value(rollups);
    rill::store::WriterOptions wo;
    wo.conninfo = pg.conninfo();
    rill::store::BatchWriter w(wo);
    // The retired range and the islands still held raw, as one set.
    CHECK(w.stored_ranges("a").contains(1));
    CHECK(w.stored_ranges("a").contains(1109));
    CHECK(w.stored_ranges("a").contains(1405));
    CHECK_FALSE(w.stored_ranges("a").contains(1110));
    // A replay of retired seqs (taken when they were, or with a new ts) is dropped in memory:
    // no raw row comes back, no rollup counts it again.
    for (const std::uint64_t seq : {3ULL, 305ULL, 1109ULL}) {
        (void)w.add(rill::test::taken_at(rill::test::reading("a", seq), march_15 - 240h));
    }
    CHECK(w.flush() == 0);
    CHECK(w.stats().duplicates_skipped == 3);
    CHECK(pg.value("SELECT count(*) FROM readings WHERE sensor = 'a' AND seq <= 1109") == "0");
    CHECK(pg.value(rollups) == before);
}

TEST_CASE("maintenance is skipped while another session holds the maintenance lock") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    auto other = Connection::open(pg.conninfo());
    (void)other.exec(
        "SELECT pg_advisory_lock(" + std::to_string(rill::store::maintenance_lock_key) + ")",
        "hold the maintenance lock");
    const auto skipped = maintain(conn, {}, march_15);
    CHECK_FALSE(skipped.ran);
    CHECK(skipped.tables.empty());
    CHECK(partitions(pg, "readings").front() == "readings_20260301");
    (void)other.exec(
        "SELECT pg_advisory_unlock(" + std::to_string(rill::store::maintenance_lock_key) + ")",
        "let go of the maintenance lock");
    const auto ran = maintain(conn, {}, march_15);  // the defaults: raw 2d
    CHECK(ran.ran);
    CHECK(partitions(pg, "readings").front() == "readings_20260313");
}

TEST_CASE("two maintenance runs at once from two connections drop each partition once, no error") {
    TempPostgres pg;
    { auto conn = open_migrated(pg); }
    pg.execute(R"sql(
SELECT rill_ensure_partitions('readings', '2026-01-01Z', '2026-03-16Z');
INSERT INTO readings (sensor, seq, ts, temperature, humidity)
SELECT 's' || (d % 3), d, timestamptz '2026-01-01Z' + d * interval '1 hour', 1, 1
FROM generate_series(0, 24 * 74) d;
)sql");
    std::vector<MaintenanceReport> reports(2);
    std::atomic<int> errors{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&, i] {
            try {
                auto conn = Connection::open(pg.conninfo());
                while (!go.load())
                    std::this_thread::yield();
                reports[static_cast<std::size_t>(i)] =
                    maintain(conn, {.raw = 72h, .minute = 0s, .hour = 0s}, march_15);
            } catch (const std::exception& e) {
                MESSAGE(e.what());
                ++errors;
            }
        });
    }
    go = true;
    for (auto& t : threads)
        t.join();
    CHECK(errors == 0);
    CHECK((reports[0].ran || reports[1].ran));
    std::vector<std::string> dropped;
    for (const auto& r : reports) {
        for (const auto& t : r.tables)
            dropped.insert(dropped.end(), t.dropped.begin(), t.dropped.end());
    }
    std::sort(dropped.begin(), dropped.end());
    CHECK(dropped.size() == 70);  // January 1 .. March 11, each once
    CHECK(std::adjacent_find(dropped.begin(), dropped.end()) == dropped.end());
    CHECK(partitions(pg, "readings").front() == "readings_20260312");
    CHECK(pg.value("SELECT count(*) FROM rill_retired") == "3");
    CHECK(pg.value("SELECT max(seq) FROM rill_retired") ==
          pg.value("SELECT max(seq) FROM generate_series(0, 24 * 74) seq "
                   "WHERE timestamptz '2026-01-01Z' + seq * interval '1 hour' < '2026-03-12Z'"));
}

TEST_CASE("a table busy beyond the lock timeout is left to the next run and others go on") {
    TempPostgres pg;
    auto conn = open_migrated(pg);
    plant_history(pg);
    // A writer's transaction holds readings (as a long COPY would).
    auto writer = Connection::open(pg.conninfo());
    (void)writer.exec("BEGIN; INSERT INTO readings VALUES ('w', 1, '2026-03-14Z', 1, 1, NULL)",
                      "hold readings");
    const auto started = std::chrono::steady_clock::now();
    const auto busy = maintain(conn, {.raw = 72h, .minute = 90 * 24h, .hour = 0s}, march_15, 200ms);
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    CHECK(table(busy, "readings").busy);
    CHECK(table(busy, "readings").dropped.empty());
    CHECK(partitions(pg, "readings").front() == "readings_20260301");
    CHECK(table(busy, "readings_1m").dropped.size() == 2);  // another table: not blocked
    (void)writer.exec("COMMIT", "let go of readings");
    const auto later =
        maintain(conn, {.raw = 72h, .minute = 90 * 24h, .hour = 0s}, march_15, 200ms);
    CHECK_FALSE(table(later, "readings").busy);
    CHECK(table(later, "readings").dropped == days(1, 11));
    CHECK(pg.value("SELECT count(*) FROM readings WHERE sensor = 'w'") == "1");
}

TEST_CASE("a PostgresSink with maintenance makes partitions ahead at open and counts its drops") {
    TempPostgres pg;
    { auto conn = open_migrated(pg); }
    // Five expired days before a real now, and one of today that stays.
    pg.execute(R"sql(
SELECT rill_ensure_partitions('readings', now() - interval '10 days', now() - interval '5 days');
INSERT INTO readings (sensor, seq, ts, temperature, humidity)
SELECT 'x', d, now() - interval '10 days' + d * interval '1 hour', 1, 1 FROM generate_series(0, 100) d;
INSERT INTO readings (sensor, seq, ts, temperature, humidity) VALUES ('x', 1000, now(), 1, 1);
)sql");
    rill::MetricsRegistry registry;
    rill::store::PostgresSink sink(pg.conninfo());
    sink.enable_maintenance(
        {.keep = {.raw = 24h, .minute = 0s, .hour = 0s}, .interval = 1h, .registry = &registry});
    sink.open();
    const auto dropped =
        registry.value("rill_store_partitions_dropped_total", {{"table", "readings"}});
    REQUIRE(dropped);
    CHECK(*dropped >= 5);
    CHECK(registry.value("rill_store_partitions_created_total", {{"table", "readings"}}) >= 7.0);
    CHECK(registry.value("rill_store_partitions_created_total", {{"table", "readings_1m"}}) >= 1.0);
    CHECK(registry.value("rill_store_maintenance_runs_total") == 1.0);
    CHECK(registry.value("rill_store_maintenance_errors_total") == 0.0);
    CHECK(pg.value("SELECT count(*) FROM readings") == "1");
    CHECK(pg.value("SELECT seq FROM rill_retired WHERE sensor = 'x'") == "100");
    // Today .. today + 7 (UTC) have partitions of their own.
    CHECK(pg.value("SELECT count(*) FROM generate_series(0, 7) d WHERE EXISTS (SELECT 1 FROM "
                   "rill_partitions('readings') p WHERE p.lo <= now() + d * interval '1 day' AND "
                   "p.hi > now() + d * interval '1 day')") == "8");
    const auto oldest = registry.value("rill_store_oldest_raw_timestamp_seconds");
    REQUIRE(oldest);
    CHECK(*oldest == doctest::Approx(std::stod(pg.value("SELECT extract(epoch FROM ts) FROM "
                                                        "readings WHERE seq = 1000")))
                         .epsilon(1e-9));
    // Not due again within the interval: a probe runs no maintenance.
    sink.probe();
    CHECK(registry.value("rill_store_maintenance_runs_total") == 1.0);
}

TEST_CASE("a busy PostgresSink runs maintenance before a batch once the interval has passed") {
    TempPostgres pg;
    rill::MetricsRegistry registry;
    rill::store::PostgresSink sink(pg.conninfo());
    sink.enable_maintenance(
        {.keep = {.raw = 24h, .minute = 0s, .hour = 0s}, .interval = 1s, .registry = &registry});
    sink.open();
    CHECK(registry.value("rill_store_maintenance_runs_total") == 1.0);
    pg.execute(
        "SELECT rill_ensure_partitions('readings', now() - interval '5 days', "
        "now() - interval '4 days')");
    const auto expired = pg.value(
        "SELECT count(*) FROM rill_partitions('readings') "
        "WHERE hi <= now() - interval '1 day'");
    CHECK(expired != "0");
    std::this_thread::sleep_for(1100ms);
    rill::Reading r;
    r.sensor = "busy";
    r.seq = 1;
    r.ts = rill::now();
    r.temperature = 20;
    r.humidity = 40;
    CHECK(sink.write(std::span<const rill::Reading>(&r, 1)) == 1);
    CHECK(registry.value("rill_store_maintenance_runs_total") == 2.0);
    CHECK(pg.value("SELECT count(*) FROM rill_partitions('readings') "
                   "WHERE hi <= now() - interval '1 day'") == "0");
    CHECK(registry.value("rill_store_partitions_dropped_total", {{"table", "readings"}}) ==
          std::stod(expired));
    CHECK(pg.value("SELECT count(*) FROM readings WHERE sensor = 'busy'") == "1");
}
