// rill/stream.hpp: readings over ZeroMQ. Publisher/Subscriber (PUB/SUB, topic = sensor id,
// prefix filtering, heartbeats, gap detection) and Pusher/Puller (PUSH/PULL work spreading).
//
// Wire: every message has two frames, [topic, payload]. A readings message travels under its
// sensor id with a codec batch as payload (rill/codec.hpp); a heartbeat travels under
// heartbeat_topic. See proto/reading_v1.md.
//
// Threading contract: none of these classes starts a thread. Each object owns one zmq socket,
// and zmq sockets are not thread-safe, so each object must be used by one thread at a time
// (it may move between threads with proper synchronisation). Time-driven work (delayed
// batches, heartbeats, silence detection) happens only inside calls the owner makes:
// Publisher::poll_once / service, Pusher::poll_once / service, Subscriber::receive.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "rill/codec.hpp"
#include "rill/metrics.hpp"
#include "rill/reading.hpp"
#include "rill/socket.hpp"

namespace rill {

using SteadyTime = std::chrono::steady_clock::time_point;

/// When a sending object turns queued readings into a frame. A sensor's pending readings are
/// sent as one frame as soon as one limit is reached; the defaults send each reading at once.
struct BatchOptions {
    std::size_t max_readings = 1;  ///< 1..limits::max_batch_readings
    /// The encoded size of a sensor's queued readings that triggers a send (the payload is
    /// that plus its envelope, at most 76 bytes).
    std::size_t max_bytes = 256 * 1024;
    /// The longest a reading waits for its batch to fill; 0 = no waiting. A delayed batch is
    /// sent by the next publish/poll_once/service/flush call after the delay has passed.
    std::chrono::milliseconds max_delay{0};
};

/// How a Publisher's socket, batches and heartbeats behave.
struct PublisherOptions {
    /// High-water marks, linger, CURVE keys, ...
    SocketOptions socket;
    /// When queued readings become a frame.
    BatchOptions batch;
    /// This publisher's identity, announced in heartbeats; empty = "<hostname>/<pid>".
    std::string identity;
    /// Where subscribers can ask for replays (announced as is; a wildcard host is resolved by
    /// the subscriber). Empty = no replay service. Can be changed later.
    std::string replay_endpoint;
    /// Heartbeat period; 0 disables heartbeats.
    std::chrono::milliseconds heartbeat_interval{1000};
    MetricsRegistry* metrics = nullptr;  ///< nullptr = default_registry()
    zmq::context_t* context = nullptr;   ///< nullptr = default_context()
};

/// What a Publisher's socket has seen of its subscribers, and the heartbeats sent since
/// (Publisher::audience). An owner with a finite stream uses it to tell when the subscribers it
/// knows of have had the chance to catch up (see SourcePump's linger).
struct StreamAudience {
    /// Subscribe messages received: every subscriber sends one per topic prefix when it
    /// connects and again when it reconnects, so this counts joins (not distinct subscribers).
    std::uint64_t subscriptions = 0;
    /// Subscriptions in effect now: subscribe messages minus unsubscribe messages (a subscriber
    /// that disconnects unsubscribes from each of its topics). 0: nobody is subscribed.
    std::uint64_t active_subscriptions = 0;
    /// Heartbeat rounds sent since construction (a round lists every sensor, in one message or,
    /// beyond limits::max_heartbeat_sensors, several).
    std::uint64_t heartbeats = 0;
    /// Heartbeat rounds sent after the latest subscribe message took effect: every subscriber
    /// that had joined by then was sent each of them (unless its high-water mark was reached).
    /// Equals `heartbeats` while no subscriber has joined.
    std::uint64_t heartbeats_since_subscription = 0;
};

/// A PUB socket publishing readings under their sensor id, plus heartbeats.
///
/// Owns its socket. Not thread-safe; never blocks except where stated (PUB drops messages
/// for a subscriber whose high-water mark is reached, inside zmq, without telling the sender;
/// subscribers see that loss as a Gap).
///
/// The socket is an XPUB with ZMQ_XPUB_VERBOSER, which is PUB on the wire (any SUB or XSUB
/// peer), and which also hands every (un)subscribe message to its owner: service(),
/// poll_once() and heartbeat() read them (heartbeat() before sending), so audience() tells
/// who is subscribed and which heartbeats went out after the latest subscriber joined.
class Publisher {
  public:
    /// Creates the socket and attaches `endpoints` (parse_endpoints; entries without a prefix
    /// bind). Throws std::invalid_argument for bad options or endpoints, std::runtime_error
    /// when a bind or connect fails.
    explicit Publisher(std::string_view endpoints, PublisherOptions options = {});
    ~Publisher();
    /// Moves the open Publisher; the moved-from one may only be destroyed or assigned.
    Publisher(Publisher&&) noexcept;
    /// Moves the open Publisher; the moved-from one may only be destroyed or assigned.
    Publisher& operator=(Publisher&&) noexcept;

