// web-view: a map from sensor or publisher id with a bound, forgetting the least recently used
// entry first. What keeps a peer inventing ids from growing web-view's live tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

namespace rill::web {

/// At most `capacity` entries keyed by string. Not thread-safe (callers hold their own lock).
template <typename V>
class LruMap {
  public:
    /// Throws std::invalid_argument when `capacity` is 0.
    explicit LruMap(std::size_t capacity) : capacity_(capacity) {
        if (capacity_ == 0) throw std::invalid_argument("an LruMap holds at least one entry");
    }

    /// The value of `key`, marked most recently used; nullptr when absent.
    V* find(const std::string& key) {
        const auto it = index_.find(key);
        if (it == index_.end()) return nullptr;
        order_.splice(order_.begin(), order_, it->second);
        return &it->second->second;
    }
    /// The value of `key` without marking it used; nullptr when absent.
    [[nodiscard]] const V* peek(const std::string& key) const {
        const auto it = index_.find(key);
        return it == index_.end() ? nullptr : &it->second->second;
    }
    /// The value of `key`, marked most recently used; inserted as `V{}` when absent, after
    /// forgetting the least recently used entry when full (counted in evicted()).
    V& operator[](const std::string& key) {
        if (auto* v = find(key)) return *v;
        while (order_.size() >= capacity_) {
            index_.erase(order_.back().first);
            order_.pop_back();
            ++evicted_;
        }
        order_.emplace_front(key, V{});
        index_.emplace(key, order_.begin());
        return order_.front().second;
    }

    /// Calls `f(key, value)` for every entry, most recently used first, without marking any.
    template <typename F>
    void for_each(F&& f) const {
        for (const auto& [key, value] : order_)
            f(key, value);
    }

    /// Entries held now (at most the capacity).
    [[nodiscard]] std::size_t size() const noexcept { return order_.size(); }
    /// Entries forgotten to make room so far.
    [[nodiscard]] std::uint64_t evicted() const noexcept { return evicted_; }

  private:
    using Order = std::list<std::pair<std::string, V>>;
    std::size_t capacity_;
    Order order_;  // most recently used first
    std::unordered_map<std::string, typename Order::iterator> index_;
    std::uint64_t evicted_ = 0;
};

}  // namespace rill::web
