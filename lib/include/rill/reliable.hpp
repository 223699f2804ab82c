// rill/reliable.hpp: the delivery contract as two library objects.
//
// ReliablePublisher: every reading goes to a durable outbox (which assigns its seq) before it
// is published; a replay service answers from that outbox; heartbeats announce the newest seq
// of every sensor the outbox knows, so subscribers see loss even at the tail of a stream and
// across restarts.
//
// ReliableSubscriber: receives the stream and, for every reading it did not get (gaps, loss at
// the tail, everything published before it started that its owner has not stored), asks the
// publisher's replay service, so that its owner receives every reading at least once, or
// learns that the publisher no longer has it. Owners deduplicate by (sensor, seq).
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include <functional>
#include <variant>

#include "rill/outbox.hpp"
#include "rill/replay.hpp"
#include "rill/seq_ranges.hpp"
#include "rill/stream.hpp"

namespace rill {

/// What ReliablePublisher opens and binds.
struct ReliablePublisherOptions {
    std::filesystem::path outbox_dir;  ///< required
    /// Fsync policy, bounds and drop callback of the outbox.
    OutboxOptions outbox;
    /// Where readings are published (entries without a prefix bind).
    std::string publish_endpoints = "@tcp://127.0.0.1:5556";
    /// Socket, batching, identity and heartbeat settings of the stream. Its replay_endpoint is
    /// overwritten with the announced replay endpoint.
    PublisherOptions publisher;
    /// Where the replay service binds (entries without a prefix bind); empty: no replay service.
    std::string replay_endpoints = "@tcp://127.0.0.1:5557";
    /// What heartbeats announce as the replay endpoint; empty: the first address the replay
    /// service bound (a wildcard host, "tcp://0.0.0.0:5557", is resolved by each subscriber to
    /// the host it reached the stream on).
    std::string announce_replay;
    SocketOptions replay_socket;        ///< e.g. CURVE server keys for the replay service
    zmq::context_t* context = nullptr;  ///< nullptr = default_context()
};

/// What a ReliablePublisher's replay service has been asked (ReliablePublisher::replay_activity).
struct ReplayActivity {
    /// Requests answered since construction.
    std::uint64_t requests = 0;
    /// Sensors whose latest request asked for a window that ends below the newest seq the
    /// outbox held when answering (from_seq + max_readings - 1 < newest): its requester will
    /// ask for the rest. A request reaching the newest seq closes its sensor.
    std::uint64_t open_sensors = 0;
};

/// Owns an Outbox, a Publisher and (unless disabled) a ReplayServer answering from the outbox.
///
/// Threads: publish(), flush(), service(), poll_once() and close() are for one owner thread
/// (the Publisher's socket is not thread-safe). The replay service runs on its own thread
/// (ReplayServer) and reads the outbox concurrently; the outbox is thread-safe.
class ReliablePublisher {
  public:
    /// Opens the outbox (recovering it: see Outbox), binds the stream and the replay service,
    /// and seeds the heartbeat with the newest seq of every sensor in the outbox. Throws what
    /// Outbox, Publisher and ReplayServer throw (std::system_error, std::runtime_error naming
    /// the endpoint, std::invalid_argument).
    explicit ReliablePublisher(ReliablePublisherOptions options);
    /// close(), swallowing errors.
    ~ReliablePublisher();
    ReliablePublisher(const ReliablePublisher&) = delete;
    ReliablePublisher& operator=(const ReliablePublisher&) = delete;

    /// Appends `batch` (readings of one sensor; their seq fields are overwritten) to the outbox
    /// as one record, then publishes it. The batch is validated and encoded once: the bytes
    /// written to the outbox are the bytes sent (Publisher::publish_payload). Blocks for the append
    /// (and its fsync, per policy). Returns the seqs assigned. Throws as Outbox::append (nothing is
    /// published then), and zmq::error_t when sending fails after the append: the readings stay in
    /// the outbox and reach subscribers by replay.
    SeqRange publish(std::span<Reading> batch);

    /// Sends due batches and heartbeats; returns the next duty's time (Publisher::service).
    SteadyTime service();
    /// Waits up to `timeout` or the next duty, then service().
    void poll_once(std::chrono::milliseconds timeout);
    /// Sends every pending batch now.
    void flush();
    /// Flushes, syncs the outbox (unless its policy is never) and stops the replay service.
    /// Idempotent. Throws std::system_error when the final sync fails.
    void close();

