// rill/store.hpp: rill::store, the PostgreSQL side of the pipeline (target rill::store, libpq).
//
//   Connection / Result   owning wrappers over PGconn / PGresult
//   StoreError            what failed, the SQLSTATE, and whether retrying can help
//   Backoff               exponential reconnect delays (rill::Backoff, rill/backoff.hpp)
//   migrate()             numbered schema migrations under an advisory lock
//   encode_copy_binary()  the COPY ... (FORMAT binary) payload for `readings`
//   SeqRanges             an interval set of sequence numbers (the "islands" stored per sensor)
//   PostgresSink          the rill::Sink that stores into `readings`: one binary COPY per batch
//                         with its rollups, a staging-table fallback for rows already stored
//   check_rollups()       proves readings_1m / _1h / _6h equal to the raw rows of a range
//   BatchWriter           a rill::SinkWriter over a PostgresSink: batches by size and time,
//                         stores every (sensor, seq) exactly once, survives restarts
//   maintain(), Maintainer  partitions ahead of time, retention (rill/retention.hpp)
//
// Nothing here includes libpq-fe.h or zmq; PGconn and PGresult are only forward-declared.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rill/backoff.hpp"
#include "rill/reading.hpp"
#include "rill/retention.hpp"
#include "rill/seq_ranges.hpp"
#include "rill/sink.hpp"

extern "C" {
struct pg_conn;
struct pg_result;
}

namespace rill::store {

// --- errors ------------------------------------------------------------------------------------

/// Whether an error can go away by reconnecting and retrying the same work.
enum class ErrorKind {
    transient,  ///< connection lost or refused, server shutting down or starting, out of
                ///< connections, serialization failure, deadlock: reconnect and retry
    permanent,  ///< bad SQL, permission denied, missing table, bad data: retrying won't help
};

/// A failed libpq operation. what() names the attempt and the target ("cannot COPY 10000
/// readings into readings: ..."), sqlstate() is the server's five-character code when there
/// was one ("" for client-side failures such as a lost connection). A rill::SinkError whose
/// transient() is kind() == ErrorKind::transient.
class StoreError : public rill::SinkError {
  public:
    /// An error of `kind` with the server's SQLSTATE ("" when none) and a message naming the
    /// attempt.
    StoreError(ErrorKind kind, std::string sqlstate, const std::string& message);
    /// Whether retrying can help.
    [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
    /// The server's five-character SQLSTATE, or "" for client-side failures.
    [[nodiscard]] const std::string& sqlstate() const noexcept { return sqlstate_; }

  private:
    ErrorKind kind_;
    std::string sqlstate_;
};

/// The kind of error a SQLSTATE denotes: classes 08 (connection), 53 (resources), 57P0x
/// (shutdown, crash, starting up), 40001 / 40P01 (serialization, deadlock) and "" (no server
/// answer) are transient; everything else is permanent.
[[nodiscard]] ErrorKind classify_sqlstate(std::string_view sqlstate) noexcept;

// --- owning wrappers ---------------------------------------------------------------------------

namespace detail {
struct ConnDeleter {
    void operator()(pg_conn* c) const noexcept;
};
struct ResultDeleter {
    void operator()(pg_result* r) const noexcept;
};
}  // namespace detail

/// How the server sends a result's fields: as text (the default), or in PostgreSQL's binary
/// send format (big-endian integers and IEEE floats, timestamptz as int64 microseconds since
/// 2000-01-01 UTC, text as its bytes), which neither side has to format or parse.
enum class ResultFormat { text, binary };

/// A query result; owns its PGresult. Move-only.
class Result {
  public:
    Result() = default;
    /// Takes ownership of `r` (may be null).
    explicit Result(pg_result* r) noexcept : r_(r) {}
    /// The number of rows (0 when empty).
    [[nodiscard]] int rows() const noexcept;
    /// The number of columns (0 when empty).
    [[nodiscard]] int columns() const noexcept;
    /// True when the field is SQL NULL.
    [[nodiscard]] bool is_null(int row, int col) const noexcept;
    /// The bytes of a field ("" for NULL): its text, or its binary form in a ResultFormat::binary
    /// result; valid while this Result lives.
    [[nodiscard]] std::string_view value(int row, int col) const noexcept;
    /// The number of rows an INSERT / COPY / UPDATE affected (0 when not applicable).
    [[nodiscard]] std::uint64_t affected() const noexcept;
    /// The PGresult, still owned by this Result.
    [[nodiscard]] pg_result* native() const noexcept { return r_.get(); }

