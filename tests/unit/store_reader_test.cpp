// rill::store::Reader and ConnectionPool against a real PostgreSQL.
#include <doctest/doctest.h>

#include <cmath>
#include <future>
#include <set>
#include <thread>

#include "rill/store.hpp"
#include "support/postgres.hpp"

using namespace std::chrono_literals;
using rill::Timestamp;
using rill::store::ConnectionPool;
using rill::store::ErrorKind;
using rill::store::PoolOptions;
using rill::store::Reader;
using rill::store::ReadingsCursor;
using rill::store::ReadingsQuery;
using rill::store::SeriesQuery;
using rill::store::SeriesSource;
using rill::store::StoreError;
using rill::test::roll_up;
using rill::test::TempPostgres;

namespace {

// 2026-11-21T10:00:00Z
constexpr long long base_us = 1'795'255'200'000'000LL;

Timestamp at(std::chrono::microseconds offset) {
    return Timestamp{std::chrono::microseconds{base_us} + offset};
}

// The readings table, as every rill database has it.
void create_schema(const TempPostgres& pg) {
    auto conn = rill::store::Connection::open(pg.conninfo());
    (void)rill::store::migrate(conn);
}

// INSERTs one row; `ts_offset` from 2026-11-21T10:00:00Z; `extra` is JSON or "NULL".
void insert(const TempPostgres& pg, const std::string& sensor, long long seq,
            std::chrono::microseconds ts_offset, const std::string& temperature,
            const std::string& humidity, const std::string& extra = "NULL") {
    pg.execute("INSERT INTO readings VALUES ('" + sensor + "', " + std::to_string(seq) +
               ", to_timestamp(" + std::to_string(base_us + ts_offset.count()) + " / 1e6), " +
               temperature + ", " + humidity + ", " +
               (extra == "NULL" ? extra : "'" + extra + "'") + ")");
}

PoolOptions pool_options(const TempPostgres& pg) {
    return {.conninfo = pg.conninfo(),
            .max_connections = 4,
            .acquire_timeout = 2s,
            .connect_backoff = 300ms};
}

std::string key(const rill::store::StoredReading& r) {
    return r.sensor + "/" + std::to_string(r.seq);
}

}  // namespace

TEST_CASE("the newest reading of each sensor comes back once per sensor in sensor order") {
    TempPostgres pg;
    create_schema(pg);
    insert(pg, "kitchen", 1, 0s, "20.5", "40");
    insert(pg, "kitchen", 2, 10s, "21.25", "41");
    insert(pg, "attic", 7, 5s, "30", "NULL");
    insert(pg, "attic", 8, 5s, "31", "50");  // the same time: the higher seq is the newest
    insert(pg, "cellar", 3, 1s, "12", "80");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);

    const auto latest = reader.latest();
    REQUIRE(latest.size() == 3);
    CHECK(latest[0].sensor == "attic");
    CHECK(latest[0].seq == 8);
    CHECK(latest[0].ts == at(5s));
    CHECK(latest[0].temperature == 31.0);
    CHECK(latest[1].sensor == "cellar");
    CHECK(latest[2].sensor == "kitchen");
    CHECK(latest[2].seq == 2);
    CHECK(latest[2].temperature == 21.25);
    CHECK(latest[2].humidity == 41.0);

    insert(pg, "attic", 9, 6s, "NULL", "NULL");
    const auto two = reader.latest(2);
    REQUIRE(two.size() == 2);
    CHECK(two[0].seq == 9);
    CHECK(std::isnan(two[0].temperature));
    CHECK(std::isnan(two[0].humidity));
    CHECK(two[1].sensor == "cellar");
}

TEST_CASE("an empty readings table has no newest readings, pages or buckets") {
    TempPostgres pg;
    create_schema(pg);
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    CHECK(reader.latest().empty());
    const auto page = reader.page({});
    CHECK(page.rows.empty());
    CHECK_FALSE(page.next.has_value());
    const auto series = reader.series({.from = at(0s), .to = at(1h), .points = 60});
    CHECK(series.buckets.empty());
    CHECK(series.source == SeriesSource::minute);
    CHECK(series.bucket == 1min);
}

