// The delivery contract end to end (docs/delivery.md): real sensor-pub and store-sub processes
// over a throwaway PostgreSQL, with crashes, restarts, outages and hostile input. Every test
// checks that the readings table ends up holding exactly seq 1..N of each sensor, once (or,
// when the outbox dropped the oldest, exactly the seqs it still had), and nothing else.
#include <doctest/doctest.h>

#include <algorithm>
#include <csignal>
#include <sstream>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "rill/codec.hpp"
#include "rill/security.hpp"
#include "rill/socket.hpp"
#include "support/hostile.hpp"
#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace rill::test;
using namespace std::chrono_literals;

namespace {

// Generous bounds for a loaded 2-core machine; tests finish as soon as the condition holds.
constexpr auto start_bound = 30s;
constexpr auto store_bound = 90s;

bool contains(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// Stops a lingering sensor-pub politely and checks that it exits 0.
void stop_publisher(SensorPub& pub) {
    pub.process().signal(SIGTERM);
    CHECK(pub.process().wait_for(30s) == 0);
}

// The newest seq of `sensor` that sensor-pub's outbox logged as dropped ("warn outbox: dropped
// segment ... readings: s1 1..600"); 0 when none was.
std::uint64_t newest_dropped(const std::string& log, const std::string& sensor) {
    std::uint64_t newest = 0;
    std::istringstream in(log);
    std::string line;
    const std::string marker = " " + sensor + " ";
    while (std::getline(in, line)) {
        if (!contains(line, "warn outbox: dropped segment")) continue;
        const auto at = line.find(marker);
        if (at == std::string::npos) continue;
        const auto dots = line.find("..", at);
        if (dots == std::string::npos) continue;
        newest = std::max<std::uint64_t>(newest, std::stoull(line.substr(dots + 2)));
    }
    return newest;
}

}  // namespace

TEST_CASE("every reading published while store-sub runs is stored exactly once") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    // 5 s of readings: store-sub is subscribed long before the end, even on a loaded machine.
    const std::uint64_t n = 30'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 6'000, .outbox = dir.path() / "outbox"});
    StoreSub sub(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});

    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    // Most readings came live from the stream, not by replay (the first ones may have been
    // published before store-sub subscribed).
    const auto replayed = sub.metric("rill_replay_readings_total");
    REQUIRE(replayed);
    INFO("readings replayed: " << *replayed);
    CHECK(*replayed < static_cast<double>(n) / 2);
    CHECK(sub.process().running());
    stop_publisher(pub);
}

TEST_CASE("a store-sub started after the publisher finished gets everything by replay") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 20'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 20'000, .outbox = dir.path() / "outbox"});
    REQUIRE(pub.wait_published(start_bound) == n);

    StoreSub sub(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    // Nothing was on the stream any more: every row came by replay.
    CHECK(wait_until([&] { return sub.metric("rill_replay_readings_total") == double(n); }, 10s));
    CHECK(contains(sub.log(), "readings up to seq " + std::to_string(n) + " are not stored"));
    stop_publisher(pub);
}

TEST_CASE(
    "with CURVE keys an allow-listed store-sub gets everything by replay and a stranger nothing") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const auto keys = dir.path() / "keys";
    std::filesystem::create_directories(keys / "allowed");
    const auto server = write_key_files(generate_curve_keypair(), keys, "sensors");
    const auto store = write_key_files(generate_curve_keypair(), keys / "allowed", "store");
    const auto stranger = write_key_files(generate_curve_keypair(), keys, "stranger");
    const std::uint64_t n = 5'000;
    SensorPub pub(dir.path(), {.sensor_id = "s1",
                               .count = n,
                               .rate = 20'000,
                               .outbox = dir.path() / "outbox",
                               .extra_args = {"--curve-secret", server.secret_file.string(),
                                              "--curve-allow", (keys / "allowed").string()}});
    REQUIRE(pub.wait_published(start_bound) == n);

    // The stranger has the right server key but is not on the allow-list: no heartbeat, no
    // replay, nothing stored. It writes to a database of its own.
    pg.execute("CREATE DATABASE other", "postgres");
    StoreSub outsider(dir.path(), {.connect = {pub.stream()},
                                   .db = pg.conninfo("other"),
                                   .extra_args = {"--curve-secret", stranger.secret_file.string(),
                                                  "--curve-server", server.public_file.string()}});
    StoreSub sub(dir.path(), {.connect = {pub.stream()},
                              .db = pg.conninfo(),
                              .extra_args = {"--curve-secret", store.secret_file.string(),
                                             "--curve-server", server.public_file.string()}});
    // Stream and replay both run over CURVE: the stream carries only heartbeats now, so every
    // row comes through the encrypted replay service.
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    CHECK(wait_until([&] { return sub.metric("rill_replay_readings_total") == double(n); }, 10s));
    CHECK(wait_until([&] { return contains(pub.log(), "rejected CURVE client"); }, 10s));
    // (The outsider created its schema when it connected, long before all n were stored.)
    CHECK(pg.value("SELECT count(*) FROM readings", "other") == "0");
    CHECK(outsider.metric("rill_replay_readings_total").value_or(0) == 0);
    stop_publisher(pub);
}

