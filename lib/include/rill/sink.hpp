// rill/sink.hpp: where an ingest loop stores readings, and the writer that batches into it.
//
//   SinkError   a failed sink operation, and whether reopening and retrying can help
//   Sink        the interface a store implements: open, what is stored, write a batch
//   SinkWriter  batches readings by size and time into a Sink, each (sensor, seq) exactly once,
//               reopening the sink with backoff when it fails; owns its metrics
//
// rill::store::PostgresSink (rill/store.hpp) is the PostgreSQL sink; docs/library.md shows a
// sink of your own.
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
#include "rill/seq_ranges.hpp"

namespace rill {

class MetricsRegistry;

/// A failed Sink operation. what() names the attempt and the target; transient() says whether
/// reopening the sink and retrying the same work can help (a lost connection, a full disk that
/// may be cleaned up) or not (bad configuration, a schema that does not fit).
class SinkError : public std::runtime_error {
  public:
    /// An error with `message`, transient or permanent.
    SinkError(const std::string& message, bool transient)
        : std::runtime_error(message), transient_(transient) {}
    /// Whether reopening and retrying can help.
    [[nodiscard]] bool transient() const noexcept { return transient_; }

  private:
    bool transient_;
};

/// Where readings are stored. One owner thread calls every member (a SinkWriter); nothing is
/// called concurrently. Every member that can fail throws SinkError (or a type derived from it);
/// after a transient error the writer calls close() and, later, open() again.
class Sink {
  public:
    virtual ~Sink() = default;

    /// Connects (or opens files), preparing whatever the sink needs (e.g. a schema). Called
    /// before anything else and again after close(). Blocks; throws SinkError.
    virtual void open() = 0;
    /// True while the sink believes it can store (open() succeeded, no failure since).
    [[nodiscard]] virtual bool is_open() const noexcept = 0;
    /// Lets go of the connection or files; is_open() is false afterwards. Never throws.
    virtual void close() noexcept = 0;

    /// Per sensor whose id starts with `prefix` ("" for all): the seqs durably stored. Called
    /// once, after the first successful open(). Readings of sensors it does not list are still
    /// handed to write(); the writer then learns what is stored from write()'s answers.
    /// Throws SinkError.
    [[nodiscard]] virtual std::map<std::string, SeqRanges> stored(std::string_view prefix) = 0;

    /// Stores `batch` atomically (all or nothing) and durably before returning. Returns how
    /// many readings were newly stored. Readings it already holds (a retry of a batch whose
    /// commit succeeded but whose answer was lost, or rows written by someone else) are
    /// skipped, never stored twice. Readings are valid (see reading_problem), seqs fit an
    /// int64, and a batch holds no (sensor, seq) twice. Throws SinkError; after a throw the
    /// writer assumes nothing of the batch is known to be stored and retries it later.
    virtual std::uint64_t write(std::span<const Reading> batch) = 0;

    /// A cheap liveness check while the writer is idle (e.g. `SELECT 1`), so that a store that
    /// went away between batches shows in health checks. Throws SinkError when it fails. The
    /// default does nothing.
    virtual void probe() {}

    /// What the sink stores into, for log lines ("PostgreSQL", "readings.log").
    [[nodiscard]] virtual std::string name() const = 0;
};

/// How a SinkWriter batches and retries.
struct SinkWriterOptions {
    std::size_t batch_max = 10'000;                 ///< a batch is cut at this many readings
    std::chrono::milliseconds flush_interval{200};  ///< ... or when its oldest is this old
    std::size_t pending_max = 500'000;              ///< readings held (e.g. while the sink is down)
    BackoffOptions backoff{};                       ///< delays between reopen attempts
    /// Load stored ranges only for sensors whose id starts with this (passed to Sink::stored).
    std::string sensor_prefix;
    /// Where the writer registers its metrics; nullptr = default_registry().
    MetricsRegistry* registry = nullptr;
    /// The prefix of the metric names: "rill_store" gives rill_store_readings_total,
    /// rill_store_batches_total ... (docs/operations.md lists them).
    std::string metrics_prefix = "rill_store";
};

/// One reopen attempt, as reported to SinkWriter::on_reconnect().
struct ReconnectEvent {
    unsigned attempt = 0;  ///< 1 for the first attempt after a failure
    /// Whether this attempt opened the sink.
    bool succeeded = false;
    std::chrono::milliseconds next_delay{0};  ///< when it failed: the wait before the next try
    std::string error;                        ///< when it failed: why
};

/// What a SinkWriter has done since construction (a snapshot).
struct WriterStats {
    std::uint64_t readings_stored = 0;     ///< readings the sink newly stored
    std::uint64_t batches = 0;             ///< batches committed
    std::uint64_t fallback_batches = 0;    ///< of which the sink found partly stored already
    std::uint64_t duplicates_skipped = 0;  ///< dropped in memory: already stored or pending
    std::uint64_t duplicates_hit = 0;      ///< found stored by the sink (batch size - stored)
    std::uint64_t invalid_rejected = 0;    ///< refused by add() as malformed
    std::uint64_t database_errors = 0;     ///< failed batch attempts, probes and opens
    std::uint64_t reconnects = 0;          ///< successful reopens after a failure
    /// Commit latency of the last batch.
    std::chrono::microseconds last_batch_latency{0};
    /// The longest commit latency of a batch.
    std::chrono::microseconds max_batch_latency{0};
    std::chrono::microseconds total_batch_latency{0};  ///< divide by batches for the mean
};

/// Writes readings into a Sink, each (sensor, seq) exactly once.
///
/// Driving it (one owner thread; nothing here starts threads or calls back on others):
///
///     SinkWriter w(sink, {});
///     for (;;) {
///         wait for input until w.next_deadline() (or forever when it is empty);
///         for each reading: if (w.add(std::move(r)) == AddResult::full) stop consuming;
///         if (w.due()) w.flush();
///     }
///     w.drain(deadline);  // at shutdown
///
/// Exactly once: the writer keeps per sensor the islands of seqs known to be stored (from
/// Sink::stored() at open, grown by each write) and of seqs pending, and add() drops readings
/// in either. A batch the sink partly had already (Sink::write returned less than its size) is
/// counted in duplicates_hit and logged.
///
/// Failures: a transient SinkError leaves the batch pending, closes the sink and schedules a
/// reopen after the backoff delay (next_deadline() says when). Readings keep being accepted up
/// to pending_max, then add() returns AddResult::full. A permanent SinkError is rethrown by
/// flush() with the batch still pending.
///
/// Metrics (in options.registry under options.metrics_prefix, "rill_store" by default):
/// _readings_total, _batches_total, _duplicates_skipped_total, _duplicates_hit_total,
/// _invalid_total, _database_errors_total, _reconnects_total, _batch_latency_seconds (a
/// histogram, one observation per batch), _pending_readings, _buffer_fill_ratio, _database_up.
/// Counters are updated as things happen; the gauges after every add, flush and probe.
class SinkWriter {
  public:
    /// What add() did with a reading.
    enum class AddResult {
        accepted,   ///< queued for the next batch
        duplicate,  ///< already stored or already pending: dropped, counted
        invalid,    ///< malformed (see reading_problem) or seq > INT64_MAX: dropped, counted
        full,       ///< pending_max reached: NOT taken; flush, then offer it again
    };