TEST_CASE("pages walk every row newest first across equal timestamps, none lost or repeated") {
    TempPostgres pg;
    create_schema(pg);
    // 3 sensors x 20 rows where each timestamp is shared by two seqs and by every sensor.
    pg.execute("INSERT INTO readings SELECT s, n, to_timestamp(" + std::to_string(base_us) +
               " / 1e6) + (n / 2) * interval '1 second', n, 50, CASE WHEN n = 3 THEN "
               "'{\"battery\": 3.5}'::jsonb END FROM unnest(array['a', 'b', 'c']) s, "
               "generate_series(1, 20) n");
    const auto expected = pg.column(
        "SELECT sensor || '/' || seq FROM readings ORDER BY ts DESC, sensor DESC, seq DESC");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);

    std::vector<std::string> walked;
    ReadingsQuery q{.limit = 7};
    int pages = 0;
    for (;; ++pages) {
        REQUIRE(pages < 20);
        const auto page = reader.page(q);
        CHECK(page.rows.size() <= 7);
        for (const auto& r : page.rows)
            walked.push_back(key(r));
        if (!page.next) break;
        CHECK(*page.next ==
              ReadingsCursor{page.rows.back().ts, page.rows.back().sensor, page.rows.back().seq});
        q.cursor = page.next;
    }
    CHECK(pages == 8);  // 60 rows: 8 full pages and one of 4
    CHECK(walked == expected);

    // The extras come back as JSON text, NULL as "".
    q = {.sensor = "b", .limit = 100};
    const auto b = reader.page(q);
    REQUIRE(b.rows.size() == 20);
    CHECK_FALSE(b.next.has_value());
    for (const auto& r : b.rows) {
        CHECK(r.sensor == "b");
        CHECK(r.extra == (r.seq == 3 ? R"({"battery": 3.5})" : ""));
        CHECK(r.temperature == static_cast<double>(r.seq));
    }
}

TEST_CASE("a page honours the sensor and the time range, from inclusive and to exclusive") {
    TempPostgres pg;
    create_schema(pg);
    for (int i = 0; i < 10; ++i) {
        insert(pg, "x", i, std::chrono::seconds(i), "1", "2");
        insert(pg, "y", i, std::chrono::seconds(i), "1", "2");
    }
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    const auto page = reader.page({.sensor = "y", .from = at(3s), .to = at(6s), .limit = 10});
    std::vector<std::int64_t> seqs;
    for (const auto& r : page.rows) {
        CHECK(r.sensor == "y");
        seqs.push_back(r.seq);
    }
    CHECK(seqs == std::vector<std::int64_t>{5, 4, 3});
    CHECK(reader.page({.sensor = "nobody"}).rows.empty());
}

TEST_CASE("series buckets aggregate each sensor per bucket of the raw rows") {
    TempPostgres pg;
    create_schema(pg);
    // Bucket [0, 60 s): 10, 20, 30; bucket [60 s, 120 s): 5; a row at 120 s is outside "to".
    insert(pg, "t", 1, 0s, "10", "40");
    insert(pg, "t", 2, 20s, "20", "50");
    insert(pg, "t", 3, 59s, "30", "NULL");
    insert(pg, "t", 4, 61s, "5", "45");
    insert(pg, "t", 5, 120s, "99", "99");
    insert(pg, "u", 1, 30s, "1", "2");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);

    const auto series =
        reader.series({.from = at(0s), .to = at(120s), .points = 2, .source = SeriesSource::raw});
    CHECK(series.source == SeriesSource::raw);
    CHECK(series.bucket == 1min);
    CHECK(series.from == at(0s));
    CHECK(series.to == at(120s));
    const auto& all = series.buckets;
    REQUIRE(all.size() == 3);
    CHECK(all[0].sensor == "t");
    CHECK(all[0].ts == at(0s));
    CHECK(all[0].count == 3);
    CHECK(all[0].t_avg == doctest::Approx(20.0));
    CHECK(all[0].t_min == 10.0);
    CHECK(all[0].t_max == 30.0);
    CHECK(all[0].h_avg == doctest::Approx(45.0));  // NULL is left out
    CHECK(all[0].h_min == 40.0);
    CHECK(all[0].h_max == 50.0);
    CHECK(all[1].sensor == "t");
    CHECK(all[1].ts == at(60s));
    CHECK(all[1].count == 1);
    CHECK(all[2].sensor == "u");

    const auto one = reader.series({.sensor = "t", .from = at(0s), .to = at(180s), .points = 18});
    CHECK(one.source == SeriesSource::raw);  // 10 s buckets
    CHECK(one.bucket == 10s);
    REQUIRE(one.buckets.size() == 5);
    CHECK(one.buckets[4].t_max == 99.0);
}