TEST_CASE("store-sub killed with SIGKILL mid-stream and restarted still stores exactly N") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 40'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 10'000, .outbox = dir.path() / "outbox"});
    {
        StoreSub first(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
        REQUIRE(wait_rows(pg, 5'000, store_bound));
        first.process().signal(SIGKILL);
        REQUIRE(first.process().wait_for(10s) == 128 + SIGKILL);
    }
    const auto at_kill = stored_rows(pg);
    CHECK(at_kill < n);                  // the kill really happened mid-stream
    std::this_thread::sleep_for(500ms);  // readings published meanwhile reach nobody

    StoreSub second(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    CHECK(contains(second.log(), "are not stored; asking its publisher"));
    stop_publisher(pub);
}

TEST_CASE("a PostgreSQL restart mid-stream loses nothing and store-sub stays up") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 40'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 10'000, .outbox = dir.path() / "outbox"});
    StoreSub sub(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
    REQUIRE(wait_rows(pg, 5'000, store_bound));

    pg.stop();
    std::this_thread::sleep_for(1500ms);  // store-sub buffers and retries meanwhile
    CHECK(sub.process().running());
    pg.start();

    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    CHECK(sub.process().running());
    const auto log = sub.log();
    CHECK(contains(log, "warn store: database unreachable"));
    CHECK(contains(log, "info store: database reachable again"));
    // One line per reconnect attempt: the writer leaves reporting attempts to store-sub.
    CHECK_FALSE(contains(log, "reconnected to PostgreSQL after"));
    stop_publisher(pub);
}

TEST_CASE("a PostgreSQL crash while store-sub's buffer is full loses nothing") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 40'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 10'000, .outbox = dir.path() / "outbox"});
    // A small buffer: during the outage store-sub stops reading the stream.
    StoreSub sub(dir.path(), {.connect = {pub.stream()},
                              .db = pg.conninfo(),
                              .extra_args = {"--pending-max", "2000", "--batch-max", "1000"}});
    REQUIRE(wait_rows(pg, 5'000, store_bound));

    pg.stop(true);  // immediate: no checkpoint, connections cut mid-transaction
    CHECK(wait_until([&] { return sub.metric("rill_store_buffer_fill_ratio") == 1.0; }, 30s));
    CHECK(sub.process().running());
    pg.start();

    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    CHECK(sub.process().running());
    CHECK(contains(sub.log(), "warn store: database unreachable"));
    stop_publisher(pub);
}

TEST_CASE("store-sub killed with SIGKILL while catching up by replay still stores exactly N") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 40'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 20'000, .outbox = dir.path() / "outbox"});
    REQUIRE(pub.wait_published(start_bound) == n);
    {
        // Small replay chunks and batches: the catch-up takes many commits to interrupt.
        StoreSub first(dir.path(), {.connect = {pub.stream()},
                                    .db = pg.conninfo(),
                                    .extra_args = {"--replay-chunk", "500", "--batch-max", "500"}});
        REQUIRE(wait_rows(pg, 2'000, store_bound));
        first.process().signal(SIGKILL);
        REQUIRE(first.process().wait_for(10s) == 128 + SIGKILL);
    }
    CHECK(stored_rows(pg) < n);

    StoreSub second(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    // The batch the kill cut off rolled back with its rollups: they count every row once.
    CHECK(pg.value("SELECT (SELECT sum(n) FROM readings_1m) || ' ' || "
                   "(SELECT sum(n) FROM readings_1h)") ==
          std::to_string(n) + " " + std::to_string(n));
    std::string out;
    CHECK(run_command({bin("store-sub"), "--db", pg.conninfo(), "--check-rollups"}, 60s, &out) ==
          0);
    CHECK(out == "");
    // And the check does see a rollup that is off.
    pg.execute(
        "UPDATE readings_1m SET n = n + 1 WHERE bucket = (SELECT min(bucket) FROM "
        "readings_1m)");
    CHECK(run_command({bin("store-sub"), "--db", pg.conninfo(), "--check-rollups"}, 60s, &out) ==
          1);
    CHECK(contains(out, "readings_1m s1 "));
    stop_publisher(pub);
}

TEST_CASE("sensor-pub killed with SIGKILL and restarted on its outbox: seq 1..newest, once") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const auto outbox = dir.path() / "outbox";
    std::optional<StoreSub> sub;
    std::string stream;
    std::string old_replay;
    std::uint64_t stored_at_kill = 0;
    {
        SensorPub first(dir.path(), {.sensor_id = "s1", .rate = 10'000, .outbox = outbox});
        stream = first.stream();
        old_replay = first.replay();
        sub.emplace(dir.path(), StoreSubOptions{.connect = {stream}, .db = pg.conninfo()});
        REQUIRE(wait_rows(pg, 5'000, store_bound));
        first.process().signal(SIGKILL);
        REQUIRE(first.process().wait_for(10s) == 128 + SIGKILL);
        stored_at_kill = stored_rows(pg);
    }

    // The second run comes back on the same stream endpoint (where store-sub looks for it),
    // with its replay service on a new port (announced in its heartbeats), and publishes the
    // rest after what its outbox holds.
    const std::uint64_t rest = 10'000;
    SensorPub second(
        dir.path(),
        {.sensor_id = "s1", .count = rest, .rate = 10'000, .outbox = outbox, .pub = "@" + stream});
    CHECK(second.replay() != old_replay);
    CHECK(second.start_seq() >= stored_at_kill);
    const auto newest = second.wait_published(store_bound);
    REQUIRE(newest == second.start_seq() + rest);
    REQUIRE(wait_rows(pg, *newest, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", *newest}}) == "");
    CHECK(sub->process().running());
    // The readings lost at the crash were fetched from the new replay endpoint at once, not
    // after a timeout at the dead one.
    CHECK(sub->metric("rill_replay_failures_total") == 0.0);
    CHECK_FALSE(contains(sub->log(), old_replay));
    stop_publisher(second);
}

TEST_CASE("readings the outbox dropped are reported lost and the rest is stored once") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 40'000;
    // A tiny outbox: most of the readings are dropped before anyone stores them.
    SensorPub pub(dir.path(), {.sensor_id = "s1",
                               .count = n,
                               .rate = 20'000,
                               .outbox = dir.path() / "outbox",
                               .extra_args = {"--outbox-segment-bytes", "64KiB",
                                              "--outbox-max-bytes", "256KiB"}});
    REQUIRE(pub.wait_published(start_bound) == n);
    const auto dropped = newest_dropped(pub.log(), "s1");
    REQUIRE(dropped > 0);
    REQUIRE(dropped < n);

    StoreSub sub(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
    REQUIRE(wait_rows(pg, n - dropped, store_bound));
    CHECK(exactly_once_problem(pg, std::map<std::string, SeqRange>{{"s1", {dropped + 1, n}}}) ==
          "");
    CHECK(
        wait_until([&] { return sub.metric("rill_readings_lost_total") == double(dropped); }, 10s));
    CHECK(contains(sub.log(), "are lost: dropped by the publisher's outbox"));
    stop_publisher(pub);
}

TEST_CASE("malformed frames are counted and logged and the valid readings around them stored") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    zmq::socket_t hostile(default_context(), zmq::socket_type::pub);
    hostile.set(zmq::sockopt::linger, 0);
    hostile.bind("tcp://127.0.0.1:0");
    const auto hostile_endpoint = hostile.get(zmq::sockopt::last_endpoint);

    const std::uint64_t n = 30'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 10'000, .outbox = dir.path() / "outbox"});
    StoreSub sub(dir.path(), {.connect = {pub.stream(), hostile_endpoint}, .db = pg.conninfo()});

    const auto valid = encode(hostile_reading("h1"));
    auto version2 = valid;
    REQUIRE(static_cast<unsigned char>(version2[1]) == 1);  // [array header, version, ...]
    version2[1] = 2;
    auto malformed = [&](const std::string& reason) {
        return sub.metric("rill_stream_malformed_frames_total", "reason=\"" + reason + "\"")
            .value_or(0);
    };
    // PUB drops messages until the subscription arrives: send rounds until all are counted.
    const bool counted = wait_until(
        [&] {
            send_message(hostile, {"h1", "\xff\xfe not msgpack at all"});
            send_message(hostile, {"h1"});
            send_message(hostile, {"h1", valid, "a third frame"});
            send_message(hostile, {"zz", valid});  // topic and payload disagree
            send_message(hostile, {"h1", version2});
            std::this_thread::sleep_for(200ms);
            return malformed("malformed") >= 3 && malformed("topic_mismatch") >= 1 &&
                   malformed("unknown_version") >= 1;
        },
        start_bound);
    CHECK(counted);
    CHECK(sub.process().running());

    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");  // and nothing of h1 or zz
    CHECK(sub.process().running());
    CHECK(contains(sub.log(), "rejected message ("));
    stop_publisher(pub);
}

TEST_CASE("store-sub instances with disjoint --sensors prefixes each store only their own") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t na = 20'000;
    const std::uint64_t nb = 15'000;
    SensorPub a(
        dir.path(),
        {.sensor_id = "a-1", .count = na, .rate = 10'000, .outbox = dir.path() / "outbox-a"});
    SensorPub b(
        dir.path(),
        {.sensor_id = "b-1", .count = nb, .rate = 10'000, .outbox = dir.path() / "outbox-b"});
    StoreSub sub_a(dir.path(),
                   {.connect = {a.stream(), b.stream()}, .db = pg.conninfo(), .sensors = {"a-"}});
    StoreSub sub_b(dir.path(),
                   {.connect = {a.stream(), b.stream()}, .db = pg.conninfo(), .sensors = {"b-"}});

    REQUIRE(wait_rows(pg, na + nb, store_bound));
    CHECK(exactly_once_problem(pg, {{"a-1", na}, {"b-1", nb}}) == "");
    // Each instance inserted exactly its prefix's rows.
    auto stored_by = [](const StoreSub& s) {
        return s.metric("rill_store_readings_total").value_or(-1);
    };
    CHECK(wait_until(
        [&] { return stored_by(sub_a) == double(na) && stored_by(sub_b) == double(nb); }, 10s));
    CHECK(stored_by(sub_a) == double(na));
    CHECK(stored_by(sub_b) == double(nb));
    stop_publisher(a);
    stop_publisher(b);
}

TEST_CASE("two store-sub instances with the same prefix still store each reading once") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 30'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 10'000, .outbox = dir.path() / "outbox"});
    StoreSub one(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo(), .sensors = {"s"}});
    StoreSub two(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo(), .sensors = {"s"}});

    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    // The rows each instance inserted add up to N: every collision was caught.
    auto inserted = [&] {
        return one.metric("rill_store_readings_total").value_or(-1) +
               two.metric("rill_store_readings_total").value_or(-1);
    };
    CHECK(wait_until([&] { return inserted() == double(n); }, 10s));
    CHECK(inserted() == double(n));
    CHECK(one.process().running());
    CHECK(two.process().running());
    stop_publisher(pub);
}

TEST_CASE("SIGTERM makes store-sub commit everything it received and exit 0") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 20'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 20'000, .outbox = dir.path() / "outbox"});
    // Batches are only written when full or an hour old: everything stays pending until the
    // signal.
    StoreSub sub(dir.path(),
                 {.connect = {pub.stream()},
                  .db = pg.conninfo(),
                  .extra_args = {"--flush-interval", "3600s", "--batch-max", "100000"}});
    REQUIRE(pub.wait_published(start_bound) == n);
    REQUIRE(wait_until([&] { return sub.metric("rill_store_pending_readings") == double(n); },
                       store_bound));
    CHECK(stored_rows(pg) == 0);

    sub.process().signal(SIGTERM);
    REQUIRE(sub.process().wait_for(60s) == 0);
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    CHECK(contains(sub.log(), "stopped; stored " + std::to_string(n) + " readings"));
    stop_publisher(pub);
}

TEST_CASE("SIGTERM while the database is down exits 0 and a new store-sub stores the rest") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 40'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 10'000, .outbox = dir.path() / "outbox"});
    {
        StoreSub first(dir.path(), {.connect = {pub.stream()},
                                    .db = pg.conninfo(),
                                    .extra_args = {"--drain-timeout", "1s"}});
        REQUIRE(wait_rows(pg, 5'000, store_bound));
        pg.stop();
        CHECK(wait_until([&] { return first.metric("rill_store_pending_readings") > 0.0; }, 30s));
        first.process().signal(SIGTERM);
        CHECK(first.process().wait_for(60s) == 0);
        CHECK(contains(first.log(), "some readings were not written"));
    }
    pg.start();
    StoreSub second(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});
    REQUIRE(pub.wait_published(store_bound) == n);
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    stop_publisher(pub);
}