    /// Queues `reading` in its sensor's batch and sends every batch (and the heartbeat) that
    /// is due. A reading
    /// whose seq is not above the previous one queued for its sensor first flushes that
    /// sensor's batch (batches hold strictly increasing seqs). Throws std::invalid_argument when
    /// the reading is invalid (reading_problem); nothing is queued then.
    void publish(const Reading& reading);
    /// publish() for each reading in order; throws before queueing anything when one is invalid.
    /// Each reading is validated and encoded once; batches are made of those bytes.
    void publish(std::span<const Reading> readings);
    /// Queues the readings of `payload`, a readings payload as encode_batch writes it (e.g. the
    /// record body Outbox::append returns), exactly as publish() would queue them, without
    /// decoding or encoding them again: their bytes go on the wire as they are, one frame per
    /// payload or split into batches as BatchOptions says. The readings are not validated
    /// again (the caller vouches that encode_batch wrote them); only the payload's envelope and
    /// the readings' boundaries are checked: std::invalid_argument when they are wrong, nothing
    /// of the payload is queued then.
    void publish_payload(std::string_view payload);
    /// Sends every pending batch now.
    void flush();
    /// Sends a heartbeat now (also restarts the heartbeat period).
    void heartbeat();

    /// Sends the batches whose delay has passed and the heartbeat when it is due. Returns the
    /// time of the next such duty (SteadyTime::max() when there is none). Does not block.
    SteadyTime service();
    /// Sleeps until the next duty or for `timeout`, whichever comes first, then service().
    /// What an owner thread calls in its loop when it has nothing else to wait on.
    void poll_once(std::chrono::milliseconds timeout);
    /// The time of the next duty (see service()).
    [[nodiscard]] SteadyTime next_deadline() const;

    /// Changes the replay endpoint the next heartbeats announce (empty: none). Throws
    /// std::invalid_argument when it is longer than limits::max_endpoint_bytes.
    void set_replay_endpoint(std::string endpoint);
    /// The identity heartbeats announce.
    [[nodiscard]] const std::string& identity() const noexcept;
    /// The addresses this publisher bound, resolved (port 0 becomes the real port).
    [[nodiscard]] const std::vector<std::string>& bound() const noexcept;
    /// Makes heartbeats announce at least `newest` for `sensor` without sending anything: what a
    /// restarted publisher does with the newest seq its outbox holds, so that subscribers see
    /// readings lost at the tail of the previous run. Throws std::invalid_argument for a bad id.
    void announce(std::string_view sensor, std::uint64_t newest);
    /// The newest seq sent or announced for `sensor` (what the next heartbeat announces).
    [[nodiscard]] std::optional<std::uint64_t> newest(std::string_view sensor) const;
    /// Subscriptions seen and heartbeats sent so far (see StreamAudience). Reads nothing from
    /// the socket: subscribe messages are taken in by service(), poll_once() and heartbeat().
    [[nodiscard]] StreamAudience audience() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// How a Pusher's socket and batches behave.
struct PusherOptions {
    /// High-water marks, linger, CURVE keys, ...
    SocketOptions socket;
    /// When queued readings become a frame.
    BatchOptions batch;
    /// How long sending one frame may wait for a puller to take it (no puller connected, or
    /// all at their high-water mark). A frame not taken in time stays queued, in order, and is
    /// retried by the next call; nothing is dropped.
    std::chrono::milliseconds send_timeout{1000};
    /// Where the stream counters go; nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
    /// The ZeroMQ context; nullptr = default_context().
    zmq::context_t* context = nullptr;
};

/// A PUSH socket sending the same frames as Publisher, spread round-robin over the connected
/// pullers. No heartbeats (each puller sees only part of a sensor's stream). Not thread-safe.
class Pusher {
  public:
    /// As Publisher's constructor; entries without a prefix bind.
    explicit Pusher(std::string_view endpoints, PusherOptions options = {});
    ~Pusher();
    /// Moves the open Pusher; the moved-from one may only be destroyed or assigned.
    Pusher(Pusher&&) noexcept;
    /// Moves the open Pusher; the moved-from one may only be destroyed or assigned.
    Pusher& operator=(Pusher&&) noexcept;

