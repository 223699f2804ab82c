// web-view: the newest live reading of each sensor as Prometheus gauges on /metrics.
#pragma once

#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

#include "lru.hpp"
#include "rill/metrics.hpp"
#include "rill/reading.hpp"

namespace rill::web {

struct SensorGaugesOptions {
    /// Sensors exported at most: the one whose newest reading arrived longest ago is forgotten
    /// first (counted in rill_web_live_evicted_total{table="gauges"}). At least 1.
    std::size_t max_sensors = 4096;
    MetricsRegistry* metrics = nullptr;  ///< nullptr = default_registry()
    /// The clock the age is measured with; empty: rill::now(). Tests inject one.
    std::function<Timestamp()> clock;
};

/// Keeps the newest live reading of each sensor and renders them, at every scrape of the
/// registry, as three gauge families labelled `sensor` (label values escaped by the registry):
///
/// - `rill_sensor_temperature_celsius`: its temperature, absent when not measured (NaN);
/// - `rill_sensor_humidity_percent`: its relative humidity, absent when not measured;
/// - `rill_sensor_reading_age_seconds`: now minus its timestamp (negative when the sensor's
///   clock is ahead), so a sensor that stops reporting ages.
///
/// At most max_sensors sensors, so at most 3 x max_sensors series; a forgotten sensor's series
/// disappear. Thread-safe: observe() from the live feed's thread, renders from HTTP workers.
/// The families stay registered until the object is destroyed; one per registry (a second
/// throws std::invalid_argument, as MetricsRegistry::collect_gauges does).
class SensorGauges {
  public:
    /// Throws std::invalid_argument when max_sensors is 0 or the families are registered.
    explicit SensorGauges(SensorGaugesOptions options);
    SensorGauges(const SensorGauges&) = delete;
    SensorGauges& operator=(const SensorGauges&) = delete;

    /// Makes `r` the newest reading of its sensor (the live feed hands on only readings that
    /// supersede the one shown, see LiveFeed).
    void observe(const Reading& r);
    /// Sensors held now.
    [[nodiscard]] std::size_t size() const;

  private:
    struct Newest {
        float temperature = 0;
        float humidity = 0;
        Timestamp ts{};
    };
    [[nodiscard]] std::vector<Sample> samples(float Newest::*field) const;
    [[nodiscard]] std::vector<Sample> ages() const;

    std::function<Timestamp()> clock_;
    mutable std::mutex mutex_;
    LruMap<Newest> newest_;
    Counter& evicted_;
    // Last: unregistered first, before the table the collectors read goes.
    CollectorHandle temperature_;
    CollectorHandle humidity_;
    CollectorHandle age_;
};

}  // namespace rill::web
