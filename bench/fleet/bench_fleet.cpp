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

#include "rill/codec.hpp"
#include "rill/reliable.hpp"
#include "rill/socket.hpp"
#include "rill/store.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using rill::store::Connection;
using rill::test::Process;
using rill::test::read_file;

std::atomic<bool> stop_publisher{false};

std::string sensor_name(std::size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "fleet-%05zu", i);
    return buf;
}

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
        names.push_back(sensor_name(i));
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

// --- measuring ----------------------------------------------------------------------------

// CPU seconds of the PostgreSQL server under `data_dir`: the postmaster, its live children and
// the children that have exited (cutime, cstime).
double postgres_cpu(const std::string& data_dir) {
    const auto pidfile = read_file(data_dir + "/postmaster.pid");
    const pid_t postmaster = std::atoi(pidfile.c_str());
    if (postmaster <= 0) return 0;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    double total = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto stat = read_file(entry.path() / "stat");
        if (stat.empty()) continue;
        std::istringstream in(stat.substr(stat.rfind(')') + 2));
        std::vector<std::string> f(16);
        for (auto& x : f)
            in >> x;
        // f[0] is field 3 (state): ppid is f[1], utime f[11], stime f[12], cutime f[13], cstime
        // f[14].
        const pid_t pid = std::atoi(name.c_str());
        const pid_t ppid = std::atoi(f[1].c_str());
        if (pid == postmaster) {
            total +=
                (std::stod(f[11]) + std::stod(f[12]) + std::stod(f[13]) + std::stod(f[14])) / tick;
        } else if (ppid == postmaster) {
            total += (std::stod(f[11]) + std::stod(f[12])) / tick;
        }
    }
    return total;
}

int free_port() {
    zmq::socket_t s(rill::default_context(), zmq::socket_type::pub);
    s.bind("tcp://127.0.0.1:0");
    const auto endpoint = s.get(zmq::sockopt::last_endpoint);
    return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

struct ProcStat {
    long hwm_kb = 0;
    long rss_kb = 0;
    double cpu_s = 0;
};

ProcStat proc_stat(pid_t pid) {
    ProcStat s;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        std::istringstream in(line);
        std::string key;
        in >> key;
        if (key == "VmRSS:") in >> s.rss_kb;
        if (key == "VmHWM:") in >> s.hwm_kb;
    }
    const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    return s;
}

// Counts heartbeat bytes and keeps the newest seq each heartbeat announced, per round: a round
// starts with a heartbeat listing the first sensor of the fleet (heartbeats list sensors in
// order, split beyond 4096 per message).
class HeartbeatWatch {
  public:
    explicit HeartbeatWatch(const std::string& endpoint)
        : sub_(rill::default_context(), zmq::socket_type::sub) {
        sub_.set(zmq::sockopt::subscribe, std::string("\0hb", 3));
        sub_.set(zmq::sockopt::linger, 0);
        sub_.connect(endpoint);
        thread_ = std::thread([this] { loop(); });
    }
    ~HeartbeatWatch() {
        stop_ = true;
        thread_.join();
    }
    [[nodiscard]] std::uint64_t bytes() const { return bytes_; }
    [[nodiscard]] std::uint64_t messages() const { return messages_; }
    // The sum of the newest seqs of the latest complete round (0: none yet).
    [[nodiscard]] std::uint64_t announced(std::size_t sensors) {
        std::lock_guard lock(mutex_);
        for (auto r = rounds_.rbegin(); r != rounds_.rend(); ++r) {
            if (r->newest.size() < sensors) continue;
            std::uint64_t sum = 0;
            for (const auto& [sensor, seq] : r->newest)
                sum += seq;
            return sum;
        }
        return 0;
    }
    // The newest seqs of the first complete round that began after `after`, waiting up to
    // `timeout`.
    std::optional<std::map<std::string, std::uint64_t>> round_after(Clock::time_point after,
                                                                    std::size_t sensors,
                                                                    std::chrono::seconds timeout) {
        const auto deadline = Clock::now() + timeout;
        while (Clock::now() < deadline) {
            {
                std::lock_guard lock(mutex_);
                for (const auto& r : rounds_) {
                    if (r.started > after && r.newest.size() >= sensors) return r.newest;
                }
            }
            std::this_thread::sleep_for(20ms);
        }
        return std::nullopt;
    }

  private:
    struct Round {
        Clock::time_point started;
        std::map<std::string, std::uint64_t> newest;
    };
    void loop() {
        const std::string first = sensor_name(0);
        while (!stop_) {
            zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, 100ms);
            if (!(item.revents & ZMQ_POLLIN)) continue;
            zmq::message_t topic, payload;
            (void)sub_.recv(topic);
            (void)sub_.recv(payload);
            bytes_ += topic.size() + payload.size();
            messages_ += 1;
            try {
                const auto hb = rill::decode_heartbeat(payload.to_string_view());
                std::lock_guard lock(mutex_);
                if (!hb.newest.empty() && hb.newest.front().first == first) {
                    rounds_.push_back(Round{Clock::now(), {}});
                    if (rounds_.size() > 8) rounds_.erase(rounds_.begin());
                }
                if (rounds_.empty()) continue;
                for (const auto& [sensor, seq] : hb.newest)
                    rounds_.back().newest[sensor] = seq;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench-fleet: undecodable heartbeat: %s\n", e.what());
            }
        }
    }
    zmq::socket_t sub_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> bytes_{0};
    std::atomic<std::uint64_t> messages_{0};
    std::mutex mutex_;
    std::vector<Round> rounds_;
    std::thread thread_;
};

std::uint64_t count(Connection& db, const std::string& sql) {
    return std::stoull(std::string(db.exec(sql, "count").value(0, 0)));
}

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

