#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "rill/metrics.hpp"

using namespace rill;

TEST_CASE("a registry returns the same counter for the same name and labels") {
    MetricsRegistry reg;
    auto& a = reg.counter("rill_test_events_total", "Events", {{"kind", "a"}});
    auto& b = reg.counter("rill_test_events_total", "Events", {{"kind", "b"}});
    auto& a_again = reg.counter("rill_test_events_total", "ignored", {{"kind", "a"}});
    CHECK(&a == &a_again);
    CHECK(&a != &b);
    a.inc();
    a.inc(4);
    b.inc();
    CHECK(a.value() == 5);
    CHECK(reg.value("rill_test_events_total", {{"kind", "a"}}) == 5.0);
    CHECK(reg.value("rill_test_events_total", {{"kind", "b"}}) == 1.0);
    CHECK_FALSE(reg.value("rill_test_events_total", {{"kind", "c"}}).has_value());
    CHECK_FALSE(reg.value("rill_test_nothing").has_value());
}

TEST_CASE("label order does not matter when looking a metric up") {
    MetricsRegistry reg;
    auto& c = reg.counter("rill_test_total", "x", {{"b", "2"}, {"a", "1"}});
    CHECK(&c == &reg.counter("rill_test_total", "x", {{"a", "1"}, {"b", "2"}}));
}

TEST_CASE("a name registered as one kind cannot be taken by another, and bad names are refused") {
    MetricsRegistry reg;
    (void)reg.counter("rill_test_total", "x");
    CHECK_THROWS_AS((void)reg.gauge("rill_test_total", "x"), std::invalid_argument);
    CHECK_THROWS_AS((void)reg.counter("9starts_with_digit", "x"), std::invalid_argument);
    CHECK_THROWS_AS((void)reg.counter("has space", "x"), std::invalid_argument);
    CHECK_THROWS_AS((void)reg.counter("rill_ok_total", "x", {{"bad-label", "v"}}),
                    std::invalid_argument);
    CHECK_THROWS_AS((void)reg.counter("rill_ok_total", "x", {{"le", "v"}}), std::invalid_argument);
}