    /// Opens `sink` (unless it is open) and loads what it has stored (Sink::stored). `sink`
    /// must outlive the writer. Blocks; throws SinkError when the sink can't be opened (no
    /// retry here: see open_sink_writer).
    SinkWriter(Sink& sink, SinkWriterOptions options);
    /// Closes the sink. Does not flush: readings still pending were never acknowledged, so
    /// the publisher replays them; call drain() first to write them.
    ~SinkWriter();
    SinkWriter(const SinkWriter&) = delete;
    SinkWriter& operator=(const SinkWriter&) = delete;
    /// Moves the writer; the moved-from one may only be destroyed or assigned.
    SinkWriter(SinkWriter&&) noexcept;
    /// Moves the writer; the moved-from one may only be destroyed or assigned.
    SinkWriter& operator=(SinkWriter&&) noexcept;

    /// Takes one reading. Checks, in order: invalid, duplicate, full (so duplicates are dropped
    /// even while the buffer is full). Never touches the sink; never throws except
    /// std::bad_alloc.
    [[nodiscard]] AddResult add(Reading reading);
    /// Offers readings in order until one comes back `full`; returns how many were consumed
    /// (accepted, duplicate or invalid). The rest should be offered again after a flush.
    [[nodiscard]] std::size_t add(std::span<const Reading> readings);

    /// True when flush() has work now: a full batch is pending or the oldest pending reading
    /// has waited flush_interval, and no reopen delay is running.
    [[nodiscard]] bool due() const noexcept;
    /// When due() becomes true without further add() calls; nothing when nothing is pending.
    [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> next_deadline()
        const noexcept;

    /// Writes all pending readings in batches of at most batch_max. Blocks while writing.
    /// Returns the number of readings written by this call (including those the sink already
    /// had). On a transient error it stops, keeps the failed batch and the rest pending, and
    /// returns; during a reopen delay it returns 0 at once. Throws SinkError on a permanent
    /// error (the failed batch stays pending).
    std::size_t flush();

    /// Flushes until nothing is pending or `deadline` passes, sleeping through reopen delays.
    /// Returns true when everything pending was written. Throws like flush().
    bool drain(std::chrono::steady_clock::time_point deadline);

    /// Checks the sink while the writer is idle: when open, Sink::probe() (a transient failure
    /// closes it and starts the backoff); when closed, reopens it once the backoff delay has
    /// passed. Returns connected(). Throws SinkError on a permanent failure.
    bool probe();

    /// Readings held and not yet written.
    [[nodiscard]] std::size_t pending() const noexcept;
    /// The bound on pending() (SinkWriterOptions::pending_max).
    [[nodiscard]] std::size_t pending_max() const noexcept;
    /// pending() / pending_max(), 0 to 1.
    [[nodiscard]] double fill() const noexcept;
    /// True while the sink is open (false after a failure until the next successful reopen).
    [[nodiscard]] bool connected() const noexcept;

    /// The islands of seqs known to be stored for `sensor` (empty when none).
    [[nodiscard]] SeqRanges stored_ranges(std::string_view sensor) const;
    /// Every sensor known to have stored readings, in order.
    [[nodiscard]] std::vector<std::string> sensors() const;

    /// A snapshot of the counters.
    [[nodiscard]] WriterStats stats() const noexcept;

    /// Called on the owner thread, from flush(), drain() and probe(), after every reopen
    /// attempt. While an observer is set the writer does not log the attempts itself; the
    /// failure that started the outage is still logged.
    void on_reconnect(std::function<void(const ReconnectEvent&)> observer);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Constructs a SinkWriter, retrying transient failures (the store down or starting up) after
/// options.backoff delays. Between attempts it sleeps in slices of at most 50 ms and gives up
/// when `keep_trying()` returns false (e.g. a stop flag), rethrowing the last error.
/// `observer`, when set, is told about every failed attempt instead of a log line. Blocks;
/// throws SinkError at once on a permanent failure.
[[nodiscard]] SinkWriter open_sink_writer(
    Sink& sink, const SinkWriterOptions& options, const std::function<bool()>& keep_trying,
    const std::function<void(const ReconnectEvent&)>& observer = {});

}  // namespace rill
