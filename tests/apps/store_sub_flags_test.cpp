// store-sub's retention flags parse as durations with day and year units; bad values are
// argument errors that name the flag.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "support/process.hpp"

using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::run_command;

TEST_CASE("store-sub takes retention flags in days and years and lists them with their defaults") {
    std::string out;
    REQUIRE(run_command(
                {bin("store-sub"), "--keep-raw", "1d", "--keep-1m", "90d", "--keep-15m", "2y",
                 "--keep-1h", "5y", "--keep-6h", "10y", "--maintenance-interval", "30m", "--help"},
                20s, &out) == 0);
    for (const char* text :
         {"--keep-raw", "RILL_KEEP_RAW", "--keep-1m", "RILL_KEEP_1M", "--keep-15m", "RILL_KEEP_15M",
          "--keep-1h", "RILL_KEEP_1H", "--keep-6h", "RILL_KEEP_6H", "--maintenance-interval",
          "RILL_MAINTENANCE_INTERVAL", "2d", "90d", "1y", "5y", "1h"}) {
        CHECK_MESSAGE(out.find(text) != std::string::npos, text, " missing in:\n", out);
    }
}

TEST_CASE("store-sub refuses a retention flag that is not a duration, naming the flag") {
    for (const char* flag : {"--keep-raw", "--keep-1m", "--keep-15m", "--keep-1h", "--keep-6h",
                             "--maintenance-interval"}) {
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

TEST_CASE("store-sub refuses a malformed --curve-server-for entry with exit 64, naming it") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--curve-secret", "x.key_secret", "--curve-server-for", "tcp://pub-a:5556"},
         "'tcp://pub-a:5556' is not ENDPOINT=FILE"},
        {{"--curve-secret", "x.key_secret", "--curve-server-for",
          "tcp://a:1=a.key,@tcp://*:5=b.key"},
         "'@tcp://*:5=b.key'"},
        {{"--curve-secret", "x.key_secret", "--curve-server-for", "pub-a:5556=a.key"},
         "'pub-a:5556=a.key'"},
        {{"--curve-server-for", "tcp://pub-a:5556=a.key"}, "requires --curve-secret"},
    };
    for (const auto& [flags, expected] : cases) {
        std::vector<std::string> argv{bin("store-sub"), "--connect", "tcp://127.0.0.1:1", "--db",
                                      "dbname=nowhere"};
        argv.insert(argv.end(), flags.begin(), flags.end());
        std::string out;
        CHECK(run_command(argv, 20s, &out) == 64);
        CHECK_MESSAGE(out.find(expected) != std::string::npos, expected, " missing in: ", out);
    }
    // The environment twin takes several entries separated by spaces or commas.
    std::string out;
    CHECK(run_command({"env", "RILL_CURVE_SERVER_FOR=tcp://a:1=a.key bad,tcp://b:2=b.key",
                       bin("store-sub"), "--connect", "tcp://127.0.0.1:1", "--db", "dbname=nowhere",
                       "--curve-secret", "x.key_secret"},
                      20s, &out) == 64);
    CHECK_MESSAGE(out.find("'bad' is not ENDPOINT=FILE") != std::string::npos, out);
}

TEST_CASE("store-sub names the --curve-server-for entry whose key file it cannot read") {
    rill::test::TempDir dir("rill-curve-flags");
    std::string out;
    REQUIRE(run_command({bin("rill-keygen"), "store", "--dir", dir.path().string()}, 20s, &out) ==
            0);
    const auto secret = (dir.path() / "store.key_secret").string();
    const auto server = (dir.path() / "store.key").string();
    const auto missing = (dir.path() / "missing.key").string();
    CHECK(run_command({bin("store-sub"), "--connect", "tcp://127.0.0.1:1", "--db", "dbname=nowhere",
                       "--curve-secret", secret, "--curve-server", server, "--curve-server-for",
                       "tcp://127.0.0.1:1=" + missing},
                      20s, &out) == 1);
    CHECK_MESSAGE(out.find("--curve-server-for tcp://127.0.0.1:1=" + missing) != std::string::npos,
                  out);
}
