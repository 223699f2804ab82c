// bench-mqtt: how fast mqtt-bridge drains a Mosquitto, next to mosquitto_sub in the same run.
//
//   bench-mqtt [--messages N] [--devices D] [--bridge PATH] [--bridge-arg ARG]...
//   bench-mqtt --fleet D [--seconds S] [--bridge PATH] [--bridge-arg ARG]...
//
// --bridge PATH: the mqtt-bridge binary to measure (default: this build's); --bridge-arg ARG,
// repeatable: appended to its command line (e.g. --bridge-arg --read-interval --bridge-arg 0).
//
// Both subscribers hold a persistent session (clean session off) at QoS 1; N messages (plain
// numbers, D devices, N/D each) are published while the subscriber is away, so the broker holds
// them (max_queued_messages 0: no bound). Then the subscriber starts and the time until it has
// every message is measured, so the device side (mosquitto_pub) is not in the figure:
//   1. mosquitto_sub -c -q 1 -C N: the reference, messages/s the broker delivers;
//   2. mqtt-bridge (outbox, fsync batch) with store-sub on its stream: messages/s until the
//      bridge received (and appended) them all, and readings/s until store-sub committed them all
//      to PostgreSQL (fsync off, as in bench-ingest).
// Times count from the subscriber's start (process start included in both).
//
// --fleet D: D devices at one message per second each, through the real bridge (issue 16's
// "1,000 devices at 1 message/s"). The device simulator is libmosquitto in this process, on a
// thread of its own: one MQTT connection (client id bench-fleet-devices) publishing the plain
// number of device i (topic bench/fleet-0000i/temperature, QoS 1) at i/D s of every second;
// libmosquitto's own network thread (mosquitto_loop_start) does the I/O. Slots missed by more
// than a second are skipped, not sent late in a burst. mqtt-bridge (outbox, fsync batch) and
// store-sub (real apps) into a throwaway PostgreSQL (fsync off). Printed, as bench-fleet does
// (bench/fleet/fleet_measure.hpp, definitions in bench/fleet/bench_fleet.cpp): the ramp-up until
// a heartbeat of the bridge lists every device; over S seconds (default 20) after a 5 s warm-up:
// messages/s published, messages/s into the bridge (rill_mqtt_messages_received_total),
// readings/s committed (rows of readings), heartbeat bytes/s on the bridge's stream, the CPU
// (utime + stime from /proc, fraction of one core) and peak RSS (VmHWM) of the bridge, store-sub
// and Mosquitto, PostgreSQL's CPU; then store-sub killed with SIGKILL, down 2 s, restarted at T0:
// seconds until every device is stored up to the newest seq of the first heartbeat round after
// T0. Also the context switches of all the bridge's threads per message over the window.
#include <mosquitto.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fleet/fleet_measure.hpp"
#include "support/mosquitto.hpp"
#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace rill::test;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

void publish_all(const Mosquitto& broker, int messages, int devices) {
    for (int d = 0; d < devices; ++d) {
        std::vector<std::string> lines;
        for (int i = 0; i < messages / devices; ++i)
            lines.push_back(std::to_string(10 + (i % 200) / 10.0));
        if (publish_lines(broker.port(), "bench/d" + std::to_string(d) + "/temperature", lines) !=
            0)
            throw std::runtime_error("mosquitto_pub failed");
    }
}

std::string field_after(const std::string& text, const std::string& after) {
    const auto a = text.find(after);
    if (a == std::string::npos) return "";
    const auto start = a + after.size();
    return text.substr(start, text.find_first_of(",\n", start) - start);
}

