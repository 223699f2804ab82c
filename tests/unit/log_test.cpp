// rill/log.hpp: one line per event, foreign multi-line messages folded onto it.
#include <doctest/doctest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "rill/log.hpp"
#include "support/log_text.hpp"
#include "support/stderr_capture.hpp"

TEST_CASE("one_line folds libpq's multi-line connection error onto one line") {
    const std::string libpq =
        "connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: No such file or "
        "directory\n\tIs the server running locally and accepting connections on that "
        "socket?\n";
    CHECK(rill::one_line(libpq) ==
          "connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: No such file or "
          "directory Is the server running locally and accepting connections on that socket?");
}

TEST_CASE("one_line turns tabs into spaces and other control characters into question marks") {
    CHECK(rill::one_line("a\tb\x01"
                         "c\x7f") == "a b?c?");
    CHECK(rill::one_line("  first \r\n\n   second  \n") == "first second");
    CHECK(rill::one_line("\n\n") == "");
}

TEST_CASE("one_line leaves a message without control characters as it is") {
    const std::string plain = "database reachable again after 3 attempts: 100% fine";
    CHECK(rill::one_line(plain) == plain);
    CHECK(rill::one_line("température 21,5 °C") == "température 21,5 °C");
}

TEST_CASE("a rate-limited log reports what it held back after a quiet window, with no new event") {
    using namespace std::chrono_literals;
    using Clock = rill::RateLimitedLog::Clock;
    rill::test::StderrCapture capture;
    rill::RateLimitedLog limited("stream", "rejected messages", 200ms);
    const auto t0 = Clock::now();
    CHECK(limited.flush_due() == Clock::time_point::max());
    limited.log("rejected message 1", t0);
    limited.log("rejected message 2", t0 + 10ms);
    limited.log("rejected message 3", t0 + 20ms);
    CHECK(limited.suppressed() == 2);
    CHECK(limited.flush_due() == t0 + 200ms);
    limited.flush(t0 + 199ms);  // the window has not passed: nothing yet
    CHECK(capture.so_far().find("more rejected messages") == std::string::npos);
    limited.flush(t0 + 250ms);  // quiet since: the count is reported without a further event
    CHECK(limited.suppressed() == 0);
    limited.flush(t0 + 900ms);  // nothing left to report
    // The next event within the window after the report is held back, then appended to the next
    // line logged.
    limited.log("rejected message 4", t0 + 300ms);
    limited.log("rejected message 5", t0 + 500ms);
    const auto text = capture.finish();
    CHECK(rill::test::count_of(text, "rejected message 1") == 1);
    CHECK(rill::test::count_of(text, "rejected message 2") == 0);
    CHECK(text.find("2 more rejected messages not logged in the last 0.25 s") != std::string::npos);
    CHECK(rill::test::count_of(text, "more rejected messages") == 1);
    CHECK(rill::test::count_of(text, "rejected message 4") == 0);
    CHECK(text.find("rejected message 5 (1 similar messages not logged)") != std::string::npos);
}

TEST_CASE("a rate-limited log refuses a window that is not positive") {
    CHECK_THROWS_AS(rill::RateLimitedLog("c", "events", std::chrono::seconds(0)),
                    std::invalid_argument);
}
