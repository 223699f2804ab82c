// Internal to rill::store: the rollup math and SQL shared by both write paths of PostgresSink,
// and the per-connection cache of the partitions that exist. Levels: readings_1m (UTC minutes),
// readings_1h (UTC hours), readings_6h (6 hours from the epoch: 00, 06, 12, 18 UTC).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/store.hpp"

namespace rill::store::detail {

/// The SQL expression of the bucket of `column` (a timestamptz) at `width` ("1 minute",
/// "15 minutes", "1 hour", "6 hours"): date_trunc in UTC for a minute and an hour, date_bin from
/// the Unix epoch otherwise (the same buckets: every width divides a day, so they start at UTC
/// midnight too).
[[nodiscard]] std::string bucket_sql(std::string_view width, std::string_view column);

/// `SELECT sensor, bucket, n, t_sum, t_min, t_max, h_sum, h_min, h_max, t_n, h_n` of raw rows
/// (columns sensor, ts, temperature, humidity) per sensor and `width` (as bucket_sql): the one
/// definition of a rollup row from raw rows; the caller adds FROM and GROUP BY 1, 2. n counts
/// rows, t_n and h_n the non-NULL (measured) values; sums, minima and maxima skip NULL.
[[nodiscard]] std::string aggregate_raw(std::string_view width);

/// The statement that upserts the 1-minute, 15-minute, 1-hour and 6-hour rollups of the minute
/// aggregates a CTE named `mins` (sensor, bucket, n, t_sum, t_min, t_max, h_sum, h_min, h_max, t_n,
/// h_n) yields: `WITH <ctes>, mins AS (<mins_select>), m AS (INSERT INTO readings_1m ... ON
/// CONFLICT DO UPDATE adding), f AS (the same into readings_15m, grouped by 15 minutes), h AS (the
/// same into readings_1h, grouped by hour), q AS (the same into readings_6h, grouped by 6 hours)
/// <final_select>`: one statement, so every level counts exactly the rows the transaction inserted.
/// Rows are inserted sorted by (sensor, bucket), so concurrent writers lock rollup rows in one
/// order. `ctes` may be empty; otherwise it is a list of CTEs ending without a comma.
[[nodiscard]] std::string rollup_statement(std::string_view ctes, std::string_view mins_select,
                                           std::string_view final_select);

/// The hot path's statement over the client-side minute aggregates, as parameters $1..$11
/// (arrays of sensor, bucket as Unix seconds, n, t_sum, t_min, t_max, h_sum, h_min, h_max, t_n,
/// h_n).
[[nodiscard]] const std::string& upsert_minutes_sql();

/// The fallback path's statement: inserts rill_staging into readings ON CONFLICT DO NOTHING and
/// rolls up only the rows inserted; returns one row, the number of rows inserted.
[[nodiscard]] const std::string& insert_staged_sql();

/// The minute aggregates of `batch` (every reading counted: the batch was inserted whole), as
/// the eleven text array parameters of upsert_minutes_sql(), sorted by (sensor, bucket). A
/// not-measured value counts in n only; a minute with no measured temperature (humidity) has
/// t_sum 0 and NULL t_min and t_max (h_...).
[[nodiscard]] std::vector<std::string> minute_rollup_params(std::span<const Reading> batch);

/// What partitions of readings, readings_1m, readings_15m, readings_1h and readings_6h exist, as
/// loaded from rill_partitions(), and the calls to rill_ensure_partitions() that a batch needs.
class PartitionCache {
  public:
    /// Reloads the partitions of the five tables (one query). No-op (and nothing is ever
    /// ensured) when readings is not a partitioned table (e.g. a TimescaleDB hypertable).
    void load(Connection& conn);
    /// Forgets everything (after a reconnect, load() again).
    void clear() noexcept;
    /// Makes sure every UTC day of `batch` up to partition_ahead_days after `now`, and tomorrow,
    /// has a partition of readings, and their months one of readings_1m and readings_15m, their
    /// years one of readings_1h and readings_6h:
    /// calls rill_ensure_partitions (each call its own transaction) only for what the cache
    /// does not know, then reloads. Returns the number of partitions created. Throws StoreError.
    int ensure(Connection& conn, std::span<const Reading> batch, Timestamp now);

  private:
    using Range = std::pair<std::int64_t, std::int64_t>;  // [lo, hi) in Unix microseconds
    [[nodiscard]] static bool covers(const std::vector<Range>& ranges, std::int64_t lo,
                                     std::int64_t hi) noexcept;
    bool loaded_ = false;
    bool partitioned_ = false;
    std::int64_t loaded_day_ = 0;  // the UTC day (days since epoch) of the last load
    std::vector<Range> readings_, minutes_, quarters_, hours_, six_hours_;
};

}  // namespace rill::store::detail
