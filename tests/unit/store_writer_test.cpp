#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "rill/store.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"
#include "support/readings.hpp"

using namespace std::chrono_literals;
using rill::Reading;
using rill::store::BatchWriter;
using rill::store::SeqRange;
using rill::store::WriterOptions;
using rill::test::reading;
using rill::test::readings;
using rill::test::TempPostgres;

namespace {

constexpr std::uint64_t open_end = std::numeric_limits<std::uint64_t>::max();
void add_all(BatchWriter& w, const std::vector<Reading>& rs) {
    for (const auto& r : rs)
        REQUIRE(w.add(r) == BatchWriter::AddResult::accepted);
}

WriterOptions options(const TempPostgres& pg) {
    WriterOptions o;
    o.conninfo = pg.conninfo();
    o.flush_interval = 1h;  // tests flush explicitly unless they test time
    o.backoff = {.initial = 20ms, .max = 200ms, .multiplier = 2.0};
    return o;
}

std::string count(const TempPostgres& pg) {
    return pg.value("SELECT count(*) FROM readings");
}

}  // namespace

TEST_CASE("a batch of readings is stored as exactly one row each with its values") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    std::vector<Reading> rs;
    for (std::uint64_t seq = 1; seq <= 400; ++seq) {
        for (const char* s : {"alpha", "beta", "gamma-\xc3\xa9"})
            rs.push_back(reading(s, seq));
    }
    rs[0].extras = {{"pressure", 1013.25}, {"battery", 3.7}};
    rs[0].temperature = -12.75f;
    add_all(w, rs);
    CHECK(w.pending() == 1200);
    CHECK(w.flush() == 1200);
    CHECK(w.pending() == 0);
    CHECK(count(pg) == "1200");
    CHECK(pg.value("SELECT count(DISTINCT (sensor, seq)) FROM readings") == "1200");
    CHECK(
        pg.column("SELECT sensor || ':' || count(*) || ':' || min(seq) || '-' || max(seq) FROM "
                  "readings GROUP BY sensor ORDER BY sensor") ==
        std::vector<std::string>{"alpha:400:1-400", "beta:400:1-400", "gamma-\xc3\xa9:400:1-400"});
    CHECK(pg.value("SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') FROM "
                   "readings WHERE sensor = 'beta' AND seq = 7") == "2025-11-21T10:00:00.007000");
    CHECK(pg.value("SELECT temperature || ' ' || humidity FROM readings WHERE sensor = 'alpha' "
                   "AND seq = 1") == "-12.75 41");
    CHECK(pg.value("SELECT temperature FROM readings WHERE sensor = 'beta' AND seq = 3") ==
          "20.75");
    CHECK(pg.value("SELECT extra::text FROM readings WHERE sensor = 'alpha' AND seq = 1") ==
          R"({"battery": 3.7, "pressure": 1013.25})");
    CHECK(pg.value("SELECT jsonb_typeof(extra->'pressure') FROM readings WHERE seq = 1 AND "
                   "sensor = 'alpha'") == "number");
    CHECK(pg.value("SELECT count(*) FROM readings WHERE extra IS NULL") == "1199");
    const auto st = w.stats();
    CHECK(st.readings_stored == 1200);
    CHECK(st.batches == 1);
    CHECK(st.fallback_batches == 0);
    CHECK(st.last_batch_latency > 0us);
    CHECK(w.sensors() == std::vector<std::string>{"alpha", "beta", "gamma-\xc3\xa9"});
    CHECK(w.stored_ranges("beta").ranges() == std::vector<SeqRange>{{1, 400}});
}

TEST_CASE("duplicates already stored or pending are skipped without touching the database") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    const auto rs = readings("s", 1, 100);
    add_all(w, rs);
    CHECK(w.add(rs[5]) == BatchWriter::AddResult::duplicate);  // pending twice
    CHECK(w.flush() == 100);
    for (const auto& r : rs)
        CHECK(w.add(r) == BatchWriter::AddResult::duplicate);
    CHECK(w.pending() == 0);
    CHECK_FALSE(w.next_deadline().has_value());
    CHECK(w.flush() == 0);
    const auto st = w.stats();
    CHECK(st.duplicates_skipped == 101);
    CHECK(st.batches == 1);  // no second batch went to the database
    CHECK(st.duplicates_hit == 0);
    CHECK(count(pg) == "100");
}

