#include "read_cache.hpp"

#include <tuple>

#include "live_feed.hpp"

namespace rill::web {

namespace {

// The filters of a first page as one key.
std::string page_key(const rill::store::ReadingsQuery& q) {
    auto us = [](const std::optional<Timestamp>& t) {
        return t ? std::to_string(t->time_since_epoch().count()) : std::string("-");
    };
    return std::to_string(q.limit) + "|" + us(q.from) + "|" + us(q.to) + "|" +
           (q.sensor ? "=" + *q.sensor : std::string("*"));
}

// Whether the live reading `a` replaces `b` (a cached or stored one) for its sensor.
bool supersedes(const rill::store::StoredReading& a, const rill::store::StoredReading& b) {
    return live_reading_supersedes(static_cast<std::uint64_t>(a.seq), a.ts,
                                   static_cast<std::uint64_t>(b.seq), b.ts, rill::now());
}

}  // namespace

ReadCache::ReadCache(std::chrono::milliseconds ttl, EventId event_id, Counter* evictions)
    : ttl_(ttl), event_id_(std::move(event_id)), evictions_(evictions) {}

template <typename T>
CachedAnswer<T> ReadCache::get(Slot<T>& slot, const std::function<T()>& load) {
    auto fresh = [&](std::chrono::steady_clock::time_point now) -> std::optional<CachedAnswer<T>> {
        std::lock_guard lock(mutex_);
        if (slot.answer && now - slot.answer->read_at < ttl_) return slot.answer;
        return std::nullopt;
    };
    auto query = [&] {
        CachedAnswer<T> a;
        a.event_id = event_id_ ? event_id_() : 0;
        a.read_at = std::chrono::steady_clock::now();
        a.value = load();
        std::lock_guard lock(mutex_);
        ++loads_;
        return a;
    };
    if (ttl_ <= std::chrono::milliseconds{0}) return query();
    if (auto a = fresh(std::chrono::steady_clock::now())) return *a;
    std::lock_guard loading(slot.loading);
    // Another caller may have loaded it while this one waited.
    if (auto a = fresh(std::chrono::steady_clock::now())) return *a;
    auto a = query();
    std::lock_guard lock(mutex_);
    slot.answer = a;
    return a;
}

CachedAnswer<ReadCache::Latest> ReadCache::latest(const std::function<Latest()>& load) {
    auto a = get(latest_, load);
    std::lock_guard lock(mutex_);
    for (auto& row : a.value) {
        const auto* live = live_.peek(row.sensor);
        if (live != nullptr && supersedes(*live, row)) row = *live;
    }
    return a;
}

CachedAnswer<ReadCache::Page> ReadCache::page(const rill::store::ReadingsQuery& q,
                                              const std::function<Page()>& load) {
    if (q.cursor) return get(*std::make_shared<Slot<Page>>(), load);  // never kept
    std::shared_ptr<Slot<Page>> slot;
    {
        std::lock_guard lock(mutex_);
        const auto key = page_key(q);
        auto it = pages_.find(key);
        if (it == pages_.end()) {
            if (pages_.size() >= max_pages) {
                // Make room: drop the entry read longest ago (one never read first).
                auto oldest = pages_.begin();
                for (auto i = pages_.begin(); i != pages_.end(); ++i) {
                    const auto& a = i->second->answer;
                    const auto& o = oldest->second->answer;
                    if (!a || (o && a->read_at < o->read_at)) oldest = i;
                }
                pages_.erase(oldest);
            }
            it = pages_.emplace(key, std::make_shared<Slot<Page>>()).first;
        }
        slot = it->second;
    }
    return get(*slot, load);
}

void ReadCache::observe(const Reading& r) {
    rill::store::StoredReading row{.sensor = r.sensor,
                                   .seq = static_cast<std::int64_t>(r.seq),
                                   .ts = r.ts,
                                   .temperature = r.temperature,
                                   .humidity = r.humidity,
                                   .extra = {}};
    std::lock_guard lock(mutex_);
    if (ttl_ <= std::chrono::milliseconds{0}) return;
    if (auto* known = live_.find(r.sensor)) {
        if (supersedes(row, *known)) *known = std::move(row);
        return;
    }
    const auto before = live_.evicted();
    live_[r.sensor] = std::move(row);
    if (evictions_ != nullptr) evictions_->inc(live_.evicted() - before);
}

std::uint64_t ReadCache::loads() const noexcept {
    std::lock_guard lock(mutex_);
    return loads_;
}

}  // namespace rill::web
