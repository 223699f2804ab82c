// web-view: a small libpq connection pool and the read-only queries behind every route.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "params.hpp"
#include "rill/reading.hpp"

namespace rill::web {

/// Thrown when the database cannot be reached (down, restarting, pool exhausted). The HTTP
/// layer answers 503.
class DbUnavailable : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct PgConnDeleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct PgResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

/// A bounded pool of libpq connections shared by the HTTP worker threads. Connections are made
/// on demand, dropped when broken, and made again when the database is back; after a failed
/// connect, further attempts fail fast for a short while so a down database costs nothing.
/// Thread-safe.
class Database {
  public:
    /// `conninfo` is a libpq connection string or URL. Connects lazily: never throws here.
    explicit Database(std::string conninfo, std::size_t max_connections = 8);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    /// Runs one parameterized statement (PQexecParams, text parameters; nothing = NULL) and
    /// returns its rows. Blocks up to the statement timeout (15 s). Retries once on a fresh
    /// connection when a pooled one turned out broken. Throws DbUnavailable when the database
    /// cannot be reached, std::runtime_error naming the statement's error otherwise.
    [[nodiscard]] PgResult query(const std::string& sql,
                                 const std::vector<std::optional<std::string>>& params = {});

    /// Nothing when a trivial query succeeds, else why it did not. Never throws.
    [[nodiscard]] std::optional<std::string> ping() noexcept;

  private:
    PgConn acquire();
    void release(PgConn conn);

    std::string conninfo_;
    std::size_t max_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<PgConn> idle_;
    std::size_t open_ = 0;
    std::chrono::steady_clock::time_point retry_after_{};
    std::string last_error_;
};

/// The newest reading of one sensor.
struct Latest {
    std::string sensor;
    std::int64_t seq = 0;
    Timestamp ts{};
    double temperature = 0;
    double humidity = 0;
};

/// One row of `readings`.
struct Row {
    std::string sensor;
    std::int64_t seq = 0;
    Timestamp ts{};
    double temperature = 0;
    double humidity = 0;
    std::string extra;  ///< the jsonb as text; empty when NULL
};

/// One page in newest-first order and where the next one starts.
struct Page {
    std::vector<Row> rows;
    std::optional<Cursor> next;  ///< set when more rows follow
};

/// One date_bin bucket of one sensor.
struct Bucket {
    std::string sensor;
    Timestamp ts{};  ///< the bucket's start
    double t_avg = 0, t_min = 0, t_max = 0;
    double h_avg = 0, h_min = 0, h_max = 0;
    std::int64_t count = 0;
};

/// A statement and its parameters, as the query builders make them.
struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
};

/// Newest reading of every sensor (at most `max_sensors`, by sensor id), using the
/// (sensor, ts desc) index through a loose index scan. Throws as Database::query.
[[nodiscard]] Statement latest_statement(std::size_t max_sensors);
[[nodiscard]] std::vector<Latest> latest_per_sensor(Database& db, std::size_t max_sensors = 500);

/// The page of rows matching `q`, newest first (ts desc, sensor desc, seq desc), after
/// q.cursor. Each sensor's newest rows come from the (sensor, ts desc) index and are merged,
/// so a page costs O(sensors * limit), not a sort of the table.
[[nodiscard]] Statement readings_statement(const ReadingsQuery& q, long long fetch);
[[nodiscard]] Page readings_page(Database& db, const ReadingsQuery& q);

/// Buckets of width q.bucket() over [q.from, q.to) (origin q.from), per sensor, by sensor then
/// time: avg/min/max of temperature and humidity computed by PostgreSQL's date_bin.
[[nodiscard]] Statement series_statement(const SeriesQuery& q);
[[nodiscard]] std::vector<Bucket> series(Database& db, const SeriesQuery& q);

}  // namespace rill::web