TEST_CASE("store-sub started while PostgreSQL is down waits for it, and SIGTERM then exits 0") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    const std::uint64_t n = 20'000;
    SensorPub pub(dir.path(),
                  {.sensor_id = "s1", .count = n, .rate = 20'000, .outbox = dir.path() / "outbox"});
    REQUIRE(pub.wait_published(start_bound) == n);
    pg.stop();

    // Stopped while it waits for the database: a clean exit, nothing was received.
    {
        StoreSub sub(dir.path(),
                     {.connect = {pub.stream()}, .db = pg.conninfo(), .metrics = false});
        CHECK(wait_until([&] { return contains(sub.log(), "database unreachable"); }, start_bound));
        sub.process().signal(SIGTERM);
        CHECK(sub.process().wait_for(30s) == 0);
        CHECK(contains(sub.log(), "stopped before the database was reachable"));
    }

    // Left running, it stores everything once the database is up.
    StoreSub sub(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo(), .metrics = false});
    CHECK(wait_until([&] { return contains(sub.log(), "database unreachable"); }, start_bound));
    pg.start();
    REQUIRE(wait_rows(pg, n, store_bound));
    CHECK(exactly_once_problem(pg, {{"s1", n}}) == "");
    CHECK(sub.process().running());
    stop_publisher(pub);
}

