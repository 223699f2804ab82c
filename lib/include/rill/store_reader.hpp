// rill/store_reader.hpp: the reading side of rill::store (target rill::store, libpq).
//
//   ConnectionPool   a bounded, thread-safe pool of Connections for request-serving threads
//   Reader           the queries over `readings`: newest reading per sensor, pages of readings
//                    (newest first, keyset cursor), time buckets (date_bin aggregates)
//
// Included by rill/store.hpp. Nothing here includes libpq-fe.h; errors are StoreError.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rill/reading.hpp"
#include "rill/store.hpp"

namespace rill::store {

// --- the pool ----------------------------------------------------------------------------------

/// Where and how a ConnectionPool connects.
struct PoolOptions {
    std::string conninfo;             ///< libpq connection string or postgresql:// URL
    std::size_t max_connections = 8;  ///< connections open at most (at least 1)
    /// How long acquire() waits for a free connection before giving up.
    std::chrono::milliseconds acquire_timeout{5000};
    /// After a failed connect, acquire() fails at once (no new attempt) for this long, so a
    /// database that is down costs the callers nothing.
    std::chrono::milliseconds connect_backoff{500};
    /// Set on every connection (statement_timeout); 0 leaves the server's default. Every
    /// pooled connection also runs with jit = off (short index walks: compiling would cost
    /// more than the statement).
    std::chrono::milliseconds statement_timeout{15'000};
    /// The application_name the server shows for these connections ("" keeps "rill").
    std::string application_name;
};

/// A bounded pool of Connections shared by threads. Connections are opened on demand (blocking
/// up to the conninfo's connect_timeout, 10 s unless it sets one), handed out one thread at a
/// time, returned when the Lease ends, and dropped when broken; after a failed connect, new
/// connects are refused for PoolOptions::connect_backoff. Thread-safe; never starts threads.
class ConnectionPool {
    struct Shared;

  public:
    /// A connection borrowed from the pool; gives it back when destroyed (kept when it is still
    /// connected and outside a transaction, closed otherwise). Move-only.
    class Lease {
      public:
        /// Takes over `other`'s connection; `other` gives nothing back.
        Lease(Lease&& other) noexcept;
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        /// Gives the connection back. Never throws.
        ~Lease();
        /// The borrowed connection.
        [[nodiscard]] Connection& operator*() noexcept { return conn_; }
        /// The borrowed connection.
        [[nodiscard]] Connection* operator->() noexcept { return &conn_; }

      private:
        friend class ConnectionPool;
        Lease(std::shared_ptr<Shared> pool, Connection conn) noexcept;
        std::shared_ptr<Shared> pool_;
        Connection conn_;
    };

    /// Stores the options. Connects lazily: never touches the database, never throws except
    /// std::bad_alloc.
    explicit ConnectionPool(PoolOptions options);
    /// Closes the idle connections; leases still out close theirs when they end.
    ~ConnectionPool();
    ConnectionPool(const ConnectionPool&) = delete;
    ConnectionPool& operator=(const ConnectionPool&) = delete;

    /// Borrows a connection: an idle one, else a new one while fewer than max_connections are
    /// open, else waits up to acquire_timeout for one to come back. Blocks. Throws StoreError
    /// (transient) "all N database connections are busy" after the timeout, "cannot connect to
    /// the database: ..." when connecting fails or failed within connect_backoff (permanent
    /// when the server refused for good, e.g. a failed authentication).
    [[nodiscard]] Lease acquire();

    /// Runs one statement with text parameters on a borrowed connection and returns its rows,
    /// their fields sent in `format`.
    /// When a pooled connection turns out broken (the server restarted since it was opened),
    /// the other idle ones are dropped too and the statement is tried once more on a fresh
    /// connection. Blocks up to the statement timeout. Throws StoreError naming `what` (see
    /// Connection::exec_params) or as acquire().
    [[nodiscard]] Result query(const std::string& sql, const std::vector<std::string>& params,
                               std::string_view what, ResultFormat format = ResultFormat::text);

    /// Nothing when `SELECT 1` succeeds on a pooled connection, else why it did not. Never
    /// throws.
    [[nodiscard]] std::optional<std::string> ping() noexcept;

    /// Connections open now (idle or lent out).
    [[nodiscard]] std::size_t open_connections() const noexcept;
    /// Connections open and idle now.
    [[nodiscard]] std::size_t idle_connections() const noexcept;

