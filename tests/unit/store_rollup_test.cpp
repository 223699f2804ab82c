// The rollups readings_1m / readings_15m / readings_1h / readings_6h against a real PostgreSQL:
// written in the batch's transaction, counting only rows inserted, whatever path the batch took;
// partitions made on demand; check_rollups() finding what differs; the in-place upgrade of a
// version-1 table.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "rill/store.hpp"
#include "support/postgres.hpp"
#include "support/readings.hpp"

using namespace std::chrono_literals;
using rill::Reading;
using rill::Timestamp;
using rill::store::BatchWriter;
using rill::store::Connection;
using rill::store::PostgresSink;
using rill::store::SeqRange;
using rill::store::WriterOptions;
using rill::test::reading;
using rill::test::taken_at;
using rill::test::TempPostgres;
using rill::test::test_epoch;

namespace {

WriterOptions options(const TempPostgres& pg) {
    WriterOptions o;
    o.conninfo = pg.conninfo();
    o.flush_interval = 1h;  // tests flush explicitly
    o.backoff = {.initial = 20ms, .max = 200ms, .multiplier = 2.0};
    return o;
}

// Readings seq first..last of `sensor`, one every `step` from `start` + seq * step.
std::vector<Reading> spaced(const std::string& sensor, std::uint64_t first, std::uint64_t last,
                            Timestamp start, std::chrono::microseconds step) {
    std::vector<Reading> out;
    for (std::uint64_t s = first; s <= last; ++s) {
        out.push_back(taken_at(reading(sensor, s), start + step * static_cast<std::int64_t>(s)));
    }
    return out;
}

// The mismatches check_rollups finds over everything, one line each ("" when exact).
std::string mismatches(const TempPostgres& pg) {
    auto conn = Connection::open(pg.conninfo());
    std::string out;
    for (const auto& m : rill::store::check_rollups(conn))
        out += rill::store::to_string(m) + "\n";
    return out;
}

std::string total(const TempPostgres& pg, const std::string& table) {
    return pg.value("SELECT coalesce(sum(n), 0) FROM " + table);
}

void flush_all(BatchWriter& w) {
    for (int i = 0; i < 500 && w.pending() > 0; ++i) {
        (void)w.flush();
        if (w.pending() > 0) std::this_thread::sleep_for(20ms);
    }
    REQUIRE(w.pending() == 0);
}

std::string day_partition(Timestamp ts) {
    const auto day = std::chrono::floor<std::chrono::days>(ts);
    const std::chrono::year_month_day ymd{day};
    char name[32];
    std::snprintf(name, sizeof name, "readings_%04d%02u%02u", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
    return name;
}

}  // namespace

TEST_CASE("a batch's rollups hold its count, sums, minima and maxima per minute and hour") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    // 150 readings 1 s apart from 10:00:00: minutes 10:00, 10:01 (60 each) and 10:02 (30).
    auto rs = spaced("a", 1, 150, test_epoch - 1s, 1s);
    rs[0].temperature = -12.5f;
    rs[61].humidity = 99.5f;
    CHECK(sink.write(rs) == 150);
    CHECK(pg.column("SELECT n || ' ' || t_min || ' ' || t_max || ' ' || h_max FROM readings_1m "
                    "ORDER BY bucket") ==
          std::vector<std::string>{"60 -12.5 21.75 89", "60 20 21.75 99.5", "30 20 21.75 89"});
    CHECK(pg.value("SELECT n || ' ' || t_sum || ' ' || h_sum FROM readings_1h") ==
          pg.value("SELECT count(*) || ' ' || sum(temperature::float8) || ' ' || "
                   "sum(humidity::float8) FROM readings"));
    CHECK(pg.value("SELECT bucket = '2025-11-21T10:00:00Z' FROM readings_1h") == "t");
    CHECK(mismatches(pg) == "");
}

