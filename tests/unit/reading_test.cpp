#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "rill/reading.hpp"

using namespace rill;
using namespace std::chrono_literals;

TEST_CASE("timestamps format as RFC 3339 UTC with microseconds") {
    CHECK(to_iso8601(Timestamp{1'763'719'200'000'000us}) == "2025-11-21T10:00:00.000000Z");
    CHECK(to_iso8601(Timestamp{1us}) == "1970-01-01T00:00:00.000001Z");
}

TEST_CASE("parse_time reads RFC 3339, offsets, plain dates and Unix seconds") {
    CHECK(parse_time("2025-11-21T10:00:00Z") == Timestamp{1'763'719'200'000'000us});
    CHECK(parse_time("2025-11-21T10:00:00.5Z") == Timestamp{1'763'719'200'500'000us});
    CHECK(parse_time("2025-11-21 12:00:00+02:00") == Timestamp{1'763'719'200'000'000us});
    CHECK(parse_time("2025-11-21T10:00") == Timestamp{1'763'719'200'000'000us});
    CHECK(parse_time("2025-11-21") == Timestamp{1'763'683'200'000'000us});
    CHECK(parse_time("1763719200") == Timestamp{1'763'719'200'000'000us});
    CHECK(parse_time(to_iso8601(Timestamp{1'763'719'200'123'456us})) ==
          Timestamp{1'763'719'200'123'456us});
}

TEST_CASE("parse_time rejects what is not a time") {
    for (const char* bad :
         {"", "yesterday", "2025-13-01", "2025-02-30", "2025-11-21T25:00Z",
          "2025-11-21T10:00:00Zjunk", "2025-11-21T10:00:00.Z", "12345678901234"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_time(bad).has_value());
    }
}

TEST_CASE("clean UTF-8 excludes control characters, overlongs and surrogates") {
    CHECK(is_clean_utf8("plain-ascii_01"));
    CHECK(is_clean_utf8("\xc3\xa9t\xc3\xa9"));
    CHECK_FALSE(is_clean_utf8(std::string_view("a\0b", 3)));
    CHECK_FALSE(is_clean_utf8("tab\there"));
    CHECK_FALSE(is_clean_utf8("\x7f"));
    CHECK_FALSE(is_clean_utf8("\xc2\x85"));          // U+0085, a C1 control
    CHECK_FALSE(is_clean_utf8("\xed\xa0\x80"));      // a UTF-16 surrogate
    CHECK_FALSE(is_clean_utf8("\xe0\x80\xaf"));      // overlong '/'
    CHECK_FALSE(is_clean_utf8("\xf4\x90\x80\x80"));  // past U+10FFFF
    CHECK_FALSE(is_clean_utf8("\xe2\x82"));          // truncated
}

TEST_CASE("reading_problem accepts a quantity not measured and rejects infinities and nothing") {
    const float inf = std::numeric_limits<float>::infinity();
    Reading r{"s", 1, Timestamp{1s}, 20, not_measured, {}};
    CHECK_FALSE(reading_problem(r).has_value());  // a DS18B20: no humidity
    r = {"s", 1, Timestamp{1s}, not_measured, 55, {}};
    CHECK_FALSE(reading_problem(r).has_value());  // an ESPHome humidity topic
    r.temperature = std::nanf("");                // any NaN is "not measured"
    CHECK_FALSE(reading_problem(r).has_value());
    r.humidity = not_measured;
    CHECK(reading_problem(r) == "reading measures nothing: no temperature, humidity or extra");
    r.extras = {{"pressure_hpa", 1013.25}};
    CHECK_FALSE(reading_problem(r).has_value());  // an extra is a value
    r = {"s", 1, Timestamp{1s}, inf, 50, {}};
    CHECK(reading_problem(r)->find("temperature") != std::string::npos);
    r = {"s", 1, Timestamp{1s}, -inf, not_measured, {}};
    CHECK(reading_problem(r)->find("temperature") != std::string::npos);
    r = {"s", 1, Timestamp{1s}, not_measured, inf, {}};
    CHECK(reading_problem(r)->find("humidity") != std::string::npos);
    r = {"s", 1, Timestamp{1s}, not_measured, 100.5f, {}};
    CHECK(reading_problem(r)->find("humidity") != std::string::npos);
    r = {"s", 1, Timestamp{1s}, -300, not_measured, {}};
    CHECK(reading_problem(r)->find("temperature") != std::string::npos);
}

TEST_CASE("readings compare equal when the same quantities are not measured") {
    const Reading a{"s", 1, Timestamp{1s}, 20, not_measured, {}};
    Reading b = a;
    CHECK(a == b);
    b.humidity = std::nanf("");
    CHECK(a == b);
    b.humidity = 0;
    CHECK_FALSE(a == b);
    CHECK_FALSE(b == a);
    b.humidity = not_measured;
    b.temperature = not_measured;
    CHECK_FALSE(a == b);
}

TEST_CASE("reading_problem names what is wrong") {
    Reading r{"s", 1, Timestamp{1s}, 20, 50, {}};
    CHECK_FALSE(reading_problem(r).has_value());
    r.seq = 0;
    CHECK(reading_problem(r)->find("seq") != std::string::npos);
    r.seq = 1;
    r.extras = {{"a", 1}, {"a", 2}};
    CHECK(reading_problem(r)->find("twice") != std::string::npos);
}
