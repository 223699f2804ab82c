// rill/ingest.hpp: the subscriber side of the pipeline as one library loop.
//
//   IngestLoop   reliable subscriber -> backlog -> SinkWriter -> a Sink, with outage handling,
//                health, status hooks and a graceful drain: what store-sub runs, into any sink
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "rill/reliable.hpp"
#include "rill/sink.hpp"
#include "rill/stop.hpp"

namespace rill {

/// What an IngestLoop subscribes to and how it writes.
struct IngestOptions {
    /// The publishers' streams, prefixes, replay settings (ReliableSubscriber).
    ReliableSubscriberOptions subscriber;
    /// Batching, buffer bound, reopen backoff, metrics registry and prefix of the writer.
    SinkWriterOptions writer;
    /// health() fails when nothing was stored for this long while publishers are alive and
    /// readings wait to be stored.
    std::chrono::milliseconds stale_after{60'000};
    /// After the stop request: how long to keep writing what is held.
    std::chrono::milliseconds drain_timeout{10'000};
    /// While nothing is pending, check the sink this often (Sink::probe, or a reopen), so that
    /// a sink that went away between batches shows in health().
    std::chrono::milliseconds probe_interval{5'000};
    /// The log component of the loop's own lines ("store-sub" in store-sub).
    std::string log_component = "ingest";
};

/// Callbacks through which an IngestLoop tells its owner what it does, e.g. to systemd
/// (store-sub) or a supervisor of your own. All optional; all called on the thread in run().
struct IngestHooks {
    /// Once: the loop is running (the sink open and the stream subscribed), or the first
    /// attempt to open the sink failed and the loop waits for it (a state it rides out on its
    /// own). The text says which.
    std::function<void(const std::string& status)> ready;
    /// What the loop is doing now, about once a second ("stored N readings since start, P
    /// pending, database up") and while it waits for the sink.
    std::function<void(const std::string& status)> status;
    /// Often (at least every 100 ms) while the loop is alive, e.g. a watchdog ping.
    std::function<void()> keep_alive;
    /// Once, when the stop request was seen, with what the loop still does ("stopping on
    /// SIGTERM: writing 120 pending readings").
    std::function<void(const std::string& status)> stopping;
    /// Why the stop was requested, for the stopping text ("SIGTERM"); empty: "a stop request".
    std::function<std::string()> stop_reason;
};

/// What run() did.
struct IngestSummary {
    /// False when the stop came before the sink could be opened (nothing was received).
    bool opened = false;
    std::uint64_t stored = 0;   ///< readings the sink newly stored
    std::uint64_t batches = 0;  ///< batches written
    /// True when everything received was written before drain_timeout ran out.
    bool drained = false;
};

/// health(): whether the loop is doing its job, and if not why.
struct IngestHealth {
    bool ok = true;             ///< false while the sink is unreachable or writing is stale
    std::string detail = "ok";  ///< "ok", "database unreachable", "nothing stored for 1m ..."
};

/// Receives readings from publishers (ReliableSubscriber: gaps and everything not yet stored are
/// fetched by replay) and stores each one exactly once into a Sink (SinkWriter).
///
/// Contract: every reading a publisher's outbox holds is written to the sink once the sink
/// accepts it; a reading the sink stored (Sink::write returned) is never written again by this
/// loop, also across restarts (Sink::stored). While the sink fails, readings are held up to
/// writer.pending_max; beyond it the loop stops reading the stream and what the stream drops
/// meanwhile is replayed once the sink is back. Nothing is acknowledged to anyone: a reading
/// lost by a crash of this process before its batch was stored is replayed after the restart.
///
/// Threads: run() blocks the calling thread (the loop's only thread besides the
/// ReliableSubscriber's replay thread); health() may be called from any thread.
class IngestLoop {
  public:
    /// Keeps `sink` (which must outlive the loop), the options and the hooks; opens nothing yet.
    IngestLoop(IngestOptions options, Sink& sink, IngestHooks hooks = {});
    /// Releases what run() left (nothing when run() returned).
    ~IngestLoop();
    IngestLoop(const IngestLoop&) = delete;
    IngestLoop& operator=(const IngestLoop&) = delete;

    /// Opens the sink (retrying transient failures with writer.backoff, READY after the first
    /// failed attempt), subscribes, and stores what arrives until `stop` is requested; then
    /// stops reading, drains for up to drain_timeout and returns. Returns early, with
    /// opened = false, when stopped before the sink could be opened. Throws SinkError on a
    /// permanent sink failure, and what ReliableSubscriber throws (bad endpoints, sockets).
    IngestSummary run(const StopFlag& stop);

    /// Whether the loop is healthy now (see IngestHealth). Thread-safe.
    [[nodiscard]] IngestHealth health() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