TEST_CASE("15-minute rollups cut at :00, :15, :30 and :45 and hold what their minutes hold") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    // 240 readings 10 s apart from 10:00:00: 90 in 10:00-10:14:50, 90 from 10:15, 60 from 10:30.
    CHECK(sink.write(spaced("q", 1, 240, test_epoch - 10s, 10s)) == 240);
    CHECK(pg.column("SELECT bucket AT TIME ZONE 'UTC' || ' ' || n FROM readings_15m ORDER BY "
                    "bucket") == std::vector<std::string>{"2025-11-21 10:00:00 90",
                                                          "2025-11-21 10:15:00 90",
                                                          "2025-11-21 10:30:00 60"});
    CHECK(pg.column("SELECT n || ' ' || t_sum || ' ' || t_min || ' ' || t_max || ' ' || h_sum || "
                    "' ' || h_min || ' ' || h_max || ' ' || t_n || ' ' || h_n FROM readings_15m "
                    "ORDER BY bucket") ==
          pg.column("SELECT sum(n) || ' ' || sum(t_sum) || ' ' || min(t_min) || ' ' || "
                    "max(t_max) || ' ' || sum(h_sum) || ' ' || min(h_min) || ' ' || max(h_max) "
                    "|| ' ' || sum(t_n) || ' ' || sum(h_n) FROM readings_1m GROUP BY "
                    "date_bin('15 minutes', bucket, timestamptz '1970-01-01Z') ORDER BY "
                    "date_bin('15 minutes', bucket, timestamptz '1970-01-01Z')"));
    // A later batch adds to the bucket it falls in.
    CHECK(sink.write(spaced("q", 241, 250, test_epoch - 10s, 10s)) == 10);
    CHECK(pg.value("SELECT n FROM readings_15m WHERE bucket = '2025-11-21T10:30:00Z'") == "70");
    CHECK(mismatches(pg) == "");
}

// Readings first..last of `sensor` one second apart from 10:00:00 whose temperature is not
// measured when seq % 3 == 0 and in all of minute 10:01 (seqs 61..120), humidity not when
// seq % 5 == 0; one that measures neither carries an extra instead.
std::vector<Reading> partly_measured(const std::string& sensor, std::uint64_t first,
                                     std::uint64_t last) {
    auto rs = spaced(sensor, first, last, test_epoch - 1s, 1s);
    for (auto& r : rs) {
        if (r.seq % 3 == 0 || (r.seq >= 61 && r.seq <= 120)) r.temperature = rill::not_measured;
        if (r.seq % 5 == 0) r.humidity = rill::not_measured;
        if (!rill::is_measured(r.temperature) && !rill::is_measured(r.humidity)) {
            r.extras = {{"battery", 3.25}};
        }
    }
    return rs;
}

TEST_CASE("values not measured are stored as NULL and the rollups count only measured values") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    CHECK(sink.write(partly_measured("m", 1, 150)) == 150);
    CHECK(pg.value("SELECT count(*) || ' ' || count(temperature) || ' ' || count(humidity) || ' ' "
                   "|| count(*) FILTER (WHERE temperature IS NULL AND humidity IS NULL) FROM "
                   "readings") == "150 60 120 18");
    // 10:00: 20 of 60 temperatures not measured, 12 humidities; 10:01: no temperature at all.
    CHECK(pg.column("SELECT n || ' ' || t_n || ' ' || h_n || ' ' || t_sum || ' ' || "
                    "coalesce(t_min::text, '-') || ' ' || coalesce(t_max::text, '-') FROM "
                    "readings_1m ORDER BY bucket") ==
          std::vector<std::string>{"60 40 48 " +
                                       pg.value("SELECT sum(temperature::float8) FROM "
                                                "readings WHERE seq <= 60") +
                                       " 20 21.75",
                                   "60 0 48 0 - -",
                                   "30 20 24 " +
                                       pg.value("SELECT sum(temperature::float8) "
                                                "FROM readings WHERE seq > 120") +
                                       " 20 21.75"});
    // An average over the counts of the rollup equals the average of the raw values measured.
    for (const char* table : {"readings_1m", "readings_15m", "readings_1h", "readings_6h"}) {
        CHECK(pg.value(std::string("SELECT round((sum(t_sum) / sum(t_n))::numeric, 9) || ' ' || "
                                   "round((sum(h_sum) / sum(h_n))::numeric, 9) FROM ") +
                       table) == pg.value("SELECT round(avg(temperature::float8)::numeric, 9) || "
                                          "' ' || round(avg(humidity::float8)::numeric, 9) FROM "
                                          "readings"));
    }
    CHECK(mismatches(pg) == "");
}