    /// The outbox, e.g. for newest() and metrics(); thread-safe, like every Outbox member.
    [[nodiscard]] Outbox& outbox() noexcept;
    /// The stream publisher, e.g. for bound() and newest(); same thread rules as publish().
    [[nodiscard]] Publisher& publisher() noexcept;
    /// The replay endpoint heartbeats announce ("" without a replay service).
    [[nodiscard]] const std::string& replay_endpoint() const noexcept;
    /// What the replay service has answered so far (see ReplayActivity). Thread-safe.
    [[nodiscard]] ReplayActivity replay_activity() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Readings of one sensor for the owner, in increasing seq order: from the stream, or fetched
/// by replay. May repeat readings delivered before (the owner deduplicates by seq).
struct Delivery {
    /// Readings of one sensor, seq strictly increasing.
    std::vector<Reading> readings;
    /// True when they came from the publisher's replay service, false when from the stream.
    bool replayed = false;
};

/// Why readings will never be delivered.
enum class LossKind {
    /// the publisher no longer has them (outbox full or too old), has no replay service, or
    /// no heartbeat names a publisher holding them
    dropped,
    /// the publisher's copy fails validation (proto/reading_v1.md), or its answers for them
    /// were invalid replay_invalid_limit times in a row
    invalid,
    skipped,  ///< the publisher reserved the seqs before a crash and never durably wrote them
};

/// Readings that will never be delivered (see LossKind and ReliableSubscriber). Reported once per
/// seq and process.
struct Lost {
    /// The sensor the readings belong to.
    std::string sensor;
    /// The seqs that will never be delivered.
    SeqRange range;
    /// "dropped by the publisher's outbox", "its publisher has no replay service", "no
    /// heartbeat lists sensor ...", "its publisher's copy is invalid: ...", ...
    std::string reason;
    LossKind kind = LossKind::dropped;  ///< why, for counting
};

using ReliableEvent =
    std::variant<Delivery, Lost, Gap, HeartbeatSeen, PublisherSilent, PublisherBack>;

/// Where ReliableSubscriber connects and how it asks for replays.
struct ReliableSubscriberOptions {
    /// The publishers' streams (entries without a prefix connect).
    std::string endpoints;
    /// Prefixes, liveness and socket options of the stream.
    SubscriberOptions subscriber;
    /// Options of the sockets to replay services (e.g. CURVE client keys).
    SocketOptions replay_socket;
    /// Readings per replay request, 1 to limits::max_batch_readings.
    std::uint32_t replay_chunk = 10'000;
    /// Per replay request: timeout and retries (replay requests are idempotent).
    CallOptions replay_call{std::chrono::milliseconds{5000}, 1};
    /// After a failed replay of a sensor, wait this long before asking again; each further
    /// failure in a row doubles the wait, up to replay_backoff_max. A success, or the sensor's
    /// publisher announcing another replay endpoint, resets it. Must be > 0.
    std::chrono::milliseconds replay_backoff{1000};
    /// The longest wait between failed replays of a sensor; >= replay_backoff.
    std::chrono::milliseconds replay_backoff_max{60'000};
    /// After this many invalid answers in a row to a request for the same seqs (an error
    /// response, or an answer that is not a valid reply: proto/replay_v1.md), the seqs asked for
    /// are reported Lost with kind invalid and never asked for again. Timeouts do not count (a
    /// publisher that is down may come back). At least 1.
    unsigned replay_invalid_limit = 5;
    /// Replayed readings fetched but not yet handed to the owner; the replay thread waits
    /// beyond this, so memory stays bounded when the owner is slow.
    std::size_t replay_buffer = 200'000;
};

/// What the owner has already stored durably for a sensor. Called on the owner thread, from
/// receive(), once per sensor when its publisher's heartbeat first lists it; everything from
/// seq 1 to the newest the heartbeat announces that is not in the returned set is fetched.
using StoredRanges = std::function<SeqRanges(const std::string& sensor)>;

/// What ReliableSubscriber has done since construction (stats()).
struct ReliableSubscriberStats {
    std::uint64_t gaps = 0;               ///< gaps reported by the stream
    std::uint64_t replay_requests = 0;    ///< requests sent to replay services
    std::uint64_t replay_failures = 0;    ///< requests that failed (timeout, error)
    std::uint64_t replayed_readings = 0;  ///< readings delivered from replay
    std::uint64_t lost_readings = 0;      ///< readings reported Lost (kinds dropped and invalid)
    std::uint64_t invalid_readings = 0;   ///< of lost_readings, those of kind invalid
    std::uint64_t skipped_readings = 0;   ///< seqs reported Lost with kind skipped (not lost)
    std::uint64_t wanted_readings = 0;    ///< gauge: readings still to fetch
};

/// A Subscriber plus replay: see the file comment.
///
/// Every seq it learns is missing (a Gap, or what a heartbeat announces that the owner has not
/// stored) ends delivered or reported Lost once:
/// - A sensor with a gap is asked for once a heartbeat lists it (so that a restarted publisher's
///   new replay endpoint is used). When no heartbeat lists it within silent_after_missed times
///   the longest heartbeat interval seen (at least 1 s each), a sensor that was announced before
///   is asked at its last announced endpoint, and one that never was is reported Lost (kind
///   dropped, "no heartbeat lists sensor ..."): no publisher is known to hold it. Seqs reported
///   Lost are never asked for, delivered from replay or reported again, even when a heartbeat
///   announces the sensor later.
/// - Failed requests are retried per sensor with a doubling backoff (replay_backoff up to
///   replay_backoff_max); replay_invalid_limit invalid answers in a row for the same seqs make
///   them Lost with kind invalid. Readings the publisher's answer holds but that fail validation
///   (ReplayResult::invalid) are Lost with kind invalid; seqs it says it skipped are Lost with kind
///   skipped (counted in rill_readings_skipped_total, not in rill_readings_lost_total).
/// - A heartbeat announcing another replay endpoint for a sensor withdraws the sensor's job at
///   the previous endpoint and asks the new one at once.
///
/// Threads: receive() and the accessors are for one owner thread. Replay requests run on lanes,
/// one thread per replay endpoint (at most 16; more endpoints wait for an idle lane), started on
/// demand and joined by the destructor: each lane sends one request at a time, so a slow or
/// broken endpoint delays only the sensors it serves. What the lanes fetch is handed to
/// receive(). The StoredRanges callback runs on the owner thread.
class ReliableSubscriber {
  public:
    /// Connects the stream (Subscriber). Throws as Subscriber, and std::invalid_argument for
    /// replay options out of their domain.
    ReliableSubscriber(ReliableSubscriberOptions options, StoredRanges stored);
    /// Stops the lanes and closes the sockets promptly: a replay request in flight is
    /// interrupted (the replay sockets have a ZeroMQ context of their own, which is shut down;
    /// inproc:// replay endpoints use the stream's context and are not interrupted).
    ~ReliableSubscriber();
    ReliableSubscriber(const ReliableSubscriber&) = delete;
    ReliableSubscriber& operator=(const ReliableSubscriber&) = delete;

    /// Returns the next event, waiting up to `timeout`: replayed readings and losses first,
    /// then the stream's events (readings as Delivery; Gap, HeartbeatSeen, PublisherSilent and
    /// PublisherBack passed on for information: gaps are repaired here, not by the owner).
    /// Nothing when no event arrived in time or a signal interrupted the wait. Throws
    /// zmq::error_t for socket failures (as Subscriber::receive) and whatever the StoredRanges
    /// callback throws; replay failures are logged, counted and retried, never thrown.
    [[nodiscard]] std::optional<ReliableEvent> receive(std::chrono::milliseconds timeout);

    /// Readings known missing and not yet fetched or reported lost, over all sensors.
    [[nodiscard]] std::uint64_t wanted() const noexcept;
    /// Counters since construction, and the wanted gauge (also sets rill_replay_wanted_readings).
    [[nodiscard]] ReliableSubscriberStats stats() const noexcept;
    /// The underlying Subscriber, for its accessors (expected(), malformed()); receive only through
    /// ReliableSubscriber::receive().
    [[nodiscard]] Subscriber& subscriber() noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
