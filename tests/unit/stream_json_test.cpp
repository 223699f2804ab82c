#include <doctest/doctest.h>

#include "rill/stream_json.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

template <typename T>
std::string json(const T& value) {
    std::string out;
    append_json(out, value);
    return out;
}

}  // namespace

TEST_CASE("a reading renders as one JSON object with the shortest float text") {
    Reading r;
    r.sensor = "kitchen";
    r.seq = 1;
    r.ts = *parse_time("2026-11-21T10:00:00Z");
    r.temperature = 21.5f;
    r.humidity = 40.2f;
    CHECK(json(r) == R"({"sensor":"kitchen","seq":1,"ts":"2026-11-21T10:00:00.000000Z",)"
                     R"("temperature":21.5,"humidity":40.2})");
    r.temperature = -3.0f;
    r.humidity = 0.1f;
    r.extras = {{"pressure", 1013.25}, {"battery", 0.1}};
    CHECK(json(r) ==
          R"({"sensor":"kitchen","seq":1,"ts":"2026-11-21T10:00:00.000000Z",)"
          R"("temperature":-3,"humidity":0.1,"extras":{"pressure":1013.25,"battery":0.1}})");
}

TEST_CASE("sensor ids with quotes and backslashes are escaped") {
    Reading r;
    r.sensor = "a\"b\\c";
    r.seq = 2;
    r.ts = *parse_time("2026-11-21T10:00:00Z");
    CHECK(json(r).starts_with(R"({"sensor":"a\"b\\c","seq":2,)"));
}

TEST_CASE("gaps, heartbeats and liveness events render as event objects") {
    CHECK(json(Gap{"kitchen", 7, 8}) == R"({"event":"gap","sensor":"kitchen","from":7,"to":8})");
    HeartbeatSeen hb;
    hb.heartbeat.publisher = "pi";
    hb.heartbeat.sent_at = *parse_time("2026-11-21T10:00:00Z");
    hb.heartbeat.newest = {{"attic", 3}, {"kitchen", 7}};
    hb.peer_address = "127.0.0.1";
    hb.replay_endpoint = "tcp://127.0.0.1:5557";
    CHECK(json(hb) ==
          R"({"event":"heartbeat","publisher":"pi","peer":"127.0.0.1",)"
          R"("replay":"tcp://127.0.0.1:5557","interval_ms":1000,)"
          R"("sent_at":"2026-11-21T10:00:00.000000Z","newest":{"attic":3,"kitchen":7}})");
    CHECK(json(PublisherSilent{"pi", 3000ms}) ==
          R"({"event":"silent","publisher":"pi","silent_for_ms":3000})");
    CHECK(json(PublisherBack{"pi"}) == R"({"event":"back","publisher":"pi"})");
}