TEST_CASE("series values are the doubles the stored reals read back as, from every source") {
    TempPostgres pg;
    create_schema(pg);
    // Neither 20.1 nor -0.3 is a float32: the values read back as the shortest decimal of the
    // stored real (what a text result gives), never the float32 widened to a double.
    insert(pg, "t", 1, 0s, "20.1", "-0.3");
    insert(pg, "t", 2, 1s, "20.7", "33.3");
    roll_up(pg);
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    for (const auto source :
         {SeriesSource::raw, SeriesSource::minute, SeriesSource::fifteen_minutes,
          SeriesSource::hour, SeriesSource::six_hours}) {
        INFO(rill::store::to_string(source));
        const auto s =
            reader.series({.from = at(0s), .to = at(1min), .points = 1, .source = source});
        REQUIRE(s.buckets.size() == 1);
        const auto& b = s.buckets[0];
        CHECK(b.sensor == "t");
        CHECK(b.ts <= at(0s));
        CHECK(b.count == 2);
        CHECK(b.t_min == 20.1);
        CHECK(b.t_max == 20.7);
        CHECK(b.h_min == -0.3);
        CHECK(b.h_max == 33.3);
        CHECK(b.t_avg == (static_cast<double>(20.1f) + static_cast<double>(20.7f)) / 2);
    }
}

TEST_CASE("series of every sensor from the rollups come by sensor, then time") {
    TempPostgres pg;
    create_schema(pg);
    // Sensors inserted out of order, each with readings over 3 hours, newest first.
    for (const char* sensor : {"m", "c", "x", "a", "q"}) {
        for (long long i = 180; i > 0; --i)
            insert(pg, sensor, i, std::chrono::minutes(i), std::to_string(i), "1");
    }
    roll_up(pg);
    // Also with sorts discouraged, so that each sensor's buckets are hashed (in no order)
    // unless the statement asks for them sorted.
    for (const auto& [source, options] :
         {std::pair{SeriesSource::minute, ""}, std::pair{SeriesSource::hour, ""},
          std::pair{SeriesSource::minute, " options='-c enable_sort=off'"},
          std::pair{SeriesSource::hour, " options='-c enable_sort=off'"}}) {
        INFO(rill::store::to_string(source) << options);
        auto po = pool_options(pg);
        po.conninfo += options;
        ConnectionPool pool(po);
        Reader reader(pool);
        const auto s =
            reader.series({.from = at(0s), .to = at(4h), .points = 240, .source = source});
        REQUIRE(s.buckets.size() == (source == SeriesSource::minute ? 5 * 180 : 5 * 4));
        for (std::size_t i = 1; i < s.buckets.size(); ++i) {
            const auto& p = s.buckets[i - 1];
            const auto& b = s.buckets[i];
            INFO("bucket " << i);
            CHECK((p.sensor < b.sensor || (p.sensor == b.sensor && p.ts < b.ts)));
        }
        CHECK(s.buckets.front().sensor == "a");
        CHECK(s.buckets.back().sensor == "x");
    }
}

TEST_CASE("the series bucket width is the smallest round width giving at most the points") {
    using rill::store::series_bucket_width;
    CHECK(series_bucket_width(1h, 1000) == 5s);          // 3.6 s
    CHECK(series_bucket_width(24h, 1000) == 2min);       // 86.4 s
    CHECK(series_bucket_width(24h * 7, 1000) == 15min);  // 10.08 min
    CHECK(series_bucket_width(24h * 30, 1000) == 1h);    // 43.2 min
    CHECK(series_bucket_width(24h * 365, 1000) == 12h);  // 8.76 h
    CHECK(series_bucket_width(10s, 1000) == 1s);         // never below a second
    CHECK(series_bucket_width(1h, 60) == 1min);          // exactly range / points
    CHECK(series_bucket_width(24h * 366, 1) == 24h * 448);
    CHECK(series_bucket_width(1h, 0) == 1h);  // 0 points count as 1
}

