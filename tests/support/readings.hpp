// Test readings: one way to make them, so that a test states which reading it needs, not how a
// Reading is filled in.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "rill/reading.hpp"

namespace rill::test {

/// 2025-11-21T10:00:00Z: the fixed time test readings are taken from.
inline const Timestamp test_epoch{std::chrono::microseconds{1'763'719'200'000'000LL}};

/// A valid reading of `sensor` with `seq`, taken `seq` milliseconds after test_epoch (modulo a
/// day, so that any seq up to 2^64-1 gives a valid time), with the given values.
inline Reading reading(std::string sensor, std::uint64_t seq, float temperature, float humidity) {
    Reading r;
    r.sensor = std::move(sensor);
    r.seq = seq;
    r.ts = test_epoch + std::chrono::milliseconds(static_cast<std::int64_t>(seq % 86'400'000));
    r.temperature = temperature;
    r.humidity = humidity;
    return r;
}

/// As above with values that vary with seq (20 + (seq % 8) / 4 °C, 40 + seq % 50 %RH), so that
/// a reading stored or delivered under the wrong seq shows in its values. Exact in float32.
inline Reading reading(std::string sensor, std::uint64_t seq) {
    return reading(std::move(sensor), seq, 20.0f + static_cast<float>(seq % 8) * 0.25f,
                   40.0f + static_cast<float>(seq % 50));
}

/// `r`, taken at `ts` instead (e.g. rill::now() where freshness matters).
inline Reading taken_at(Reading r, Timestamp ts) {
    r.ts = ts;
    return r;
}

/// reading(sensor, s) for every s in [first, last].
inline std::vector<Reading> readings(const std::string& sensor, std::uint64_t first,
                                     std::uint64_t last) {
    std::vector<Reading> out;
    for (std::uint64_t s = first; s <= last; ++s)
        out.push_back(reading(sensor, s));
    return out;
}

}  // namespace rill::test