  private:
    std::unique_ptr<pg_result, detail::ResultDeleter> r_;
};

/// One libpq connection; owns its PGconn. Move-only; moving out empties the source. All calls
/// block the calling thread until the server answers. Not thread-safe: one thread at a time.
class Connection {
  public:
    Connection() = default;  ///< empty; connected() is false

    /// Connects, blocking up to the `connect_timeout` of `conninfo` (10 s unless it sets one),
    /// with client_encoding UTF8 unless `conninfo` says otherwise; server notices go to the
    /// debug log. Throws StoreError (transient when the server can't be reached or refuses for
    /// now, permanent for e.g. a failed authentication or a missing database).
    [[nodiscard]] static Connection open(const std::string& conninfo);

    /// True when there is a connection and libpq still believes it is good.
    [[nodiscard]] bool connected() const noexcept;
    /// Closes the connection (no-op when empty). Never throws.
    void close() noexcept { c_.reset(); }

    /// Runs `sql` (one or more statements, no parameters). Returns the last result; throws
    /// StoreError naming `what` on any error.
    Result exec(const std::string& sql, std::string_view what);
    /// Runs one statement with text parameters ($1, $2 ...), its result fields sent in
    /// `format`; throws StoreError naming `what`.
    Result exec_params(const std::string& sql, const std::vector<std::string>& params,
                       std::string_view what, ResultFormat format = ResultFormat::text);
    /// Runs `copy_sql` (a COPY ... FROM STDIN) and streams `data` as its input. Returns the
    /// number of rows the COPY loaded; throws StoreError naming `what` (the server's SQLSTATE
    /// tells a unique violation, 23505, from other failures).
    std::uint64_t copy_in(const std::string& copy_sql, std::string_view data,
                          std::string_view what);

    /// The PGconn, still owned by this Connection (null when empty).
    [[nodiscard]] pg_conn* native() const noexcept { return c_.get(); }