TEST_CASE("the pool opens at most its bound and a waiting caller gives up after its timeout") {
    TempPostgres pg;
    auto o = pool_options(pg);
    o.max_connections = 2;
    o.acquire_timeout = 300ms;
    ConnectionPool pool(o);
    CHECK(pool.open_connections() == 0);  // lazy
    auto first = pool.acquire();
    auto second = pool.acquire();
    CHECK(pool.open_connections() == 2);
    CHECK(pg.value("SELECT count(*) FROM pg_stat_activity WHERE datname = 'rill' AND "
                   "application_name = 'rill'") == "2");

    const auto start = std::chrono::steady_clock::now();
    try {
        (void)pool.acquire();
        FAIL("a third connection was lent out");
    } catch (const StoreError& e) {
        CHECK(e.transient());
        CHECK(std::string(e.what()) == "all 2 database connections are busy");
    }
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);

    // A caller that waits gets the connection another thread gives back.
    auto waiting = std::async(std::launch::async, [&] {
        auto lease = pool.acquire();
        return lease->exec("SELECT 7", "select seven").value(0, 0) == "7";
    });
    std::this_thread::sleep_for(50ms);
    { auto done = std::move(first); }
    REQUIRE(waiting.wait_for(5s) == std::future_status::ready);
    CHECK(waiting.get());
    CHECK(pool.open_connections() == 2);
    CHECK(pool.idle_connections() == 1);
}

TEST_CASE("pooled connections carry the statement timeout and the application name") {
    TempPostgres pg;
    auto o = pool_options(pg);
    o.statement_timeout = 250ms;
    o.application_name = "web-view";
    ConnectionPool pool(o);
    auto lease = pool.acquire();
    CHECK(lease->exec("SHOW statement_timeout", "show").value(0, 0) == "250ms");
    CHECK(lease->exec("SHOW application_name", "show").value(0, 0) == "web-view");
    try {
        (void)lease->exec("SELECT pg_sleep(5)", "sleep");
        FAIL("the statement outlived its timeout");
    } catch (const StoreError& e) {
        CHECK(e.sqlstate() == "57014");
    }
}

TEST_CASE("while the database is down the pool fails fast and transiently, then recovers") {
    TempPostgres pg;
    create_schema(pg);
    insert(pg, "s", 1, 0s, "20", "40");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    REQUIRE(reader.latest().size() == 1);
    CHECK(pool.idle_connections() == 1);

    pg.stop();
    try {
        (void)reader.latest();
        FAIL("read from a stopped database");
    } catch (const StoreError& e) {
        CHECK(e.transient());
        CHECK(std::string(e.what()).starts_with("cannot connect to the database: "));
    }
    CHECK(pool.open_connections() == 0);  // the dead pooled connection was dropped
    // Within connect_backoff, no new attempt: the same answer at once.
    const auto start = std::chrono::steady_clock::now();
    const auto problem = pool.ping();
    REQUIRE(problem.has_value());
    CHECK(problem->starts_with("cannot connect to the database: "));
    CHECK(std::chrono::steady_clock::now() - start < 200ms);

    pg.start();
    std::this_thread::sleep_for(350ms);  // past connect_backoff
    CHECK_FALSE(pool.ping().has_value());
    const auto latest = reader.latest();
    REQUIRE(latest.size() == 1);
    CHECK(latest[0].sensor == "s");
}

TEST_CASE("a restart the pool did not see is survived by the next query") {
    TempPostgres pg;
    create_schema(pg);
    insert(pg, "s", 1, 0s, "20", "40");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    REQUIRE(reader.latest().size() == 1);
    pg.stop();
    pg.start();
    CHECK(reader.latest().size() == 1);  // the broken pooled connection is replaced once
}

TEST_CASE("a query on a database without the readings table is a permanent error") {
    TempPostgres pg;
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    try {
        (void)reader.latest();
        FAIL("read a missing table");
    } catch (const StoreError& e) {
        CHECK(e.kind() == ErrorKind::permanent);
        CHECK(e.sqlstate() == "42P01");
        CHECK(std::string(e.what()).starts_with("cannot read the newest reading of each sensor"));
    }
    CHECK(pool.idle_connections() == 1);  // the connection is fine and stays pooled
}