  private:
    std::shared_ptr<Shared> shared_;
};

// --- what the reader returns -------------------------------------------------------------------

/// One stored row of `readings`. A NULL value is NaN.
struct StoredReading {
    std::string sensor;      ///< the sensor id
    std::int64_t seq = 0;    ///< its sequence number
    Timestamp ts{};          ///< when it was taken
    double temperature = 0;  ///< degrees Celsius (NaN when NULL)
    double humidity = 0;     ///< percent relative humidity (NaN when NULL)
    std::string extra;       ///< the extras as JSON text (the jsonb column); empty when NULL
};

/// A keyset position in the newest-first order (ts desc, sensor desc, seq desc): the last row
/// of the previous page.
struct ReadingsCursor {
    Timestamp ts{};        ///< the row's time
    std::string sensor;    ///< the row's sensor
    std::int64_t seq = 0;  ///< the row's sequence number
    /// Field-wise equality.
    bool operator==(const ReadingsCursor&) const = default;
};

/// Which rows Reader::page returns.
struct ReadingsQuery {
    std::optional<std::string> sensor;     ///< only this sensor; every sensor when unset
    std::optional<Timestamp> from;         ///< ts >= from (inclusive)
    std::optional<Timestamp> to;           ///< ts < to (exclusive)
    long long limit = 100;                 ///< rows per page (at least 1)
    std::optional<ReadingsCursor> cursor;  ///< only rows strictly after this one
};

/// One page in newest-first order and where the next one starts.
struct ReadingsPage {
    std::vector<StoredReading> rows;     ///< at most ReadingsQuery::limit rows
    std::optional<ReadingsCursor> next;  ///< set when more rows follow: the last row's key
};

/// Where Reader::series reads from: the raw rows or one of the exact rollups the writer keeps
/// next to them (docs/storage.md).
enum class SeriesSource {
    raw,     ///< `readings`: any bucket width
    minute,  ///< `readings_1m`: bucket widths that are whole minutes
    /// `readings_15m`: bucket widths that are whole multiples of 15 minutes (from the epoch)
    fifteen_minutes,
    hour,  ///< `readings_1h`: bucket widths that are whole hours
    /// `readings_6h`: bucket widths that are whole multiples of 6 hours (from the epoch)
    six_hours,
};

/// The name of `s` as web-view's API shows it: "raw", "1m", "15m", "1h" or "6h".
[[nodiscard]] std::string_view to_string(SeriesSource s) noexcept;

/// The granularity of `s`: 0 for raw, one minute, 15 minutes, one hour, six hours.
[[nodiscard]] std::chrono::microseconds granularity(SeriesSource s) noexcept;

/// The bucket width Reader::series uses for `range` cut into at most `points` buckets: the
/// smallest width of the ladder 1s 2s 5s 10s 15s 30s 1m 2m 5m 10m 15m 30m 1h 2h 3h 6h 12h 1d 2d
/// 7d 14d 28d 56d 112d 224d 448d that is at least range / points (points 0 counts as 1). Round
/// widths make the buckets line up with the rollups' minutes and hours and with the clock.
[[nodiscard]] std::chrono::microseconds series_bucket_width(std::chrono::microseconds range,
                                                            std::size_t points) noexcept;

/// Which buckets Reader::series returns.
struct SeriesQuery {
    std::optional<std::string> sensor;  ///< only this sensor; every sensor when unset
    Timestamp from{};                   ///< the range's start (inclusive; aligned down)
    Timestamp to{};                     ///< the range's end (exclusive; aligned up)
    std::size_t points = 1000;          ///< buckets wanted at most over [from, to) (>= 1)
    /// Read from this source (a check, a test) instead of the one chosen; the width is raised
    /// to the source's granularity when it is finer.
    std::optional<SeriesSource> source;
};

/// The aggregates of one sensor's readings in one bucket. A value with no non-NULL input is
/// NaN.
struct SeriesBucket {
    std::string sensor;      ///< the sensor id
    Timestamp ts{};          ///< the bucket's start
    double t_avg = 0;        ///< mean temperature
    double t_min = 0;        ///< lowest temperature
    double t_max = 0;        ///< highest temperature
    double h_avg = 0;        ///< mean humidity
    double h_min = 0;        ///< lowest humidity
    double h_max = 0;        ///< highest humidity
    std::int64_t count = 0;  ///< rows in the bucket, whether they measured a quantity or not
};

/// What Reader::series answers: the buckets and how they were made.
struct Series {
    SeriesSource source = SeriesSource::raw;  ///< the table the buckets were computed from
    std::chrono::microseconds bucket{};       ///< the bucket width
    Timestamp from{};                   ///< the first bucket's start (query.from aligned down)
    Timestamp to{};                     ///< the last bucket's end (query.to aligned up)
    std::vector<SeriesBucket> buckets;  ///< by sensor, then time; empty buckets left out
};

// --- the reader --------------------------------------------------------------------------------

/// The read-only queries over `readings`, each one statement on a pooled connection. Every
/// call blocks until the server answers (at most the pool's statement timeout) and throws
/// StoreError: transient when the database cannot be reached (ConnectionPool::acquire, a lost
/// connection, a server shutting down), permanent for e.g. a missing table. Thread-safe (as
/// the pool is); the pool must outlive the reader.
class Reader {
  public:
    /// Reads through `pool`; series() keeps the partition bounds it read for `partitions_ttl`
    /// (0 = reads them for every series that needs them).
    explicit Reader(ConnectionPool& pool,
                    std::chrono::milliseconds partitions_ttl = std::chrono::seconds{5}) noexcept
        : pool_(&pool), partitions_ttl_(partitions_ttl) {}