TEST_CASE(
    "rollups of readings not measuring everything stay exact through duplicates and "
    "replays") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    const auto rs = partly_measured("m", 1, 100);
    CHECK(sink.write(rs) == 100);
    const auto before =
        pg.column("SELECT n || ' ' || t_n || ' ' || h_n || ' ' || t_sum FROM readings_1m");
    CHECK(sink.write(rs) == 0);
    CHECK(sink.write(std::vector<Reading>(rs.begin() + 19, rs.begin() + 60)) == 0);
    CHECK(pg.column("SELECT n || ' ' || t_n || ' ' || h_n || ' ' || t_sum FROM readings_1m") ==
          before);
    // A replay reaching past the stored range (the fallback path, rolled up in SQL) and a
    // writer's batch overlapping another writer's (the same) add only the new rows.
    CHECK(sink.write(partly_measured("m", 50, 150)) == 50);
    BatchWriter other(options(pg));
    BatchWriter w(options(pg));
    for (auto& r : partly_measured("n", 5, 10))
        REQUIRE(other.add(std::move(r)) == BatchWriter::AddResult::accepted);
    CHECK(other.flush() == 6);
    for (auto& r : partly_measured("n", 1, 40))
        REQUIRE(w.add(std::move(r)) == BatchWriter::AddResult::accepted);
    CHECK(w.flush() == 40);
    CHECK(w.stats().readings_stored == 34);
    CHECK(pg.value("SELECT sum(t_n) || ' ' || sum(h_n) FROM readings_1h") ==
          pg.value("SELECT count(temperature) || ' ' || count(humidity) FROM readings"));
    CHECK(pg.value("SELECT sum(t_n) || ' ' || sum(h_n) FROM readings_15m") ==
          pg.value("SELECT count(temperature) || ' ' || count(humidity) FROM readings"));
    CHECK(pg.value("SELECT sum(t_n) || ' ' || sum(h_n) FROM readings_6h") ==
          pg.value("SELECT count(temperature) || ' ' || count(humidity) FROM readings"));
    CHECK(mismatches(pg) == "");
    // check_rollups sees a count of measured values that is off.
    pg.execute("UPDATE readings_1h SET h_n = h_n + 1 WHERE sensor = 'n'");
    auto conn = Connection::open(pg.conninfo());
    const auto found = rill::store::check_rollups(conn);
    REQUIRE(found.size() == 1);
    CHECK(found[0].detail == "h_n raw 32 rollup 33");
}

TEST_CASE("rollups count only the rows inserted when the database already has some of a batch") {
    TempPostgres pg;
    BatchWriter other(options(pg));
    BatchWriter w(options(pg));
    // Another writer stores seqs 5..10 (same readings, same ts) behind w's back.
    for (auto& r : spaced("s", 5, 10, test_epoch, 10s))
        REQUIRE(other.add(std::move(r)) == BatchWriter::AddResult::accepted);
    CHECK(other.flush() == 6);
    for (auto& r : spaced("s", 1, 20, test_epoch, 10s))
        REQUIRE(w.add(std::move(r)) == BatchWriter::AddResult::accepted);
    CHECK(w.flush() == 20);
    CHECK(w.stats().readings_stored == 14);
    CHECK(w.stats().fallback_batches == 1);
    CHECK(pg.value("SELECT count(*) FROM readings") == "20");
    CHECK(total(pg, "readings_1m") == "20");
    CHECK(total(pg, "readings_15m") == "20");
    CHECK(total(pg, "readings_1h") == "20");
    CHECK(total(pg, "readings_6h") == "20");
    CHECK(mismatches(pg) == "");
}

