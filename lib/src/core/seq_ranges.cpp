// SeqRanges: an interval set of sequence numbers.
#include <algorithm>
#include <limits>

#include "rill/seq_ranges.hpp"

namespace rill {

namespace {
constexpr std::uint64_t seq_max = std::numeric_limits<std::uint64_t>::max();
}

bool SeqRanges::contains(std::uint64_t seq) const noexcept {
    auto it = islands_.upper_bound(seq);
    if (it == islands_.begin()) return false;
    --it;
    return seq <= it->second;
}

void SeqRanges::insert(SeqRange r) {
    auto it = islands_.upper_bound(r.first);  // first island starting after r.first
    // Swallow the islands after `last` that overlap or touch it; returns the merged end.
    auto absorb = [&](std::uint64_t last) {
        while (it != islands_.end() && (last == seq_max || it->first <= last + 1)) {
            last = std::max(last, it->second);
            it = islands_.erase(it);
        }
        return last;
    };
    if (it != islands_.begin()) {
        auto prev = std::prev(it);
        if (r.first == 0 || prev->second >= r.first - 1) {
            // Overlaps or touches the island before: extend it in place (no allocation for
            // the common in-order case).
            prev->second = absorb(std::max(prev->second, r.last));
            return;
        }
    }
    const std::uint64_t last = absorb(r.last);
    islands_.emplace_hint(it, r.first, last);
}

void SeqRanges::erase(SeqRange r) {
    auto it = islands_.upper_bound(r.first);
    if (it != islands_.begin()) {
        auto prev = std::prev(it);
        if (prev->second >= r.first) {
            const std::uint64_t tail = prev->second;
            if (prev->first < r.first) {
                prev->second = r.first - 1;
            } else {
                islands_.erase(prev);
            }
            if (tail > r.last) {
                islands_.emplace_hint(it, r.last + 1, tail);
                return;
            }
        }
    }
    while (it != islands_.end() && it->first <= r.last) {
        const std::uint64_t tail = it->second;
        it = islands_.erase(it);
        if (tail > r.last) {
            islands_.emplace_hint(it, r.last + 1, tail);
            return;
        }
    }
}

std::vector<SeqRange> SeqRanges::ranges() const {
    std::vector<SeqRange> out;
    out.reserve(islands_.size());
    for (const auto& [first, last] : islands_)
        out.push_back({first, last});
    return out;
}

std::uint64_t SeqRanges::count() const noexcept {
    std::uint64_t n = 0;
    for (const auto& [first, last] : islands_) {
        const std::uint64_t size = last - first + 1;
        if (size == 0 || n > seq_max - size) return seq_max;  // [0, max] or overflow
        n += size;
    }
    return n;
}

std::optional<SeqRange> SeqRanges::front() const noexcept {
    if (islands_.empty()) return std::nullopt;
    return SeqRange{islands_.begin()->first, islands_.begin()->second};
}

std::vector<SeqRange> SeqRanges::missing_in(SeqRange range) const {
    std::vector<SeqRange> out;
    std::uint64_t next = range.first;  // the first seq of `range` not yet accounted for
    auto it = islands_.upper_bound(range.first);
    if (it != islands_.begin()) --it;
    for (; it != islands_.end() && it->first <= range.last; ++it) {
        if (it->second < next) continue;
        if (it->first > next) out.push_back({next, it->first - 1});
        if (it->second >= range.last) return out;
        next = it->second + 1;
    }
    out.push_back({next, range.last});
    return out;
}

std::vector<SeqRange> SeqRanges::gaps() const {
    std::vector<SeqRange> out;
    std::uint64_t next = 1;  // the first seq not yet accounted for
    for (const auto& [first, last] : islands_) {
        if (first > next) out.push_back({next, first - 1});
        if (last == seq_max) return out;
        next = std::max(next, last + 1);
    }
    out.push_back({next, seq_max});
    return out;
}

}  // namespace rill