    /// Queues readings like Publisher::publish and sends the due frames, blocking up to
    /// send_timeout per frame. Returns true when nothing sendable is left waiting for a puller,
    /// false when a frame timed out (it stays queued). Throws std::invalid_argument for an
    /// invalid reading.
    [[nodiscard]] bool push(const Reading& reading);
    /// push() for each reading in order; throws before queueing anything when one is invalid.
    [[nodiscard]] bool push(std::span<const Reading> readings);
    /// Sends every pending batch; returns as push().
    bool flush();
    /// Sends due batches and retries queued frames; returns the next duty's time.
    SteadyTime service();
    /// Waits until the next duty or `timeout`, then service().
    void poll_once(std::chrono::milliseconds timeout);
    /// Frames waiting for a puller.
    [[nodiscard]] std::size_t queued_frames() const noexcept;
    /// The addresses this pusher bound, resolved.
    [[nodiscard]] const std::vector<std::string>& bound() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// --- receiving -------------------------------------------------------------------------------

/// Readings of one sensor from one frame, seq strictly increasing. The first `stale` of them
/// have a seq below the one the subscriber expected (duplicates or replays of readings it saw
/// or reported missing before); they are passed on, counted in
/// rill_stream_stale_readings_total, and never cause a gap. fresh() are the others.
struct ReadingBatch {
    /// The readings, seq strictly increasing.
    std::vector<Reading> readings;
    /// How many readings at the front are below the expected seq.
    std::size_t stale = 0;
    /// The readings after the stale ones.
    [[nodiscard]] std::span<const Reading> fresh() const noexcept {
        return std::span<const Reading>(readings).subspan(stale);
    }
};

/// Readings [from, to] of `sensor` (inclusive) were published but not received. Reported once.
struct Gap {
    /// The sensor with missing readings.
    std::string sensor;
    /// The first missing seq.
    std::uint64_t from = 0;
    /// The last missing seq (inclusive).
    std::uint64_t to = 0;
    /// The number of missing readings.
    [[nodiscard]] std::uint64_t count() const noexcept { return to - from + 1; }
    /// Member-wise equality.
    bool operator==(const Gap&) const = default;
};

/// A heartbeat arrived.
struct HeartbeatSeen {
    /// The heartbeat as decoded.
    Heartbeat heartbeat;
    /// The IP address the heartbeat came from ("127.0.0.1"); empty when zmq does not know it
    /// (ipc://, inproc://).
    std::string peer_address;
    /// heartbeat.replay_endpoint with a wildcard host replaced by peer_address
    /// (resolve_announced); empty when the publisher announces none.
    std::string replay_endpoint;
};

/// A publisher sent no heartbeat for SubscriberOptions::silent_after_missed of its intervals.
struct PublisherSilent {
    /// The silent publisher's identity.
    std::string publisher;
    std::chrono::milliseconds silent_for{0};  ///< time since its last heartbeat
};

/// A publisher reported silent sent a heartbeat again (reported before that HeartbeatSeen).
struct PublisherBack {
    /// The publisher's identity.
    std::string publisher;
};

using StreamEvent = std::variant<ReadingBatch, Gap, HeartbeatSeen, PublisherSilent, PublisherBack>;

/// How a Subscriber's socket, filters and silence detection behave.
struct SubscriberOptions {
    /// High-water marks, reconnect intervals, CURVE keys, ...
    SocketOptions socket;
    /// Sensor-id prefixes to receive; empty = every sensor. Heartbeats are always received.
    std::vector<std::string> prefixes;
    /// A publisher is silent after this many heartbeat intervals (its announced interval)
    /// without a heartbeat.
    unsigned silent_after_missed = 3;
    /// Where the stream counters go; nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
    /// The ZeroMQ context; nullptr = default_context().
    zmq::context_t* context = nullptr;
    /// Sensors tracked at most (>= 1). A new sensor beyond it makes the subscriber forget the
    /// one seen least recently (by reading, heartbeat or expect()), counted in
    /// rill_stream_sensors_evicted_total; a forgotten sensor is tracked again from its next
    /// reading, like a new one (no gap is reported across the time it was forgotten).
    std::size_t max_sensors = 65'536;
    /// Publishers (heartbeat identities) tracked at most (>= 1). A new one beyond it makes the
    /// subscriber forget the one whose last heartbeat is oldest, counted in
    /// rill_stream_publishers_evicted_total; it is never reported silent then.
    std::size_t max_publishers = 1'024;
    /// PublisherSilent events per minute at most; publishers going silent beyond it are counted
    /// (rill_stream_publishers_silent_total) but not reported one by one (nor their
    /// PublisherBack): one warning at the end of the minute says how many were not reported.
    unsigned max_silent_reports_per_minute = 10;
};

/// A SUB socket receiving readings and heartbeats, tracking per-sensor sequence numbers.
///
/// Gap contract: for each tracked sensor the subscriber knows the next expected seq. A reading
/// above it reports Gap{expected, seq-1} before its batch; a heartbeat announcing newest >=
/// expected reports Gap{expected, newest} (loss at the tail of a stream). Each missing seq is
/// reported exactly once. A sensor becomes tracked with its first reading (no gap is invented
/// before it) or with expect(). Malformed messages (not two frames, undecodable, topic and
/// payload disagreeing) are counted in rill_stream_malformed_frames_total{reason=DecodeErrc},
/// logged at most about once per 10 s, and skipped: they never reach the caller. A frame
/// declaring more than limits::max_payload_bytes + 64 KiB is refused by libzmq at its header:
/// that peer's connection is dropped (and reconnected) instead of buffering the frame.
///
/// Bounds: a peer inventing sensor or publisher ids cannot grow the subscriber's tables beyond
/// SubscriberOptions::max_sensors and max_publishers (the least recently seen entry goes
/// first, counted), nor make it report more than max_silent_reports_per_minute silences.
///
/// Owns its socket. Not thread-safe.
class Subscriber {
  public:
    /// Creates the socket, subscribes and attaches `endpoints` (entries without a prefix
    /// connect). Throws std::invalid_argument / std::runtime_error like Publisher.
    explicit Subscriber(std::string_view endpoints, SubscriberOptions options = {});
    ~Subscriber();
    /// Moves the open Subscriber; the moved-from one may only be destroyed or assigned.
    Subscriber(Subscriber&&) noexcept;
    /// Moves the open Subscriber; the moved-from one may only be destroyed or assigned.
    Subscriber& operator=(Subscriber&&) noexcept;