TEST_CASE("the same batch written twice and a replay of a stored range are rolled up once") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    const auto rs = spaced("s", 1, 100, test_epoch, 7s);
    CHECK(sink.write(rs) == 100);
    const auto before = pg.column("SELECT n || ' ' || t_sum FROM readings_1m ORDER BY bucket");
    CHECK(sink.write(rs) == 0);  // e.g. a retry after a commit whose answer was lost
    const std::vector<Reading> replay(rs.begin() + 19, rs.begin() + 60);
    CHECK(sink.write(replay) == 0);
    CHECK(pg.column("SELECT n || ' ' || t_sum FROM readings_1m ORDER BY bucket") == before);
    // A replay that reaches past the stored range adds only the new rows.
    CHECK(sink.write(spaced("s", 50, 150, test_epoch, 7s)) == 50);
    CHECK(total(pg, "readings_1m") == "150");
    CHECK(total(pg, "readings_15m") == "150");
    CHECK(total(pg, "readings_1h") == "150");
    CHECK(total(pg, "readings_6h") == "150");
    CHECK(mismatches(pg) == "");
}

TEST_CASE("two writers storing overlapping batches of the same sensors concurrently stay exact") {
    TempPostgres pg;
    { BatchWriter creator(options(pg)); }  // migrations before the race
    auto run = [&](std::uint64_t first, std::uint64_t last, std::uint64_t* stored) {
        auto o = options(pg);
        o.batch_max = 250;
        BatchWriter w(o);
        for (std::uint64_t s = first; s <= last; ++s) {
            for (const char* sensor : {"a", "b", "c"}) {
                auto r = taken_at(reading(sensor, s), test_epoch + 1s * static_cast<int>(s));
                while (w.add(std::move(r)) == BatchWriter::AddResult::full)
                    (void)w.flush();
                if (w.pending() >= 250) (void)w.flush();
            }
        }
        flush_all(w);
        *stored = w.stats().readings_stored;
    };
    std::uint64_t stored_a = 0, stored_b = 0;
    std::thread ta(run, 1, 3000, &stored_a);
    std::thread tb(run, 1500, 4500, &stored_b);
    ta.join();
    tb.join();
    CHECK(stored_a + stored_b == 3 * 4500);
    CHECK(pg.value("SELECT count(*) FROM readings") == "13500");
    CHECK(total(pg, "readings_1m") == "13500");
    CHECK(total(pg, "readings_15m") == "13500");
    CHECK(total(pg, "readings_1h") == "13500");
    CHECK(mismatches(pg) == "");
}

TEST_CASE("late readings stored hours later land in their old buckets") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    // One reading a minute; seqs 101..200 (minutes 101..200) are missing at first.
    CHECK(sink.write(spaced("s", 1, 100, test_epoch, 1min)) == 100);
    CHECK(sink.write(spaced("s", 201, 300, test_epoch, 1min)) == 100);
    CHECK(pg.value("SELECT count(*) FROM readings_1m") == "200");
    // Gap repair, hours later: the old minutes get their rows and the old hours grow.
    CHECK(sink.write(spaced("s", 101, 200, test_epoch, 1min)) == 100);
    CHECK(pg.value("SELECT count(*) || ' ' || max(n) FROM readings_1m") == "300 1");
    CHECK(pg.column("SELECT n FROM readings_1h ORDER BY bucket") ==
          std::vector<std::string>{"59", "60", "60", "60", "60", "1"});
    CHECK(mismatches(pg) == "");
}

TEST_CASE("a reading 9 days ahead waits in the default partition until its day is ensured") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    const auto ahead = std::chrono::floor<std::chrono::days>(rill::now()) + std::chrono::days(9) +
                       std::chrono::hours(12);
    const auto near = ahead - std::chrono::days(5);  // 4 days ahead: within the window
    CHECK(sink.write(std::vector<Reading>{taken_at(reading("s", 1), near),
                                          taken_at(reading("s", 2), ahead)}) == 2);
    CHECK(pg.value("SELECT tableoid::regclass FROM readings WHERE seq = 1") == day_partition(near));
    CHECK(pg.value("SELECT tableoid::regclass FROM readings WHERE seq = 2") == "readings_default");
    CHECK(pg.value("SELECT count(*) FROM pg_class WHERE relname = '" + day_partition(ahead) +
                   "'") == "0");
    CHECK(mismatches(pg) == "");
    // Its day comes within reach: the partition is made and takes the row from the default.
    const std::string day = rill::to_iso8601(std::chrono::floor<std::chrono::days>(ahead));
    pg.execute("SELECT rill_ensure_partitions('readings', '" + day + "', '" + day +
               "'::timestamptz + interval '1 day')");
    CHECK(pg.value("SELECT tableoid::regclass FROM readings WHERE seq = 2") ==
          day_partition(ahead));
    CHECK(pg.value("SELECT count(*) FROM readings_default") == "0");
    CHECK(total(pg, "readings_1m") == "2");
    CHECK(mismatches(pg) == "");
}

