// The newest live reading of each sensor as gauges, collected at scrape time.
#include "sensor_gauges.hpp"

#include <charconv>
#include <cmath>
#include <utility>

namespace rill::web {

namespace {

MetricsRegistry& registry_of(const SensorGaugesOptions& o) {
    return o.metrics != nullptr ? *o.metrics : default_registry();
}

// The double that prints like the float does: 21.3f as 21.3, not 21.299999237060547.
double widen(float f) {
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
    double d = f;
    std::from_chars(buf, end, d);
    return d;
}

}  // namespace

SensorGauges::SensorGauges(SensorGaugesOptions options)
    : clock_(options.clock ? std::move(options.clock) : std::function<Timestamp()>(rill::now)),
      newest_(options.max_sensors),
      evicted_(registry_of(options).counter(
          "rill_web_live_evicted_total",
          "Entries web-view's live tables forgot to stay within their bound",
          {{"table", "gauges"}})) {
    auto& reg = registry_of(options);
    temperature_ = reg.collect_gauges(
        "rill_sensor_temperature_celsius",
        "The newest live reading's temperature, by sensor (absent when not measured)",
        [this] { return samples(&Newest::temperature); });
    humidity_ = reg.collect_gauges(
        "rill_sensor_humidity_percent",
        "The newest live reading's relative humidity, by sensor (absent when not measured)",
        [this] { return samples(&Newest::humidity); });
    age_ = reg.collect_gauges("rill_sensor_reading_age_seconds",
                              "Time since the newest live reading's timestamp, by sensor",
                              [this] { return ages(); });
}

void SensorGauges::observe(const Reading& r) {
    const std::lock_guard lock(mutex_);
    const auto before = newest_.evicted();
    newest_[r.sensor] = Newest{r.temperature, r.humidity, r.ts};
    evicted_.inc(newest_.evicted() - before);
}

std::size_t SensorGauges::size() const {
    const std::lock_guard lock(mutex_);
    return newest_.size();
}

std::vector<Sample> SensorGauges::samples(float Newest::*field) const {
    std::vector<Sample> out;
    const std::lock_guard lock(mutex_);
    out.reserve(newest_.size());
    newest_.for_each([&](const std::string& sensor, const Newest& n) {
        const float v = n.*field;
        if (!is_measured(v)) return;  // not_measured: no sample rather than NaN
        out.push_back(Sample{{{"sensor", sensor}}, widen(v)});
    });
    return out;
}

std::vector<Sample> SensorGauges::ages() const {
    std::vector<Sample> out;
    const auto now = clock_();
    const std::lock_guard lock(mutex_);
    out.reserve(newest_.size());
    newest_.for_each([&](const std::string& sensor, const Newest& n) {
        out.push_back(
            Sample{{{"sensor", sensor}}, std::chrono::duration<double>(now - n.ts).count()});
    });
    return out;
}

}  // namespace rill::web