  private:
    std::unique_ptr<pg_conn, detail::ConnDeleter> c_;
};

// --- reconnect backoff -------------------------------------------------------------------------

using rill::Backoff;
using rill::BackoffOptions;

// --- schema ------------------------------------------------------------------------------------

/// One numbered schema migration.
struct Migration {
    /// Applied in increasing order and recorded in schema_migrations.
    int version;
    /// A short description, e.g. "readings table".
    std::string_view name;
    /// The SQL it runs, in the migrate() transaction.
    std::string_view sql;
};

/// rill's migrations in order (1: the readings table and its indexes; 2: readings partitioned by
/// day, the 1-minute and 1-hour rollups, retention bookkeeping; 3: the 6-hour rollups, computed
/// from the 1-hour ones on an existing database).
[[nodiscard]] std::span<const Migration> migrations() noexcept;

/// Brings the schema up to date: in one transaction holding a transaction-scoped advisory lock
/// (so concurrent callers queue instead of racing), creates schema_migrations if missing and
/// applies every migration not yet recorded there, recording each. Idempotent; never drops
/// data. Returns the versions it applied (empty when the schema was current). Blocks; throws
/// StoreError (and rolls back) on failure.
std::vector<int> migrate(Connection& conn);

// --- binary COPY -------------------------------------------------------------------------------

/// The column list the encoder writes, in order.
inline constexpr std::string_view copy_columns = "sensor, seq, ts, temperature, humidity, extra";

/// Appends a complete COPY ... (FORMAT binary) payload for `readings` to `out`: the 19-byte
/// header, one 6-field tuple per reading (text, int8, timestamptz as int64 microseconds since
/// 2000-01-01, float4, float4, jsonb version 1 + a JSON object of the extras or NULL when there
/// are none), all big-endian, and the -1 trailer. Does not validate (see BatchWriter::add).
void encode_copy_binary(std::span<const Reading> readings, std::string& out);

/// The same payload piece by piece: the header, one tuple per reading, the trailer.
void append_copy_header(std::string& out);
void append_copy_tuple(const Reading& reading, std::string& out);
void append_copy_trailer(std::string& out);

// --- sequence ranges ---------------------------------------------------------------------------

using rill::SeqRange;
using rill::SeqRanges;

/// UTC days more than this many days ahead of the writer's clock get no partition of their own
/// on write: their rows wait in the default partition (a skewed sensor clock must not create
/// partitions years ahead) until rill_ensure_partitions() is called for their day.
inline constexpr int partition_ahead_days = 7;

// --- the PostgreSQL sink -----------------------------------------------------------------------

/// The rill::Sink that stores into the `readings` table (see rill::Sink for the contract).
///
/// open() connects and, the first time it succeeds, runs migrate() when asked to (logging each
/// migration applied). stored() lists the sensors by a loose index scan and loads each one's
/// islands (see store/postgres_sink.cpp for the queries and their cost), and counts every seq
/// up to rill_retired.seq of a sensor (raw rows retention dropped) as stored. write() first
/// makes sure the batch's UTC days (up to partition_ahead_days days ahead of the clock; later ones
/// go to the default partition) have a partition, then, in one transaction, sends the batch with
/// one binary COPY and adds it to the 1-minute, 1-hour and 6-hour rollups (aggregated
/// client-side: a COPY inserts all or nothing). When the database reports a unique violation
/// (rows written by someone else, or a commit whose answer was lost with the connection) it
/// writes the batch again through a temporary staging table and INSERT ... ON CONFLICT DO
/// NOTHING, rolling up only the rows inserted, in one transaction; it returns the rows that
/// were new. Errors are StoreError (a rill::SinkError). Not thread-safe: one owner thread.
class PostgresSink : public rill::Sink {
  public:
    /// A sink for `conninfo` (libpq connection string or postgresql:// URL); connects on open().
    explicit PostgresSink(std::string conninfo, bool migrate = true);
    /// Closes the connection.
    ~PostgresSink() override;
    PostgresSink(const PostgresSink&) = delete;
    PostgresSink& operator=(const PostgresSink&) = delete;