TEST_CASE("readings the database already has take the staging fallback and are stored once") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    // Behind the writer's back (another writer): seqs 5..10, taken when the writer's copies
    // were (test_epoch + seq ms), with a marker temperature.
    pg.execute(
        "INSERT INTO readings SELECT 's', g, '2025-11-21T10:00:00Z'::timestamptz + g * "
        "interval '1 millisecond', 99, 1, NULL FROM generate_series(5, 10) g");
    add_all(w, readings("s", 1, 20));
    CHECK(w.flush() == 20);
    const auto st = w.stats();
    CHECK(st.fallback_batches == 1);
    CHECK(st.duplicates_hit == 6);
    CHECK(st.readings_stored == 14);
    CHECK(count(pg) == "20");
    CHECK(pg.value("SELECT count(*) FROM readings WHERE temperature = 99") == "6");
    CHECK(w.stored_ranges("s").ranges() == std::vector<SeqRange>{{1, 20}});
    // The next batch goes back to the fast path.
    add_all(w, readings("s", 21, 30));
    CHECK(w.flush() == 10);
    CHECK(w.stats().fallback_batches == 1);
    CHECK(count(pg) == "30");
}

TEST_CASE("two writers given overlapping readings store each reading once") {
    TempPostgres pg;
    BatchWriter a(options(pg));
    BatchWriter b(options(pg));
    add_all(a, readings("s", 1, 100));
    add_all(b, readings("s", 50, 150));
    CHECK(a.flush() == 100);
    CHECK(b.flush() == 101);
    CHECK(count(pg) == "150");
    CHECK(pg.value("SELECT count(DISTINCT seq) FROM readings") == "150");
    CHECK(a.stats().duplicates_hit + b.stats().duplicates_hit == 51);
    CHECK(a.stats().readings_stored + b.stats().readings_stored == 150);
}

TEST_CASE("stored ranges are loaded at start with their holes") {
    TempPostgres pg;
    {
        BatchWriter creator(options(pg));  // runs the migrations
    }
    pg.execute(
        "INSERT INTO readings SELECT 'a', g, now(), 1, 1, NULL FROM generate_series(1, 10) g;"
        "INSERT INTO readings SELECT 'a', g, now(), 1, 1, NULL FROM generate_series(15, 20) g;"
        "INSERT INTO readings VALUES ('a', 30, now(), 1, 1, NULL);"
        "INSERT INTO readings SELECT 'b', g, now(), 1, 1, NULL FROM generate_series(5, 6) g");
    BatchWriter w(options(pg));
    CHECK(w.sensors() == std::vector<std::string>{"a", "b"});
    CHECK(w.stored_ranges("a").ranges() == std::vector<SeqRange>{{1, 10}, {15, 20}, {30, 30}});
    CHECK(w.stored_ranges("a").gaps() == std::vector<SeqRange>{{11, 14}, {21, 29}, {31, open_end}});
    CHECK(w.stored_ranges("b").ranges() == std::vector<SeqRange>{{5, 6}});
    CHECK(w.stored_ranges("b").gaps() == std::vector<SeqRange>{{1, 4}, {7, open_end}});
    CHECK(w.stored_ranges("nobody").empty());
    {
        auto o = options(pg);
        o.sensor_prefix.assign(1, 'b');  // (GCC 12 warns falsely on = "b": -Wrestrict)
        BatchWriter only_b(o);
        CHECK(only_b.sensors() == std::vector<std::string>{"b"});
    }
    CHECK(w.add(reading("a", 16)) == BatchWriter::AddResult::duplicate);
    CHECK(w.add(reading("a", 12)) == BatchWriter::AddResult::accepted);
    CHECK(w.flush() == 1);
    CHECK(w.stats().fallback_batches == 0);
    CHECK(w.stored_ranges("a").gaps() ==
          std::vector<SeqRange>{{11, 11}, {13, 14}, {21, 29}, {31, open_end}});
}

TEST_CASE("a PostgreSQL restart while writing loses nothing and doubles nothing") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    std::vector<rill::store::ReconnectEvent> events;
    w.on_reconnect([&](const rill::store::ReconnectEvent& e) { events.push_back(e); });
    add_all(w, readings("s", 1, 500));
    CHECK(w.flush() == 500);

    pg.stop();
    add_all(w, readings("s", 501, 1000));
    CHECK(w.flush() == 0);  // the batch fails and stays pending
    CHECK(w.pending() == 500);
    CHECK_FALSE(w.connected());
    CHECK(w.stats().database_errors >= 1);
    CHECK(w.next_deadline().has_value());
    // While the server is down, reconnects keep failing and nothing is lost.
    std::this_thread::sleep_for(100ms);  // past the first reconnect delay (20 ms)
    CHECK(w.flush() == 0);
    CHECK(w.pending() == 500);
    REQUIRE_FALSE(events.empty());
    CHECK_FALSE(events.back().succeeded);
    CHECK(events.back().next_delay > 0ms);

    pg.start();
    add_all(w, readings("s", 1001, 1200));
    CHECK(w.drain(std::chrono::steady_clock::now() + 30s));
    CHECK(w.pending() == 0);
    CHECK(w.connected());
    CHECK(w.stats().reconnects == 1);
    CHECK(events.back().succeeded);
    CHECK(count(pg) == "1200");
    CHECK(pg.value("SELECT count(DISTINCT seq) || ' ' || min(seq) || ' ' || max(seq) FROM "
                   "readings") == "1200 1 1200");
}