TEST_CASE("a reading 60 days old gets a partition of its own day") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    const auto old = rill::now() - std::chrono::days(60);
    CHECK(sink.write(std::vector<Reading>{taken_at(reading("s", 1), old)}) == 1);
    CHECK(pg.value("SELECT tableoid::regclass FROM readings") == day_partition(old));
    CHECK(pg.value("SELECT count(*) FROM readings_default") == "0");
    // Tomorrow's partition is made ahead of its first reading.
    CHECK(pg.value("SELECT count(*) FROM pg_class WHERE relname = '" +
                   day_partition(rill::now() + std::chrono::days(1)) + "'") == "1");
    CHECK(mismatches(pg) == "");
}

TEST_CASE("a seq re-used with a new ts is dropped as a duplicate by a writer opened later") {
    TempPostgres pg;
    {
        BatchWriter first(options(pg));
        for (auto& r : spaced("s", 1, 10, test_epoch, 1s))
            REQUIRE(first.add(std::move(r)) == BatchWriter::AddResult::accepted);
        CHECK(first.flush() == 10);
    }
    const auto rollups = pg.column("SELECT n || ' ' || t_sum FROM readings_1m ORDER BY bucket");
    BatchWriter later(options(pg));
    // A publisher that lost its sequence store sends seq 5 again, taken an hour later.
    CHECK(later.add(taken_at(reading("s", 5), test_epoch + 1h)) ==
          BatchWriter::AddResult::duplicate);
    CHECK(later.flush() == 0);
    CHECK(later.stats().duplicates_skipped == 1);
    CHECK(pg.value("SELECT count(*) FROM readings") == "10");
    CHECK(pg.column("SELECT n || ' ' || t_sum FROM readings_1m ORDER BY bucket") == rollups);
    CHECK(mismatches(pg) == "");
}

TEST_CASE("seqs retention retired count as stored for the writer") {
    TempPostgres pg;
    { BatchWriter creator(options(pg)); }
    pg.execute(
        "INSERT INTO readings SELECT 'a', g, now(), 1, 1, NULL FROM generate_series(51, 60) g;"
        "INSERT INTO rill_retired VALUES ('a', 50), ('gone', 70), ('other', 5)");
    BatchWriter w(options(pg));
    CHECK(w.stored_ranges("a").ranges() == std::vector<SeqRange>{{1, 60}});
    CHECK(w.stored_ranges("gone").ranges() == std::vector<SeqRange>{{1, 70}});
    CHECK(w.add(reading("gone", 70)) == BatchWriter::AddResult::duplicate);
    CHECK(w.add(reading("gone", 71)) == BatchWriter::AddResult::accepted);
}

