#include "rill/sim_source.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace rill {

namespace {

constexpr double two_pi = 2 * std::numbers::pi;
constexpr double day_seconds = 86'400;
constexpr double warmest_hour = 15;    // UTC
constexpr double daily_amplitude = 5;  // +- degrees C around the base
constexpr double drift_tau_seconds = 3 * 3600.0;
constexpr double temp_drift_sd = 1.5;  // stationary sd of the slow drift, degrees C
constexpr double hum_drift_sd = 5;     // percent RH
constexpr double temp_noise_sd = 0.1;
constexpr double hum_noise_sd = 0.5;
constexpr double hum_per_degree = 2.5;  // RH falls this much per degree of warming

std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

constexpr std::uint64_t rotl(std::uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

// xoshiro256**
std::uint64_t next_random(std::uint64_t (&s)[4]) {
    const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
    const std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double uniform01(std::uint64_t (&s)[4]) {
    return static_cast<double>(next_random(s) >> 11) * 0x1.0p-53;
}

// Approximately standard normal (Irwin-Hall of four 16-bit uniforms): one generator call.
double normal(std::uint64_t (&s)[4]) {
    const std::uint64_t r = next_random(s);
    const double sum = static_cast<double>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) +
                                           ((r >> 32) & 0xFFFF) + (r >> 48)) /
                       65536.0;
    return (sum - 2.0) * 1.7320508075688772;  // sd of the sum is 1/sqrt(3)
}

}  // namespace

SimSource::SimSource(SimOptions options) : Source(options.metrics), options_(options) {
    if (options_.interval.count() <= 0) {
        throw std::invalid_argument("sim interval must be positive");
    }
    start_ = options_.start ? *options_.start : rill::now();
    due_ = std::chrono::steady_clock::now();
    std::uint64_t x = options_.seed;
    for (auto& word : rng_)
        word = splitmix64(x);
    base_temperature_ = 15 + 8 * uniform01(rng_);
    base_humidity_ = 50 + 20 * uniform01(rng_);
    const double dt = std::chrono::duration<double>(options_.interval).count();
    decay_ = std::exp(-dt / drift_tau_seconds);
    drift_scale_ = std::sqrt(1 - decay_ * decay_);
    temp_drift_ = temp_drift_sd * normal(rng_);
    hum_drift_ = hum_drift_sd * normal(rng_);
    const auto us_of_day = start_.time_since_epoch().count() % 86'400'000'000LL;
    const double hour = static_cast<double>(us_of_day) / 3.6e9;
    phase_ = two_pi * (hour - warmest_hour) / 24;
    phase_step_ = two_pi * std::fmod(dt, day_seconds) / day_seconds;
}

Measurement SimSource::generate() {
    Measurement m;
    m.ts = start_ + std::chrono::duration_cast<std::chrono::microseconds>(
                        options_.interval * static_cast<std::int64_t>(index_));
    ++index_;
    const double daily = daily_amplitude * std::cos(phase_);
    phase_ += phase_step_;
    if (phase_ > std::numbers::pi) phase_ -= two_pi;
    temp_drift_ = decay_ * temp_drift_ + drift_scale_ * temp_drift_sd * normal(rng_);
    hum_drift_ = decay_ * hum_drift_ + drift_scale_ * hum_drift_sd * normal(rng_);
    const double warm = daily + temp_drift_;
    const double temperature = base_temperature_ + warm + temp_noise_sd * normal(rng_);
    const double humidity =
        base_humidity_ - hum_per_degree * warm + hum_drift_ + hum_noise_sd * normal(rng_);
    m.temperature = static_cast<float>(temperature);
    m.humidity = static_cast<float>(std::clamp(humidity, 0.0, 100.0));
    return m;
}

std::optional<Measurement> SimSource::next() {
    if (stop_requested()) return std::nullopt;
    if (options_.paced) {
        if (due_ > std::chrono::steady_clock::now() && !wait_until(due_)) return std::nullopt;
        due_ += options_.interval;
    }
    counters_.reads.add();
    counters_.measurements.add();
    return generate();
}

std::size_t SimSource::next_batch(std::vector<Measurement>& out, std::size_t max) {
    if (max == 0 || stop_requested()) return 0;
    std::size_t n = max;
    if (options_.paced) {
        auto now = std::chrono::steady_clock::now();
        if (due_ > now) {
            if (!wait_until(due_)) return 0;
            now = std::chrono::steady_clock::now();
        }
        // Everything due by now, at least one.
        const auto behind = (now - due_) / options_.interval + 1;
        n = static_cast<std::size_t>(
            std::min<std::int64_t>(behind, static_cast<std::int64_t>(max)));
        due_ += options_.interval * static_cast<std::int64_t>(n);
    }
    out.reserve(out.size() + n);
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(generate());
    counters_.reads.add(n);
    counters_.measurements.add(n);
    return n;
}

std::string SimSource::describe() const {
    const auto ns = options_.interval.count();
    std::string every = ns % 1'000'000'000 == 0 ? std::to_string(ns / 1'000'000'000) + "s"
                        : ns % 1'000'000 == 0   ? std::to_string(ns / 1'000'000) + "ms"
                                                : std::to_string(ns) + "ns";
    return "sim every " + every + (options_.paced ? "" : " (unpaced)") + ", seed " +
           std::to_string(options_.seed);
}

}  // namespace rill