    /// Returns the next event, waiting up to `timeout` for one (0 = do not wait); nothing when
    /// none arrived in time, or early when a signal interrupted the wait (so that an owner
    /// loop can check its stop flag). Silence of publishers is detected inside this call.
    /// Throws only zmq::error_t for socket failures (e.g. the context was terminated).
    [[nodiscard]] std::optional<StreamEvent> receive(std::chrono::milliseconds timeout);

    /// Starts or resets tracking of `sensor`: the next reading expected is `next_seq` (>= 1).
    /// What a consumer does with the seq after the newest it has stored.
    void expect(const std::string& sensor, std::uint64_t next_seq);
    /// The next seq expected for `sensor`, or nothing when it is not tracked.
    [[nodiscard]] std::optional<std::uint64_t> expected(std::string_view sensor) const;
    /// Stops tracking `sensor`.
    void forget(std::string_view sensor);
    /// The sensors forgotten because the subscriber tracked max_sensors, since the last call,
    /// oldest first; for an owner that keeps per-sensor state of its own (a sensor tracked
    /// again from a later reading reports no gap for what it missed meanwhile: such an owner
    /// reconciles it). Holds at most max_sensors + limits::max_heartbeat_sensors names; older
    /// ones are dropped beyond that (they are counted in the metric all the same).
    [[nodiscard]] std::vector<std::string> take_forgotten();

