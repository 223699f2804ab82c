// web-view: the live event ring behind /events (Server-Sent Events).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rill::web {

/// One event: a monotonic id, its SSE type ("" = the default "message") and its data (one
/// line of JSON).
struct Event {
    std::uint64_t id = 0;
    std::string data;
    std::string type;
};

/// Formats an SSE frame: "id: ID\nevent: TYPE\ndata: DATA\n\n" (no event line when `type` is
/// empty). Each line of `data` becomes its own "data:" line, so any text is safe.
[[nodiscard]] std::string format_sse(std::uint64_t id, std::string_view type,
                                     std::string_view data);

/// Parses a Last-Event-ID header value; nothing when it is not a decimal event id.
[[nodiscard]] std::optional<std::uint64_t> parse_last_event_id(std::string_view value);

/// A bounded in-memory ring of the newest events, shared by every SSE client. Ids grow by one
/// per event from a base taken from the clock at construction (microseconds since the epoch), so
/// they keep growing across restarts and a browser resuming after a restart never mistakes new
/// events for old ones. Thread-safe: one thread publishes, any number wait.
class EventRing {
  public:
    explicit EventRing(std::size_t capacity = 4096);
    /// Starts ids after `base` (tests).
    EventRing(std::size_t capacity, std::uint64_t base);

    /// Appends an event of `type` ("" = the default "message") with the next id, wakes every
    /// waiter and returns the id.
    std::uint64_t publish(std::string data, std::string type = {});

    /// What a client that has seen everything up to `after` gets.
    struct Batch {
        std::vector<Event> events;  ///< events with id > after, oldest first
        bool gap = false;           ///< some events after `after` were already dropped
    };
    /// Returns the events after `after`; when there are none, blocks up to `timeout` for one
    /// (or until close()). Never throws except std::bad_alloc.
    [[nodiscard]] Batch wait_after(std::uint64_t after, std::chrono::milliseconds timeout);

    /// The id of the newest event (the base when there was none).
    [[nodiscard]] std::uint64_t last_id() const;
    /// Wakes every waiter; later waits return at once. Used at shutdown.
    void close();
    [[nodiscard]] bool closed() const;

  private:
    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Event> events_;
    std::uint64_t base_;
    std::uint64_t next_id_;
    bool closed_ = false;
};

}  // namespace rill::web
