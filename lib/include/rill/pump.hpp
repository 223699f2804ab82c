// rill/pump.hpp: the publisher side's delivery loop. A SourcePump reads a Source on a thread of
// its own and publishes every measurement through a ReliablePublisher (outbox first, then the
// stream), keeping heartbeats and replays going, until a stop request or the end of the input.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "rill/metrics.hpp"
#include "rill/reliable.hpp"
#include "rill/source.hpp"
#include "rill/stop.hpp"

namespace rill {

/// Where a SourcePump stands, for its owner's hooks (e.g. systemd's STATUS line).
struct PumpStatus {
    /// The sensor the pump publishes as.
    std::string sensor_id;
    /// The newest seq the outbox assigned to the sensor (0: nothing published yet).
    std::uint64_t published_up_to = 0;
    /// Bytes of outbox files on disk.
    std::uint64_t outbox_bytes = 0;
    /// "sensor ID: published up to seq N, outbox B bytes".
    [[nodiscard]] std::string line() const;
};

/// Why SourcePump::run() stopped reading.
enum class PumpEnd {
    stop_requested,  ///< the StopFlag given to run() was requested
    end_of_input,    ///< the source ended (a CSV file) or `count` measurements were taken
};

/// How the linger after an ended input ended (PumpOptions::linger).
enum class LingerEnd {
    none,            ///< no linger: a stop request ended the run, or linger is 0
    caught_up,       ///< the subscribers the publisher knows of caught up (see PumpOptions::linger)
    bound,           ///< the linger bound passed first
    stop_requested,  ///< the StopFlag was requested while lingering
};

/// What SourcePump::run() did.
struct PumpSummary {
    /// The newest seq of the sensor in the outbox when run() returned.
    std::uint64_t published_up_to = 0;
    /// Measurements published by this run.
    std::uint64_t readings = 0;
    /// Why the pump stopped.
    PumpEnd end = PumpEnd::stop_requested;
    /// How the linger after an ended input ended.
    LingerEnd linger = LingerEnd::none;
};

/// Hooks through which a SourcePump tells its owner how it is doing. Each may be left empty.
/// All run on the thread that called SourcePump::run().
struct PumpHooks {
    /// Once, before the first read: the publisher is open and bound.
    std::function<void(const PumpStatus&)> ready;
    /// Every PumpOptions::status_interval while pumping.
    std::function<void(const PumpStatus&)> status;
    /// On every turn of the loop, lingering included. Returns when it wants to be called again
    /// (SteadyTime::max() for no particular time): the loop does not sleep past it. sensor-pub
    /// sends systemd's WATCHDOG=1 here.
    std::function<SteadyTime()> keep_alive;
    /// Once, when the loop stopped reading and before the final flush.
    std::function<void(PumpEnd, const PumpStatus&)> stopping;
};

/// Settings of a SourcePump.
struct PumpOptions {
    /// The sensor id stamped on every reading (1-64 bytes of UTF-8; see sensor_id_problem).
    std::string sensor_id;
    /// Measurements to take before the input counts as ended; 0: until stopped or the source
    /// ends.
    std::uint64_t count = 0;
    /// After the input ended (not after a stop request): the most time to keep heartbeats and
    /// the replay service going so that subscribers catch up by replay. 0: close at once.
    ///
    /// A finite input may be over before any subscriber's subscription took effect (PUB/SUB's
    /// slow joiner): its readings then reach subscribers only by replay, after a heartbeat
    /// announced them. So at the end the pump sends a heartbeat at once (announcing the newest
    /// seq of every sensor) and lingers until the subscribers it knows of have caught up, which
    /// it decides from what it can observe:
    ///  - a subscriber is subscribed to the stream now (StreamAudience::active_subscriptions:
    ///    one that joined and left, a store-sub killed say, is not known to have caught up);
    ///  - at least `caught_up_heartbeats` heartbeats went out after the end of the input and
    ///    after the latest subscription took effect (a subscriber asks for what it misses once
    ///    a heartbeat announced it);
    ///  - the replay service was asked nothing during the last `quiet_heartbeats` heartbeat
    ///    intervals, and no sensor's latest request stopped short of its newest seq
    ///    (ReplayActivity::open_sensors: a requester fetching in chunks is still at it).
    /// Or until `linger` passes, whichever comes first; one log line says which. Without
    /// heartbeats (interval 0) nothing is known and the linger lasts its bound. What this cannot
    /// see: a subscriber that has not joined (down, unreachable, starting later), and one that
    /// is subscribed but not taking in what it receives (its database down): both catch up from
    /// the outbox when the publisher runs again; `linger_full` waits for them the whole bound.
    std::chrono::nanoseconds linger{0};
    /// Linger the whole `linger` even after the subscribers caught up (a stop request still
    /// ends it): for subscribers that join late.
    bool linger_full = false;
    /// Heartbeats after the end of the input and after the latest subscription, at least, before
    /// the subscribers count as caught up (see linger).
    std::uint32_t caught_up_heartbeats = 3;
    /// Heartbeat intervals without a replay request, at least, before the subscribers count as
    /// caught up (see linger).
    std::uint32_t quiet_heartbeats = 2;
    /// How often the `status` hook is called.
    std::chrono::nanoseconds status_interval = std::chrono::seconds(1);
    /// Measurements the source thread may read ahead of publishing before it waits.
    std::size_t max_queued = 1'000'000;
    /// The component name of the pump's log lines ("published up to seq N", "done", "stopped
    /// by signal").
    std::string log_component = "pump";
    /// Where `rill_sensor_readings_total` is registered; nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
    /// Hooks for the owner (systemd, status pages).
    PumpHooks hooks;
};

/// Source -> ReliablePublisher: the loop sensor-pub runs, for use inside any service.
///
/// Threads: run() starts a thread that blocks in Source::next_batch() and hands measurements
/// over through a bounded queue; the calling thread stamps them with the sensor id, publishes
/// them (ReliablePublisher::publish: outbox append, then send) and services heartbeats and
/// delayed batches. Between duties it sleeps in poll(2) until measurements arrive, the next
/// duty (heartbeat, batch, status, keep-alive) is due or the stop flag is requested: no periodic
/// wake-ups. The source thread is joined before run() returns or throws.
///
/// Metrics: `rill_sensor_readings_total` (readings taken from the source and appended to the
/// outbox). The source and the publisher register their own.
class SourcePump {
  public:
    /// Takes the source and uses `publisher`, which must outlive the pump and is used only by
    /// run()'s thread while run() runs. Throws std::invalid_argument for a bad sensor id or a
    /// null source.
    SourcePump(PumpOptions options, std::unique_ptr<Source> source, ReliablePublisher& publisher);
    /// Joins nothing (run() joins its thread); destroys the source.
    ~SourcePump();
    SourcePump(const SourcePump&) = delete;
    SourcePump& operator=(const SourcePump&) = delete;

    /// Pumps until `stop` is requested or the input ends (the source returns nothing, or
    /// `count` measurements were taken); then calls the `stopping` hook, stops and joins the
    /// source thread, publishes what was already read (unless the source failed), flushes,
    /// logs "published up to seq N", after an ended input sends a heartbeat and lingers (see
    /// PumpOptions::linger; a stop request ends the linger) logging "subscribers caught up
    /// ..." or "linger bound of ... passed before ...", closes the publisher and logs "done" or
    /// "stopped by signal". Call once. Blocks until then. Throws what the source threw (after
    /// joining its thread), and what ReliablePublisher::publish/flush/close throw.
    PumpSummary run(const StopFlag& stop);

    /// The source, e.g. for describe() and counters(); thread-safe as Source says.
    [[nodiscard]] Source& source() noexcept;
    /// Where the pump stands now (read from the outbox). Thread-safe.
    [[nodiscard]] PumpStatus status() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
