// web-view's live tables in-process: bounded, and not frozen by a forged seq or time.
#include <doctest/doctest.h>

#include <mutex>
#include <string>
#include <vector>

#include "live_feed.hpp"
#include "lru.hpp"
#include "read_cache.hpp"
#include "rill/stream.hpp"
#include "support/process.hpp"
#include "support/readings.hpp"

using namespace rill::web;
using namespace std::chrono_literals;

namespace {

// A LiveFeed on a Publisher bound to a free port, recording what it hands on.
struct FeedRig {
    rill::MetricsRegistry metrics;
    rill::Publisher pub{"@tcp://127.0.0.1:0",
                        {.identity = "rig", .heartbeat_interval = 100ms, .metrics = &metrics}};
    std::mutex mutex;
    std::vector<rill::Reading> shown;
    LiveFeed feed;

    explicit FeedRig(std::size_t max_sensors = 4096)
        : feed(LiveFeedOptions{.endpoints = {pub.bound().front()},
                               .metrics = &metrics,
                               .max_sensors = max_sensors},
               [this](const rill::Reading& r) {
                   std::lock_guard lock(mutex);
                   shown.push_back(r);
               }) {
        // Until the feed's subscription is in effect: readings of a sensor "join" arrive.
        std::uint64_t seq = 0;
        REQUIRE(rill::test::wait_until(
            [&] {
                pub.publish(rill::test::reading("join", ++seq));
                pub.flush();
                return count("join") > 0;
            },
            10s));
    }
    std::size_t count(const std::string& sensor) {
        std::lock_guard lock(mutex);
        std::size_t n = 0;
        for (const auto& r : shown)
            n += r.sensor == sensor ? 1 : 0;
        return n;
    }
    std::vector<std::uint64_t> seqs(const std::string& sensor) {
        std::lock_guard lock(mutex);
        std::vector<std::uint64_t> out;
        for (const auto& r : shown)
            if (r.sensor == sensor) out.push_back(r.seq);
        return out;
    }
    void send(const std::string& sensor, std::uint64_t seq, rill::Timestamp ts) {
        auto r = rill::test::reading(sensor, seq);
        r.ts = ts;
        pub.publish(r);
        pub.flush();
    }
};

}  // namespace

TEST_CASE("a live reading is shown unless the shown one is newer by seq and time, and not future") {
    const auto t = rill::now();
    CHECK(live_reading_supersedes(2, t, 1, t, t));             // newer seq
    CHECK(live_reading_supersedes(1, t + 1s, 2, t, t));        // older seq, newer time
    CHECK_FALSE(live_reading_supersedes(2, t, 2, t, t));       // a duplicate
    CHECK_FALSE(live_reading_supersedes(1, t - 1s, 2, t, t));  // an old one
    // A shown reading from more than max_future_skew ahead no longer holds its card.
    CHECK(live_reading_supersedes(1, t, 1'000'000, t + max_future_skew + 1s, t));
    CHECK_FALSE(live_reading_supersedes(1, t, 1'000'000, t + max_future_skew - 1s, t));
}

TEST_CASE("the live feed keeps showing a sensor after a forged huge seq, and drops duplicates") {
    FeedRig rig;
    const auto t0 = rill::now();
    rig.send("greenhouse", 10, t0);
    REQUIRE(rill::test::wait_until([&] { return rig.count("greenhouse") == 1; }, 10s));
    // A forged reading far above the real seqs (and one from the far future) arrives...
    rig.send("greenhouse", rill::limits::max_seq - 1, t0 + std::chrono::hours(24 * 365));
    REQUIRE(rill::test::wait_until([&] { return rig.count("greenhouse") == 2; }, 10s));
    // ... then the real sensor goes on: its readings are shown again, not hidden as stale.
    rig.send("greenhouse", 11, t0 + 1s);
    rig.send("greenhouse", 12, t0 + 2s);
    REQUIRE(rill::test::wait_until([&] { return rig.count("greenhouse") == 4; }, 10s));
    // A repeat of a shown reading is not shown twice.
    rig.send("greenhouse", 12, t0 + 2s);
    rig.send("greenhouse", 13, t0 + 3s);
    REQUIRE(rill::test::wait_until([&] { return rig.count("greenhouse") >= 5; }, 10s));
    CHECK(rig.seqs("greenhouse") ==
          std::vector<std::uint64_t>{10, rill::limits::max_seq - 1, 11, 12, 13});
}

TEST_CASE("the live feed flooded with invented sensors keeps at most max_sensors and counts") {
    FeedRig rig(4);  // "join" is one of the 4
    for (int i = 0; i < 6; ++i)
        rig.send("fake-" + std::to_string(i), 1, rill::now());
    REQUIRE(rill::test::wait_until([&] { return rig.count("fake-5") == 1; }, 10s));
    // 7 sensors came, 4 are kept: 3 forgotten, counted.
    CHECK(rig.metrics.value("rill_web_live_evicted_total", {{"table", "sensors"}}) == 3.0);
    CHECK(rig.metrics.value("rill_stream_sensors_evicted_total", {{"socket", "sub"}}) == 3.0);
}

TEST_CASE("the read cache forgets the least recently observed sensor beyond its bound") {
    rill::MetricsRegistry metrics;
    auto& evicted = metrics.counter("evicted", "test");
    ReadCache cache(std::chrono::hours{1}, {}, &evicted);
    const auto t = rill::now();
    auto observe = [&](const std::string& sensor, std::uint64_t seq, rill::Timestamp ts) {
        auto r = rill::test::reading(sensor, seq);
        r.ts = ts;
        cache.observe(r);
    };
    observe("real", 1, t);
    for (std::size_t i = 0; i < ReadCache::max_live_sensors + 10; ++i) {
        observe("fake-" + std::to_string(i), 1, t);
        if (i % 100 == 0) observe("real", 2 + i, t + std::chrono::milliseconds(i + 1));
    }
    CHECK(evicted.value() == 11U);
    // "real" was observed recently: its live reading still overlays the stored one.
    auto latest = cache.latest(
        [&] { return ReadCache::Latest{{.sensor = "real", .seq = 1, .ts = t, .extra = {}}}; });
    REQUIRE(latest.value.size() == 1);
    CHECK(latest.value[0].seq > 1);

    // A forged live reading from the far future does not hold the sensor.
    observe("real", rill::limits::max_seq, t + std::chrono::hours(1000));
    observe("real", 5000, t + 1h);
    CHECK(cache
              .latest([&] {
                  return ReadCache::Latest{{.sensor = "real", .seq = 1, .ts = t, .extra = {}}};
              })
              .value[0]
              .seq == 5000);
}

TEST_CASE("an lru map keeps the most recently used entries") {
    LruMap<int> m(2);
    m["a"] = 1;
    m["b"] = 2;
    REQUIRE(m.find("a") != nullptr);  // "a" is now the most recent
    m["c"] = 3;
    CHECK(m.size() == 2);
    CHECK(m.evicted() == 1);
    CHECK(m.peek("b") == nullptr);
    CHECK(*m.peek("a") == 1);
    CHECK_THROWS_AS(LruMap<int>(0), std::invalid_argument);
}
