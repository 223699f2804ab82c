// rill/reading.hpp: the Reading value type, its limits and validation.
#pragma once

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rill {

/// Microseconds since the Unix epoch, UTC, taken at the sensor.
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;

/// A quantity the sensor did not measure (a temperature-only DS18B20's humidity, an ESPHome
/// humidity topic's temperature): a quiet NaN in memory, nil on the wire (proto/reading_v1.md),
/// NULL in PostgreSQL, `null` in JSON and an empty field in CSV. Any NaN in Reading::temperature
/// or Reading::humidity means "not measured"; infinities are never valid. A reading carries at
/// least one value: a measured temperature, a measured humidity or an extra (reading_problem()).
inline constexpr float not_measured = std::numeric_limits<float>::quiet_NaN();

/// True when `value` holds a measurement, false when it is `not_measured`.
[[nodiscard]] inline bool is_measured(float value) noexcept {
    return !std::isnan(value);
}

/// One extra named value a sensor may attach to a reading (pressure, battery voltage, ...).
struct Extra {
    /// 1 to 32 bytes of clean UTF-8, unique within a reading.
    std::string name;
    /// Any finite number.
    double value = 0;
    /// Member-wise equality.
    bool operator==(const Extra&) const = default;
};

/// One measurement of one sensor. (sensor, seq) identifies it forever: seq starts at 1 and
/// grows by one per reading of that sensor.
struct Reading {
    /// The sensor id: 1 to 64 bytes of clean UTF-8 (see sensor_id_problem()).
    std::string sensor;
    /// The reading's sequence number for its sensor, 1 to limits::max_seq (assigned by the
    /// Outbox when published reliably).
    std::uint64_t seq = 0;
    /// When the sensor measured it.
    Timestamp ts{};
    /// Degrees Celsius, -273.15 to 1000, or not_measured.
    float temperature = 0;
    /// Percent relative humidity, 0 to 100, or not_measured.
    float humidity = 0;
    /// Up to 16 extra named values.
    std::vector<Extra> extras;
    /// Member-wise equality, where a not-measured quantity equals a not-measured one (NaN ==
    /// NaN here, unlike for floats) and differs from every measured value.
    [[nodiscard]] friend bool operator==(const Reading& a, const Reading& b) noexcept {
        const auto same = [](float x, float y) noexcept {
            return is_measured(x) ? x == y : !is_measured(y);
        };
        return a.sensor == b.sensor && a.seq == b.seq && a.ts == b.ts &&
               same(a.temperature, b.temperature) && same(a.humidity, b.humidity) &&
               a.extras == b.extras;
    }
};

/// Bounds every decoder enforces; they are part of the wire contract (proto/reading_v1.md).
namespace limits {
/// Bytes of a sensor id.
inline constexpr std::size_t max_sensor_id_bytes = 64;
/// Extras per reading.
inline constexpr std::size_t max_extras = 16;
/// Bytes of an extra's name.
inline constexpr std::size_t max_extra_name_bytes = 32;
/// Readings per batch (one frame, one outbox record, one replay reply).
inline constexpr std::size_t max_batch_readings = 10'000;
/// Bytes of one frame's payload.
inline constexpr std::size_t max_payload_bytes = 4 * 1024 * 1024;
/// Sensors listed in one heartbeat.
inline constexpr std::size_t max_heartbeat_sensors = 4096;
/// Bytes of a publisher identity.
inline constexpr std::size_t max_publisher_id_bytes = 128;
/// Bytes of an endpoint announced in a heartbeat.
inline constexpr std::size_t max_endpoint_bytes = 256;
/// Timestamps must lie in (0, 9999-12-31T23:59:59.999999Z].
inline constexpr std::int64_t max_ts_us = 253'402'300'799'999'999;
/// The largest seq: seqs are 1 to 2^63 - 1, so that every store (PostgreSQL bigint, Java long,
/// ...) holds them as signed 64-bit integers. Decoders reject larger ones.
inline constexpr std::uint64_t max_seq = 9'223'372'036'854'775'807ULL;
/// Temperatures below this are rejected (degrees Celsius). A double, the bound as
/// proto/reading_v1.md writes it: a decoder compares the number in the precision it arrived in
/// (a float32 widened exactly to double), so a float64 -273.15 is accepted and -273.16 is not.
inline constexpr double min_temperature = -273.15;
/// Temperatures above this are rejected (degrees Celsius); compared as min_temperature.
inline constexpr double max_temperature = 1000.0;
}  // namespace limits

/// Returns why `id` is not a valid sensor id (1 to 64 bytes of UTF-8 without control
/// characters), or nothing when it is valid. Does not throw.
[[nodiscard]] std::optional<std::string> sensor_id_problem(std::string_view id);

/// Returns why `r` would be rejected by a decoder (bad sensor id, seq 0 or above
/// limits::max_seq, timestamp, an infinite or out-of-range temperature or humidity, nothing
/// measured and no extras, bad extras), or nothing when it is valid. A NaN temperature or
/// humidity is not_measured, which is valid as long as the reading carries another value.
/// Does not throw.
[[nodiscard]] std::optional<std::string> reading_problem(const Reading& r);

/// True when `s` is well-formed UTF-8 with no C0 control characters and no DEL.
[[nodiscard]] bool is_clean_utf8(std::string_view s) noexcept;

/// The current time as a Timestamp.
[[nodiscard]] Timestamp now() noexcept;

/// Formats `ts` as RFC 3339 UTC with microseconds: "2026-11-21T10:00:00.000000Z".
[[nodiscard]] std::string to_iso8601(Timestamp ts);

/// Parses RFC 3339 / ISO 8601 ("2026-11-21T10:00:00Z", fractional seconds up to 6 digits,
/// "Z" or "+hh:mm" offsets, a space instead of "T") or a plain integer of Unix seconds.
/// Returns nothing when `text` is not such a time.
[[nodiscard]] std::optional<Timestamp> parse_time(std::string_view text);

}  // namespace rill