TEST_CASE("counters count exactly when many threads increment them") {
    MetricsRegistry reg;
    auto& c = reg.counter("rill_test_total", "x");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&c] {
            for (int i = 0; i < 100'000; ++i)
                c.inc();
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK(c.value() == 400'000);
}

TEST_CASE("gauges go up and down") {
    MetricsRegistry reg;
    auto& g = reg.gauge("rill_test_queue_depth", "x");
    g.set(10);
    g.add(-2.5);
    CHECK(g.value() == doctest::Approx(7.5));
}

TEST_CASE("histograms count observations into cumulative buckets") {
    Histogram h({0.5, 0.1, 1.0, 0.5});
    CHECK(h.bounds() == std::vector<double>{0.1, 0.5, 1.0});
    for (const double v : {0.05, 0.1, 0.3, 0.7, 5.0})
        h.observe(v);
    const auto s = h.snapshot();
    CHECK(s.counts == std::vector<std::uint64_t>{2, 3, 4, 5});
    CHECK(s.count == 5);
    CHECK(s.sum == doctest::Approx(6.15));
}

TEST_CASE("the registry renders Prometheus text with help, type, labels and histogram series") {
    MetricsRegistry reg;
    reg.counter("rill_stream_readings_received_total", "Readings received", {{"socket", "sub"}})
        .inc(42);
    reg.counter("rill_stream_malformed_frames_total", "Rejected \\ messages",
                {{"reason", "say \"hi\"\nbye"}})
        .inc();
    reg.gauge("rill_outbox_bytes", "Bytes in the outbox").set(1.5);
    auto& h = reg.histogram("rill_rpc_latency_seconds", "RPC latency", {0.3, 1});
    h.observe(0.25);
    h.observe(0.5);
    h.observe(3);

    const std::string expected =
        "# HELP rill_outbox_bytes Bytes in the outbox\n"
        "# TYPE rill_outbox_bytes gauge\n"
        "rill_outbox_bytes 1.5\n"
        "# HELP rill_rpc_latency_seconds RPC latency\n"
        "# TYPE rill_rpc_latency_seconds histogram\n"
        "rill_rpc_latency_seconds_bucket{le=\"0.3\"} 1\n"
        "rill_rpc_latency_seconds_bucket{le=\"1\"} 2\n"
        "rill_rpc_latency_seconds_bucket{le=\"+Inf\"} 3\n"
        "rill_rpc_latency_seconds_sum 3.75\n"
        "rill_rpc_latency_seconds_count 3\n"
        "# HELP rill_stream_malformed_frames_total Rejected \\\\ messages\n"
        "# TYPE rill_stream_malformed_frames_total counter\n"
        "rill_stream_malformed_frames_total{reason=\"say \\\"hi\\\"\\nbye\"} 1\n"
        "# HELP rill_stream_readings_received_total Readings received\n"
        "# TYPE rill_stream_readings_received_total counter\n"
        "rill_stream_readings_received_total{socket=\"sub\"} 42\n";
    CHECK(reg.render_prometheus() == expected);
}

TEST_CASE("labelled histograms put le after their own labels") {
    MetricsRegistry reg;
    reg.histogram("rill_rpc_latency_seconds", "x", {1}, {{"method", "replay"}}).observe(0.5);
    const auto text = reg.render_prometheus();
    CHECK(text.find("rill_rpc_latency_seconds_bucket{method=\"replay\",le=\"1\"} 1\n") !=
          std::string::npos);
    CHECK(text.find("rill_rpc_latency_seconds_count{method=\"replay\"} 1\n") != std::string::npos);
}

TEST_CASE("the default registry is one object for the whole process") {
    CHECK(&default_registry() == &default_registry());
}

TEST_CASE("a gauge collector's samples are rendered at each scrape, sorted and escaped") {
    MetricsRegistry reg;
    (void)reg.counter("rill_test_a_total", "before");
    (void)reg.counter("rill_test_z_total", "after");
    std::vector<Sample> now = {{{{"sensor", "b"}}, 2.5},
                               {{{"sensor", R"(a "quoted" \ one)"}}, 1},
                               {{{"sensor", "b"}}, 99}};  // a duplicate: the first is kept
    auto handle = reg.collect_gauges("rill_test_m_celsius", "Collected", [&] { return now; });
    CHECK(static_cast<bool>(handle));
    const std::string text = reg.render_prometheus();
    const std::string family =
        "# HELP rill_test_m_celsius Collected\n"
        "# TYPE rill_test_m_celsius gauge\n"
        "rill_test_m_celsius{sensor=\"a \\\"quoted\\\" \\\\ one\"} 1\n"
        "rill_test_m_celsius{sensor=\"b\"} 2.5\n";
    CHECK(text.find(family) != std::string::npos);
    CHECK(text.find("} 99\n") == std::string::npos);  // the duplicate is not rendered
    // In name order among the other families.
    CHECK(text.find("rill_test_a_total") < text.find("rill_test_m_celsius"));
    CHECK(text.find("rill_test_m_celsius") < text.find("rill_test_z_total"));
    // The next scrape shows what the collector returns then: a sample gone is gone.
    now = {{{{"sensor", "c"}}, -4}};
    const std::string later = reg.render_prometheus();
    CHECK(later.find("rill_test_m_celsius{sensor=\"c\"} -4\n") != std::string::npos);
    CHECK(later.find("sensor=\"b\"") == std::string::npos);
}

TEST_CASE("a collected family is gone once its handle is reset, and its name can be reused") {
    MetricsRegistry reg;
    int calls = 0;
    auto handle = reg.collect_gauges("rill_test_g", "x", [&] {
        ++calls;
        return std::vector<Sample>{{{}, 7}};
    });
    CHECK(reg.render_prometheus().find("rill_test_g 7\n") != std::string::npos);
    CHECK(calls == 1);
    CollectorHandle moved = std::move(handle);
    CHECK_FALSE(static_cast<bool>(handle));
    handle.reset();  // empty: does nothing
    CHECK(reg.render_prometheus().find("rill_test_g 7\n") != std::string::npos);
    moved.reset();
    CHECK(reg.render_prometheus().find("rill_test_g") == std::string::npos);
    CHECK(calls == 2);
    auto again = reg.collect_gauges("rill_test_g", "y", [] { return std::vector<Sample>{}; });
    CHECK(reg.render_prometheus().find("# HELP rill_test_g y\n") != std::string::npos);
}

TEST_CASE(
    "a collector's name cannot be taken twice, and bad labels or a throwing one are skipped") {
    MetricsRegistry reg;
    (void)reg.gauge("rill_test_taken", "x");
    CHECK_THROWS_AS(
        (void)reg.collect_gauges("rill_test_taken", "x", [] { return std::vector<Sample>{}; }),
        std::invalid_argument);
    CHECK_THROWS_AS((void)reg.collect_gauges("bad name", "x", [] { return std::vector<Sample>{}; }),
                    std::invalid_argument);
    CHECK_THROWS_AS((void)reg.collect_gauges("rill_test_empty", "x", GaugeCollector{}),
                    std::invalid_argument);
    auto handle = reg.collect_gauges("rill_test_c", "x", [] {
        return std::vector<Sample>{
            {{{"bad-name", "v"}}, 1}, {{{"le", "1"}}, 2}, {{{"ok", "v"}}, 3}};
    });
    CHECK_THROWS_AS(
        (void)reg.collect_gauges("rill_test_c", "x", [] { return std::vector<Sample>{}; }),
        std::invalid_argument);
    CHECK_THROWS_AS((void)reg.gauge("rill_test_c", "x"), std::invalid_argument);
    const std::string text = reg.render_prometheus();
    CHECK(text.find("rill_test_c{ok=\"v\"} 3\n") != std::string::npos);
    CHECK(text.find("bad-name") == std::string::npos);
    CHECK(text.find("le=") == std::string::npos);
    auto throwing = reg.collect_gauges("rill_test_t", "x", []() -> std::vector<Sample> {
        throw std::runtime_error("table gone");
    });
    const std::string with_throw = reg.render_prometheus();
    CHECK(with_throw.find("# TYPE rill_test_t gauge\n") != std::string::npos);
    CHECK(with_throw.find("rill_test_c{ok=\"v\"} 3\n") != std::string::npos);
}

TEST_CASE("a collector may use its registry, and reset waits for a render running it") {
    MetricsRegistry reg;
    std::atomic<bool> inside{false};
    std::atomic<bool> release{false};
    std::atomic<bool> ran_after_reset{false};
    std::atomic<bool> reset_done{false};
    auto handle = reg.collect_gauges("rill_test_slow", "x", [&] {
        if (reset_done) ran_after_reset = true;
        reg.counter("rill_test_calls_total", "x").inc();  // no deadlock: mutex not held
        inside = true;
        for (int i = 0; i < 5000 && !release; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return std::vector<Sample>{{{}, 1}};
    });
    std::thread render([&] { (void)reg.render_prometheus(); });
    for (int i = 0; i < 5000 && !inside; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(inside.load());
    std::thread resetter([&] {
        handle.reset();
        reset_done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(reset_done.load());  // the callback still runs: reset waits for it
    release = true;
    render.join();
    resetter.join();
    CHECK(reset_done.load());
    CHECK(reg.render_prometheus().find("rill_test_slow") == std::string::npos);
    CHECK_FALSE(ran_after_reset.load());
    CHECK(reg.value("rill_test_calls_total") == 1.0);
}
