// store-sub's retention flags: how long each level of history is kept and how often the
// maintenance (partitions ahead, dropping expired ones) runs. docs/storage.md, "Retention".
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>

#include "rill/store.hpp"

namespace rill::store_sub {

struct RetentionFlags {
    std::chrono::nanoseconds keep_raw;
    std::chrono::nanoseconds keep_1m;
    std::chrono::nanoseconds keep_15m;
    std::chrono::nanoseconds keep_1h;
    std::chrono::nanoseconds keep_6h;
    std::chrono::nanoseconds interval;
    /// The defaults of rill::store::RetentionPolicy and MaintenanceOptions.
    RetentionFlags();
    /// The maintenance to run, nothing when --maintenance-interval is 0.
    [[nodiscard]] std::optional<store::MaintenanceOptions> maintenance() const;
};

/// Adds --keep-raw, --keep-1m, --keep-15m, --keep-1h, --keep-6h and --maintenance-interval
/// (RILL_KEEP_RAW, RILL_KEEP_1M, RILL_KEEP_15M, RILL_KEEP_1H, RILL_KEEP_6H,
/// RILL_MAINTENANCE_INTERVAL).
void add_retention_flags(CLI::App& app, RetentionFlags& flags);

}  // namespace rill::store_sub