TEST_CASE("a restart the writer did not see is survived by the next batch") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    add_all(w, readings("s", 1, 100));
    CHECK(w.flush() == 100);
    pg.stop();
    pg.start();
    add_all(w, readings("s", 101, 200));
    CHECK(w.drain(std::chrono::steady_clock::now() + 30s));
    CHECK(w.stats().reconnects == 1);
    CHECK(w.stats().duplicates_hit == 0);
    CHECK(count(pg) == "200");
}

TEST_CASE("the pending buffer is bounded and its fill is observable while the database is down") {
    TempPostgres pg;
    auto o = options(pg);
    o.batch_max = 10;
    o.pending_max = 30;
    BatchWriter w(o);
    pg.stop();
    const auto rs = readings("s", 1, 40);
    CHECK(w.add(std::span<const Reading>(rs.data(), 25)) == 25);
    CHECK(w.fill() == doctest::Approx(25.0 / 30.0));
    CHECK(w.flush() == 0);
    CHECK(w.add(std::span<const Reading>(rs.data() + 25, 15)) == 5);
    CHECK(w.pending() == 30);
    CHECK(w.fill() == doctest::Approx(1.0));
    CHECK(w.add(rs[30]) == BatchWriter::AddResult::full);
    pg.start();
    CHECK(w.drain(std::chrono::steady_clock::now() + 30s));
    CHECK(w.fill() == doctest::Approx(0.0));
    CHECK(w.add(std::span<const Reading>(rs.data() + 30, 10)) == 10);
    CHECK(w.flush() == 10);
    CHECK(count(pg) == "40");
    CHECK(w.stats().batches == 4);
}

TEST_CASE("batches are cut by size") {
    TempPostgres pg;
    auto o = options(pg);
    o.batch_max = 100;
    BatchWriter w(o);
    const auto rs = readings("s", 1, 350);
    CHECK(w.add(std::span<const Reading>(rs.data(), 99)) == 99);
    CHECK_FALSE(w.due());
    CHECK(w.add(rs[99]) == BatchWriter::AddResult::accepted);
    CHECK(w.due());
    CHECK(w.flush() == 100);
    CHECK(w.stats().batches == 1);
    CHECK(w.add(std::span<const Reading>(rs.data() + 100, 250)) == 250);
    CHECK(w.due());
    CHECK(w.flush() == 250);
    CHECK(w.stats().batches == 4);  // 100 + 100 + 50
    CHECK(count(pg) == "350");
}

TEST_CASE("batches are cut by time") {
    TempPostgres pg;
    auto o = options(pg);
    o.flush_interval = 150ms;
    BatchWriter w(o);
    CHECK_FALSE(w.next_deadline().has_value());
    const auto before = std::chrono::steady_clock::now();
    add_all(w, readings("s", 1, 5));
    const auto deadline = w.next_deadline();
    REQUIRE(deadline.has_value());
    CHECK(*deadline >= before + 150ms);
    CHECK(*deadline <= std::chrono::steady_clock::now() + 150ms);
    CHECK(rill::test::wait_until([&] { return w.due(); }, 10s));
    CHECK(std::chrono::steady_clock::now() >= before + 150ms);
    CHECK(w.flush() == 5);
    CHECK_FALSE(w.due());
    CHECK(count(pg) == "5");
}

TEST_CASE("invalid readings are refused without poisoning a batch") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    auto zero = reading("s", 0);
    auto nothing = reading("s", 2);  // measures nothing (not_measured is valid, but not twice)
    nothing.temperature = rill::not_measured;
    nothing.humidity = rill::not_measured;
    auto inf = reading("s", 4);
    inf.humidity = std::numeric_limits<float>::infinity();
    auto huge = reading("s", 3);
    huge.seq = open_end;
    auto nul = reading(std::string("bad\0id", 6), 1);
    CHECK(w.add(zero) == BatchWriter::AddResult::invalid);
    CHECK(w.add(nothing) == BatchWriter::AddResult::invalid);
    CHECK(w.add(inf) == BatchWriter::AddResult::invalid);
    CHECK(w.add(huge) == BatchWriter::AddResult::invalid);
    CHECK(w.add(nul) == BatchWriter::AddResult::invalid);
    CHECK(w.add(reading("s", 1)) == BatchWriter::AddResult::accepted);
    CHECK(w.flush() == 1);
    CHECK(w.stats().invalid_rejected == 5);
    CHECK(count(pg) == "1");
}

