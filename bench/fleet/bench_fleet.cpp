// bench-fleet: one publisher carrying a fleet of sensors, as mqtt-bridge does, into the real
// store-sub and a throwaway PostgreSQL (fsync off, as in bench-e2e).
//
//   bench-fleet [SENSORS] [SECONDS]          (defaults: 1000 sensors, 20 s)
//   BENCH_FLEET_STORE_SUB=/path/to/store-sub bench-fleet ...   (another store-sub binary)
//
// The publisher is this program again (`bench-fleet --publisher ...`, a process of its own so
// that its CPU and memory are its own): a rill::ReliablePublisher (outbox with the default
// FsyncPolicy::batch, heartbeats every second) fed one reading per sensor per second, each
// published alone as it comes due, spread evenly over the second (sensor i at i/N s), which is
// what a bridge relaying one MQTT message per device per second does.
//
// Phases:
// 0. Ramp-up: the time from the publisher's start to the first heartbeat listing every sensor,
//    i.e. until each sensor's first reading was published (its outbox reserved its seqs).
//    Slots the publisher missed by more than a second meanwhile are skipped, not published
//    late in a burst (counted in the publisher's last log line).
// 1. Steady state: after a 5 s warm-up, over SECONDS: readings committed per second (rows of
//    `readings`), heartbeat bytes per second on the wire (topic + payload of every heartbeat
//    message, counted on a plain SUB socket subscribed to "\0hb"), the CPU time of the
//    publisher and of store-sub over that window as a fraction of one core (utime + stime
//    from /proc), and their peak RSS (VmHWM).
// 2. Restart: store-sub is killed with SIGKILL while readings flow, stays down 2 s, and is
//    started again at T0. The target is, per sensor, the newest seq announced by the first
//    heartbeat round that began after T0 (a round lists every sensor, in one message or, beyond
//    4096 sensors, several). "Caught up" is the first poll (every 100 ms) that finds every seq
//    1..target of every sensor in `readings`:
//        SELECT count(*) FROM readings r JOIN target t USING (sensor) WHERE r.seq <= t.newest
//    equal to the sum of the targets. Printed: T0 -> "subscribed to" in store-sub's log
//    (database open, stored ranges loaded), T0 -> caught up, and the duration of one poll
//    query (the resolution of the figure).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fleet_measure.hpp"
#include "rill/codec.hpp"
#include "rill/reliable.hpp"
#include "rill/socket.hpp"
#include "rill/store.hpp"
#include "support/ports.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using rill::store::Connection;
using rill::test::Process;
using rill::test::read_file;
using namespace rill::bench;

std::atomic<bool> stop_publisher{false};

// --- the publisher process ----------------------------------------------------------------

int run_publisher(std::size_t sensors, const std::string& pub, const std::string& replay,
                  const std::string& outbox) {
    std::signal(SIGTERM, [](int) { stop_publisher = true; });
    std::signal(SIGINT, [](int) { stop_publisher = true; });
    rill::ReliablePublisherOptions o;
    o.outbox_dir = outbox;
    o.publish_endpoints = pub;
    o.replay_endpoints = replay;
    o.publisher.identity = "bench-fleet";
    rill::ReliablePublisher rp(std::move(o));
    std::vector<std::string> names;
    for (std::size_t i = 0; i < sensors; ++i)
        names.push_back(fleet_sensor_name(i));
    const auto period = std::chrono::duration_cast<Clock::duration>(1s) / sensors;
    auto start = Clock::now();
    std::uint64_t k = 0;  // readings published so far; reading k is due at start + k * period
    std::uint64_t skipped = 0;
    rill::Reading r;
    while (!stop_publisher) {
        const auto now = Clock::now();
        // More than a second behind (the ramp-up, while each new sensor's first append waits
        // for its seq reservation): the readings of the slots missed are not taken, as a device
        // whose message the bridge never received, so that no burst distorts what follows.
        const auto behind = now - (start + static_cast<std::int64_t>(k) * period);
        if (behind > 1s) {
            const auto slots = static_cast<std::uint64_t>(behind / period);
            skipped += slots;
            start = now - static_cast<std::int64_t>(k) * period;
        }
        while (start + static_cast<std::int64_t>(k) * period <= now) {
            r.sensor = names[k % sensors];
            r.ts = rill::now();
            r.temperature = 15.0f + static_cast<float>(k % 200) * 0.05f;
            r.humidity = 40.0f + static_cast<float>(k % 100) * 0.1f;
            (void)rp.publish(std::span<rill::Reading>(&r, 1));
            ++k;
        }
        (void)rp.service();
        const auto next = start + static_cast<std::int64_t>(k) * period;
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
        rp.poll_once(std::clamp(wait, 1ms, 100ms));
    }
    rp.close();
    std::fprintf(stderr,
                 "bench-fleet publisher: published %llu readings, %llu slots skipped while "
                 "more than 1 s behind\n",
                 static_cast<unsigned long long>(k), static_cast<unsigned long long>(skipped));
    return 0;
}