TEST_CASE("check_rollups names every bucket where a rollup and the raw rows differ") {
    TempPostgres pg;
    PostgresSink sink(pg.conninfo());
    sink.open();
    CHECK(sink.write(spaced("s", 1, 120, test_epoch, 1s)) == 120);
    auto conn = Connection::open(pg.conninfo());
    CHECK(rill::store::check_rollups(conn).empty());
    pg.execute(
        "UPDATE readings_1m SET n = n + 1 WHERE bucket = '2025-11-21T10:01:00Z';"
        "UPDATE readings_15m SET t_sum = t_sum + 1;"
        "UPDATE readings_1h SET t_max = 30;"
        "UPDATE readings_6h SET h_min = h_min - 1;"
        "DELETE FROM readings WHERE seq = 120");
    const auto found = rill::store::check_rollups(conn);
    REQUIRE(found.size() == 5);
    CHECK(rill::store::to_string(found[0]) ==
          "readings_1m s 2025-11-21T10:01:00.000000Z: n raw 60 rollup 61");
    CHECK(found[1].table == "readings_1m");
    CHECK(found[1].raw_n == 0);  // 10:02:00 had only seq 120
    CHECK(found[1].rollup_n == 1);
    CHECK(found[2].table == "readings_15m");
    CHECK(rill::to_iso8601(found[2].bucket) == "2025-11-21T10:00:00.000000Z");
    CHECK(found[2].detail.starts_with("n raw 119 rollup 120; t_sum raw "));  // seq 120 gone
    CHECK(found[3].table == "readings_1h");
    CHECK(found[3].detail.starts_with("n raw 119 rollup 120; t_sum raw "));
    CHECK(found[3].detail.find("; t_max raw 21.75 rollup 30; h_sum raw ") != std::string::npos);
    CHECK(found[4].table == "readings_6h");
    CHECK(rill::to_iso8601(found[4].bucket) == "2025-11-21T06:00:00.000000Z");
    CHECK(found[4].detail.starts_with("n raw 119 rollup 120; t_sum raw "));
    CHECK(found[4].detail.find("; h_min raw ") != std::string::npos);
    // Limited to a range: the hour is widened to whole hours (also for readings_15m; 6 hours
    // for readings_6h), a later range has nothing.
    CHECK(rill::store::check_rollups(conn, test_epoch + 90s, test_epoch + 100s).size() == 5);
    const auto later = rill::store::check_rollups(conn, test_epoch + 1h, {});
    REQUIRE(later.size() == 1);  // 11:00 is still in the 6-hour bucket of 06:00
    CHECK(later[0].table == "readings_6h");
    CHECK(rill::store::check_rollups(conn, test_epoch + 8h, {}).empty());
}

TEST_CASE("a version-1 table of a million rows upgrades in place with exact rollups") {
    TempPostgres pg;
    // Version 1 as released: the table, its indexes, schema_migrations at 1. 4 sensors, one
    // reading every 0.8 s each, ending an hour ago (about 2.3 days).
    pg.execute(std::string(rill::store::migrations()[0].sql));
    pg.execute(
        "CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
        "applied_at timestamptz NOT NULL DEFAULT now());"
        "INSERT INTO schema_migrations (version, name) VALUES (1, 'readings table');"
        "INSERT INTO readings SELECT 's' || (g % 4), g / 4 + 1, now() - interval '1 hour' - "
        "(1000000 - g) * interval '200 milliseconds', 20 + (g % 97) * 0.125, 40 + (g % 13), "
        "NULL FROM generate_series(0, 999999) g");
    pg.execute("VACUUM ANALYZE readings");
    auto conn = Connection::open(pg.conninfo());
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(rill::store::migrate(conn) == std::vector<int>{2, 3, 4, 5});
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0);
    MESSAGE("upgrade of 1,000,000 version-1 rows took " << took.count() << " s");
    CHECK(pg.value("SELECT count(*) FROM readings") == "1000000");
    CHECK(pg.value("SELECT count(*) FROM readings_upgraded") == "1000000");
    CHECK(pg.value("SELECT count(DISTINCT (sensor, seq)) FROM readings") == "1000000");
    CHECK(total(pg, "readings_1m") == "1000000");
    CHECK(total(pg, "readings_15m") == "1000000");
    CHECK(total(pg, "readings_1h") == "1000000");
    CHECK(total(pg, "readings_6h") == "1000000");
    CHECK(mismatches(pg) == "");
    // The writer carries on where the rows end: no seq stored twice, rollups still exact.
    BatchWriter w(options(pg));
    CHECK(w.stored_ranges("s0").ranges() == std::vector<SeqRange>{{1, 250000}});
    for (std::uint64_t s = 249'990; s <= 250'010; ++s)
        (void)w.add(taken_at(reading("s0", s), rill::now()));
    CHECK(w.flush() == 10);
    CHECK(mismatches(pg) == "");
}
