// store-sub's retention flags parse as durations with day and year units; bad values are
// argument errors that name the flag.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "support/process.hpp"

using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::run_command;

TEST_CASE("store-sub takes retention flags in days and years and lists them with their defaults") {
    std::string out;
    REQUIRE(run_command({bin("store-sub"), "--keep-raw", "1d", "--keep-1m", "90d", "--keep-1h",
                         "5y", "--keep-6h", "10y", "--maintenance-interval", "30m", "--help"},
                        20s, &out) == 0);
    for (const char* text :
         {"--keep-raw", "RILL_KEEP_RAW", "--keep-1m", "RILL_KEEP_1M", "--keep-1h", "RILL_KEEP_1H",
          "--keep-6h", "RILL_KEEP_6H", "--maintenance-interval", "RILL_MAINTENANCE_INTERVAL", "2d",
          "90d", "5y", "1h"}) {
        CHECK_MESSAGE(out.find(text) != std::string::npos, text, " missing in:\n", out);
    }
}

TEST_CASE("store-sub refuses a retention flag that is not a duration, naming the flag") {
    for (const char* flag :
         {"--keep-raw", "--keep-1m", "--keep-1h", "--keep-6h", "--maintenance-interval"}) {
        for (const char* bad : {"3", "3x", "forever"}) {
            std::string out;
            const int code = run_command({bin("store-sub"), "--connect", "tcp://127.0.0.1:1",
                                          "--db", "dbname=nowhere", flag, bad},
                                         20s, &out);
            CHECK_MESSAGE(code != 0, flag, " ", bad);
            CHECK_MESSAGE(out.find(flag) != std::string::npos, flag, " ", bad, ": ", out);
        }
    }
}
