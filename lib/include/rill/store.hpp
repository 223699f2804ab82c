// rill/store.hpp: rill::store, the PostgreSQL side of the pipeline (target rill::store, libpq).
//
//   Connection / Result   owning wrappers over PGconn / PGresult
//   StoreError            what failed, the SQLSTATE, and whether retrying can help
//   Backoff               exponential reconnect delays (typed std::chrono options)
//   migrate()             numbered schema migrations under an advisory lock
//   encode_copy_binary()  the COPY ... (FORMAT binary) payload for `readings`
//   SeqRanges             an interval set of sequence numbers (the "islands" stored per sensor)
//   BatchWriter           batches readings by size and time, writes each batch with one binary
//                         COPY, stores every (sensor, seq) exactly once, survives restarts
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

#include "rill/reading.hpp"
#include "rill/seq_ranges.hpp"

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
/// was one ("" for client-side failures such as a lost connection).
class StoreError : public std::runtime_error {
  public:
    /// An error of `kind` with the server's SQLSTATE ("" when none) and a message naming the
    /// attempt.
    StoreError(ErrorKind kind, std::string sqlstate, const std::string& message);
    /// Whether retrying can help.
    [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
    /// True when kind() is ErrorKind::transient.
    [[nodiscard]] bool transient() const noexcept { return kind_ == ErrorKind::transient; }
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
    /// The text of a field ("" for NULL); valid while this Result lives.
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
    /// Runs one statement with text parameters ($1, $2 ...); throws StoreError naming `what`.
    Result exec_params(const std::string& sql, const std::vector<std::string>& params,
                       std::string_view what);
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

/// The delays of a Backoff.
struct BackoffOptions {
    std::chrono::milliseconds initial{100};  ///< the first delay after a failure
    std::chrono::milliseconds max{10'000};   ///< delays never grow past this
    double multiplier = 2.0;                 ///< each failure multiplies the delay by this
};

/// Exponential backoff: next_delay() returns initial, initial*m, initial*m^2 ... up to max;
/// reset() after a success starts again at initial.
class Backoff {
  public:
    /// Starts with no failures counted.
    explicit Backoff(BackoffOptions options = {}) noexcept : options_(options) {}
    /// Counts one more failure and returns the delay before the next try: initial *
    /// multiplier^(failures before), capped at max.
    [[nodiscard]] std::chrono::milliseconds next_delay() noexcept;
    /// Starts again at `initial` (after a success).
    void reset() noexcept { failures_ = 0; }
    /// Failures counted since construction or reset().
    [[nodiscard]] unsigned failures() const noexcept { return failures_; }

  private:
    BackoffOptions options_;
    unsigned failures_ = 0;
};

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

/// rill's migrations in order (version 1: the readings table and its indexes).
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
};

/// One reconnect attempt, as reported to BatchWriter::on_reconnect().
struct ReconnectEvent {
    unsigned attempt = 0;  ///< 1 for the first attempt after a failure
    /// Whether this attempt connected.
    bool succeeded = false;
    std::chrono::milliseconds next_delay{0};  ///< when it failed: the wait before the next try
    std::string error;                        ///< when it failed: why
};

/// What a BatchWriter has done since construction (a snapshot).
struct WriterStats {
    std::uint64_t readings_stored = 0;     ///< rows this writer inserted
    std::uint64_t batches = 0;             ///< batches committed
    std::uint64_t fallback_batches = 0;    ///< of which went through the staging table
    std::uint64_t duplicates_skipped = 0;  ///< dropped in memory: already stored or pending
    std::uint64_t duplicates_hit = 0;      ///< found stored by the database (fallback path)
    std::uint64_t invalid_rejected = 0;    ///< refused by add() as malformed
    std::uint64_t database_errors = 0;     ///< failed batch attempts and connects
    std::uint64_t reconnects = 0;          ///< successful reconnections after a failure
    /// Commit latency of the last batch.
    std::chrono::microseconds last_batch_latency{0};
    /// The longest commit latency of a batch.
    std::chrono::microseconds max_batch_latency{0};
    std::chrono::microseconds total_batch_latency{0};  ///< divide by batches for the mean
};

/// Writes readings to the `readings` table, each (sensor, seq) exactly once.
///
/// Driving it (one owner thread; nothing here starts threads or calls back on others):
///
///     BatchWriter w({.conninfo = url});
///     for (;;) {
///         wait for input until w.next_deadline() (or forever when it is empty);
///         for each reading: if (w.add(std::move(r)) == AddResult::full) stop consuming;
///         if (w.due()) w.flush();
///     }
///     w.drain(deadline);  // at shutdown
///
/// Exactly-once: the primary key (sensor, seq) is the truth. The writer keeps per sensor the
/// islands of seqs known to be stored (loaded at open, grown by each commit) and of seqs
/// pending, and add() drops readings in either. A batch is written with one COPY (its own
/// transaction). If the database still reports a unique violation (rows written by someone
/// else, or a commit whose answer was lost with the connection), that batch is retried through
/// a temporary staging table and INSERT ... ON CONFLICT DO NOTHING, counting duplicates_hit.
///
/// Failures: a transient error rolls the batch back and leaves it pending; the connection is
/// dropped and flush() retries after the backoff delay (next_deadline() says when). Readings
/// keep being accepted until pending_max, then add() returns AddResult::full. A permanent
/// error makes flush() throw StoreError with the batch still pending.
class BatchWriter {
  public:
    /// What add() did with a reading.
    enum class AddResult {
        accepted,   ///< queued for the next batch
        duplicate,  ///< already stored or already pending: dropped, counted
        invalid,    ///< malformed (see reading_problem) or seq > INT64_MAX: dropped, counted
        full,       ///< pending_max reached: NOT taken; flush, then offer it again
    };

    /// Connects, runs migrate() when options.migrate, and loads the stored islands of every
    /// sensor (see load_stored_ranges in store/batch_writer.cpp for the query and its cost).
    /// Blocks; throws StoreError when the database can't be reached or the schema is wrong
    /// (no retry here: the owner decides whether to try again).
    explicit BatchWriter(WriterOptions options);
    /// Closes the connection. Does not flush: readings still pending were never acknowledged
    /// (not committed), so the publisher replays them; call drain() first to write them.
    ~BatchWriter();
    BatchWriter(const BatchWriter&) = delete;
    BatchWriter& operator=(const BatchWriter&) = delete;
    /// Moves the open BatchWriter; the moved-from one may only be destroyed or assigned.
    BatchWriter(BatchWriter&&) noexcept;
    BatchWriter& operator=(BatchWriter&&) noexcept;  ///< a moved-from writer may only be
                                                     ///< destroyed or assigned to

    /// Takes one reading. Checks, in order: invalid, duplicate, full (so duplicates are dropped
    /// even while the buffer is full). Never touches the database; never throws except
    /// std::bad_alloc.
    [[nodiscard]] AddResult add(Reading reading);
    /// Offers readings in order until one comes back `full`; returns how many were consumed
    /// (accepted, duplicate or invalid). The rest should be offered again after a flush.
    [[nodiscard]] std::size_t add(std::span<const Reading> readings);

    /// True when flush() has work now: a full batch is pending or the oldest pending reading
    /// has waited flush_interval, and no reconnect delay is running.
    [[nodiscard]] bool due() const noexcept;
    /// When due() becomes true without further add() calls; nothing when nothing is pending.
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_deadline()
        const noexcept;

    /// Writes all pending readings in batches of at most batch_max, each committed on its own.
    /// Blocks while writing. Returns the number of readings committed by this call (including
    /// those the fallback found already stored). On a transient error it stops, keeps the
    /// failed batch and the rest pending, and returns; during a reconnect delay it returns 0 at
    /// once. A reconnect attempt blocks up to the connect_timeout of the conninfo (10 s unless
    /// set). Throws StoreError on a permanent error (the failed batch stays pending).
    std::size_t flush();

    /// Flushes until nothing is pending or `deadline` passes, sleeping through reconnect
    /// delays. Returns true when everything pending was written. Throws like flush().
    bool drain(std::chrono::steady_clock::time_point deadline);

    /// Checks the database while the writer is idle, so that connected() (and an owner's health
    /// check) notices a database that went away between batches: with a connection, runs
    /// `SELECT 1` (a transient failure drops the connection and starts the backoff); without
    /// one, tries to reconnect once its backoff delay has passed. Returns connected(). Blocks
    /// for a round trip, or a connect attempt (up to the conninfo's connect_timeout). Throws
    /// StoreError on a permanent failure.
    bool probe();

    /// Readings held and not yet committed, and the bound.
    [[nodiscard]] std::size_t pending() const noexcept;
    /// The bound on pending() (WriterOptions::pending_max).
    [[nodiscard]] std::size_t pending_max() const noexcept;
    /// pending() / pending_max(), 0 to 1.
    [[nodiscard]] double fill() const noexcept;
    /// True while the writer has a working connection (false after a failure until the next
    /// successful reconnect).
    [[nodiscard]] bool connected() const noexcept;

    /// The islands of seqs known to be stored for `sensor` (empty when none).
    [[nodiscard]] SeqRanges stored_ranges(std::string_view sensor) const;
    /// Every sensor known to have stored readings, in order.
    [[nodiscard]] std::vector<std::string> sensors() const;

    /// A snapshot of the counters.
    [[nodiscard]] WriterStats stats() const noexcept;

    /// Called on the owner thread, from flush()/drain(), after every reconnect attempt. While an
    /// observer is set the writer does not log the attempts itself (the observer reports them);
    /// the failure that started the outage is still logged.
    void on_reconnect(std::function<void(const ReconnectEvent&)> observer);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
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
