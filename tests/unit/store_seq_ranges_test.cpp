#include <doctest/doctest.h>

#include <limits>

#include "rill/store.hpp"

using rill::store::SeqRange;
using rill::store::SeqRanges;

namespace {
constexpr std::uint64_t open_end = std::numeric_limits<std::uint64_t>::max();
}

TEST_CASE("seq ranges merge adjacent and overlapping inserts into islands") {
    SeqRanges s;
    CHECK(s.empty());
    for (std::uint64_t seq = 1; seq <= 5; ++seq)
        s.insert(seq);
    CHECK(s.ranges() == std::vector<SeqRange>{{1, 5}});
    s.insert(SeqRange{10, 12});
    s.insert(SeqRange{20, 20});
    CHECK(s.ranges() == std::vector<SeqRange>{{1, 5}, {10, 12}, {20, 20}});
    s.insert(SeqRange{6, 9});  // touches both neighbours: one island
    CHECK(s.ranges() == std::vector<SeqRange>{{1, 12}, {20, 20}});
    s.insert(SeqRange{11, 25});  // overlaps one, swallows another
    CHECK(s.ranges() == std::vector<SeqRange>{{1, 25}});
    s.insert(SeqRange{40, 50});
    s.insert(SeqRange{30, 60});  // covers an island entirely
    CHECK(s.ranges() == std::vector<SeqRange>{{1, 25}, {30, 60}});
    CHECK(s.contains(1));
    CHECK(s.contains(25));
    CHECK_FALSE(s.contains(26));
    CHECK_FALSE(s.contains(0));
    CHECK(s.contains(45));
    CHECK_FALSE(s.contains(61));
    CHECK(s.island_count() == 2);
}

TEST_CASE("seq ranges erase splits islands and gaps list the holes and the open tail") {
    SeqRanges s;
    CHECK(s.gaps() == std::vector<SeqRange>{{1, open_end}});
    s.insert(SeqRange{1, 100});
    s.erase(SeqRange{10, 19});
    s.erase(50);
    CHECK(s.ranges() == std::vector<SeqRange>{{1, 9}, {20, 49}, {51, 100}});
    s.erase(SeqRange{1, 9});    // a whole island
    s.erase(SeqRange{45, 60});  // the end of one and the start of the next
    CHECK(s.ranges() == std::vector<SeqRange>{{20, 44}, {61, 100}});
    s.erase(SeqRange{200, 300});  // nothing there
    CHECK(s.ranges() == std::vector<SeqRange>{{20, 44}, {61, 100}});
    CHECK(s.gaps() == std::vector<SeqRange>{{1, 19}, {45, 60}, {101, open_end}});
    s.insert(SeqRange{1, 19});
    CHECK(s.gaps() == std::vector<SeqRange>{{45, 60}, {101, open_end}});
}
