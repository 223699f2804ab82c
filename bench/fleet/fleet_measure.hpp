// Measuring a fleet (bench-fleet, and bench-mqtt --fleet): process CPU and memory from /proc,
// heartbeat bytes and rounds on a publisher's stream, and how long a restarted store-sub takes
// to have every seq stored. Header-only, for the bench programs; definitions are in
// bench/fleet/bench_fleet.cpp's head comment.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rill/codec.hpp"
#include "rill/socket.hpp"
#include "rill/store.hpp"
#include "support/process.hpp"

namespace rill::bench {

using FleetClock = std::chrono::steady_clock;
using rill::test::proc_stat;
using rill::test::ProcStat;

/// "fleet-00042": sensor names that sort as their numbers do (heartbeats list them in order).
inline std::string fleet_sensor_name(std::size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "fleet-%05zu", i);
    return buf;
}

inline double seconds(FleetClock::duration d) {
    return std::chrono::duration<double>(d).count();
}

/// CPU seconds of the PostgreSQL server under `data_dir`: the postmaster, its live children and
/// the children that have exited (cutime, cstime).
inline double postgres_cpu(const std::string& data_dir) {
    const auto pidfile = rill::test::read_file(data_dir + "/postmaster.pid");
    const pid_t postmaster = std::atoi(pidfile.c_str());
    if (postmaster <= 0) return 0;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    double total = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const auto name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const auto stat = rill::test::read_file(entry.path() / "stat");
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

/// Counts heartbeat bytes on a stream and keeps the newest seq each heartbeat announced, per
/// round: a round starts with a heartbeat listing `first_sensor` (heartbeats list sensors in
/// order, split beyond 4096 per message).
class HeartbeatWatch {
  public:
    HeartbeatWatch(const std::string& endpoint, std::string first_sensor)
        : first_(std::move(first_sensor)), sub_(rill::default_context(), zmq::socket_type::sub) {
        sub_.set(zmq::sockopt::subscribe, std::string("\0hb", 3));
        sub_.set(zmq::sockopt::linger, 0);
        sub_.connect(endpoint);
        thread_ = std::thread([this] { loop(); });
    }
    ~HeartbeatWatch() {
        stop_ = true;
        thread_.join();
    }
    HeartbeatWatch(const HeartbeatWatch&) = delete;
    HeartbeatWatch& operator=(const HeartbeatWatch&) = delete;
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
    std::optional<std::map<std::string, std::uint64_t>> round_after(FleetClock::time_point after,
                                                                    std::size_t sensors,
                                                                    std::chrono::seconds timeout) {
        const auto deadline = FleetClock::now() + timeout;
        while (FleetClock::now() < deadline) {
            {
                std::lock_guard lock(mutex_);
                for (const auto& r : rounds_) {
                    if (r.started > after && r.newest.size() >= sensors) return r.newest;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return std::nullopt;
    }

  private:
    struct Round {
        FleetClock::time_point started;
        std::map<std::string, std::uint64_t> newest;
    };
    void loop() {
        while (!stop_) {
            zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
            zmq::poll(&item, 1, std::chrono::milliseconds(100));
            if (!(item.revents & ZMQ_POLLIN)) continue;
            zmq::message_t topic, payload;
            (void)sub_.recv(topic);
            (void)sub_.recv(payload);
            bytes_ += topic.size() + payload.size();
            messages_ += 1;
            try {
                const auto hb = rill::decode_heartbeat(payload.to_string_view());
                std::lock_guard lock(mutex_);
                if (!hb.newest.empty() && hb.newest.front().first == first_) {
                    rounds_.push_back(Round{FleetClock::now(), {}});
                    if (rounds_.size() > 8) rounds_.erase(rounds_.begin());
                }
                if (rounds_.empty()) continue;
                for (const auto& [sensor, seq] : hb.newest)
                    rounds_.back().newest[sensor] = seq;
            } catch (const std::exception& e) {
                std::fprintf(stderr, "fleet bench: undecodable heartbeat: %s\n", e.what());
            }
        }
    }
    std::string first_;
    zmq::socket_t sub_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> bytes_{0};
    std::atomic<std::uint64_t> messages_{0};
    std::mutex mutex_;
    std::vector<Round> rounds_;
    std::thread thread_;
};

inline std::uint64_t count(rill::store::Connection& db, const std::string& sql) {
    return std::stoull(std::string(db.exec(sql, "count").value(0, 0)));
}

/// A process whose CPU and peak RSS the steady window reports, under `name`.
struct Watched {
    std::string name;  ///< as printed ("store-sub")
    pid_t pid = 0;     ///< 0: not printed
};

/// A counter whose rate over the steady window is printed as "`label`: X/s".
struct Rate {
    std::string label;             ///< as printed
    std::function<double()> read;  ///< the counter's value now
};

/// The steady window: samples, sleeps `window`, samples again and prints readings committed per
/// second (rows of `readings`; `sensors` offered), each of `rates`, heartbeat bytes per second,
/// CPU (fraction of one core) and peak RSS of each of `procs`, PostgreSQL's CPU (server under
/// `pg_data_dir`) and how far the stored rows are behind the latest heartbeat round.
inline void measure_steady(rill::store::Connection& db, HeartbeatWatch& heartbeats,
                           const std::string& pg_data_dir, std::size_t sensors,
                           std::chrono::seconds window, const std::vector<Watched>& procs,
                           const std::vector<Rate>& rates = {}) {
    struct Sample {
        std::uint64_t rows = 0, hb_bytes = 0, hb_messages = 0;
        double pg = 0;
        std::vector<double> counters;
        std::vector<ProcStat> procs;
    };
    auto take = [&] {
        Sample s{count(db, "SELECT count(*) FROM readings"), heartbeats.bytes(),
                 heartbeats.messages(), postgres_cpu(pg_data_dir)};
        for (const auto& r : rates)
            s.counters.push_back(r.read());
        for (const auto& p : procs)
            s.procs.push_back(p.pid ? proc_stat(p.pid) : ProcStat{});
        return s;
    };
    const auto a = take();
    const auto t0 = FleetClock::now();
    std::this_thread::sleep_for(window);
    const auto b = take();
    const double wall = seconds(FleetClock::now() - t0);
    const auto announced = heartbeats.announced(sensors);
    const auto stored_now = count(db, "SELECT count(*) FROM readings");
    std::printf("\n== steady state over %.1f s (after a 5 s warm-up)\n", wall);
    for (std::size_t i = 0; i < rates.size(); ++i)
        std::printf("%s: %.0f/s\n", rates[i].label.c_str(), (b.counters[i] - a.counters[i]) / wall);
    std::printf("readings committed: %.0f/s (offered: %zu/s)\n",
                static_cast<double>(b.rows - a.rows) / wall, sensors);
    std::printf("heartbeats on the wire: %.0f bytes/s in %.2f messages/s\n",
                static_cast<double>(b.hb_bytes - a.hb_bytes) / wall,
                static_cast<double>(b.hb_messages - a.hb_messages) / wall);
    for (std::size_t i = 0; i < procs.size(); ++i) {
        if (!procs[i].pid) continue;
        std::printf("%s: CPU %.2f%% of one core, peak RSS %ld kB\n", procs[i].name.c_str(),
                    100.0 * (b.procs[i].cpu_s - a.procs[i].cpu_s) / wall, b.procs[i].hwm_kb);
    }
    std::printf("PostgreSQL: CPU %.2f%% of one core\n", 100.0 * (b.pg - a.pg) / wall);
    std::printf(
        "store-sub behind at the end: %lld readings (announced by the latest heartbeat "
        "round minus rows stored)\n",
        static_cast<long long>(announced) - static_cast<long long>(stored_now));
    std::fflush(stdout);
}

/// What a store-sub restarted at T0 took to catch up.
struct CatchUp {
    std::uint64_t want = 0;            ///< readings in the target
    std::optional<double> subscribed;  ///< T0 -> "subscribed to" in its log, s
    std::optional<double> caught_up;   ///< T0 -> every seq of the target stored, s
    double query_s = 0;                ///< one poll query, s
};

/// Takes the target (per sensor, the newest seq of the first complete heartbeat round after
/// `restart`) and polls every 100 ms, at most 300 s and while `running()`, until every seq
/// 1..target of every sensor is in `readings`; watches `sub_log` for "subscribed to".
inline CatchUp measure_catch_up(rill::store::Connection& db, HeartbeatWatch& heartbeats,
                                std::size_t sensors, FleetClock::time_point restart,
                                const std::function<bool()>& running, const std::string& sub_log) {
    CatchUp c;
    const auto target = heartbeats.round_after(restart, sensors, std::chrono::seconds(30));
    if (!target) throw std::runtime_error("no complete heartbeat round after the restart");
    (void)db.exec(
        "DROP TABLE IF EXISTS fleet_target; CREATE TABLE fleet_target (sensor text "
        "PRIMARY KEY, newest bigint)",
        "target table");
    std::string insert = "INSERT INTO fleet_target VALUES ";
    for (const auto& [sensor, newest] : *target) {
        insert += (c.want ? ",('" : "('") + sensor + "'," + std::to_string(newest) + ")";
        c.want += newest;
    }
    (void)db.exec(insert, "fill the target table");
    const auto deadline = restart + std::chrono::seconds(300);
    while (FleetClock::now() < deadline && running()) {
        if (!c.subscribed &&
            rill::test::read_file(sub_log).find("subscribed to") != std::string::npos) {
            c.subscribed = seconds(FleetClock::now() - restart);
        }
        const auto q0 = FleetClock::now();
        const auto have = count(db,
                                "SELECT count(*) FROM readings r JOIN fleet_target t USING "
                                "(sensor) WHERE r.seq <= t.newest");
        c.query_s = seconds(FleetClock::now() - q0);
        if (have >= c.want) {
            c.caught_up = seconds(FleetClock::now() - restart);
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::printf("\n== store-sub killed (SIGKILL), down 2 s, started again at T0\n");
    std::printf(
        "target: %llu readings, every seq 1..newest of the first heartbeat round after T0\n",
        static_cast<unsigned long long>(c.want));
    if (c.subscribed) std::printf("T0 -> \"subscribed to\" logged: %.2f s\n", *c.subscribed);
    if (c.caught_up) {
        std::printf(
            "T0 -> every sensor stored up to its target: %.2f s (poll every 100 ms, one "
            "poll query %.3f s)\n",
            *c.caught_up, c.query_s);
    } else {
        std::printf("NOT caught up within %.0f s\n", seconds(deadline - restart));
    }
    std::fflush(stdout);
    return c;
}

/// Kills `store_sub` with SIGKILL, waits 2 s, starts it again with `start` (T0) and measures
/// its catch-up (measure_catch_up; `sub_log` is the new process's log once `start` returned).
/// Prints the restarted process's CPU since T0 and peak RSS.
inline CatchUp restart_store_sub(rill::store::Connection& db, HeartbeatWatch& heartbeats,
                                 std::size_t sensors,
                                 std::unique_ptr<rill::test::Process>& store_sub,
                                 const std::function<std::unique_ptr<rill::test::Process>()>& start,
                                 const std::string& sub_log) {
    store_sub->signal(SIGKILL);
    (void)store_sub->wait_for(std::chrono::seconds(10));
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const auto restart = FleetClock::now();
    store_sub = start();
    const auto c = measure_catch_up(
        db, heartbeats, sensors, restart, [&] { return store_sub->running(); }, sub_log);
    const auto s = proc_stat(store_sub->pid());
    std::printf("restarted store-sub: CPU %.2f s since T0, peak RSS %ld kB\n", s.cpu_s, s.hwm_kb);
    std::fflush(stdout);
    return c;
}

}  // namespace rill::bench