    /// Malformed messages counted so far by this subscriber, per reason.
    [[nodiscard]] std::uint64_t malformed(DecodeErrc reason) const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// How a Puller's socket behaves.
struct PullerOptions {
    /// High-water marks, reconnect intervals, CURVE keys, ...
    SocketOptions socket;
    /// Where the stream counters go; nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
    /// The ZeroMQ context; nullptr = default_context().
    zmq::context_t* context = nullptr;
};

/// A PULL socket receiving the frames a Pusher sends. No gap tracking (each puller sees part of
/// the stream); malformed messages are counted and skipped, and oversized frames refused, as in
/// Subscriber. Not thread-safe.
class Puller {
  public:
    /// Entries without a prefix connect.
    explicit Puller(std::string_view endpoints, PullerOptions options = {});
    ~Puller();
    /// Moves the open Puller; the moved-from one may only be destroyed or assigned.
    Puller(Puller&&) noexcept;
    /// Moves the open Puller; the moved-from one may only be destroyed or assigned.
    Puller& operator=(Puller&&) noexcept;

    /// The readings of the next frame, waiting up to `timeout`; nothing when none arrived in
    /// time or when a signal interrupted the wait. Heartbeats arriving here are counted and
    /// skipped.
    [[nodiscard]] std::optional<std::vector<Reading>> receive(std::chrono::milliseconds timeout);
    /// Malformed messages counted so far by this puller, per reason.
    [[nodiscard]] std::uint64_t malformed(DecodeErrc reason) const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The stream counters of one socket kind in a registry, as one snapshot: what the
/// `rill_stream_*{socket=KIND}` metrics hold. Every Publisher (kind "pub"), Subscriber ("sub"),
/// Pusher ("push") and Puller ("pull") on that registry adds to the same counters.
struct StreamMetrics {
    /// Frames of readings sent.
    std::uint64_t frames_sent = 0;
    /// Readings sent.
    std::uint64_t readings_sent = 0;
    /// Bytes sent, topic and payload.
    std::uint64_t bytes_sent = 0;
    /// Heartbeats sent.
    std::uint64_t heartbeats_sent = 0;
    std::uint64_t frames_dropped = 0;  ///< frames the sending socket refused to queue
    /// Frames of readings received.
    std::uint64_t frames_received = 0;
    /// Readings received.
    std::uint64_t readings_received = 0;
    /// Bytes received, topic and payload.
    std::uint64_t bytes_received = 0;
    /// Heartbeats received.
    std::uint64_t heartbeats_received = 0;
    /// Gaps reported.
    std::uint64_t gaps = 0;
    std::uint64_t missing_readings = 0;  ///< readings in the gaps
    std::uint64_t stale_readings = 0;    ///< readings below the expected seq
    /// Publishers reported silent.
    std::uint64_t publishers_silent = 0;
    std::uint64_t malformed_frames = 0;  ///< over every DecodeErrc reason
};

/// Reads the StreamMetrics of socket kind `kind` ("pub", "sub", "push" or "pull") from
/// `registry` (default: default_registry()). Counters not registered yet read 0. Thread-safe.
[[nodiscard]] StreamMetrics stream_metrics(std::string_view kind,
                                           const MetricsRegistry* registry = nullptr);

}  // namespace rill
