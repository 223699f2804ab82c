// Every executable answers --version with rill's version, the one rill::version() reports.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "rill/version.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::run_command;

TEST_CASE("every rill executable prints the library's version for --version and exits 0") {
    const std::string version(rill::version());
    CHECK(version.find('.') != std::string::npos);
    for (const char* app : {"sensor-pub", "store-sub", "web-view", "tap", "rill-keygen"}) {
        std::string out;
        CHECK_MESSAGE(run_command({bin(app), "--version"}, 10s, &out) == 0, app);
        CHECK_MESSAGE(out.find(version) != std::string::npos, app, ": ", out);
    }
}
