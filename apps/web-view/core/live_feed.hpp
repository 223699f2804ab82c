// web-view: the live stream of readings, received with rill::Subscriber.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rill/metrics.hpp"
#include "rill/reading.hpp"
#include "rill/socket.hpp"

namespace rill::web {

struct LiveFeedOptions {
    /// Stream endpoints (">tcp://host:port" or "tcp://host:port" connect, "@tcp://..." binds).
    std::vector<std::string> endpoints;
    /// Sensor-id prefixes to receive; empty = every sensor.
    std::vector<std::string> prefixes;
    /// A publisher is reported silent after this many of its heartbeat intervals without one.
    unsigned silent_after_missed = 3;
    MetricsRegistry* metrics = nullptr;  ///< nullptr = default_registry()
    /// Set: subscribe as a CURVE client of publishers holding that server key (docs/security.md).
    std::optional<CurveClientKeys> curve;
    /// Sensors the feed keeps track of at most (the least recently seen goes first, counted in
    /// rill_web_live_evicted_total{table="sensors"}); also the subscriber's max_sensors.
    std::size_t max_sensors = 4096;
    /// Publishers the feed keeps track of at most (rill_web_live_evicted_total
    /// {table="publishers"}); also the subscriber's max_publishers.
    std::size_t max_publishers = 1024;
};

/// How far ahead of web-view's clock a reading's timestamp may be and still hold its sensor's
/// card against readings with older timestamps.
inline constexpr std::chrono::minutes max_future_skew{5};

/// Whether a live reading (seq, ts) replaces the one shown for its sensor (shown_seq, shown_ts)
/// at time `now`: yes unless the shown one is at least as new by both seq and timestamp and its
/// timestamp is not more than max_future_skew ahead of `now`. So a duplicate is dropped, a
/// reading newer by seq or by time is shown, and a forged reading with a huge seq (or a time in
/// the future) holds the card only until the next real reading (docs/web-view.md).
[[nodiscard]] bool live_reading_supersedes(std::uint64_t seq, Timestamp ts, std::uint64_t shown_seq,
                                           Timestamp shown_ts, Timestamp now) noexcept;

/// A publisher stopped sending heartbeats, or started again.
struct PublisherStatus {
    std::string publisher;
    bool silent = false;
    /// The sensors the publisher announced in its last heartbeat (may be empty when it went
    /// silent before one arrived).
    std::vector<std::string> sensors;
};

/// Receives the stream with a rill::Subscriber on its own thread and hands each new reading to
/// `on_reading`, in arrival order: each reading that live_reading_supersedes the last one handed
/// on for its sensor (duplicates are dropped). A reading below the seq the subscriber expected
/// but newer by time (the sensor's seq was reset, or a forged seq above it arrived before) is
/// handed on and the subscriber's expectation is reset to follow it. Malformed messages are
/// counted by the library (rill_stream_malformed_frames_total) and logged at a limited rate;
/// gaps are counted (rill_stream_gaps_total) and otherwise ignored: web-view only shows what
/// arrives, store-sub repairs the table. Both callbacks run on the feed's thread.
///
/// Owns its thread and subscriber: the destructor stops and joins.
class LiveFeed {
  public:
    using OnReading = std::function<void(const Reading&)>;
    using OnPublisher = std::function<void(const PublisherStatus&)>;

    /// Creates the subscriber and attaches every endpoint before returning, then starts the
    /// thread. Throws std::invalid_argument or std::runtime_error naming a bad endpoint.
    LiveFeed(LiveFeedOptions options, OnReading on_reading, OnPublisher on_publisher = {});
    ~LiveFeed();
    LiveFeed(const LiveFeed&) = delete;
    LiveFeed& operator=(const LiveFeed&) = delete;

    /// Stops the thread (within ~100 ms) and joins it. Idempotent.
    void stop();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill::web