namespace {

// 2 sensors, one reading every 20 s from `first` for `span`, values varying; rolled up.
void history(const TempPostgres& pg, const std::string& first, const std::string& span) {
    pg.execute(
        "INSERT INTO readings SELECT s, row_number() OVER (PARTITION BY s ORDER BY t), t, "
        "(15 + 10 * sin(extract(epoch FROM t) / 5000) + length(s))::real, "
        "(50 + 30 * cos(extract(epoch FROM t) / 7000))::real, NULL FROM unnest(array['a', "
        "'bb']) s, generate_series(timestamptz '" +
        first + "', timestamptz '" + first + "' + interval '" + span +
        "' - interval '1 microsecond', interval '20 seconds') t");
    roll_up(pg);
}

Timestamp utc(const char* text) {
    return *rill::parse_time(text);
}

void check_same_buckets(const rill::store::Series& a, const rill::store::Series& b) {
    REQUIRE(a.buckets.size() == b.buckets.size());
    for (std::size_t i = 0; i < a.buckets.size(); ++i) {
        const auto& x = a.buckets[i];
        const auto& y = b.buckets[i];
        INFO("bucket " << i << " of " << x.sensor);
        CHECK(x.sensor == y.sensor);
        CHECK(x.ts == y.ts);
        CHECK(x.count == y.count);
        CHECK(x.t_min == y.t_min);
        CHECK(x.t_max == y.t_max);
        CHECK(x.h_min == y.h_min);
        CHECK(x.h_max == y.h_max);
        CHECK(x.t_avg == doctest::Approx(y.t_avg).epsilon(1e-12));
        CHECK(x.h_avg == doctest::Approx(y.h_avg).epsilon(1e-12));
    }
}

}  // namespace

TEST_CASE("series reads the coarsest source that still gives the points, whole buckets") {
    TempPostgres pg;
    create_schema(pg);
    history(pg, "2026-11-01T00:00:00Z", "40 days");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);

    // 1 h: 5 s buckets of the raw rows.
    auto s = reader.series(
        {.sensor = "a", .from = utc("2026-11-20T10:00:07Z"), .to = utc("2026-11-20T11:00:07Z")});
    CHECK(s.source == SeriesSource::raw);
    CHECK(s.bucket == 5s);
    CHECK(s.from == utc("2026-11-20T10:00:05Z"));  // aligned down
    CHECK(s.to == utc("2026-11-20T11:00:10Z"));    // aligned up
    CHECK(s.buckets.size() == 180);                // one reading per 20 s
    // 1 day: 2 min buckets of the 1-minute rollups, every bucket whole.
    s = reader.series({.from = utc("2026-11-20T10:00:07Z"), .to = utc("2026-11-21T10:00:07Z")});
    CHECK(s.source == SeriesSource::minute);
    CHECK(s.bucket == 2min);
    CHECK(s.from == utc("2026-11-20T10:00:00Z"));
    CHECK(s.to == utc("2026-11-21T10:02:00Z"));
    REQUIRE(s.buckets.size() == 2 * 721);
    CHECK(s.buckets.front().sensor == "a");
    CHECK(s.buckets.back().sensor == "bb");
    for (const auto& b : s.buckets) {
        CHECK(b.count == 6);  // 2 min of one reading per 20 s
        CHECK((b.ts.time_since_epoch() % 2min).count() == 0);
    }
    // 7 days: 15 min buckets of the 15-minute rollups, equal to the same series from the minutes.
    const SeriesQuery week{.from = utc("2026-11-10T00:00:00Z"), .to = utc("2026-11-17T00:00:00Z")};
    s = reader.series(week);
    CHECK(s.source == SeriesSource::fifteen_minutes);
    CHECK(rill::store::to_string(s.source) == "15m");
    CHECK(s.bucket == 15min);
    REQUIRE(s.buckets.size() == 2 * 7 * 96);
    for (const auto& b : s.buckets) {
        CHECK(b.count == 45);  // 15 min of one reading per 20 s
        CHECK((b.ts.time_since_epoch() % 15min).count() == 0);
    }
    auto week_from_minutes = week;
    week_from_minutes.source = SeriesSource::minute;
    check_same_buckets(s, reader.series(week_from_minutes));
    // 14 days: 30 min buckets, still of the 15-minute rollups.
    s = reader.series(
        {.sensor = "a", .from = utc("2026-11-03T00:00:00Z"), .to = utc("2026-11-17T00:00:00Z")});
    CHECK(s.source == SeriesSource::fifteen_minutes);
    CHECK(s.bucket == 30min);
    CHECK(s.buckets.size() == 14 * 48);
    // 30 days: hourly buckets of the 1-hour rollups.
    s = reader.series(
        {.sensor = "bb", .from = utc("2026-11-02T00:00:00Z"), .to = utc("2026-12-02T00:00:00Z")});
    CHECK(s.source == SeriesSource::hour);
    CHECK(s.bucket == 1h);
    CHECK(s.buckets.size() == 720);
    CHECK(s.buckets.front().count == 180);
}

