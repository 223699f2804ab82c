#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "rill/sim_source.hpp"
#include "support/source_stop.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

const Timestamp midnight{std::chrono::sys_days{std::chrono::year{2026} / 6 / 1}};

std::vector<Measurement> run(SimOptions o, std::size_t n) {
    o.paced = false;
    SimSource s(o);
    std::vector<Measurement> out;
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(*s.next());
    return out;
}

}  // namespace

TEST_CASE("sim source is deterministic for a seed and start time") {
    const SimOptions a{.interval = 5s, .seed = 7, .start = midnight, .paced = false};
    CHECK(run(a, 2000) == run(a, 2000));
    SimOptions b = a;
    b.seed = 8;
    CHECK(run(a, 50) != run(b, 50));
    // next_batch yields the same sequence as next().
    SimSource batched(a);
    std::vector<Measurement> out;
    while (out.size() < 2000) {
        REQUIRE(batched.next_batch(out, 333) == 333);
    }
    out.resize(2000);
    CHECK(out == run(a, 2000));
}

TEST_CASE("sim timestamps advance by the interval from the start") {
    const auto ms = run({.interval = 250ms, .seed = 1, .start = midnight}, 10);
    for (std::size_t i = 0; i < ms.size(); ++i) {
        CHECK(ms[i].ts == midnight + std::chrono::milliseconds(250 * static_cast<int>(i)));
    }
}

TEST_CASE("sim values follow a daily cycle within realistic ranges") {
    const auto ms = run({.interval = 60s, .seed = 3, .start = midnight}, 4 * 24 * 60);
    double warm = 0, cold = 0;
    int n_warm = 0, n_cold = 0;
    double mt = 0, mh = 0;
    for (const auto& m : ms) {
        CHECK(m.temperature > -15.0f);
        CHECK(m.temperature < 45.0f);
        CHECK(m.humidity >= 0.0f);
        CHECK(m.humidity <= 100.0f);
        const auto hour = std::chrono::floor<std::chrono::hours>(
                              m.ts - std::chrono::floor<std::chrono::days>(m.ts))
                              .count();
        if (hour >= 13 && hour < 17) warm += m.temperature, ++n_warm;
        if (hour >= 1 && hour < 5) cold += m.temperature, ++n_cold;
        mt += m.temperature;
        mh += m.humidity;
    }
    CHECK(warm / n_warm > cold / n_cold + 4);  // afternoons are warmer than nights
    mt /= static_cast<double>(ms.size());
    mh /= static_cast<double>(ms.size());
    double cov = 0, vt = 0, vh = 0;
    for (const auto& m : ms) {
        cov += (m.temperature - mt) * (m.humidity - mh);
        vt += (m.temperature - mt) * (m.temperature - mt);
        vh += (m.humidity - mh) * (m.humidity - mh);
    }
    CHECK(cov / std::sqrt(vt * vh) < -0.5);  // humidity falls as temperature rises
    // Consecutive values move smoothly, not like white noise.
    for (std::size_t i = 1; i < ms.size(); ++i) {
        CHECK(std::abs(ms[i].temperature - ms[i - 1].temperature) < 2.0f);
    }
}

TEST_CASE("sim humidity is clamped to 0..100 for every seed") {
    for (std::uint64_t seed = 0; seed < 50; ++seed) {
        for (const auto& m : run({.interval = 10min, .seed = seed, .start = midnight}, 500)) {
            REQUIRE(m.humidity >= 0.0f);
            REQUIRE(m.humidity <= 100.0f);
            REQUIRE(std::isfinite(m.temperature));
        }
    }
}

TEST_CASE("sim paced at an interval waits between measurements") {
    // t0 before the source: its schedule starts when it is made.
    const auto t0 = std::chrono::steady_clock::now();
    SimSource s({.interval = 50ms, .seed = 1});
    for (int i = 0; i < 4; ++i)
        REQUIRE(s.next().has_value());
    CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);
    CHECK(s.counters().measurements == 4);
}

TEST_CASE("sim next_batch returns the overdue measurements at a high rate") {
    SimSource s({.interval = 1us, .seed = 1, .start = midnight});
    std::vector<Measurement> out;
    REQUIRE(s.next_batch(out, 1) == 1);
    std::this_thread::sleep_for(20ms);
    const auto n = s.next_batch(out, 100'000);
    CHECK(n > 1000);  // 20 ms at 1 MHz is 20,000 due
    CHECK(out.size() == n + 1);
    for (std::size_t i = 0; i < out.size(); ++i) {
        CHECK(out[i].ts == midnight + std::chrono::microseconds(i));
    }
    CHECK(s.counters().measurements == out.size());
}

TEST_CASE("stop interrupts a sim source waiting for its next measurement") {
    SimSource s({.interval = 1h, .seed = 1});
    REQUIRE(s.next().has_value());
    test::check_stop_interrupts_next(s);
}
