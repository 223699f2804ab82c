// bench-e2e: the pipeline as a user runs it, sensor-pub -> store-sub -> PostgreSQL, as real
// processes on loopback over a throwaway PostgreSQL (fsync off, as in bench-ingest).
//
//   bench-e2e [--quick] [--readings N] [--rate R] [--latency-seconds S] [--flush-interval D]
//             [--no-throughput] [--no-latency] [--no-footprint] [--footprint-seconds S]
//
// 1. Throughput: sensor-pub --source sim --rate R --count N (outbox on, fsync batch, frames of
//    up to 1000 readings cut every 5 ms) and store-sub with its defaults. Readings/s from the
//    first to the last row written, then raw binary COPY (rill::store::encode_copy_binary,
//    batches of 10,000, one transaction each) of N rows into an identical table.
// 2. Latency at 1,000 readings/s with default settings (and with store-sub --flush-interval
//    D, default 10ms): p50, p99 and max of (row written - reading timestamp).
// 3. sensor-pub footprint at 1 reading/s: peak RSS (VmHWM) and CPU time over a window.
//
// How "written" is measured: `readings` gets an extra column commit_ts timestamptz DEFAULT
// clock_timestamp() (readings_raw too, LIKE readings INCLUDING ALL), so PostgreSQL stamps each
// row as the COPY inserts it; no trigger. A row becomes visible at its transaction's commit,
// right after its COPY: the stamp is a lower bound of the commit time. For the latency an upper
// bound is measured as well: a separate connection polls max(seq) of the sensor every 2 ms and
// notes when each seq became visible.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rill/store.hpp"
#include "support/ports.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using rill::store::Connection;
using rill::test::proc_stat;
using rill::test::Process;
using rill::test::ProcStat;
using rill::test::read_file;

struct Options {
    std::uint64_t readings = 1'000'000;
    double rate = 500'000;
    int latency_seconds = 10;
    int footprint_seconds = 20;
    std::string flush_interval = "10ms";  // store-sub's in the second latency run
    bool throughput = true;
    bool latency = true;
    bool footprint = true;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "bench-e2e: %s\n"
                 "usage: bench-e2e [--quick] [--readings N] [--rate R] [--latency-seconds S] "
                 "[--flush-interval D] [--footprint-seconds S] [--no-throughput] [--no-latency] "
                 "[--no-footprint]\n",
                 why.c_str());
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto number = [&]() -> double {
            if (i + 1 >= argc) usage("missing value after " + a);
            try {
                return std::stod(argv[++i]);
            } catch (const std::exception&) {
                usage(std::string("not a number: ") + argv[i]);
            }
        };
        if (a == "--quick") {
            o.readings = 200'000;
            o.latency_seconds = 5;
        } else if (a == "--readings") {
            o.readings = static_cast<std::uint64_t>(number());
        } else if (a == "--rate") {
            o.rate = number();
        } else if (a == "--latency-seconds") {
            o.latency_seconds = static_cast<int>(number());
        } else if (a == "--footprint-seconds") {
            o.footprint_seconds = static_cast<int>(number());
        } else if (a == "--flush-interval") {
            if (i + 1 >= argc) usage("missing value after " + a);
            o.flush_interval = argv[++i];
        } else if (a == "--no-throughput") {
            o.throughput = false;
        } else if (a == "--no-latency") {
            o.latency = false;
        } else if (a == "--no-footprint") {
            o.footprint = false;
        } else {
            usage("unknown option " + a);
        }
    }
    if (o.readings == 0 || o.rate <= 0 || o.latency_seconds <= 0 || o.footprint_seconds <= 0) {
        usage("values must be positive");
    }
    return o;
}

bool wait_for_log(const std::string& path, const std::string& text, Process& p,
                  std::chrono::seconds timeout) {
    return rill::test::wait_until(
               [&] { return read_file(path).find(text) != std::string::npos || !p.running(); },
               timeout) &&
           read_file(path).find(text) != std::string::npos;
}

