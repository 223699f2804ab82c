// web-view: the live stream of readings, from publishers or store-sub relays.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "rill/reading.hpp"

namespace rill::web {

/// Subscribes to every topic on `endpoints` ("tcp://host:port" connects, "@tcp://..." binds)
/// and hands each decoded reading to `on_reading`, on the feed's own thread, in arrival order.
/// Messages that fail to decode go to `on_error` with the reason and are otherwise ignored;
/// heartbeats are ignored. Owns its thread and socket: the destructor stops and joins.
class LiveFeed {
  public:
    using OnReading = std::function<void(const Reading&)>;
    using OnError = std::function<void(const std::string&)>;

    /// Attaches to every endpoint before returning. Throws std::invalid_argument or
    /// std::runtime_error naming a bad endpoint.
    LiveFeed(const std::vector<std::string>& endpoints, OnReading on_reading, OnError on_error);
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
