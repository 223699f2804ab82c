#include <doctest/doctest.h>

#include "rill/units.hpp"

using namespace rill;
using namespace std::chrono_literals;

TEST_CASE("durations parse with units, fractions and compound forms") {
    CHECK(parse_duration("5s") == 5s);
    CHECK(parse_duration("250ms") == 250ms);
    CHECK(parse_duration("1.5s") == 1500ms);
    CHECK(parse_duration("1h30m") == 90min);
    CHECK(parse_duration("7d") == std::chrono::hours(168));
    CHECK(parse_duration("10us") == 10us);
    CHECK(parse_duration("0") == 0s);
}

TEST_CASE("durations without a unit or with junk are rejected naming the text") {
    for (const char* bad : {"", "5", "s", "5x", "-1s", "1.s5", "ms5"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS((void)parse_duration(bad), std::invalid_argument);
    }
    try {
        (void)parse_duration("fortnight");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("'fortnight'") == 0);
    }
}

TEST_CASE("retention durations parse in days and years of 365 days and format back") {
    CHECK(parse_duration("90d") == std::chrono::hours(90 * 24));
    CHECK(parse_duration("5y") == std::chrono::hours(5 * 365 * 24));
    CHECK(parse_duration("1y12h") == std::chrono::hours(365 * 24 + 12));
    CHECK(format_duration(std::chrono::hours(5 * 365 * 24)) == "5y");
    CHECK(format_duration(std::chrono::hours(366 * 24)) == "366d");
    CHECK(format_duration(std::chrono::hours(72)) == "3d");
    CHECK_THROWS_AS((void)parse_duration("300y"), std::invalid_argument);  // beyond int64 ns
    CHECK_THROWS_AS((void)parse_duration("5yr"), std::invalid_argument);
}

TEST_CASE("byte sizes parse with binary units") {
    CHECK(parse_size("4096") == 4096);
    CHECK(parse_size("256MiB") == 256ULL << 20);
    CHECK(parse_size("1G") == 1ULL << 30);
    CHECK(parse_size("64KB") == 64 * 1024);
    CHECK(parse_size("1.5K") == 1536);
    CHECK_THROWS_AS((void)parse_size("lots"), std::invalid_argument);
    CHECK_THROWS_AS((void)parse_size("5Q"), std::invalid_argument);
}

TEST_CASE("durations format with the largest exact unit and parse back") {
    CHECK(format_duration(5s) == "5s");
    CHECK(format_duration(150ms) == "150ms");
    CHECK(format_duration(2h) == "2h");
    CHECK(format_duration(1500ms) == "1500ms");
    CHECK(parse_duration(format_duration(1500ms)) == 1500ms);
}
