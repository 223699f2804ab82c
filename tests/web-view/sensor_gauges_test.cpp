// The newest live reading of each sensor as gauges on web-view's /metrics: in-process, then
// through a web-view process fed by a stream.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <string>

#include "rill/codec.hpp"
#include "rill/socket.hpp"
#include "sensor_gauges.hpp"
#include "support/pipeline.hpp"
#include "support/prometheus.hpp"
#include "support/readings.hpp"
#include "web_view_fixture.hpp"

using namespace rill::test;
using namespace std::chrono_literals;

namespace {

// The value of the sample `name{sensor="<escaped>"}` in Prometheus text; nothing when absent.
std::optional<double> sample(const std::string& text, const std::string& name,
                             const std::string& escaped_sensor) {
    const std::string prefix = name + "{sensor=\"" + escaped_sensor + "\"} ";
    const auto at = text.find(prefix);
    if (at == std::string::npos || (at > 0 && text[at - 1] != '\n')) return std::nullopt;
    const auto begin = at + prefix.size();
    return std::stod(text.substr(begin, text.find('\n', begin) - begin));
}

void publish(rill::Socket& pub, const rill::Reading& r) {
    const auto payload = rill::encode(r);
    (void)pub.raw().send(zmq::buffer(r.sensor), zmq::send_flags::sndmore);
    (void)pub.raw().send(zmq::buffer(payload), zmq::send_flags::none);
}

}  // namespace

TEST_CASE(
    "sensor gauges show each sensor's newest values and age, and omit what was not measured") {
    rill::MetricsRegistry reg;
    rill::Timestamp now = reading("x", 1).ts + 10min;
    rill::web::SensorGauges gauges(
        {.max_sensors = 10, .metrics = &reg, .clock = [&] { return now; }});
    gauges.observe(taken_at(reading("garden", 1, 21.3f, 48.1f), now - 2s));
    gauges.observe(taken_at(reading("garden", 2, 21.5f, 47.0f), now - 1s));  // replaces seq 1
    gauges.observe(taken_at(reading("ds18b20", 1, -4.25f, rill::not_measured), now - 3s));
    gauges.observe(taken_at(reading("hygro", 1, rill::not_measured, 55.5f), now));
    gauges.observe(taken_at(reading(R"(cellar "north" \ wing)", 1, 30.5f, 70), now - 4s));
    CHECK(gauges.size() == 4);

    auto text = reg.render_prometheus();
    INFO(text);
    CHECK(sample(text, "rill_sensor_temperature_celsius", "garden") == 21.5);
    CHECK(sample(text, "rill_sensor_humidity_percent", "garden") == 47.0);
    CHECK(sample(text, "rill_sensor_reading_age_seconds", "garden") == 1.0);
    CHECK(sample(text, "rill_sensor_temperature_celsius", "ds18b20") == -4.25);
    CHECK_FALSE(sample(text, "rill_sensor_humidity_percent", "ds18b20"));  // not NaN: absent
    CHECK(sample(text, "rill_sensor_reading_age_seconds", "ds18b20") == 3.0);
    CHECK_FALSE(sample(text, "rill_sensor_temperature_celsius", "hygro"));
    CHECK(sample(text, "rill_sensor_humidity_percent", "hygro") == 55.5);
    CHECK(sample(text, "rill_sensor_temperature_celsius", R"(cellar \"north\" \\ wing)") == 30.5);
    CHECK(text.find("NaN") == std::string::npos);
    CHECK(text.find("# TYPE rill_sensor_temperature_celsius gauge\n") != std::string::npos);
    // Printed as the float reads, not as its double expansion (21.299999237060547).
    gauges.observe(taken_at(reading("garden", 3, 21.3f, 48.1f), now));
    text = reg.render_prometheus();
    CHECK(text.find("rill_sensor_temperature_celsius{sensor=\"garden\"} 21.3\n") !=
          std::string::npos);
    CHECK(text.find("rill_sensor_humidity_percent{sensor=\"garden\"} 48.1\n") != std::string::npos);

    // A sensor that stops reporting ages with the clock.
    now += 95s;
    text = reg.render_prometheus();
    CHECK(sample(text, "rill_sensor_reading_age_seconds", "garden") == 95.0);
    CHECK(sample(text, "rill_sensor_reading_age_seconds", "ds18b20") == 98.0);

    if (promtool_available()) {
        const auto check = promtool_check_metrics(text);
        CHECK_MESSAGE(check.status == 0, check.output);
    }
}