// D devices publishing one plain number each per second, spread evenly over the second, from one
// libmosquitto connection: a pacing thread calls mosquitto_publish, libmosquitto's network thread
// (mosquitto_loop_start) sends. The destructor stops both and disconnects.
class DeviceFleet {
  public:
    DeviceFleet(std::uint16_t port, std::size_t devices) : devices_(devices) {
        mosquitto_lib_init();
        mosq_ = mosquitto_new("bench-fleet-devices", true, this);
        if (!mosq_) throw std::runtime_error("mosquitto_new failed");
        mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) {
            if (rc == 0) static_cast<DeviceFleet*>(self)->connected_ = true;
        });
        if (mosquitto_connect(mosq_, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS ||
            mosquitto_loop_start(mosq_) != MOSQ_ERR_SUCCESS)
            throw std::runtime_error("the device simulator could not connect to Mosquitto");
        if (!wait_until([&] { return connected_.load(); }, 20s))
            throw std::runtime_error("the device simulator got no CONNACK");
        for (std::size_t i = 0; i < devices; ++i)
            topics_.push_back("bench/" + rill::bench::fleet_sensor_name(i) + "/temperature");
        thread_ = std::thread([this] { pace(); });
    }
    ~DeviceFleet() {
        stop_ = true;
        thread_.join();
        mosquitto_disconnect(mosq_);
        mosquitto_loop_stop(mosq_, false);
        mosquitto_destroy(mosq_);
        mosquitto_lib_cleanup();
    }
    DeviceFleet(const DeviceFleet&) = delete;
    DeviceFleet& operator=(const DeviceFleet&) = delete;
    [[nodiscard]] std::uint64_t published() const { return published_; }
    [[nodiscard]] std::uint64_t skipped() const { return skipped_; }
    [[nodiscard]] std::uint64_t failed() const { return failed_; }

  private:
    void pace() {
        const auto period =
            std::chrono::duration_cast<Clock::duration>(1s) / static_cast<std::int64_t>(devices_);
        auto start = Clock::now();
        std::uint64_t k = 0;  // message k is due at start + k * period
        while (!stop_) {
            const auto now = Clock::now();
            const auto behind = now - (start + static_cast<std::int64_t>(k) * period);
            if (behind > 1s) {
                skipped_ += static_cast<std::uint64_t>(behind / period);
                start = now - static_cast<std::int64_t>(k) * period;
            }
            while (start + static_cast<std::int64_t>(k) * period <= now) {
                const auto payload = std::to_string(15.0 + static_cast<double>(k % 200) * 0.05);
                const int rc =
                    mosquitto_publish(mosq_, nullptr, topics_[k % devices_].c_str(),
                                      static_cast<int>(payload.size()), payload.data(), 1, false);
                if (rc == MOSQ_ERR_SUCCESS)
                    ++published_;
                else
                    ++failed_;
                ++k;
            }
            const auto next = start + static_cast<std::int64_t>(k) * period;
            std::this_thread::sleep_until(std::min(next, Clock::now() + 100ms));
        }
    }
    std::size_t devices_;
    mosquitto* mosq_ = nullptr;
    std::vector<std::string> topics_;
    std::atomic<bool> connected_{false};
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> published_{0};
    std::atomic<std::uint64_t> skipped_{0};
    std::atomic<std::uint64_t> failed_{0};
    std::thread thread_;
};

// The pid of the process started with `arg` among its arguments (0: none).
pid_t pid_with_argument(const std::string& arg) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto cmdline = read_file(entry.path() / "cmdline");
        std::size_t at = 0;
        while (at < cmdline.size()) {
            const auto end = cmdline.find('\0', at);
            if (cmdline.substr(at, end - at) == arg) return std::atoi(name.c_str());
            if (end == std::string::npos) break;
            at = end + 1;
        }
    }
    return 0;
}

double received(const std::string& admin) {
    const auto r = http_get(admin, "/metrics");
    return r ? metric_sum(r->body, "rill_mqtt_messages_received_total") : -1;
}

// Context switches of every thread of `pid` so far (voluntary + involuntary, from
// /proc/PID/task/*/status): a figure of wake-ups that depends little on the machine's load.
double context_switches(pid_t pid) {
    double total = 0;
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        const auto text = read_file((task.path() / "status").string());
        for (const char* key : {"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"}) {
            const auto at = text.find(std::string("\n") + key);
            if (at != std::string::npos)
                total += std::strtod(text.c_str() + at + 1 + std::strlen(key), nullptr);
        }
    }
    return total;
}

