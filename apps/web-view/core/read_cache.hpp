// web-view: the latest-value views answered without a query per request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "lru.hpp"
#include "rill/metrics.hpp"
#include "rill/reading.hpp"
#include "rill/store_reader.hpp"

namespace rill::web {

/// A database answer and the live event id taken just before it was read: live events up to
/// that id may be missing from it, later ones are not in it.
template <typename T>
struct CachedAnswer {
    T value{};                   ///< what the database answered
    std::uint64_t event_id = 0;  ///< the live ring's newest id before the query
    std::chrono::steady_clock::time_point read_at{};  ///< when the query started
};

/// Keeps the database's answers for the latest-value views (the newest reading of each sensor,
/// first pages of readings) for at most `ttl`, so the page, /api/sensors and the first page of
/// /api/readings cost one query per `ttl` however many requests come; and applies the live
/// feed's readings on top of the newest-reading answer. What may be stale, and for how long:
/// an answer is at most `ttl` older than the request (measured from when its query started);
/// the newest reading of a sensor on the live feed replaces a cached one it supersedes
/// (live_reading_supersedes, docs/web-view.md), so with a live feed the cards and /api/sensors are
/// as fresh as the stream. A first page gets no live overlay. ttl 0 turns caching off (every call
/// queries).
///
/// Thread-safe. Concurrent callers of one expired entry wait for one query (the first caller's)
/// instead of each sending their own; a failed query is not cached (the next caller retries).
class ReadCache {
  public:
    using Latest = std::vector<rill::store::StoredReading>;
    using Page = rill::store::ReadingsPage;
    /// Reads the live ring's newest event id (called just before each query).
    using EventId = std::function<std::uint64_t()>;

    /// First pages of at most this many distinct queries are kept (the oldest goes first).
    static constexpr std::size_t max_pages = 64;
    /// Sensors whose live newest reading is kept at most: a new one beyond it makes the cache
    /// forget the sensor observed least recently (counted in `evictions` when given).
    static constexpr std::size_t max_live_sensors = 4096;

    ReadCache(std::chrono::milliseconds ttl, EventId event_id, Counter* evictions = nullptr);

    /// The newest reading of each sensor: the cached answer when younger than the ttl, else
    /// `load()`'s (which may throw; nothing is cached then), with newer live readings applied.
    [[nodiscard]] CachedAnswer<Latest> latest(const std::function<Latest()>& load);

    /// The page `q` answers: cached by its filters when it is a first page (no cursor), loaded
    /// every time otherwise.
    [[nodiscard]] CachedAnswer<Page> page(const rill::store::ReadingsQuery& q,
                                          const std::function<Page()>& load);

    /// A reading from the live feed: becomes its sensor's newest (over the cached answer) when
    /// it supersedes what is known (live_reading_supersedes). Never blocks on a query.
    void observe(const Reading& r);

    /// Queries the cache sent to the database so far (misses).
    [[nodiscard]] std::uint64_t loads() const noexcept;

  private:
    template <typename T>
    struct Slot {
        std::mutex loading;  // held while one caller queries
        std::optional<CachedAnswer<T>> answer;
    };
    template <typename T>
    CachedAnswer<T> get(Slot<T>& slot, const std::function<T()>& load);

    std::chrono::milliseconds ttl_;
    EventId event_id_;
    Slot<Latest> latest_;
    mutable std::mutex mutex_;  // guards live_, pages_, answers in slots, loads_
    LruMap<rill::store::StoredReading> live_{max_live_sensors};
    Counter* evictions_;
    std::map<std::string, std::shared_ptr<Slot<Page>>> pages_;
    std::uint64_t loads_ = 0;
};

}  // namespace rill::web
