// store-sub logs a database outage once when it starts and once when it ends; the attempts in
// between go to the debug level only.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>

#include "support/log_text.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using namespace rill::test;

TEST_CASE("store-sub logs a database outage with one warning and one line when it ends") {
    TempPostgres pg;
    pg.stop();
    TempDir dir("rill-outage");
    const auto log = (dir.path() / "store-sub.log").string();
    // Nothing publishes on port 1: store-sub only waits for the database here.
    Process sub({bin("store-sub"), "--db", pg.conninfo(), "--connect", "tcp://127.0.0.1:1",
                 "--log-level", "debug"},
                {.stderr_path = log});
    REQUIRE(wait_until([&] { return count_of(read_file(log), "still unreachable") >= 2; }, 30s));
    pg.start();
    REQUIRE(wait_until([&] { return read_file(log).find("reachable again") != std::string::npos; },
                       30s));
    sub.signal(SIGTERM);
    CHECK(sub.wait_for(30s) == 0);
    const auto text = read_file(log);
    INFO(text);
    CHECK(count_of(text, "warn store: database unreachable: ") == 1);
    CHECK(count_of(text, "warn store: ") == 1);
    CHECK(count_of(text, "info store: database reachable again after ") == 1);
    // libpq's two-line "... failed: ...\n\tIs the server running ...?" is one line here.
    const auto at = text.find("warn store: database unreachable: ");
    const auto line = text.substr(at, text.find('\n', at) - at);
    CHECK(line.find("Is the server running") != std::string::npos);
    CHECK(line.find("\\n") == std::string::npos);
    CHECK(line.find('\t') == std::string::npos);
}