// --bridge and --bridge-arg (see the head comment).
struct BridgeUnderTest {
    std::string path;
    std::vector<std::string> args;
};

// The command line of the bridge under test: broker, rule bench/+/temperature, outbox in `dir`,
// stream and replay bound on loopback, admin server on a free port, then under_test.args.
std::vector<std::string> bridge_command(const BridgeUnderTest& under_test,
                                        const std::string& broker, const std::filesystem::path& dir,
                                        const std::string& stream, std::uint16_t replay_port,
                                        const std::string& log_level) {
    std::vector<std::string> argv{under_test.path.empty() ? bin("mqtt-bridge") : under_test.path,
                                  "--broker",
                                  broker,
                                  "--client-id",
                                  "bench-bridge",
                                  "--topic",
                                  "bench/+/temperature={1}:plain",
                                  "--outbox",
                                  (dir / "outbox").string(),
                                  "--pub",
                                  "@" + stream,
                                  "--replay",
                                  "@tcp://127.0.0.1:" + std::to_string(replay_port),
                                  "--metrics",
                                  "127.0.0.1:0",
                                  "--log-level",
                                  log_level};
    argv.insert(argv.end(), under_test.args.begin(), under_test.args.end());
    std::printf("mqtt-bridge:");
    for (const auto& a : argv)
        std::printf(" %s", a.c_str());
    std::printf("\n");
    return argv;
}

// Two free loopback ports, distinct: free_loopback_port() binds nothing, so two calls in a row
// can return the same port (seen once: "cannot bind ...: Address already in use").
std::pair<std::uint16_t, std::uint16_t> two_free_ports() {
    const auto first = free_loopback_port();
    for (int attempt = 0; attempt < 100; ++attempt) {
        const auto second = free_loopback_port();
        if (second != first) return {first, second};
    }
    throw std::runtime_error("no second free loopback port");
}

