// web-view: the live stream of readings, received with rill::Subscriber.
#pragma once

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
};

/// A publisher stopped sending heartbeats, or started again.
struct PublisherStatus {
    std::string publisher;
    bool silent = false;
    /// The sensors the publisher announced in its last heartbeat (may be empty when it went
    /// silent before one arrived).
    std::vector<std::string> sensors;
};

/// Receives the stream with a rill::Subscriber on its own thread and hands each new reading to
/// `on_reading`, in arrival order. Readings with a seq below the one expected for their sensor
/// (duplicates) are dropped, as the readings table would drop them. Malformed messages are
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