TEST_CASE("series from the rollups equal series from the raw rows over the same range") {
    TempPostgres pg;
    create_schema(pg);
    history(pg, "2026-11-20T00:00:00Z", "3 days");
    // A few rows off the 20 s grid, and one sensor alone in its minute.
    insert(pg, "a", 100000, 7min + 3s, "-3.25", "99.5");
    insert(pg, "lonely", 1, 1h + 1s, "1.5", "2.5");
    roll_up(pg);
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    for (const auto points : {std::size_t{3}, std::size_t{72}, std::size_t{1000}}) {
        INFO(points << " points");
        const SeriesQuery q{.from = utc("2026-11-20T00:00:00Z"),
                            .to = utc("2026-11-23T00:00:00Z"),
                            .points = points};
        auto raw = q;
        raw.source = SeriesSource::raw;
        auto minute = q;
        minute.source = SeriesSource::minute;
        const auto from_raw = reader.series(raw);
        const auto from_1m = reader.series(minute);
        CHECK(from_raw.bucket == from_1m.bucket);
        check_same_buckets(from_1m, from_raw);
        std::int64_t total = 0;
        for (const auto& b : from_1m.buckets)
            total += b.count;
        CHECK(total == std::stoll(pg.value("SELECT count(*) FROM readings")));
        if (from_raw.bucket % 1h == 0us) {
            auto hour = q;
            hour.source = SeriesSource::hour;
            check_same_buckets(reader.series(hour), from_raw);
        }
    }
}

TEST_CASE("a series whose raw rows were dropped comes from the rollups, not empty") {
    TempPostgres pg;
    create_schema(pg);
    pg.execute("SELECT rill_ensure_partitions('readings', '2026-11-20', '2026-11-23')");
    history(pg, "2026-11-20T00:00:00Z", "3 days");
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool, 0ms);  // sees every drop at once
    const SeriesQuery q{
        .sensor = "a", .from = utc("2026-11-20T10:00:00Z"), .to = utc("2026-11-20T12:00:00Z")};
    const auto before = reader.series(q);
    CHECK(before.source == SeriesSource::raw);
    CHECK(before.bucket == 10s);
    CHECK(before.buckets.size() == 360);

    // Retention drops the oldest day of raw rows, as a whole partition.
    pg.execute("DROP TABLE readings_20261120");
    const auto after = reader.series(q);
    CHECK(after.source == SeriesSource::minute);
    CHECK(after.bucket == 1min);
    REQUIRE(after.buckets.size() == 120);
    for (const auto& b : after.buckets)
        CHECK(b.count == 3);
    // A range the raw rows still hold is still read from them.
    const auto held = reader.series(
        {.sensor = "a", .from = utc("2026-11-21T10:00:00Z"), .to = utc("2026-11-21T12:00:00Z")});
    CHECK(held.source == SeriesSource::raw);
    CHECK(held.buckets.size() == 360);

    // The 1-minute rollups go too: the 15-minute ones answer.
    pg.execute(
        "SELECT rill_ensure_partitions('readings_1m', '2026-11-01', '2027-01-01'); "
        "DROP TABLE readings_1m_202611");
    INFO(
        pg.value("SELECT string_agg(part::text || ' ' || lo || ' ' || hi, ', ') FROM "
                 "rill_partitions('readings_1m')"));
    const auto quarters = reader.series(q);
    CHECK(quarters.source == SeriesSource::fifteen_minutes);
    CHECK(quarters.bucket == 15min);
    REQUIRE(quarters.buckets.size() == 8);
    CHECK(quarters.buckets[0].count == 45);

    // And the 15-minute ones: the hours answer.
    pg.execute(
        "SELECT rill_ensure_partitions('readings_15m', '2026-11-01', '2027-01-01'); "
        "DROP TABLE readings_15m_202611");
    const auto hours = reader.series(q);
    CHECK(hours.source == SeriesSource::hour);
    CHECK(hours.bucket == 1h);
    REQUIRE(hours.buckets.size() == 2);
    CHECK(hours.buckets[0].count == 180);
}

