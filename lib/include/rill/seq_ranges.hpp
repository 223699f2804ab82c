// rill/seq_ranges.hpp: ranges and sets of sequence numbers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace rill {

/// A closed range of sequence numbers [first, last], first <= last.
struct SeqRange {
    /// The first seq of the range.
    std::uint64_t first = 0;
    /// The last seq of the range (inclusive).
    std::uint64_t last = 0;
    /// The number of seqs in the range.
    [[nodiscard]] std::uint64_t size() const noexcept { return last - first + 1; }
    /// Member-wise equality.
    bool operator==(const SeqRange&) const = default;
};

/// A set of sequence numbers kept as disjoint, non-adjacent closed ranges ("islands").
/// contains() and insert() cost O(log islands); in-order inserts extend the last island.
class SeqRanges {
  public:
    /// True when `seq` is in the set.
    [[nodiscard]] bool contains(std::uint64_t seq) const noexcept;
    /// Adds one seq.
    void insert(std::uint64_t seq) { insert(SeqRange{seq, seq}); }
    void insert(SeqRange range);  ///< requires first <= last
    /// Removes one seq.
    void erase(std::uint64_t seq) { erase(SeqRange{seq, seq}); }
    void erase(SeqRange range);  ///< requires first <= last
    /// True when the set holds no seq.
    [[nodiscard]] bool empty() const noexcept { return islands_.empty(); }
    /// The number of disjoint ranges.
    [[nodiscard]] std::size_t island_count() const noexcept { return islands_.size(); }
    /// The number of seqs in the set (saturating at UINT64_MAX).
    [[nodiscard]] std::uint64_t count() const noexcept;
    /// The islands in ascending order.
    [[nodiscard]] std::vector<SeqRange> ranges() const;
    /// The first island, or nothing when empty.
    [[nodiscard]] std::optional<SeqRange> front() const noexcept;
    /// What is missing for a complete run from 1: the holes before the first island and between
    /// islands, then one open-ended range {last + 1, UINT64_MAX} (or {1, UINT64_MAX} when
    /// empty). These are the ranges to ask a publisher to replay.
    [[nodiscard]] std::vector<SeqRange> gaps() const;
    /// The seqs of `range` that are not in the set, in order.
    [[nodiscard]] std::vector<SeqRange> missing_in(SeqRange range) const;
    /// Member-wise equality.
    bool operator==(const SeqRanges&) const = default;

  private:
    std::map<std::uint64_t, std::uint64_t> islands_;  // first -> last
};

}  // namespace rill
