// Internal to rill::store: where PostgreSQL's binary timestamps count from, for the COPY encoder
// (copy_binary.cpp) and the binary series reader (reader.cpp).
#pragma once

#include <cstdint>

namespace rill::store::detail {

/// Microseconds between the Unix epoch and PostgreSQL's, 2000-01-01 00:00:00 UTC: a timestamptz
/// in binary (send) format counts microseconds from the latter.
inline constexpr std::int64_t pg_epoch_offset_us = 946'684'800LL * 1'000'000LL;

}  // namespace rill::store::detail