int run_bench(std::size_t sensors, int window) {
    rill::test::TempDir dir("rill-bench-fleet");
    std::fprintf(stderr, "starting a throwaway PostgreSQL (fsync off)...\n");
    rill::test::TempPostgres pg;
    auto db = Connection::open(pg.conninfo());
    (void)rill::store::migrate(db);

    const auto stream = std::to_string(rill::test::free_loopback_port());
    const auto replay = std::to_string(rill::test::free_loopback_port());
    const auto pub_log = (dir.path() / "publisher.log").string();
    Process publisher(
        {"/proc/self/exe", "--publisher", std::to_string(sensors), "@tcp://127.0.0.1:" + stream,
         "@tcp://127.0.0.1:" + replay, (dir.path() / "outbox").string()},
        {.stderr_path = pub_log});
    HeartbeatWatch heartbeats("tcp://127.0.0.1:" + stream, fleet_sensor_name(0));

    // BENCH_FLEET_STORE_SUB: another store-sub binary (e.g. one built from an earlier commit,
    // for before/after figures with the same bench).
    const char* other = std::getenv("BENCH_FLEET_STORE_SUB");
    const std::string store_sub_bin = other && *other ? other : rill::test::bin("store-sub");
    int run = 0;
    std::string sub_log;
    auto start_store_sub = [&] {
        sub_log = (dir.path() / ("store-sub-" + std::to_string(++run) + ".log")).string();
        return std::make_unique<Process>(
            std::vector<std::string>{store_sub_bin, "--connect", "tcp://127.0.0.1:" + stream,
                                     "--db", pg.conninfo(), "--metrics", "127.0.0.1:0"},
            rill::test::ProcessOptions{.stderr_path = sub_log});
    };
    auto store_sub = start_store_sub();

    std::printf(
        "bench-fleet: %zu sensors at 1 reading/s each, one ReliablePublisher process -> store-sub "
        "-> PostgreSQL 15 (fsync off) on loopback, %ld CPUs\n",
        sensors, sysconf(_SC_NPROCESSORS_ONLN));
    std::fflush(stdout);

    // 0. Ramp-up: until a heartbeat lists every sensor (each has had its first reading).
    const auto launched = Clock::now();
    if (!heartbeats.round_after(launched, sensors, 600s)) {
        throw std::runtime_error("no heartbeat listed every sensor within 600 s:\n" +
                                 read_file(pub_log));
    }
    std::printf(
        "ramp-up: a heartbeat lists all %zu sensors %.2f s after the publisher started "
        "(1 s when publishing keeps up)\n",
        sensors, seconds(Clock::now() - launched));
    std::fflush(stdout);
    // 1. Steady state.
    std::this_thread::sleep_for(5s);
    if (!publisher.running() || !store_sub->running()) {
        throw std::runtime_error("a process died during the warm-up:\n" + read_file(pub_log) +
                                 read_file(sub_log));
    }
    measure_steady(db, heartbeats, pg.socket_dir() + "/data", sensors, std::chrono::seconds(window),
                   {{"publisher", publisher.pid()}, {"store-sub", store_sub->pid()}});

    // 2. Restart.
    const auto c = restart_store_sub(db, heartbeats, sensors, store_sub, start_store_sub, sub_log);

    store_sub->signal(SIGTERM);
    (void)store_sub->wait_for(30s);
    publisher.signal(SIGTERM);
    (void)publisher.wait_for(30s);
    return c.caught_up ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 6 && std::string(argv[1]) == "--publisher") {
            return run_publisher(std::stoul(argv[2]), argv[3], argv[4], argv[5]);
        }
        if (argc > 3) {
            std::fprintf(stderr, "usage: bench-fleet [SENSORS] [SECONDS]\n");
            return 2;
        }
        const std::size_t sensors = argc > 1 ? std::stoul(argv[1]) : 1000;
        const int window = argc > 2 ? std::stoi(argv[2]) : 20;
        if (sensors == 0 || sensors > 100'000 || window <= 0) {
            std::fprintf(stderr, "bench-fleet: 1 to 100000 sensors, a positive duration\n");
            return 2;
        }
        return run_bench(sensors, window);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench-fleet: %s\n", e.what());
        return 1;
    }
}