int run_fleet(std::size_t devices, int window, const BridgeUnderTest& under_test) {
    using namespace rill::bench;
    TempDir dir("rill-bench-mqtt-fleet");
    const auto broker_dir = dir.path() / "broker";
    Mosquitto broker(broker_dir, {.global = {"max_queued_messages 0"}});
    // tests/support/mosquitto.cpp starts it as `mosquitto -c DIR/mosquitto.conf`.
    const pid_t broker_pid = pid_with_argument((broker_dir / "mosquitto.conf").string());
    std::fprintf(stderr, "starting a throwaway PostgreSQL (fsync off)...\n");
    TempPostgres pg;
    auto db = rill::store::Connection::open(pg.conninfo());
    (void)rill::store::migrate(db);

    const auto ports = two_free_ports();
    const auto stream_port = ports.first;
    const auto replay_port = ports.second;
    const std::string stream = "tcp://127.0.0.1:" + std::to_string(stream_port);
    const auto bridge_log = (dir.path() / "bridge.log").string();
    Process bridge(
        bridge_command(under_test, broker.url(), dir.path(), stream, replay_port, "info"),
        ProcessOptions{.stderr_path = bridge_log});
    std::string admin;
    if (!wait_until(
            [&] {
                const auto text = read_file(bridge_log);
                admin = field_after(text, "/healthz on ");
                return !admin.empty() && text.find("subscribed to") != std::string::npos;
            },
            30s))
        throw std::runtime_error("mqtt-bridge did not subscribe:\n" + read_file(bridge_log));
    HeartbeatWatch heartbeats(stream, fleet_sensor_name(0));
    int run = 0;
    std::string sub_log;
    auto start_store_sub = [&] {
        sub_log = (dir.path() / ("store-sub-" + std::to_string(++run) + ".log")).string();
        return std::make_unique<Process>(
            std::vector<std::string>{bin("store-sub"), "--connect", stream, "--db", pg.conninfo(),
                                     "--metrics", "127.0.0.1:0"},
            ProcessOptions{.stderr_path = sub_log});
    };
    auto store_sub = start_store_sub();

    std::printf(
        "bench-mqtt --fleet: %zu devices at 1 message/s each (QoS 1, plain numbers, one "
        "libmosquitto connection) -> Mosquitto -> mqtt-bridge -> store-sub -> PostgreSQL 15 "
        "(fsync off) on loopback, %ld CPUs\n",
        devices, sysconf(_SC_NPROCESSORS_ONLN));
    std::fflush(stdout);
    const auto launched = Clock::now();
    DeviceFleet fleet(broker.port(), devices);
    if (!heartbeats.round_after(launched, devices, 600s))
        throw std::runtime_error("no heartbeat of the bridge listed every device within 600 s:\n" +
                                 read_file(bridge_log));
    std::printf(
        "ramp-up: a heartbeat of the bridge lists all %zu devices %.2f s after the "
        "devices started (1 s when everything keeps up)\n",
        devices, seconds(Clock::now() - launched));
    std::fflush(stdout);

    std::this_thread::sleep_for(5s);
    if (!bridge.running() || !store_sub->running())
        throw std::runtime_error("a process died during the warm-up:\n" + read_file(bridge_log) +
                                 read_file(sub_log));
    const double switches_before = context_switches(bridge.pid());
    const double received_before = received(admin);
    measure_steady(
        db, heartbeats, pg.socket_dir() + "/data", devices, std::chrono::seconds(window),
        {{"mqtt-bridge", bridge.pid()}, {"store-sub", store_sub->pid()}, {"mosquitto", broker_pid}},
        {{"messages published by the devices",
          [&] { return static_cast<double>(fleet.published()); }},
         {"messages into mqtt-bridge", [&] { return received(admin); }}});
    const double messages_in = received(admin) - received_before;
    const double switches = context_switches(bridge.pid()) - switches_before;
    std::printf(
        "mqtt-bridge context switches (all threads) over the window: %.0f, %.3f per "
        "message received\n",
        switches, messages_in > 0 ? switches / messages_in : 0.0);
    std::printf(
        "device simulator since its start: %llu slots skipped (more than 1 s behind), "
        "%llu publish calls failed\n",
        static_cast<unsigned long long>(fleet.skipped()),
        static_cast<unsigned long long>(fleet.failed()));
    std::fflush(stdout);

    const auto c = restart_store_sub(db, heartbeats, devices, store_sub, start_store_sub, sub_log);
    store_sub->signal(SIGTERM);
    (void)store_sub->wait_for(30s);
    bridge.signal(SIGTERM);
    (void)bridge.wait_for(30s);
    return c.caught_up ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    int messages = 20'000;
    int devices = 10;
    int fleet = 0;
    int window = 20;
    BridgeUnderTest under_test;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--bridge") under_test.path = argv[i + 1];
        if (a == "--bridge-arg") under_test.args.emplace_back(argv[i + 1]);
        if (a == "--messages") messages = std::atoi(argv[i + 1]);
        if (a == "--devices") devices = std::atoi(argv[i + 1]);
        if (a == "--fleet") fleet = std::atoi(argv[i + 1]);
        if (a == "--seconds") window = std::atoi(argv[i + 1]);
    }
    if (fleet > 0) {
        try {
            return run_fleet(static_cast<std::size_t>(fleet), window, under_test);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench-mqtt --fleet: %s\n", e.what());
            return 1;
        }
    }
    messages -= messages % devices;
    TempDir dir("rill-bench-mqtt");
    Mosquitto broker(dir.path() / "broker",
                     {.global = {"max_queued_messages 0", "max_inflight_messages 20"}});

    // 1. mosquitto_sub.
    const std::vector<std::string> sub_base{"mosquitto_sub",
                                            "-h",
                                            "127.0.0.1",
                                            "-p",
                                            std::to_string(broker.port()),
                                            "-c",
                                            "-i",
                                            "bench-ref",
                                            "-q",
                                            "1",
                                            "-t",
                                            "bench/#"};
    auto once = sub_base;
    once.push_back("-E");  // subscribe (make the session) and exit
    if (run_command(once, 30s) != 0) throw std::runtime_error("mosquitto_sub -E failed");
    publish_all(broker, messages, devices);
    auto drain = sub_base;
    drain.insert(drain.end(), {"-C", std::to_string(messages)});
    const auto t_ref = Clock::now();
    std::string ignored;
    if (run_command(drain, 300s, &ignored) != 0) throw std::runtime_error("mosquitto_sub failed");
    const double ref_s = seconds_since(t_ref);

    // 2. mqtt-bridge -> store-sub -> PostgreSQL.
    TempPostgres pg;
    const auto ports = two_free_ports();
    const auto stream_port = ports.first;
    const auto replay_port = ports.second;
    const std::string stream = "tcp://127.0.0.1:" + std::to_string(stream_port);
    auto bridge_argv = [&](const std::string& log) {
        return bridge_command(under_test, broker.url(), dir.path(), stream, replay_port, log);
    };
    {
        const auto log = (dir.path() / "bridge-0.log").string();
        Process first(bridge_argv("info"), ProcessOptions{.stderr_path = log});
        if (!wait_until([&] { return read_file(log).find("subscribed to") != std::string::npos; },
                        30s))
            throw std::runtime_error("mqtt-bridge did not subscribe:\n" + read_file(log));
        first.signal(SIGTERM);
        (void)first.wait_for(30s);
    }
    publish_all(broker, messages, devices);
    StoreSub sub(dir.path(), {.connect = {stream}, .db = pg.conninfo()});
    const auto log = (dir.path() / "bridge-1.log").string();
    const auto t_bridge = Clock::now();
    Process bridge(bridge_argv("info"), ProcessOptions{.stderr_path = log});
    std::string admin;
    wait_until(
        [&] {
            admin = field_after(read_file(log), "/healthz on ");
            return !admin.empty();
        },
        30s);
    double in_s = 0;
    wait_until(
        [&] {
            const auto r = http_get(admin, "/metrics");
            if (!r || metric_sum(r->body, "rill_mqtt_messages_received_total") < messages)
                return false;
            in_s = seconds_since(t_bridge);
            return true;
        },
        300s);
    if (!wait_rows(pg, static_cast<std::uint64_t>(messages), 300s))
        throw std::runtime_error("store-sub did not commit every reading");
    const double stored_s = seconds_since(t_bridge);
    const auto problem = exactly_once_problem(pg, [&] {
        std::map<std::string, std::uint64_t> m;
        for (int d = 0; d < devices; ++d)
            m["d" + std::to_string(d)] = static_cast<std::uint64_t>(messages / devices);
        return m;
    }());

    const double ref_rate = messages / ref_s;
    const double in_rate = in_s > 0 ? messages / in_s : 0;
    const double stored_rate = messages / stored_s;
    std::printf("messages: %d from %d devices, QoS 1, held by the broker, drained at start\n",
                messages, devices);
    std::printf("mosquitto_sub         %8.0f messages/s (%.2f s)\n", ref_rate, ref_s);
    std::printf("mqtt-bridge in        %8.0f messages/s (%.2f s)  ratio %.2f\n", in_rate, in_s,
                in_rate / ref_rate);
    std::printf("committed (store-sub) %8.0f readings/s (%.2f s)  ratio %.2f\n", stored_rate,
                stored_s, stored_rate / ref_rate);
    std::printf("exactly once: %s\n", problem.empty() ? "yes" : problem.c_str());
    bridge.signal(SIGTERM);
    (void)bridge.wait_for(30s);
    return problem.empty() ? 0 : 1;
}