    /// Connects (blocking up to the conninfo's connect_timeout, 10 s unless set) and migrates
    /// once. Throws StoreError.
    void open() override;
    /// True while the connection is good.
    [[nodiscard]] bool is_open() const noexcept override;
    /// Drops the connection. Never throws.
    void close() noexcept override;
    /// The stored islands of every sensor whose id starts with `prefix`. Throws StoreError.
    [[nodiscard]] std::map<std::string, SeqRanges> stored(std::string_view prefix) override;
    /// One COPY and the rollups in one transaction, or the staging fallback on a unique
    /// violation; returns the rows inserted. Throws StoreError (the transaction rolled back).
    std::uint64_t write(std::span<const Reading> batch) override;
    /// Runs `SELECT 1`, then maintenance when enabled and due (see enable_maintenance). Throws
    /// StoreError when `SELECT 1` fails; a failed maintenance run is only logged and counted.
    void probe() override;
    /// From now on, runs a Maintainer with `options` on this sink's connection: at the first
    /// successful open(), then at the first probe(), write() or reopen after its interval has
    /// passed (the writer probes only while idle; under steady load the run happens before a
    /// batch, which then waits for it). Call before open(); a second call replaces the first
    /// (and its schedule).
    void enable_maintenance(const MaintenanceOptions& options);
    /// "PostgreSQL".
    [[nodiscard]] std::string name() const override;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// --- rollups ----------------------------------------------------------------------------------

/// One bucket where a rollup table and the raw readings disagree (see check_rollups).
struct RollupMismatch {
    std::string table;           ///< "readings_1m", "readings_15m", "readings_1h" or "readings_6h"
    std::string sensor;          ///< the sensor
    Timestamp bucket{};          ///< the bucket's start (UTC minute, 15 minutes, hour or 6 hours)
    std::uint64_t raw_n = 0;     ///< raw rows in the bucket
    std::uint64_t rollup_n = 0;  ///< the rollup's count (0 when it has no row)
    /// What differs, e.g. "n raw 60 rollup 59; t_max raw 21.5 rollup 21.25".
    std::string detail;
};

/// Proves the rollups exact for a time range still held raw: per sensor and bucket, compares
/// readings_1m, readings_15m, readings_1h and readings_6h (n, min, max exactly; sums within 1e-6
/// relative, or absolute below 1) with an aggregate of the raw rows of `readings` in [from, to),
/// widened to whole UTC hours (whole 6-hour buckets for readings_6h; nothing = unbounded). Buckets
/// whose day no partition of readings covers any more (retention dropped the raw rows) are skipped.
/// Returns the mismatches ordered by table, sensor and bucket, empty when the rollups are exact.
/// Reads every raw row of the range: one query per rollup table, seconds per million rows. Blocks;
/// throws StoreError.
[[nodiscard]] std::vector<RollupMismatch> check_rollups(Connection& conn,
                                                        std::optional<Timestamp> from = {},
                                                        std::optional<Timestamp> to = {});

/// One line for `m`: "readings_1m s1 2026-11-21T10:00:00.000000Z: n raw 60 rollup 59".
[[nodiscard]] std::string to_string(const RollupMismatch& m);

// --- the batch writer --------------------------------------------------------------------------

/// Where and how BatchWriter writes.
struct WriterOptions {
    std::string conninfo;            ///< libpq connection string or postgresql:// URL
    std::size_t batch_max = 10'000;  ///< a batch is cut at this many readings
    std::chrono::milliseconds flush_interval{200};  ///< ... or when its oldest is this old
    std::size_t pending_max = 500'000;  ///< readings held (e.g. while the database is down)
    BackoffOptions backoff{};           ///< delays between reconnect attempts
    bool migrate = true;                ///< run migrate() when opening
    /// Load stored ranges only for sensors whose id starts with this (an instance that
    /// subscribes to a sensor-id prefix needs no others). Readings of other sensors are still
    /// written correctly; their duplicates are then caught by the database, not in memory.
    std::string sensor_prefix;
    /// Where the writer registers its rill_store_* metrics; nullptr = default_registry().
    MetricsRegistry* registry = nullptr;

    /// The options of the SinkWriter a BatchWriter is.
    [[nodiscard]] rill::SinkWriterOptions writer_options() const;
};

using rill::ReconnectEvent;
using rill::WriterStats;

namespace detail {
/// Owns the PostgresSink of a BatchWriter at a stable address (constructed before the
/// SinkWriter base that refers to it).
struct PostgresSinkHolder {
    std::unique_ptr<PostgresSink> sink;  ///< never null until moved from
};
}  // namespace detail

/// A rill::SinkWriter over its own PostgresSink: writes readings to the `readings` table, each
/// (sensor, seq) exactly once (see SinkWriter for driving it, its failure handling and its
/// metrics, and PostgresSink for how batches are written). flush() and drain() throw StoreError
/// on a permanent error.
class BatchWriter : private detail::PostgresSinkHolder, public rill::SinkWriter {
  public:
    /// Connects, runs migrate() when options.migrate, and loads the stored islands of every
    /// sensor. Blocks; throws StoreError when the database can't be reached or the schema is
    /// wrong (no retry here: the owner decides whether to try again, see open_writer).
    explicit BatchWriter(const WriterOptions& options);

  private:
    BatchWriter(std::unique_ptr<PostgresSink> sink, rill::SinkWriter&& writer);
    friend BatchWriter open_writer(const WriterOptions&, const std::function<bool()>&,
                                   const std::function<void(const ReconnectEvent&)>&);
};

/// Constructs a BatchWriter, retrying transient failures (database down or starting up) after
/// options.backoff delays. Between attempts it sleeps in slices of at most 50 ms and gives up
/// when `keep_trying()` returns false (e.g. a shutdown flag), rethrowing the last error.
/// `observer`, when set, is told about every failed attempt instead of a log line. Blocks; throws
/// StoreError at once on a permanent failure.
[[nodiscard]] BatchWriter open_writer(
    const WriterOptions& options, const std::function<bool()>& keep_trying,
    const std::function<void(const ReconnectEvent&)>& observer = {});

}  // namespace rill::store

#include "rill/store_reader.hpp"
