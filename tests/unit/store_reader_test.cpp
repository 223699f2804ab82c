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
using rill::store::StoreError;
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
    CHECK(reader.series({.from = at(0s), .to = at(1h), .bucket = 1min}).empty());
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

TEST_CASE("series buckets aggregate each sensor per bucket with date_bin from the range's start") {
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

    const auto all = reader.series({.from = at(0s), .to = at(120s), .bucket = 1min});
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

    // The origin is "from": buckets start 10 s in, and one sensor only.
    const auto shifted =
        reader.series({.sensor = "t", .from = at(10s), .to = at(130s), .bucket = 1min});
    REQUIRE(shifted.size() == 2);
    CHECK(shifted[0].ts == at(10s));
    CHECK(shifted[0].count == 3);  // 20 s, 59 s, 61 s
    CHECK(shifted[1].ts == at(70s));
    CHECK(shifted[1].count == 1);  // 120 s
    CHECK(shifted[1].t_max == 99.0);
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
