#include <doctest/doctest.h>

#include <csignal>
#include <string>

#include "rill/stream.hpp"
#include "support/process.hpp"
#include "support/readings.hpp"

using namespace rill;
using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::Process;
using rill::test::read_file;
using rill::test::reading;
using rill::test::TempDir;
using rill::test::wait_until;

namespace {

// Heartbeats until tap (started with --heartbeats) reports one on stderr: it is subscribed.
bool wait_subscribed(Publisher& pub, const std::string& stderr_path) {
    return wait_until(
        [&] {
            pub.heartbeat();
            return read_file(stderr_path).find(R"("event":"heartbeat")") != std::string::npos;
        },
        20s);
}

}  // namespace

TEST_CASE("tap prints each reading as one JSON line and exits 0 after --count readings") {
    TempDir dir;
    const auto out = (dir.path() / "out").string();
    const auto err = (dir.path() / "err").string();
    Publisher pub("@tcp://127.0.0.1:0", {.identity = "tap-test"});
    Process tap({bin("tap"), pub.bound().front(), "--count", "4", "--gaps", "--heartbeats"},
                {.stdout_path = out, .stderr_path = err});
    REQUIRE(wait_subscribed(pub, err));

    pub.publish(reading("kitchen", 1, 21.5f, 40.2f));
    auto with_extras = reading("kitchen", 2, -3.25f, 100.0f);
    with_extras.extras = {{"pressure", 1013.25}, {"battery", 3.3}};
    pub.publish(with_extras);
    pub.publish(reading("garage", 1, 0.1f, 0.0f));
    pub.publish(reading("kitchen", 5, 22.0f, 41.0f));  // 3..4 never published: a gap
    pub.publish(reading("kitchen", 6, 22.0f, 41.0f));  // beyond --count

    REQUIRE(tap.wait_for(20s) == 0);
    CHECK(
        read_file(out) ==
        R"({"sensor":"kitchen","seq":1,"ts":"2025-11-21T10:00:00.001000Z","temperature":21.5,"humidity":40.2})"
        "\n"
        R"({"sensor":"kitchen","seq":2,"ts":"2025-11-21T10:00:00.002000Z","temperature":-3.25,"humidity":100,"extras":{"pressure":1013.25,"battery":3.3}})"
        "\n"
        R"({"sensor":"garage","seq":1,"ts":"2025-11-21T10:00:00.001000Z","temperature":0.1,"humidity":0})"
        "\n"
        R"({"sensor":"kitchen","seq":5,"ts":"2025-11-21T10:00:00.005000Z","temperature":22,"humidity":41})"
        "\n");
    const auto errors = read_file(err);
    CHECK(errors.find(R"({"event":"gap","sensor":"kitchen","from":3,"to":4})"
                      "\n") != std::string::npos);
    CHECK(errors.find(R"("publisher":"tap-test")") != std::string::npos);
}

TEST_CASE("tap filters by sensor prefix from the environment and exits 0 on SIGTERM") {
    TempDir dir;
    const auto out = (dir.path() / "out").string();
    const auto err = (dir.path() / "err").string();
    Publisher pub("@tcp://127.0.0.1:0");
    Process tap({bin("tap"), "--heartbeats"},
                {.env = {"RILL_TAP_ENDPOINTS=" + pub.bound().front(), "RILL_TAP_SENSORS=gar"},
                 .stdout_path = out,
                 .stderr_path = err});
    REQUIRE(wait_subscribed(pub, err));

    pub.publish(reading("kitchen", 1, 21.5f, 40.2f));
    pub.publish(reading("garage", 7, 10.5f, 50.0f));
    REQUIRE(wait_until([&] { return !read_file(out).empty(); }, 20s));
    tap.signal(SIGTERM);
    REQUIRE(tap.wait_for(20s) == 0);
    CHECK(
        read_file(out) ==
        R"({"sensor":"garage","seq":7,"ts":"2025-11-21T10:00:00.007000Z","temperature":10.5,"humidity":50})"
        "\n");
}

TEST_CASE("tap --help lists every option with its environment variable") {
    std::string output;
    CHECK(rill::test::run_command({bin("tap"), "--help"}, 20s, &output) == 0);
    for (const char* name :
         {"--sensors", "--count", "--heartbeats", "--gaps", "RILL_TAP_ENDPOINTS",
          "RILL_TAP_SENSORS", "RILL_TAP_COUNT", "RILL_TAP_HEARTBEATS", "RILL_TAP_GAPS",
          "--log-level", "RILL_LOG_LEVEL", "--log-format", "RILL_LOG_FORMAT"}) {
        CHECK_MESSAGE(output.find(name) != std::string::npos, name);
    }
}

TEST_CASE("tap refuses a malformed endpoint with exit code 1") {
    std::string output;
    CHECK(rill::test::run_command({bin("tap"), "nonsense"}, 20s, &output) == 1);
    CHECK(output.find("nonsense") != std::string::npos);
}

TEST_CASE("tap logs its errors as JSON objects with --log-format json") {
    std::string output;
    CHECK(rill::test::run_command({bin("tap"), "--log-format", "json", "nonsense"}, 20s, &output) ==
          1);
    CHECK(output.rfind("{", 0) == 0);
    CHECK(output.find("\"level\":\"error\"") != std::string::npos);
    CHECK(output.find("nonsense") != std::string::npos);
}