TEST_CASE("sensor gauges forget the sensor heard from least recently beyond their bound") {
    rill::MetricsRegistry reg;
    rill::web::SensorGauges gauges({.max_sensors = 2, .metrics = &reg});
    gauges.observe(taken_at(reading("a", 1), rill::now()));
    gauges.observe(taken_at(reading("b", 1), rill::now()));
    gauges.observe(taken_at(reading("a", 2), rill::now()));  // a is now the most recent
    gauges.observe(taken_at(reading("c", 1), rill::now()));  // b goes
    CHECK(gauges.size() == 2);
    const auto text = reg.render_prometheus();
    for (const char* name : {"rill_sensor_temperature_celsius", "rill_sensor_humidity_percent",
                             "rill_sensor_reading_age_seconds"}) {
        CHECK(sample(text, name, "a"));
        CHECK_FALSE(sample(text, name, "b"));
        CHECK(sample(text, name, "c"));
    }
    CHECK(reg.value("rill_web_live_evicted_total", {{"table", "gauges"}}) == 1.0);
    // One set of families per registry.
    CHECK_THROWS_AS(rill::web::SensorGauges({.metrics = &reg}), std::invalid_argument);
}

TEST_CASE("web-view's /metrics shows the live readings it received as gauges promtool accepts") {
    TempPostgres pg;
    create_readings_table(pg);
    rill::Socket pub(rill::default_context(), zmq::socket_type::pub);
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    WebView w(pg.conninfo(), {"--connect", pub.last_endpoint(), "--max-sensor-gauges", "2"});
    const auto metrics = [&] { return get(w, "/metrics")->body; };
    std::uint64_t warm = 1;
    REQUIRE(wait_until(
        [&] {
            publish(pub, taken_at(reading("warmup", warm++), rill::now()));
            return sample(metrics(), "rill_sensor_reading_age_seconds", "warmup").has_value();
        },
        15s));

    const std::string odd = R"(cellar "north" \ wing)";
    publish(pub, taken_at(reading("garden", 1, 21.3f, 48.1f), rill::now() - 30s));
    publish(pub, taken_at(reading(odd, 1, -4.25f, 99.5f), rill::now()));
    std::string text;
    REQUIRE_MESSAGE(wait_until(
                        [&] {
                            text = metrics();
                            return sample(text, "rill_sensor_temperature_celsius",
                                          R"(cellar \"north\" \\ wing)")
                                .has_value();
                        },
                        10s),
                    text);
    INFO(text);
    CHECK(sample(text, "rill_sensor_temperature_celsius", "garden") == 21.3);
    CHECK(sample(text, "rill_sensor_humidity_percent", "garden") == 48.1);
    const auto age = sample(text, "rill_sensor_reading_age_seconds", "garden");
    REQUIRE(age);
    CHECK(*age >= 30.0);
    CHECK(*age < 90.0);
    CHECK(sample(text, "rill_sensor_temperature_celsius", R"(cellar \"north\" \\ wing)") == -4.25);
    CHECK(sample(text, "rill_sensor_humidity_percent", R"(cellar \"north\" \\ wing)") == 99.5);
    // --max-sensor-gauges 2: the warm-up sensor, heard from least recently, is gone.
    CHECK_FALSE(sample(text, "rill_sensor_reading_age_seconds", "warmup"));
    CHECK(metric_sum(text, "rill_web_live_evicted_total", R"(table="gauges")") >= 1);

    if (!promtool_available()) {
        MESSAGE("SKIPPED the promtool check: promtool is missing (Debian package prometheus)");
        return;
    }
    const auto check = promtool_check_metrics(text);
    CHECK_MESSAGE(check.status == 0, check.output);
}
