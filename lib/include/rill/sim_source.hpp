// rill/sim_source.hpp: a simulated weather sensor, seedable and deterministic.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "rill/source.hpp"

namespace rill {

/// How SimSource generates and paces measurements.
struct SimOptions {
    /// Time between measurements, both in their timestamps and in real pacing.
    std::chrono::nanoseconds interval = std::chrono::seconds(5);
    /// The random seed: the same seed, start and interval give the same values.
    std::uint64_t seed = 1;
    /// Timestamp of the first measurement; default: the time of construction.
    std::optional<Timestamp> start;
    /// When false, next() never waits: measurements come as fast as they are asked for (their
    /// timestamps still advance by `interval`).
    bool paced = true;
    /// Where the source registers its metrics (see rill::Source); nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
};

/// Temperature and humidity drifting with a daily cycle (warmest at 15:00 UTC), a slow random
/// drift and measurement noise; humidity falls as temperature rises and stays in [0, 100].
/// The values for a given seed, start and interval are always the same. Measurement k is
/// stamped start + k * interval and becomes due interval after measurement k-1 in real time;
/// a consumer that falls behind gets the overdue ones at once (so a rate of 1 MHz is met by
/// batches, never by sleeping per measurement). next() costs a few tens of nanoseconds.
class SimSource final : public Source {
  public:
    /// Starts the generator; the first measurement is due at once.
    explicit SimSource(SimOptions options);

    [[nodiscard]] std::optional<Measurement> next() override;
    std::size_t next_batch(std::vector<Measurement>& out, std::size_t max) override;
    [[nodiscard]] std::string describe() const override;

    /// The k-th measurement (k = 0, 1, ...) without waiting or counting: what next() returns
    /// in order. Advances the generator; for benches and tests.
    [[nodiscard]] Measurement generate();

  private:
    SimOptions options_;
    Timestamp start_{};
    std::chrono::steady_clock::time_point due_;
    std::uint64_t index_ = 0;
    std::uint64_t rng_[4]{};
    double base_temperature_ = 0;
    double base_humidity_ = 0;
    double decay_ = 0;        // OU drift retention per step
    double drift_scale_ = 0;  // OU innovation scale per step
    double temp_drift_ = 0;
    double hum_drift_ = 0;
    double phase_ = 0;       // daily phase of measurement k, radians
    double phase_step_ = 0;  // radians per interval
};

}  // namespace rill
