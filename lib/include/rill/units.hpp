// rill/units.hpp: durations and byte sizes as people write them in flags and config files.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace rill {

/// Parses a duration: a number with a unit, or several ("1h30m"): ns, us, ms, s, m, h, d, w,
/// y (365 days); fractions allowed ("1.5s"); "0" alone means zero. Throws std::invalid_argument
/// naming the text when it is not a duration, is negative or overflows (beyond about 292y).
[[nodiscard]] std::chrono::nanoseconds parse_duration(std::string_view text);

/// Parses a byte size: a number with an optional unit: B, K/KB/KiB, M/MB/MiB, G/GB/GiB,
/// T/TB/TiB (all binary: K = 1024). Throws std::invalid_argument.
[[nodiscard]] std::uint64_t parse_size(std::string_view text);

/// Formats a duration the way parse_duration reads it, with the largest exact unit: "5s",
/// "150ms", "2h", "90d", "5y".
[[nodiscard]] std::string format_duration(std::chrono::nanoseconds d);

}  // namespace rill