std::string fmt(double v, const char* f = "%.1f") {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

// sensor-pub and store-sub for one sensor; store-sub binds the stream, sensor-pub connects to
// it (so the stream is subscribed within milliseconds of sensor-pub's start).
class Pipeline {
  public:
    Pipeline(const std::filesystem::path& dir, const std::string& conninfo,
             const std::string& sensor, std::vector<std::string> pub_args,
             std::vector<std::string> sub_args)
        : dir_(dir), sensor_(sensor) {
        const int stream = rill::test::free_loopback_port();
        const int replay = rill::test::free_loopback_port();
        sub_log_ = (dir / (sensor + "-store-sub.log")).string();
        pub_log_ = (dir / (sensor + "-sensor-pub.log")).string();
        std::vector<std::string> sub{rill::test::bin("store-sub"),
                                     "--connect",
                                     "@tcp://127.0.0.1:" + std::to_string(stream),
                                     "--db",
                                     conninfo,
                                     "--sensors",
                                     sensor};
        sub.insert(sub.end(), sub_args.begin(), sub_args.end());
        sub_.emplace(sub, rill::test::ProcessOptions{.stderr_path = sub_log_});
        if (!wait_for_log(sub_log_, "subscribed to", *sub_, 60s)) {
            throw std::runtime_error("store-sub did not start: " + read_file(sub_log_));
        }
        std::vector<std::string> pub{rill::test::bin("sensor-pub"),
                                     "--sensor-id",
                                     sensor,
                                     "--pub",
                                     ">tcp://127.0.0.1:" + std::to_string(stream),
                                     "--replay",
                                     "@tcp://127.0.0.1:" + std::to_string(replay),
                                     "--outbox",
                                     (dir / ("outbox-" + sensor)).string(),
                                     "--linger",
                                     "1h",
                                     "--linger-full"};
        pub.insert(pub.end(), pub_args.begin(), pub_args.end());
        pub_.emplace(pub, rill::test::ProcessOptions{.stderr_path = pub_log_});
    }
    ~Pipeline() {
        for (auto* p : {&pub_, &sub_}) {
            if (!*p) continue;
            (*p)->signal(SIGTERM);
            (void)(*p)->wait_for(30s);
        }
    }

    // Waits until `count` readings of the sensor are stored; throws after `timeout`.
    void wait_stored(Connection& db, std::uint64_t count, std::chrono::seconds timeout) {
        const auto deadline = Clock::now() + timeout;
        const std::string sql =
            "SELECT coalesce(max(seq), 0) FROM readings WHERE sensor = '" + sensor_ + "'";
        while (true) {
            const auto got = std::stoull(std::string(db.exec(sql, "max(seq)").value(0, 0)));
            if (got >= count) break;
            if (Clock::now() > deadline || !pub_->running() || !sub_->running()) {
                throw std::runtime_error("only " + std::to_string(got) + " of " +
                                         std::to_string(count) + " readings stored\nsensor-pub:\n" +
                                         read_file(pub_log_) + "store-sub:\n" +
                                         read_file(sub_log_));
            }
            std::this_thread::sleep_for(50ms);
        }
        // Replays may still fill holes below the newest seq.
        const std::string count_sql =
            "SELECT count(*) FROM readings WHERE sensor = '" + sensor_ + "'";
        while (std::stoull(std::string(db.exec(count_sql, "count").value(0, 0))) < count) {
            if (Clock::now() > deadline) throw std::runtime_error("holes were never filled");
            std::this_thread::sleep_for(50ms);
        }
    }

    [[nodiscard]] ProcStat pub_stat() const { return proc_stat(pub_->pid()); }
    [[nodiscard]] ProcStat sub_stat() const { return proc_stat(sub_->pid()); }
    [[nodiscard]] std::string sub_log() const { return read_file(sub_log_); }
    [[nodiscard]] std::string pub_log() const { return read_file(pub_log_); }

  private:
    std::filesystem::path dir_;
    std::string sensor_;
    std::string sub_log_;
    std::string pub_log_;
    std::optional<Process> sub_;
    std::optional<Process> pub_;
};

std::string value(Connection& db, const std::string& sql) {
    return std::string(db.exec(sql, "query").value(0, 0));
}

// COPYs readings [first, first + count) of `sensor` into readings_raw in batches of 10,000,
// one transaction each (encoding untimed); returns the seconds spent in the COPY calls.
double raw_copy(Connection& db, const std::string& sensor, std::uint64_t first,
                std::uint64_t count) {
    std::vector<rill::Reading> batch;
    std::string payload;
    const std::string copy = "COPY readings_raw (" + std::string(rill::store::copy_columns) +
                             ") FROM STDIN (FORMAT binary)";
    Clock::duration copy_time{};
    const auto base = rill::now();
    for (std::uint64_t from = first; from < first + count; from += 10'000) {
        const auto n = std::min<std::uint64_t>(10'000, first + count - from);
        batch.clear();
        for (std::uint64_t s = from; s < from + n; ++s) {
            rill::Reading r;
            r.sensor = sensor;
            r.seq = s;
            r.ts = base + std::chrono::microseconds(static_cast<std::int64_t>(s) * 2);
            r.temperature = 15.0f + static_cast<float>(s % 200) * 0.05f;
            r.humidity = 30.0f + static_cast<float>(s % 500) * 0.1f;
            batch.push_back(std::move(r));
        }
        payload.clear();
        rill::store::encode_copy_binary(batch, payload);
        const auto c0 = Clock::now();
        (void)db.copy_in(copy, payload, "COPY into readings_raw");
        copy_time += Clock::now() - c0;
    }
    return std::chrono::duration<double>(copy_time).count();
}

void throughput(const Options& o, const std::filesystem::path& dir, const std::string& conninfo,
                Connection& db) {
    const std::string sensor = "e2e-throughput";
    const std::vector<std::string> pub_args{"--source",         "sim",
                                            "--rate",           fmt(o.rate, "%.0f"),
                                            "--count",          std::to_string(o.readings),
                                            "--fsync",          "batch",
                                            "--batch-interval", "5ms",
                                            "--batch-max",      "1000"};
    std::printf(
        "\n== throughput: sensor-pub --rate %.0f --count %llu --fsync batch "
        "--batch-interval 5ms --batch-max 1000 -> store-sub (defaults)\n",
        o.rate, static_cast<unsigned long long>(o.readings));
    std::fflush(stdout);
    // Raw binary COPY of as many rows into readings_raw in the same run: half before the
    // pipeline, half after, so that both sides see about the same server state.
    double raw_time = raw_copy(db, sensor, 1, o.readings / 2);
    {
        Pipeline p(dir, conninfo, sensor, pub_args, {});
        const auto t0 = Clock::now();
        p.wait_stored(db, o.readings, std::chrono::seconds(60 + o.readings / 5000));
        const auto wall = std::chrono::duration<double>(Clock::now() - t0).count();
        const auto q = "FROM readings WHERE sensor = '" + sensor + "'";
        const auto count = std::stoull(value(db, "SELECT count(*) " + q));
        const double span =
            std::stod(value(db, "SELECT extract(epoch FROM max(commit_ts) - min(commit_ts)) " + q));
        const double first_lag =
            std::stod(value(db, "SELECT extract(epoch FROM min(commit_ts) - min(ts)) " + q));
        std::printf("rows stored: %llu (distinct seqs %s), wall from sensor-pub start: %.2f s\n",
                    static_cast<unsigned long long>(count),
                    value(db, "SELECT count(DISTINCT seq) " + q).c_str(), wall);
        std::printf(
            "pipeline: %.3f s from first to last row written: %.0f readings/s "
            "(first row written %.3f s after the first reading's timestamp)\n",
            span, static_cast<double>(count) / span, first_lag);
        const auto ps = p.pub_stat();
        const auto ss = p.sub_stat();
        std::printf(
            "CPU time: sensor-pub %.2f s (peak RSS %ld kB), store-sub %.2f s (peak RSS "
            "%ld kB)\n",
            ps.cpu_s, ps.hwm_kb, ss.cpu_s, ss.hwm_kb);
        std::regex published("published up to seq ([0-9]+)");
        std::smatch m;
        const auto plog = p.pub_log();
        if (std::regex_search(plog, m, published)) {
            std::printf("sensor-pub: published up to seq %s\n", m[1].str().c_str());
        }
        std::fflush(stdout);

        // Raw binary COPY: the other half of the rows, after the pipeline.
        raw_time += raw_copy(db, sensor, o.readings / 2 + 1, o.readings - o.readings / 2);
        const double raw_rate = static_cast<double>(o.readings) / raw_time;
        std::printf(
            "raw binary COPY of %llu rows into readings_raw (batches of 10000, half "
            "before and half after the pipeline): %.3f s in COPY calls: %.0f rows/s\n",
            static_cast<unsigned long long>(o.readings), raw_time, raw_rate);
        std::printf("ratio pipeline/raw COPY: %.2f\n",
                    static_cast<double>(count) / span / raw_rate);
    }
    (void)db.exec("TRUNCATE readings_raw", "truncate");
}

// Upper bound of the commit time: when each seq became visible to another connection.
struct VisibilityPoller {
    VisibilityPoller(const std::string& conninfo, std::string sensor)
        : conn(Connection::open(conninfo)),
          sql("SELECT coalesce(max(seq), 0) FROM readings "
              "WHERE sensor = '" +
              sensor + "'") {
        thread = std::thread([this] {
            while (!stop) {
                const auto newest = std::stoull(std::string(conn.exec(sql, "poll").value(0, 0)));
                const auto t = rill::now();
                if (newest > last) {
                    seen.emplace_back(newest, t);
                    last = newest;
                }
                std::this_thread::sleep_for(2ms);
            }
        });
    }
    ~VisibilityPoller() { finish(); }
    void finish() {
        stop = true;
        if (thread.joinable()) thread.join();
    }
    // The time `seq` was first seen visible.
    [[nodiscard]] std::optional<rill::Timestamp> visible(std::uint64_t seq) const {
        const auto it =
            std::lower_bound(seen.begin(), seen.end(), seq,
                             [](const auto& e, std::uint64_t s) { return e.first < s; });
        if (it == seen.end()) return std::nullopt;
        return it->second;
    }
    Connection conn;
    std::string sql;
    std::atomic<bool> stop{false};
    std::uint64_t last = 0;
    std::vector<std::pair<std::uint64_t, rill::Timestamp>> seen;
    std::thread thread;
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

void latency(const Options& o, const std::filesystem::path& dir, const std::string& conninfo,
             Connection& db, const std::string& sensor, const std::vector<std::string>& sub_args,
             const std::string& label) {
    const std::uint64_t n = static_cast<std::uint64_t>(o.latency_seconds) * 1000;
    std::printf(
        "\n== latency at 1000 readings/s, %llu readings: sensor-pub --rate 1000 "
        "(defaults) -> store-sub %s\n",
        static_cast<unsigned long long>(n), label.c_str());
    std::fflush(stdout);
    std::vector<double> written_ms;
    std::vector<double> visible_ms;
    {
        VisibilityPoller poller(conninfo, sensor);
        Pipeline p(dir, conninfo, sensor,
                   {"--source", "sim", "--rate", "1000", "--count", std::to_string(n)}, sub_args);
        p.wait_stored(db, n, std::chrono::seconds(120 + o.latency_seconds));
        std::this_thread::sleep_for(50ms);
        poller.finish();
        auto rows = db.exec(
            "SELECT seq, (extract(epoch FROM commit_ts - ts) * 1000)::float8, "
            "(extract(epoch FROM ts) * 1000000)::int8 FROM readings WHERE "
            "sensor = '" +
                sensor + "' ORDER BY seq",
            "latencies");
        // Skip the first second: store-sub's first batches include its catch-up at start.
        for (int i = 0; i < rows.rows(); ++i) {
            const auto seq = std::stoull(std::string(rows.value(i, 0)));
            if (seq <= 1000) continue;
            written_ms.push_back(std::stod(std::string(rows.value(i, 1))));
            const rill::Timestamp ts{
                std::chrono::microseconds(std::stoll(std::string(rows.value(i, 2))))};
            if (const auto v = poller.visible(seq)) {
                visible_ms.push_back(std::chrono::duration<double, std::milli>(*v - ts).count());
            }
        }
    }
    std::printf(
        "ts -> row written (commit_ts, lower bound): p50 %.1f ms  p99 %.1f ms  max %.1f ms "
        "(%zu readings after the first second)\n",
        percentile(written_ms, 0.5), percentile(written_ms, 0.99), percentile(written_ms, 1.0),
        written_ms.size());
    std::printf(
        "ts -> visible to a poller every 2 ms (upper bound): p50 %.1f ms  p99 %.1f ms  "
        "max %.1f ms\n",
        percentile(visible_ms, 0.5), percentile(visible_ms, 0.99), percentile(visible_ms, 1.0));
    std::fflush(stdout);
}

void footprint(const Options& o, const std::filesystem::path& dir) {
    std::printf(
        "\n== sensor-pub footprint: --source sim --interval 1s --metrics 127.0.0.1:0, "
        "%d s\n",
        o.footprint_seconds);
    std::fflush(stdout);
    const auto log = (dir / "footprint.log").string();
    Process p({rill::test::bin("sensor-pub"), "--sensor-id", "e2e-footprint", "--interval", "1s",
               "--pub", "@tcp://127.0.0.1:0", "--replay", "@tcp://127.0.0.1:0", "--metrics",
               "127.0.0.1:0", "--outbox", (dir / "outbox-footprint").string()},
              {.stderr_path = log});
    if (!wait_for_log(log, "publishing on", p, 30s)) throw std::runtime_error(read_file(log));
    std::this_thread::sleep_for(2s);
    const auto a = proc_stat(p.pid());
    std::this_thread::sleep_for(std::chrono::seconds(o.footprint_seconds));
    const auto b = proc_stat(p.pid());
    std::printf("VmHWM (peak RSS) %ld kB, VmRSS %ld kB, %ld threads\n", b.hwm_kb, b.rss_kb,
                b.threads);
    std::printf("CPU (utime+stime) over %d s: %.2f s = %.2f%% of one core\n", o.footprint_seconds,
                b.cpu_s - a.cpu_s, 100.0 * (b.cpu_s - a.cpu_s) / o.footprint_seconds);
    p.signal(SIGTERM);
    (void)p.wait_for(20s);
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        rill::test::TempDir dir("rill-bench-e2e");
        std::optional<rill::test::TempPostgres> pg;
        std::optional<Connection> db;
        if (o.throughput || o.latency) {
            std::fprintf(stderr, "starting a throwaway PostgreSQL (fsync off)...\n");
            pg.emplace();
            db.emplace(Connection::open(pg->conninfo()));
            (void)rill::store::migrate(*db);
            (void)db->exec(
                "ALTER TABLE readings ADD COLUMN commit_ts timestamptz DEFAULT clock_timestamp();"
                "CREATE TABLE readings_raw (LIKE readings INCLUDING ALL);"
                "CHECKPOINT",
                "add commit_ts");
        }
        std::printf("bench-e2e: sensor-pub -> store-sub -> PostgreSQL 15 on loopback, %ld CPUs\n",
                    sysconf(_SC_NPROCESSORS_ONLN));
        if (o.throughput) throughput(o, dir.path(), pg->conninfo(), *db);
        if (o.latency) {
            latency(o, dir.path(), pg->conninfo(), *db, "e2e-latency-default", {},
                    "(defaults: --flush-interval 200ms)");
            latency(o, dir.path(), pg->conninfo(), *db, "e2e-latency-tuned",
                    {"--flush-interval", o.flush_interval}, "--flush-interval " + o.flush_interval);
        }
        if (o.footprint) footprint(o, dir.path());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench-e2e: %s\n", e.what());
        return 1;
    }
}
