// bench-mqtt: how fast mqtt-bridge drains a Mosquitto, next to mosquitto_sub in the same run.
//
//   bench-mqtt [--messages N] [--devices D]
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
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

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

}  // namespace

int main(int argc, char** argv) {
    int messages = 20'000;
    int devices = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--messages") messages = std::atoi(argv[i + 1]);
        if (a == "--devices") devices = std::atoi(argv[i + 1]);
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
    const auto stream_port = free_loopback_port();
    const auto replay_port = free_loopback_port();
    const std::string stream = "tcp://127.0.0.1:" + std::to_string(stream_port);
    auto bridge_argv = [&](const std::string& log) {
        return std::vector<std::string>{bin("mqtt-bridge"),
                                        "--broker",
                                        broker.url(),
                                        "--client-id",
                                        "bench-bridge",
                                        "--topic",
                                        "bench/+/temperature={1}:plain",
                                        "--outbox",
                                        (dir.path() / "outbox").string(),
                                        "--pub",
                                        "@" + stream,
                                        "--replay",
                                        "@tcp://127.0.0.1:" + std::to_string(replay_port),
                                        "--metrics",
                                        "127.0.0.1:0",
                                        "--log-level",
                                        log};
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
