// rill/store_reader.hpp: the reading side of rill::store (target rill::store, libpq).
//
//   ConnectionPool   a bounded, thread-safe pool of Connections for request-serving threads
//   Reader           the queries over `readings`: newest reading per sensor, pages of readings
//                    (newest first, keyset cursor), time buckets (date_bin aggregates)
//
// Included by rill/store.hpp. Nothing here includes libpq-fe.h; errors are StoreError.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
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
    /// Set on every connection (statement_timeout); 0 leaves the server's default.
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

    /// Runs one statement with text parameters on a borrowed connection and returns its rows.
    /// When a pooled connection turns out broken (the server restarted since it was opened),
    /// the other idle ones are dropped too and the statement is tried once more on a fresh
    /// connection. Blocks up to the statement timeout. Throws StoreError naming `what` (see
    /// Connection::exec_params) or as acquire().
    [[nodiscard]] Result query(const std::string& sql, const std::vector<std::string>& params,
                               std::string_view what);

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

/// Which buckets Reader::series returns.
struct SeriesQuery {
    std::optional<std::string> sensor;  ///< only this sensor; every sensor when unset
    Timestamp from{};                   ///< the first bucket starts here (inclusive)
    Timestamp to{};                     ///< rows before this (exclusive)
    std::chrono::microseconds bucket{std::chrono::seconds{1}};  ///< bucket width (> 0)
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
    std::int64_t count = 0;  ///< rows in the bucket
};

// --- the reader --------------------------------------------------------------------------------

/// The read-only queries over `readings`, each one statement on a pooled connection. Every
/// call blocks until the server answers (at most the pool's statement timeout) and throws
/// StoreError: transient when the database cannot be reached (ConnectionPool::acquire, a lost
/// connection, a server shutting down), permanent for e.g. a missing table. Thread-safe (as
/// the pool is); the pool must outlive the reader.
class Reader {
  public:
    /// Reads through `pool`.
    explicit Reader(ConnectionPool& pool) noexcept : pool_(&pool) {}

    /// The newest reading of each sensor (by ts, then seq), at most `max_sensors` of them in
    /// sensor order; their `extra` is not read (empty). Walks the (sensor, ts desc) index with a
    /// loose index scan: one index probe per sensor, never a scan of the table.
    [[nodiscard]] std::vector<StoredReading> latest(std::size_t max_sensors = 500);

    /// The rows matching `q` after q.cursor, newest first (ts desc, sensor desc, seq desc), at
    /// most q.limit, and the cursor of the next page when more follow. Each sensor's newest
    /// rows come from the (sensor, ts desc) index and are merged, so a page costs
    /// O(sensors * limit), not a sort of the table.
    [[nodiscard]] ReadingsPage page(const ReadingsQuery& q);

    /// Buckets of width q.bucket over [q.from, q.to) with origin q.from, by sensor then time:
    /// avg/min/max of temperature and humidity and the row count, computed by PostgreSQL's
    /// date_bin. Empty buckets are left out.
    [[nodiscard]] std::vector<SeriesBucket> series(const SeriesQuery& q);

  private:
    ConnectionPool* pool_;
};

}  // namespace rill::store