TEST_CASE("a permanent error makes flush throw and keeps the batch pending") {
    TempPostgres pg;
    BatchWriter w(options(pg));
    add_all(w, readings("s", 1, 10));
    pg.execute("ALTER TABLE readings RENAME TO readings_away");
    try {
        (void)w.flush();
        FAIL("flush into a missing table succeeded");
    } catch (const rill::store::StoreError& e) {
        CHECK_FALSE(e.transient());
        CHECK(e.sqlstate() == "42P01");
        // The first statement of the batch that needs the table: the day's partition.
        CHECK(std::string(e.what()).find("create the partitions of readings for "
                                         "2025-11-21T00:00:00.000000Z") != std::string::npos);
    }
    CHECK(w.pending() == 10);
    pg.execute("ALTER TABLE readings_away RENAME TO readings");
    CHECK(w.flush() == 10);
    CHECK(count(pg) == "10");
}

TEST_CASE("a writer opened while PostgreSQL is down connects once it has started") {
    TempPostgres pg;
    pg.stop();
    int failures = 0;
    const auto give_up = std::chrono::steady_clock::now() + 300ms;
    CHECK_THROWS_AS((void)rill::store::open_writer(
                        options(pg), [&] { return std::chrono::steady_clock::now() < give_up; },
                        [&](const rill::store::ReconnectEvent&) { ++failures; }),
                    rill::store::StoreError);
    CHECK(failures >= 1);
    std::jthread starter([&] {
        std::this_thread::sleep_for(200ms);
        pg.start();
    });
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    auto w = rill::store::open_writer(options(pg),
                                      [&] { return std::chrono::steady_clock::now() < deadline; });
    starter.join();
    add_all(w, readings("s", 1, 3));
    CHECK(w.flush() == 3);
    CHECK(count(pg) == "3");
}

TEST_CASE("a PostgreSQL crash in the middle of a stream of batches stores every reading once") {
    TempPostgres pg;
    auto o = options(pg);
    o.batch_max = 500;
    o.pending_max = 4000;
    BatchWriter w(o);
    constexpr std::uint64_t total = 20'000;
    std::atomic<std::uint64_t> stored{0};
    // Crash (immediate stop, no checkpoint) while the writer is busy, then start again.
    std::jthread crasher([&] {
        (void)rill::test::wait_until([&] { return stored.load() >= 2'000; }, 60s);
        pg.stop(true);
        pg.start();
    });
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    std::uint64_t next = 1;
    std::uint64_t refused = 0;
    while (next <= total && std::chrono::steady_clock::now() < deadline) {
        const auto r = reading(next % 2 ? "odd" : "even", (next + 1) / 2);  // seq 1, 1, 2, 2 ...
        const auto result = w.add(r);
        if (result == BatchWriter::AddResult::full) {
            std::this_thread::sleep_until(w.next_deadline().value());
        } else {
            if (result != BatchWriter::AddResult::accepted) ++refused;
            ++next;
        }
        if (w.due()) (void)w.flush();
        stored = w.stats().readings_stored + w.stats().duplicates_hit;
    }
    crasher.join();
    CHECK(next == total + 1);
    CHECK(refused == 0);
    CHECK(w.drain(std::chrono::steady_clock::now() + 30s));
    CHECK(w.stats().reconnects >= 1);
    CHECK(count(pg) == std::to_string(total));
    CHECK(pg.value("SELECT count(DISTINCT (sensor, seq)) FROM readings") == std::to_string(total));
    CHECK(w.stored_ranges("odd").ranges() == std::vector<SeqRange>{{1, total / 2}});
    CHECK(w.stored_ranges("even").ranges() == std::vector<SeqRange>{{1, total / 2}});
}

TEST_CASE("an idle writer's probe notices a database that went away and reconnects to it") {
    TempPostgres pg;
    auto o = options(pg);
    o.backoff = {.initial = 10ms, .max = 50ms};
    BatchWriter w(o);
    CHECK(w.probe());
    pg.stop();
    // A connection libpq still believes in: the probe's query finds it dead.
    CHECK(w.connected());
    CHECK_FALSE(w.probe());
    CHECK_FALSE(w.connected());
    CHECK(w.stats().database_errors >= 1);
    pg.start();
    CHECK(rill::test::wait_until([&] { return w.probe(); }, 30s));
    CHECK(w.connected());
    CHECK(w.stats().reconnects == 1);
    add_all(w, readings("s", 1, 2));
    CHECK(w.flush() == 2);
    CHECK(count(pg) == "2");
}