    /// The newest reading of each sensor (by ts, then seq), at most `max_sensors` of them in
    /// sensor order; their `extra` is not read (empty). Walks the (sensor, ts desc) index with a
    /// loose index scan: one index probe per sensor, never a scan of the table.
    [[nodiscard]] std::vector<StoredReading> latest(std::size_t max_sensors = 500);

    /// The rows matching `q` after q.cursor, newest first (ts desc, sensor desc, seq desc), at
    /// most q.limit, and the cursor of the next page when more follow. Each sensor's newest
    /// rows come from the (sensor, ts desc) index and are merged, so a page costs
    /// O(sensors * limit), not a sort of the table.
    [[nodiscard]] ReadingsPage page(const ReadingsQuery& q);

    /// The readings of [q.from, q.to) in at most about q.points buckets per sensor, with
    /// avg/min/max of temperature and humidity and the row count per bucket, computed from the
    /// coarsest source that still gives the points, so the cost follows the points, not the
    /// range's length:
    ///  - the width is series_bucket_width(to - from, points); `from` is aligned down and `to`
    ///    up to a multiple of it (since the Unix epoch, UTC), so every bucket is whole and every
    ///    rollup row falls in exactly one bucket: counts, min and max are exact, and an average
    ///    is the sum over the count of the values measured (the rollups' t_n and h_n: a NULL,
    ///    not-measured, value counts in `count` but not in an average), the same as over the raw
    ///    rows; a quantity with no value measured in a bucket has NaN average, min and max;
    ///  - the source is `readings_6h` when the width is a multiple of 6 hours (a year in 1000
    ///    points: 12 h), `readings_1h` when whole hours, `readings_15m` when a multiple of 15
    ///    minutes (7 days in 1000 points: 15 min), `readings_1m` when whole minutes, the raw
    ///    rows otherwise;
    ///  - a source that no longer holds the range's start (retention dropped its partitions:
    ///    it holds from the oldest lower bound of its unbroken run of partitions up to the
    ///    newest) gives way to the next coarser one, and the width grows to that one's
    ///    granularity; when none holds it, `readings_6h` answers.
    /// One aggregate that walks the source's (sensor, time) index per sensor and, unless the
    /// source is `readings_6h` or was given, the partition bounds (a catalog query), which the
    /// reader keeps for its partitions_ttl: for that long after retention dropped a partition,
    /// a chart that starts in it may come out partial instead of from a coarser source. Throws
    /// StoreError as every call.
    [[nodiscard]] Series series(const SeriesQuery& q);

  private:
    // Since when each source holds its rows (Unix microseconds), from the cache or the catalog.
    std::array<std::int64_t, 5> held_from();

    ConnectionPool* pool_;
    std::chrono::milliseconds partitions_ttl_;
    std::mutex held_mutex_;  // guards the two below
    std::optional<std::chrono::steady_clock::time_point> held_at_;
    std::array<std::int64_t, 5> held_{};
};

}  // namespace rill::store
