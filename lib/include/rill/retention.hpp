// rill/retention.hpp: partitions made ahead of time and retention by dropping whole partitions
// (target rill::store, libpq).
//
//   RetentionPolicy     how long raw readings, 1-minute, 15-minute, 1-hour and 6-hour rollups are
//   kept maintain()          one maintenance run on a Connection: partitions ahead, expired ones
//                       dropped (raw ones retired in rill_retired first), one runner at a time
//   MaintenanceOptions  a policy, how often to run, the lock timeout, where to count
//   Maintainer          runs maintain() when due, logs what changed and keeps the
//                       rill_store_* maintenance metrics (PostgresSink uses one)
//
// Included by rill/store.hpp. Nothing here includes libpq-fe.h; docs/storage.md ("Retention",
// "Sizing a database") explains the defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rill/reading.hpp"

namespace rill {
class MetricsRegistry;
}

namespace rill::store {

class Connection;

/// How long each level of history is kept; a duration of 0 keeps that level forever. A
/// partition is dropped once its upper bound is at least the keep duration in the past, so a
/// level holds between `keep` and `keep` + one partition (a day of raw readings, a month of
/// 1-minute or 15-minute rollups, a year of 1-hour or 6-hour rollups). The defaults keep a year
/// of one sensor at 1 Hz well under 100 MB (docs/storage.md, "Sizing a database") and every
/// chart of web-view at its resolution: raw for the last 2 days, 1-minute rollups for 90 days,
/// 15-minute ones for a year (what a 7-day chart of 1000 points reads, anywhere in the last
/// year; about 6 MB per sensor and year), 1-hour ones for 5 years, 6-hour ones forever (about 220
/// kB per sensor and year: the level the longest charts read, too small to be worth dropping).
struct RetentionPolicy {
    /// Raw readings (table readings, one partition per UTC day).
    std::chrono::seconds raw = std::chrono::days{2};
    /// 1-minute rollups (readings_1m, one partition per UTC month).
    std::chrono::seconds minute = std::chrono::days{90};
    /// 15-minute rollups (readings_15m, one partition per UTC month).
    std::chrono::seconds fifteen_minute = std::chrono::days{365};
    /// 1-hour rollups (readings_1h, one partition per UTC year).
    std::chrono::seconds hour = std::chrono::days{5 * 365};
    /// 6-hour rollups (readings_6h, one partition per UTC year); 0 = forever.
    std::chrono::seconds six_hour = std::chrono::seconds{0};
};

/// What one maintain() did to one partitioned table.
struct TableMaintenance {
    /// "readings", "readings_1m", "readings_15m", "readings_1h" or "readings_6h".
    std::string table;
    /// Partitions created ahead of time.
    int created = 0;
    /// The partitions dropped, oldest first.
    std::vector<std::string> dropped;
    /// True when the table's lock was not granted within the lock timeout (writers or readers
    /// held it): what was not done is done by a later run.
    bool busy = false;
};

/// What one maintain() did.
struct MaintenanceReport {
    /// False when another session was running maintenance (it held the maintenance lock):
    /// nothing was done.
    bool ran = false;
    /// One entry per table: readings, readings_1m, readings_15m, readings_1h, readings_6h (empty
    /// when !ran).
    std::vector<TableMaintenance> tables;
    /// The number of sensors whose rill_retired entry was written (had rows in a dropped raw
    /// partition).
    std::size_t sensors_retired = 0;
    /// The oldest raw reading still held (nothing when there is none).
    std::optional<Timestamp> oldest_raw;