namespace {

// Hourly rollups of sensors a and b from 2025-10-01 to 2026-12-01 (3600 readings an hour, a
// slow wave), partitioned by year, and the 6-hour rollups computed from them.
void hourly_history(const TempPostgres& pg) {
    pg.execute(R"sql(
SELECT rill_ensure_partitions('readings_1h', '2025-10-01Z', '2026-12-01Z');
INSERT INTO readings_1h
SELECT s, b, 3600, 3600 * w.t, w.t - 1, w.t + 1, 3600 * 50, 45 - w.t / 10, 55, 3600, 3600
FROM unnest(array['a', 'b']) s,
     generate_series(timestamptz '2025-10-01Z', '2026-11-30 23:00Z', interval '1 hour') b,
     LATERAL (SELECT (20 + 5 * sin(extract(epoch FROM b) / 40000))::real AS t) w;
SELECT rill_ensure_partitions('readings_6h', '2025-10-01Z', '2026-12-01Z');
INSERT INTO readings_6h
SELECT sensor, date_bin('6 hours', bucket, timestamptz '1970-01-01Z'), sum(n), sum(t_sum),
       min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max), sum(t_n), sum(h_n)
FROM readings_1h GROUP BY 1, 2;
)sql");
}

}  // namespace

TEST_CASE("a year's series reads the 6-hour rollups and equals the same series from the hours") {
    TempPostgres pg;
    create_schema(pg);
    hourly_history(pg);
    ConnectionPool pool(pool_options(pg));
    Reader reader(pool);
    const SeriesQuery year{.from = utc("2025-11-20T00:00:00Z"), .to = utc("2026-11-20T00:00:00Z")};
    const auto s = reader.series(year);
    CHECK(s.source == SeriesSource::six_hours);
    CHECK(rill::store::to_string(s.source) == "6h");
    CHECK(s.bucket == 12h);
    REQUIRE(s.buckets.size() == 2 * 730);
    CHECK(s.buckets.front().sensor == "a");
    CHECK(s.buckets.back().sensor == "b");
    for (const auto& b : s.buckets)
        CHECK(b.count == 12 * 3600);
    auto from_hours = year;
    from_hours.source = SeriesSource::hour;
    const auto h = reader.series(from_hours);
    CHECK(h.bucket == 12h);
    check_same_buckets(s, h);
    // A width of whole hours that 6 hours does not divide still reads the hours.
    const auto three = reader.series({.sensor = "a",
                                      .from = utc("2026-01-01T00:00:00Z"),
                                      .to = utc("2026-04-01T00:00:00Z"),
                                      .points = 1000});
    CHECK(three.bucket == 3h);
    CHECK(three.source == SeriesSource::hour);
    CHECK(three.buckets.size() == 720);
}

TEST_CASE("a series whose hourly rollups were dropped comes from the 6-hour ones") {
    TempPostgres pg;
    create_schema(pg);
    hourly_history(pg);
    ConnectionPool pool(pool_options(pg));
    Reader fresh(pool, 0ms);
    Reader cached(pool, 1h);
    // 60 days in 1000 points: 2 h buckets of the hours.
    const SeriesQuery q{
        .sensor = "b", .from = utc("2025-11-01T00:00:00Z"), .to = utc("2025-12-31T00:00:00Z")};
    CHECK(fresh.series(q).source == SeriesSource::hour);
    CHECK(cached.series(q).source == SeriesSource::hour);

    pg.execute("DROP TABLE readings_1h_2025");
    const auto after = fresh.series(q);
    CHECK(after.source == SeriesSource::six_hours);
    CHECK(after.bucket == 6h);
    REQUIRE(after.buckets.size() == 240);
    CHECK(after.buckets.front().count == 6 * 3600);
    // The reader that keeps the partition bounds for an hour has not looked again: it still
    // reads the (now empty) hours, and no catalog query was made for it.
    const auto stale = cached.series(q);
    CHECK(stale.source == SeriesSource::hour);
    CHECK(stale.buckets.empty());
}