int run_bench(std::size_t sensors, int window) {
    rill::test::TempDir dir("rill-bench-fleet");
    std::fprintf(stderr, "starting a throwaway PostgreSQL (fsync off)...\n");
    rill::test::TempPostgres pg;
    auto db = Connection::open(pg.conninfo());
    (void)rill::store::migrate(db);

    const auto stream = std::to_string(free_port());
    const auto replay = std::to_string(free_port());
    const auto pub_log = (dir.path() / "publisher.log").string();
    Process publisher(
        {"/proc/self/exe", "--publisher", std::to_string(sensors), "@tcp://127.0.0.1:" + stream,
         "@tcp://127.0.0.1:" + replay, (dir.path() / "outbox").string()},
        {.stderr_path = pub_log});
    HeartbeatWatch heartbeats("tcp://127.0.0.1:" + stream);

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
    const auto rows0 = count(db, "SELECT count(*) FROM readings");
    const auto hb0 = heartbeats.bytes();
    const auto hbm0 = heartbeats.messages();
    const auto p0 = proc_stat(publisher.pid());
    const auto s0 = proc_stat(store_sub->pid());
    const auto data_dir = pg.socket_dir() + "/data";
    const double pg0 = postgres_cpu(data_dir);
    const auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(window));
    const auto rows1 = count(db, "SELECT count(*) FROM readings");
    const auto hb1 = heartbeats.bytes();
    const auto hbm1 = heartbeats.messages();
    const auto p1 = proc_stat(publisher.pid());
    const auto s1 = proc_stat(store_sub->pid());
    const double pg1 = postgres_cpu(data_dir);
    const auto announced = heartbeats.announced(sensors);
    const auto stored_now = count(db, "SELECT count(*) FROM readings");
    const double wall = seconds(Clock::now() - t0);
    std::printf("\n== steady state over %.1f s (after a 5 s warm-up)\n", wall);
    std::printf("readings committed: %.0f/s (offered: %zu/s)\n",
                static_cast<double>(rows1 - rows0) / wall, sensors);
    std::printf("heartbeats on the wire: %.0f bytes/s in %.2f messages/s\n",
                static_cast<double>(hb1 - hb0) / wall, static_cast<double>(hbm1 - hbm0) / wall);
    std::printf("publisher: CPU %.2f%% of one core, peak RSS %ld kB\n",
                100.0 * (p1.cpu_s - p0.cpu_s) / wall, p1.hwm_kb);
    std::printf("store-sub: CPU %.2f%% of one core, peak RSS %ld kB\n",
                100.0 * (s1.cpu_s - s0.cpu_s) / wall, s1.hwm_kb);
    std::printf("PostgreSQL: CPU %.2f%% of one core\n", 100.0 * (pg1 - pg0) / wall);
    std::printf(
        "store-sub behind at the end: %lld readings (announced by the latest heartbeat "
        "round minus rows stored)\n",
        static_cast<long long>(announced) - static_cast<long long>(stored_now));
    std::fflush(stdout);

    // 2. Restart.
    store_sub->signal(SIGKILL);
    (void)store_sub->wait_for(10s);
    std::this_thread::sleep_for(2s);
    const auto restart = Clock::now();
    store_sub = start_store_sub();
    const auto target = heartbeats.round_after(restart, sensors, 30s);
    if (!target) throw std::runtime_error("no complete heartbeat round after the restart");
    (void)db.exec(
        "DROP TABLE IF EXISTS fleet_target; CREATE TABLE fleet_target (sensor text "
        "PRIMARY KEY, newest bigint)",
        "target table");
    std::uint64_t want = 0;
    std::string insert = "INSERT INTO fleet_target VALUES ";
    for (const auto& [sensor, newest] : *target) {
        insert += (want ? ",('" : "('") + sensor + "'," + std::to_string(newest) + ")";
        want += newest;
    }
    (void)db.exec(insert, "fill the target table");
    std::optional<double> subscribed;
    std::optional<double> caught_up;
    double query_s = 0;
    const auto deadline = restart + 300s;
    while (Clock::now() < deadline && store_sub->running()) {
        if (!subscribed && read_file(sub_log).find("subscribed to") != std::string::npos) {
            subscribed = seconds(Clock::now() - restart);
        }
        const auto q0 = Clock::now();
        const auto have = count(db,
                                "SELECT count(*) FROM readings r JOIN fleet_target t USING "
                                "(sensor) WHERE r.seq <= t.newest");
        query_s = seconds(Clock::now() - q0);
        if (have >= want) {
            caught_up = seconds(Clock::now() - restart);
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    std::printf("\n== store-sub killed (SIGKILL), down 2 s, started again at T0\n");
    std::printf(
        "target: %llu readings, every seq 1..newest of the first heartbeat round after T0\n",
        static_cast<unsigned long long>(want));
    if (subscribed) std::printf("T0 -> \"subscribed to\" logged: %.2f s\n", *subscribed);
    if (caught_up) {
        std::printf(
            "T0 -> every sensor stored up to its target: %.2f s (poll every 100 ms, one "
            "poll query %.3f s)\n",
            *caught_up, query_s);
    } else {
        std::printf("NOT caught up within %.0f s\n", seconds(deadline - restart));
    }
    const auto s2 = proc_stat(store_sub->pid());
    std::printf("restarted store-sub: CPU %.2f s since T0, peak RSS %ld kB\n", s2.cpu_s, s2.hwm_kb);
    std::fflush(stdout);

    store_sub->signal(SIGTERM);
    (void)store_sub->wait_for(30s);
    publisher.signal(SIGTERM);
    (void)publisher.wait_for(30s);
    return caught_up ? 0 : 1;
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