    /// True when a partition was created or dropped.
    [[nodiscard]] bool changed() const noexcept;
    /// One line for the log, e.g. "retention: dropped readings_20261101 (raw older than 3d),
    /// retired seqs of 4 sensors; created 8 partitions ahead"; "" when nothing changed.
    [[nodiscard]] std::string summary(const RetentionPolicy& policy) const;
};

/// The key of the session-level advisory lock a maintenance run holds
/// (pg_try_advisory_lock): the bytes of "rillmain" read as a big-endian int64. A session that
/// holds it pauses maintenance of every instance on that database.
inline constexpr long long maintenance_lock_key = 0x72696c6c6d61696eLL;

/// One maintenance run on `conn` (which must not be in a transaction), with `now` as the
/// current time:
///  1. takes the maintenance lock with pg_try_advisory_lock; when another session holds it,
///     returns at once with ran == false (several store-sub instances on one database: one
///     runs, the others skip);
///  2. creates the partitions ahead (rill_ensure_partitions): readings for the UTC days from
///     today to today + 7, readings_1m and readings_15m for this and next month, readings_1h
///     and readings_6h
///     for this and next year;
///  3. drops, for each table whose keep is not 0, every partition whose upper bound is <= now
///     - keep, oldest first, each in a transaction of its own that first locks the parent
///     table (ACCESS EXCLUSIVE, waiting at most `lock_timeout`, so writers wait for at most
///     that long and a busy table is left to the next run) and, for readings, raises each
///     sensor's rill_retired seq to the partition's greatest seq of it. Never the default
///     partition, never a DELETE;
///  4. reads the oldest raw reading left (one index probe per sensor) and releases the lock.
/// Blocks; throws StoreError on failures other than a lock timeout (the transaction of the
/// failing step is rolled back; what earlier steps did stays done).
[[nodiscard]] MaintenanceReport maintain(
    Connection& conn, const RetentionPolicy& policy, Timestamp now,
    std::chrono::milliseconds lock_timeout = std::chrono::seconds{3});

/// How a Maintainer runs maintain().
struct MaintenanceOptions {
    /// What is kept.
    RetentionPolicy keep{};
    /// The time between runs (the first run is due at once).
    std::chrono::seconds interval = std::chrono::hours{1};
    /// How long a run waits for a table's lock before leaving it to the next run.
    std::chrono::milliseconds lock_timeout = std::chrono::seconds{3};
    /// Where the metrics are registered; nullptr = default_registry().
    MetricsRegistry* registry = nullptr;
};

/// Runs maintain() every interval on a connection its owner lends it, logs one info line per run
/// that changed something (MaintenanceReport::summary) and one warning per failed run, and
/// counts: rill_store_maintenance_runs_total (runs that held the lock),
/// rill_store_maintenance_errors_total (failed runs), rill_store_maintenance_busy_total (tables
/// left to the next run after a lock timeout), rill_store_partitions_created_total{table} and
/// rill_store_partitions_dropped_total{table}, and the gauge
/// rill_store_oldest_raw_timestamp_seconds (Unix time of the oldest raw reading, 0 when none).
/// Not thread-safe: one owner thread.
class Maintainer {
  public:
    /// Registers the metrics; the first run is due at once.
    explicit Maintainer(MaintenanceOptions options);
    /// Nothing to close: the connection is the owner's.
    ~Maintainer();
    /// Moves the schedule and metrics; the moved-from one may only be destroyed or assigned.
    Maintainer(Maintainer&&) noexcept;
    /// Moves the schedule and metrics; the moved-from one may only be destroyed or assigned.
    Maintainer& operator=(Maintainer&&) noexcept;
    Maintainer(const Maintainer&) = delete;
    Maintainer& operator=(const Maintainer&) = delete;

    /// True when the interval has passed since the last run (or none ran yet).
    [[nodiscard]] bool due() const noexcept;
    /// Runs maintain(conn, keep, rill::now()) and schedules the next run an interval later,
    /// whatever the outcome. Throws only std::bad_alloc: a failure is logged and counted (a
    /// broken connection shows in the owner's next query). Returns the report (ran == false
    /// after a failure or when another session was running maintenance).
    MaintenanceReport run(Connection& conn);
    /// The options given.
    [[nodiscard]] const MaintenanceOptions& options() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill::store
