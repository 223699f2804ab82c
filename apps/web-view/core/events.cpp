#include "events.hpp"

#include <algorithm>
#include <charconv>

#include "rill/reading.hpp"

namespace rill::web {

std::string format_sse(std::uint64_t id, std::string_view type, std::string_view data) {
    std::string out = "id: " + std::to_string(id) + "\n";
    if (!type.empty()) {
        out += "event: ";
        out += type;
        out += '\n';
    }
    std::size_t start = 0;
    while (true) {
        const auto nl = data.find_first_of("\r\n", start);
        out += "data: ";
        out += data.substr(start, nl == std::string_view::npos ? nl : nl - start);
        out += '\n';
        if (nl == std::string_view::npos) break;
        start = nl + 1;
        if (data[nl] == '\r' && start < data.size() && data[start] == '\n') ++start;
    }
    out += '\n';
    return out;
}

std::optional<std::uint64_t> parse_last_event_id(std::string_view value) {
    std::uint64_t v = 0;
    if (value.empty() || value.size() > 20) return std::nullopt;
    const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc{} || p != value.data() + value.size()) return std::nullopt;
    return v;
}

EventRing::EventRing(std::size_t capacity)
    : EventRing(capacity, static_cast<std::uint64_t>(now().time_since_epoch().count())) {}

EventRing::EventRing(std::size_t capacity, std::uint64_t base)
    : capacity_(std::max<std::size_t>(capacity, 1)), base_(base), next_id_(base + 1) {}

std::uint64_t EventRing::publish(std::string data, std::string type) {
    std::uint64_t id;
    {
        std::lock_guard lock(mutex_);
        id = next_id_++;
        events_.push_back(Event{id, std::move(data), std::move(type)});
        if (events_.size() > capacity_) events_.pop_front();
    }
    cv_.notify_all();
    return id;
}

EventRing::Batch EventRing::wait_after(std::uint64_t after, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return closed_ || next_id_ - 1 > after; });
    Batch b;
    if (next_id_ - 1 <= after) return b;
    const std::uint64_t oldest = events_.empty() ? next_id_ : events_.front().id;
    // A client whose last id is older than the ring (or from before this process: below the
    // base) has missed events it cannot get back.
    b.gap = after + 1 < oldest;
    for (const auto& e : events_) {
        if (e.id > after) b.events.push_back(e);
    }
    return b;
}

std::uint64_t EventRing::last_id() const {
    std::lock_guard lock(mutex_);
    return next_id_ - 1;
}

void EventRing::close() {
    {
        std::lock_guard lock(mutex_);
        closed_ = true;
    }
    cv_.notify_all();
}

bool EventRing::closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
}

}  // namespace rill::web