TEST_CASE("store-sub's /healthz answers 200 while the database is up and 503 while it is down") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    SensorPub pub(dir.path(), {.sensor_id = "s1", .rate = 1'000, .outbox = dir.path() / "outbox"});
    StoreSub sub(dir.path(), {.connect = {pub.stream()}, .db = pg.conninfo()});

    REQUIRE(wait_rows(pg, 1, store_bound));
    CHECK(wait_until([&] { return sub.healthz() == 200; }, start_bound));

    pg.stop();
    CHECK(wait_until([&] { return sub.healthz() == 503; }, start_bound));
    const auto body = http_get(sub.admin_url(), "/healthz");
    REQUIRE(body);
    CHECK(contains(body->body, "database unreachable"));

    pg.start();
    CHECK(wait_until([&] { return sub.healthz() == 200; }, store_bound));
    CHECK(sub.process().running());
    stop_publisher(pub);
}

TEST_CASE("an idle store-sub's /healthz also turns 503 when the database goes away") {
    TempDir dir("rill-e2e");
    TempPostgres pg;
    // No publisher at all: store-sub holds nothing to write and only probes the database.
    StoreSub sub(dir.path(), {.connect = {"tcp://127.0.0.1:9"}, .db = pg.conninfo()});
    CHECK(wait_until([&] { return sub.healthz() == 200; }, start_bound));
    pg.stop();
    CHECK(wait_until([&] { return sub.healthz() == 503; }, start_bound));
    pg.start();
    CHECK(wait_until([&] { return sub.healthz() == 200; }, store_bound));
    CHECK(sub.process().running());
}
