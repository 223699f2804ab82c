// Exposes cumulative counts from a library's stats snapshot as Prometheus counters.
#pragma once

#include <cstdint>

#include "rill/metrics.hpp"

namespace rill::app {

/// Moves a cumulative count (e.g. OutboxMetrics::fsyncs, WriterStats::readings_stored) into a
/// Counter: each to() adds what grew since the last call. Not thread-safe: call it from one
/// thread at a time.
struct CounterSync {
    Counter& counter;
    std::uint64_t last = 0;
    void to(std::uint64_t now) {
        if (now > last) counter.inc(now - last);
        last = now;
    }
};

}  // namespace rill::app
