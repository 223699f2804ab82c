// sensor-pub as a program: the real binary, observed from outside with a Subscriber on its
// stream, a ReplayClient on its replay service, its admin HTTP server and, once it exited, its
// outbox directory opened with rill::Outbox.
#include <doctest/doctest.h>
#include <httplib.h>

#include <zmq_addon.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "rill/codec.hpp"
#include "rill/outbox.hpp"
#include "rill/replay.hpp"
#include "rill/socket.hpp"
#include "rill/stream.hpp"
#include "rill/version.hpp"
#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::Process;
using rill::test::read_file;
using rill::test::run_command;
using rill::test::TempDir;
using rill::test::wait_until;
namespace fs = std::filesystem;

namespace {

// A sensor-pub process on loopback ports chosen by the kernel, logging to a file.
class SensorPub {
  public:
    // Runs sensor-pub with `args` after the endpoints (port 0), a 100 ms heartbeat and the
    // outbox `outbox`.
    SensorPub(const fs::path& log, const fs::path& outbox, std::vector<std::string> args,
              std::vector<std::string> env = {})
        : log_(log.string()), process_(argv(outbox, std::move(args)), options(log_, env)) {}

    // Waits for the start line and reads the bound endpoints from it.
    [[nodiscard]] bool started() {
        const std::regex line(
            R"(info sensor-pub: sensor .* publishing on (tcp://127\.0\.0\.1:[0-9]+), replay on )"
            R"((tcp://127\.0\.0\.1:[0-9]+), outbox .* at seq ([0-9]+)\n)");
        std::smatch m;
        const bool ok = wait_until(
            [&] {
                const auto text = read_file(log_);
                if (!std::regex_search(text, m, line)) return !process_.running();
                pub_ = m[1];
                replay_ = m[2];
                start_seq_ = std::stoull(m[3]);
                return true;
            },
            30s);
        return ok && !pub_.empty();
    }
    // Waits for "published up to seq N" and returns N.
    [[nodiscard]] std::optional<std::uint64_t> published(std::chrono::seconds timeout = 60s) {
        const std::regex line(R"(info sensor-pub: published up to seq ([0-9]+)\n)");
        std::optional<std::uint64_t> seq;
        wait_until(
            [&] {
                const auto text = read_file(log_);
                std::smatch m;
                if (std::regex_search(text, m, line)) seq = std::stoull(m[1]);
                return seq.has_value() || !process_.running();
            },
            timeout);
        return seq;
    }
    [[nodiscard]] std::string log() const { return read_file(log_); }
    [[nodiscard]] const std::string& pub() const noexcept { return pub_; }
    [[nodiscard]] const std::string& replay() const noexcept { return replay_; }
    [[nodiscard]] std::uint64_t start_seq() const noexcept { return start_seq_; }
    Process& process() noexcept { return process_; }

  private:
    static std::vector<std::string> argv(const fs::path& outbox, std::vector<std::string> args) {
        std::vector<std::string> v{bin("sensor-pub"),
                                   "--pub",
                                   "@tcp://127.0.0.1:0",
                                   "--replay",
                                   "@tcp://127.0.0.1:0",
                                   "--heartbeat-interval",
                                   "100ms",
                                   "--outbox",
                                   outbox.string()};
        v.insert(v.end(), args.begin(), args.end());
        return v;
    }
    static rill::test::ProcessOptions options(const std::string& log,
                                              std::vector<std::string> env) {
        rill::test::ProcessOptions o;
        o.env = std::move(env);
        o.stderr_path = log;
        return o;
    }

    std::string log_;
    Process process_;
    std::string pub_;
    std::string replay_;
    std::uint64_t start_seq_ = 0;
};

// What a Subscriber saw of one sensor.
struct Observed {
    std::vector<Reading> readings;  // in arrival order
    std::vector<Gap> gaps;
    std::vector<std::uint64_t> announced;  // newest seq of the sensor in each heartbeat
    std::vector<std::string> publishers;   // identity of each heartbeat's sender
};

// Receives until `done` (given what was seen so far) holds or `timeout` passes.
Observed observe(Subscriber& sub, const std::string& sensor,
                 const std::function<bool(const Observed&)>& done, std::chrono::seconds timeout) {
    Observed o;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done(o) && std::chrono::steady_clock::now() < deadline) {
        auto ev = sub.receive(50ms);
        if (!ev) continue;
        if (auto* b = std::get_if<ReadingBatch>(&*ev)) {
            for (auto& r : b->readings)
                if (r.sensor == sensor) o.readings.push_back(r);
        } else if (auto* g = std::get_if<Gap>(&*ev)) {
            if (g->sensor == sensor) o.gaps.push_back(*g);
        } else if (auto* h = std::get_if<HeartbeatSeen>(&*ev)) {
            for (const auto& [s, newest] : h->heartbeat.newest) {
                if (s != sensor) continue;
                o.announced.push_back(newest);
                o.publishers.push_back(h->heartbeat.publisher);
            }
        }
    }
    return o;
}

// Every reading of `sensor` in the outbox at `dir` (opened after its process exited).
std::vector<Reading> read_outbox(const fs::path& dir, const std::string& sensor) {
    Outbox outbox(dir);
    std::vector<Reading> all;
    std::uint64_t from = 1;
    while (true) {
        auto r = outbox.read(sensor, from, 1000);
        if (r.readings.empty()) break;
        from = r.readings.back().seq + 1;
        for (auto& x : r.readings)
            all.push_back(std::move(x));
    }
    return all;
}

// Checks that `readings` are seqs first, first+1, ..., last.
void check_consecutive(const std::vector<Reading>& readings, std::uint64_t first,
                       std::uint64_t last) {
    REQUIRE(readings.size() == last - first + 1);
    for (std::size_t i = 0; i < readings.size(); ++i) {
        REQUIRE(readings[i].seq == first + i);
    }
}

std::string exit_output(const std::vector<std::string>& args, int& code,
                        std::vector<std::string> env = {}) {
    TempDir dir("rill-sensor-pub");
    const auto log = (dir.path() / "log").string();
    std::vector<std::string> argv{bin("sensor-pub")};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, {.env = std::move(env), .stdout_path = log, .stderr_path = log});
    const auto c = p.wait_for(30s);
    code = c.value_or(-1);
    return read_file(log);
}

void write_text(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

Timestamp at(const char* text) {
    return *parse_time(text);
}

// A loopback TCP port the kernel just chose as free (bound to port 0, then closed), for a
// subscriber that must connect before the publisher binds.
int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace

TEST_CASE(
    "sensor-pub --count publishes exactly seq 1 to N, lingers with heartbeats and replay, "
    "then exits 0") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "count-test";
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--count", "40", "--interval", "50ms", "--linger", "3s"});
    REQUIRE(sp.started());
    CHECK(sp.start_seq() == 0);
    Subscriber sub(sp.pub());
    sub.expect(sensor, 1);  // the readings sent before the subscription arrived become a gap

    // Receive until the process is gone; meanwhile, once it is done, ask its replay service.
    // A first request for seq 1 alone, while it still publishes, stops short of its newest seq:
    // sensor-pub lingers (up to --linger) until the rest is asked for.
    ReplayClient probe(default_context(), sp.replay());
    bool probed = false;
    std::optional<ReplayResult> replayed;
    auto done = [&](const Observed& o) {
        if (!probed && o.readings.size() >= 2) {
            probed = probe.request(ReplayRequest{sensor, 1, 1}).readings.size() == 1;
        }
        if (probed && !replayed && sp.log().find("published up to seq") != std::string::npos) {
            ReplayClient client(default_context(), sp.replay());
            replayed = client.fetch(sensor, 1, 1000);
        }
        return !sp.process().running();
    };
    const auto seen = observe(sub, sensor, done, 60s);
    REQUIRE(sp.process().wait_for(10s) == 0);
    CHECK(sp.published() == 40u);
    CHECK(sp.log().find("info sensor-pub: done") != std::string::npos);
    // It left once its subscriber and the replay client had what they wanted, not at the bound.
    CHECK_MESSAGE(sp.log().find("info sensor-pub: subscribers caught up") != std::string::npos,
                  sp.log());

    // The stream: consecutive seqs up to 40, never beyond; what came before them is a gap.
    REQUIRE(!seen.readings.empty());
    const auto first = seen.readings.front().seq;
    check_consecutive(seen.readings, first, 40);
    if (first > 1) {
        REQUIRE(seen.gaps.size() == 1);
        CHECK(seen.gaps.front() == Gap{sensor, 1, first - 1});
    } else {
        CHECK(seen.gaps.empty());
    }
    // Heartbeats announced the newest seq, and kept doing so while lingering.
    REQUIRE(!seen.announced.empty());
    CHECK(*std::max_element(seen.announced.begin(), seen.announced.end()) == 40u);
    CHECK(std::count(seen.announced.begin(), seen.announced.end(), 40u) >= 2);

    // The replay service answered for all of them while lingering, with the streamed values.
    REQUIRE(replayed.has_value());
    CHECK(replayed->lost.empty());
    CHECK(replayed->newest == 40u);
    check_consecutive(replayed->readings, 1, 40);
    for (const auto& r : seen.readings)
        CHECK(r == replayed->readings[static_cast<std::size_t>(r.seq - 1)]);

    // The outbox holds the same.
    CHECK(read_outbox(dir.path() / "outbox", sensor) == replayed->readings);
}

TEST_CASE("a restarted sensor-pub announces its outbox's newest seq and resumes after it") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "restart-test";
    const auto outbox = dir.path() / "outbox";
    {
        SensorPub first(
            dir.path() / "log1", outbox,
            {"--sensor-id", sensor, "--count", "5", "--interval", "10ms", "--linger", "0s"});
        REQUIRE(first.process().wait_for(30s) == 0);
        CHECK(first.published() == 5u);
    }
    {
        // A restart whose source has nothing yet (an empty CSV file): its heartbeats announce 5
        // although it published nothing.
        write_text(dir.path() / "empty.csv", "");
        SensorPub idle(
            dir.path() / "log2", outbox,
            {"--sensor-id", sensor, "--source", "csv:" + (dir.path() / "empty.csv").string(),
             "--count", "1", "--linger", "60s", "--publisher-id", "idle-run"});
        REQUIRE(idle.started());
        CHECK(idle.start_seq() == 5u);
        Subscriber sub(idle.pub());
        const auto seen = observe(
            sub, sensor, [](const Observed&) { return false; }, 2s);
        idle.process().signal(SIGTERM);
        REQUIRE(idle.process().wait_for(20s) == 0);
        CHECK(seen.readings.empty());
        REQUIRE(!seen.announced.empty());
        for (std::size_t i = 0; i < seen.announced.size(); ++i) {
            CHECK(seen.announced[i] == 5u);
            CHECK(seen.publishers[i] == "idle-run");
        }
        CHECK(idle.published() == 5u);
    }
    // A second --count run publishes 6..10: no seq repeats, none is skipped.
    SensorPub second(
        dir.path() / "log3", outbox,
        {"--sensor-id", sensor, "--count", "5", "--interval", "200ms", "--linger", "1s"});
    REQUIRE(second.started());
    CHECK(second.start_seq() == 5u);
    Subscriber sub(second.pub());
    sub.expect(sensor, 6);
    const auto seen = observe(
        sub, sensor, [&](const Observed&) { return !second.process().running(); }, 60s);
    REQUIRE(second.process().wait_for(10s) == 0);
    CHECK(second.published() == 10u);
    REQUIRE(!seen.readings.empty());
    check_consecutive(seen.readings, seen.readings.front().seq, 10);
    CHECK(seen.readings.front().seq >= 6u);
    for (const auto& g : seen.gaps) {
        CHECK(g.from >= 6u);
        CHECK(g.to < seen.readings.front().seq);
    }
    const auto all = read_outbox(outbox, sensor);
    check_consecutive(all, 1, 10);
    CHECK(all[5].ts > all[4].ts);
}

TEST_CASE(
    "sensor-pub exits 0 promptly on SIGTERM while its source waits, keeping what it "
    "appended") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "sigterm-test";
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--interval", "1h"});
    REQUIRE(sp.started());
    Subscriber sub(sp.pub());
    // The first reading is taken at once; then the source waits an hour. A heartbeat
    // announcing seq 1 shows it was appended and published.
    const auto seen = observe(
        sub, sensor, [](const Observed& o) { return !o.announced.empty(); }, 30s);
    REQUIRE(!seen.announced.empty());
    REQUIRE(seen.announced.back() == 1u);
    const auto t0 = std::chrono::steady_clock::now();
    sp.process().signal(SIGTERM);
    REQUIRE(sp.process().wait_for(10s) == 0);
    const auto took = std::chrono::steady_clock::now() - t0;
    MESSAGE("sensor-pub exited " << std::chrono::duration<double>(took).count()
                                 << " s after SIGTERM");
    CHECK(sp.published() == 1u);
    CHECK(sp.log().find("info sensor-pub: stopped by signal") != std::string::npos);
    const auto all = read_outbox(dir.path() / "outbox", sensor);
    check_consecutive(all, 1, 1);
}

TEST_CASE(
    "sensor-pub exits 0 on SIGINT in the middle of a fast stream with every appended "
    "reading in its outbox") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "sigint-test";
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--rate", "5000", "--batch-interval", "5ms", "--batch-max",
                  "100", "--outbox-segment-bytes", "64KiB"});
    REQUIRE(sp.started());
    Subscriber sub(sp.pub());
    const auto seen = observe(
        sub, sensor, [](const Observed&) { return false; }, 1s);
    REQUIRE(!seen.announced.empty());
    sp.process().signal(SIGINT);
    REQUIRE(sp.process().wait_for(10s) == 0);
    const auto newest = sp.published();
    REQUIRE(newest.has_value());
    CHECK(*newest >= seen.announced.back());
    const auto all = read_outbox(dir.path() / "outbox", sensor);
    check_consecutive(all, 1, *newest);
    CHECK(Outbox(dir.path() / "outbox").newest(sensor) == *newest);
}

TEST_CASE("sensor-pub publishes the rows of a CSV file with their exact values") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "csv-test";
    const auto csv = dir.path() / "rows.csv";
    write_text(csv,
               "ts,temperature,humidity,pressure\n"
               "2026-11-21T10:00:00Z,21.5,40.25,1013.5\n"
               "# a comment\n"
               "2026-11-21T10:00:05.250Z,-3.75,100,990\n"
               "1795255200,0.125,0,1000.125\n");
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--source", "csv:" + csv.string(), "--count", "100",
                  "--linger", "60s"});
    REQUIRE(sp.started());
    REQUIRE(sp.published() == 3u);
    ReplayClient client(default_context(), sp.replay());
    const auto got = client.fetch(sensor, 1, 100);
    sp.process().signal(SIGTERM);
    REQUIRE(sp.process().wait_for(20s) == 0);

    auto reading = [&](std::uint64_t seq, Timestamp ts, float t, float h, double pressure) {
        return Reading{sensor, seq, ts, t, h, {{"pressure", pressure}}};
    };
    const std::vector<Reading> expected{
        reading(1, at("2026-11-21T10:00:00Z"), 21.5f, 40.25f, 1013.5),
        reading(2, at("2026-11-21T10:00:05.250Z"), -3.75f, 100.0f, 990),
        reading(3, Timestamp{std::chrono::seconds(1795255200)}, 0.125f, 0.0f, 1000.125)};
    CHECK(got.readings == expected);
    CHECK(got.newest == 3u);
    CHECK(got.lost.empty());
}

TEST_CASE(
    "a CSV sensor-pub gets every row stored exactly once by a store-sub subscribed before it, "
    "then exits by itself once it caught up") {
    TempDir dir("rill-sensor-pub");
    rill::test::TempPostgres pg;
    const std::string sensor = "csv-history";
    const std::uint64_t rows = 300;
    std::string text = "ts,temperature,humidity\n";
    for (std::uint64_t i = 0; i < rows; ++i) {
        text += std::to_string(1795255200 + i) + "," + std::to_string(i % 40) + ".5,50\n";
    }
    write_text(dir.path() / "history.csv", text);

    // store-sub first, connecting to where sensor-pub will bind; subscribed for a second.
    const auto stream = "tcp://127.0.0.1:" + std::to_string(free_loopback_port());
    rill::test::StoreSub store(dir.path(),
                               {.connect = {stream}, .db = pg.conninfo(), .metrics = false});
    REQUIRE(
        wait_until([&] { return store.log().find("subscribed to") != std::string::npos; }, 30s));
    std::this_thread::sleep_for(1s);

    // The rows go out at full speed as soon as sensor-pub binds, before store-sub's
    // subscription took effect: they reach it by replay only.
    const auto log = (dir.path() / "log").string();
    const auto started = std::chrono::steady_clock::now();
    Process p({bin("sensor-pub"), "--sensor-id", sensor, "--source",
               "csv:" + (dir.path() / "history.csv").string(), "--pub", "@" + stream, "--replay",
               "@tcp://127.0.0.1:0", "--heartbeat-interval", "100ms", "--outbox",
               (dir.path() / "outbox").string(), "--linger", "40s"},
              {.stderr_path = log});
    REQUIRE(p.wait_for(60s) == 0);
    const auto took = std::chrono::steady_clock::now() - started;
    MESSAGE("sensor-pub exited after " << std::chrono::duration<double>(took).count() << " s");
    CHECK(took < 40s);  // by itself, not at the bound
    CHECK_MESSAGE(
        read_file(log).find("info sensor-pub: published up to seq 300") != std::string::npos,
        read_file(log));
    CHECK_MESSAGE(
        read_file(log).find("info sensor-pub: subscribers caught up") != std::string::npos,
        read_file(log));
    // Every row stored exactly once (the readings store-sub received before sensor-pub left).
    CHECK(rill::test::wait_rows(pg, rows, 30s));
    CHECK(rill::test::exactly_once_problem(pg, {{sensor, rows}}) == "");
    store.process().signal(SIGTERM);
    CHECK(store.process().wait_for(30s) == 0);
}

TEST_CASE("a CSV sensor-pub that no subscriber joined lingers for --linger and says so") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "csv-alone";
    write_text(dir.path() / "rows.csv",
               "ts,temperature,humidity\n1795255200,20,50\n1795255201,21,51\n");
    const auto started = std::chrono::steady_clock::now();
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--source", "csv:" + (dir.path() / "rows.csv").string(),
                  "--linger", "1s"});
    REQUIRE(sp.process().wait_for(30s) == 0);
    CHECK(std::chrono::steady_clock::now() - started >= 1s);
    const auto text = sp.log();
    CHECK(sp.published() == 2u);
    CHECK_MESSAGE(
        text.find("warn sensor-pub: linger bound of 1.0 s passed before the subscribers "
                  "were known to have caught up (no subscriber joined)") != std::string::npos,
        text);
    CHECK(text.find("caught up after") == std::string::npos);
    CHECK(text.find("info sensor-pub: done") != std::string::npos);
}

TEST_CASE("sensor-pub publishes an IIO sensor's milli-unit values in degrees and percent") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "iio-test";
    const auto sysfs = dir.path() / "sys";
    const auto devices = sysfs / "bus" / "iio" / "devices";
    write_text(devices / "iio:device0" / "name", "3f215000.adc\n");
    write_text(devices / "iio:device1" / "name", "dht11@0\n");
    write_text(devices / "iio:device1" / "in_temp_input", "23400\n");
    write_text(devices / "iio:device1" / "in_humidityrelative_input", "45600\n");
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--source", "iio", "--sysfs-root", sysfs.string(),
                  "--interval", "1s", "--count", "2", "--linger", "60s"});
    REQUIRE(sp.started());
    CHECK(sp.log().find("iio:device1") != std::string::npos);
    REQUIRE(sp.published() == 2u);
    ReplayClient client(default_context(), sp.replay());
    const auto got = client.fetch(sensor, 1, 10);
    sp.process().signal(SIGTERM);
    REQUIRE(sp.process().wait_for(20s) == 0);
    REQUIRE(got.readings.size() == 2);
    for (const auto& r : got.readings) {
        CHECK(r.temperature == 23.4f);
        CHECK(r.humidity == 45.6f);
    }
    CHECK(got.readings[1].ts > got.readings[0].ts);
}

TEST_CASE("sensor-pub --source dht11 without a GPIO chip fails with exit 1 naming the chip") {
    if (fs::exists("/dev/gpiochip0")) {
        MESSAGE("skipped: this machine has /dev/gpiochip0");
        return;
    }
    TempDir dir("rill-sensor-pub");
    int code = 0;
    const auto out = exit_output({"--sensor-id", "dht-test", "--source", "dht11", "--outbox",
                                  (dir.path() / "outbox").string(), "--pub", "@tcp://127.0.0.1:0",
                                  "--replay", "@tcp://127.0.0.1:0"},
                                 code);
    CHECK(code == 1);
    CHECK_MESSAGE(out.find("error sensor-pub: ") != std::string::npos, out);
    CHECK_MESSAGE(out.find("gpiochip0") != std::string::npos, out);
}

TEST_CASE("sensor-pub refuses bad flag values with a message naming the flag") {
    TempDir dir("rill-sensor-pub");
    const std::vector<std::string> base{"--outbox", (dir.path() / "outbox").string(),
                                        "--pub",    "@tcp://127.0.0.1:0",
                                        "--replay", "@tcp://127.0.0.1:0",
                                        "--count",  "1"};
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{"--sensor-id", "s", "--fsync", "sometimes"}, "--fsync"},
        {{"--sensor-id", "s", "--interval", "5"}, "--interval"},
        {{"--sensor-id", "s", "--interval", "-1s"}, "--interval"},
        {{"--sensor-id", std::string(65, 'x')}, "--sensor-id"},
        {{"--sensor-id", ""}, "--sensor-id"},
        {{"--sensor-id", "s", "--outbox-max-bytes", "lots"}, "--outbox-max-bytes"},
        {{"--sensor-id", "s", "--outbox-segment-bytes", "1x"}, "--outbox-segment-bytes"},
        {{"--sensor-id", "s", "--outbox-max-age", "old"}, "--outbox-max-age"},
        {{"--sensor-id", "s", "--linger", "forever"}, "--linger"},
        {{"--sensor-id", "s", "--heartbeat-interval", "1"}, "--heartbeat-interval"},
        {{"--sensor-id", "s", "--batch-interval", "soon"}, "--batch-interval"},
        {{"--sensor-id", "s", "--rate", "fast"}, "--rate"},
        {{"--sensor-id", "s", "--source", "thermometer"}, "--source"},
    };
    for (const auto& [args, flag] : cases) {
        auto argv = args;
        argv.insert(argv.end(), base.begin(), base.end());
        int code = 0;
        const auto out = exit_output(argv, code);
        INFO(flag << ": " << out);
        CHECK(code != 0);
        CHECK(out.find(flag) != std::string::npos);
    }
}

TEST_CASE("sensor-pub replays ranges inside its outbox and across segment boundaries") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "segments-test";
    const auto outbox = dir.path() / "outbox";
    SensorPub sp(dir.path() / "log", outbox,
                 {"--sensor-id", sensor, "--rate", "20000", "--count", "3000",
                  "--outbox-segment-bytes", "8KiB", "--linger", "60s"});
    REQUIRE(sp.started());
    REQUIRE(sp.published() == 3000u);
    ReplayClient client(default_context(), sp.replay());
    const auto whole = client.fetch(sensor, 1, 3000, {.chunk = 700});
    const auto middle = client.request({sensor, 1234, 500});
    const auto tail = client.request({sensor, 2900, 500});
    sp.process().signal(SIGTERM);
    REQUIRE(sp.process().wait_for(20s) == 0);
    CHECK(sp.log().find("dropped segment") == std::string::npos);

    const auto stored = read_outbox(outbox, sensor);
    check_consecutive(stored, 1, 3000);
    CHECK(Outbox(outbox).metrics().segments >= 5u);  // the ranges crossed segment boundaries
    CHECK(whole.readings == stored);
    CHECK(whole.lost.empty());
    CHECK(middle.lost == std::nullopt);
    CHECK(middle.first_available == 1u);
    CHECK(middle.newest == 3000u);
    CHECK(middle.readings ==
          std::vector<Reading>(stored.begin() + 1233, stored.begin() + 1233 + 500));
    CHECK(tail.readings == std::vector<Reading>(stored.begin() + 2899, stored.end()));
}

TEST_CASE(
    "sensor-pub's replay reports exactly the range its full outbox dropped, and nothing "
    "beyond its newest seq") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "dropped-test";
    const auto outbox = dir.path() / "outbox";
    SensorPub sp(
        dir.path() / "log", outbox,
        {"--sensor-id", sensor, "--rate", "20000", "--count", "5000", "--outbox-segment-bytes",
         "8KiB", "--outbox-max-bytes", "32KiB", "--linger", "60s"});
    REQUIRE(sp.started());
    REQUIRE(sp.published() == 5000u);
    ReplayClient client(default_context(), sp.replay());
    const auto from_start = client.request({sensor, 1, 100});
    const auto beyond = client.request({sensor, 5001, 100});
    const auto far_beyond = client.request({sensor, 9000, 100});
    sp.process().signal(SIGTERM);
    REQUIRE(sp.process().wait_for(20s) == 0);

    // What the outbox logged as dropped: consecutive ranges from seq 1.
    const std::regex dropped(
        "dropped segment [^ ]+ \\(outbox full, max_bytes\\): [0-9]+ readings: " + sensor +
        " ([0-9]+)\\.\\.([0-9]+)\n");
    const auto log = sp.log();
    std::uint64_t dropped_to = 0;
    for (std::sregex_iterator it(log.begin(), log.end(), dropped), end; it != end; ++it) {
        CHECK(std::stoull((*it)[1]) == dropped_to + 1);
        dropped_to = std::stoull((*it)[2]);
    }
    REQUIRE(dropped_to > 0);
    REQUIRE(dropped_to < 5000);

    REQUIRE(from_start.lost.has_value());
    CHECK(*from_start.lost == SeqRange{1, dropped_to});
    CHECK(from_start.first_available == dropped_to + 1);
    CHECK(from_start.newest == 5000u);
    REQUIRE(!from_start.readings.empty());
    CHECK(from_start.readings.front().seq == dropped_to + 1);

    CHECK(beyond.readings.empty());
    CHECK(beyond.lost == std::nullopt);
    CHECK(beyond.newest == 5000u);
    CHECK(far_beyond.readings.empty());
    CHECK(far_beyond.lost == std::nullopt);
    CHECK(far_beyond.newest == 5000u);

    Outbox reopened(outbox);
    CHECK(reopened.first_available(sensor) == dropped_to + 1);
    CHECK(reopened.newest(sensor) == 5000u);
}

TEST_CASE("sensor-pub --metrics serves outbox and stream metrics and /healthz") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "metrics-test";
    SensorPub sp(dir.path() / "log", dir.path() / "outbox",
                 {"--sensor-id", sensor, "--count", "10", "--interval", "10ms", "--linger", "60s",
                  "--metrics", "127.0.0.1:0"});
    REQUIRE(sp.started());
    REQUIRE(sp.published() == 10u);
    const std::regex line(
        R"(info http: serving /metrics and /healthz on http://127\.0\.0\.1:([0-9]+)\n)");
    std::smatch m;
    const auto log = sp.log();
    REQUIRE(std::regex_search(log, m, line));
    httplib::Client http("127.0.0.1", std::stoi(m[1]));
    http.set_read_timeout(10, 0);
    const auto metrics = http.Get("/metrics");
    REQUIRE(metrics);
    CHECK(metrics->status == 200);
    for (const char* name :
         {"rill_outbox_disk_bytes ", "rill_outbox_segments 1",
          "rill_outbox_dropped_readings_total 0", "rill_outbox_fsyncs_total ",
          "rill_sensor_readings_total 10", "rill_stream_", "rill_stream_heartbeats_sent_total",
          "rill_source_failed_reads_total{reason=\"timeout\"} 0",
          "rill_outbox_max_bytes 268435456"}) {
        CHECK_MESSAGE(metrics->body.find(name) != std::string::npos, name);
    }
    CHECK(metrics->body.find("rill_build_info{app=\"sensor-pub\",version=\"" +
                             std::string(rill::version()) + "\"} 1") != std::string::npos);
    const auto health = http.Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
    CHECK(health->body == "ok\n");
    sp.process().signal(SIGTERM);
    REQUIRE(sp.process().wait_for(20s) == 0);
}

TEST_CASE("sensor-pub --help lists every flag with its environment variable") {
    std::string out;
    REQUIRE(run_command({bin("sensor-pub"), "--help"}, 20s, &out) == 0);
    const std::vector<std::pair<std::string, std::string>> flags{
        {"--sensor-id", "RILL_SENSOR_ID"},
        {"--source", "RILL_SOURCE"},
        {"--interval", "RILL_INTERVAL"},
        {"--rate", "RILL_RATE"},
        {"--seed", "RILL_SEED"},
        {"--batch-interval", "RILL_BATCH_INTERVAL"},
        {"--batch-max", "RILL_BATCH_MAX"},
        {"--pub", "RILL_PUB"},
        {"--replay", "RILL_REPLAY"},
        {"--announce-replay", "RILL_ANNOUNCE_REPLAY"},
        {"--publisher-id", "RILL_PUBLISHER_ID"},
        {"--outbox", "RILL_OUTBOX"},
        {"--fsync", "RILL_FSYNC"},
        {"--outbox-max-bytes", "RILL_OUTBOX_MAX_BYTES"},
        {"--outbox-max-age", "RILL_OUTBOX_MAX_AGE"},
        {"--outbox-segment-bytes", "RILL_OUTBOX_SEGMENT_BYTES"},
        {"--count", "RILL_COUNT"},
        {"--linger", "RILL_LINGER"},
        {"--linger-full", "RILL_LINGER_FULL"},
        {"--heartbeat-interval", "RILL_HEARTBEAT_INTERVAL"},
        {"--gpio-chip", "RILL_GPIO_CHIP"},
        {"--gpio-line", "RILL_GPIO_LINE"},
        {"--no-pull-up", "RILL_NO_PULL_UP"},
        {"--gpio-realtime", "RILL_GPIO_REALTIME"},
        {"--sysfs-root", "RILL_SYSFS_ROOT"},
        {"--csv-paced", "RILL_CSV_PACED"},
        {"--curve-secret", "RILL_CURVE_SECRET"},
        {"--curve-allow", "RILL_CURVE_ALLOW"},
        {"--log-level", "RILL_LOG_LEVEL"},
        {"--log-format", "RILL_LOG_FORMAT"},
        {"--metrics", "RILL_METRICS"},
    };
    // Each flag's help entry (from its line to the next flag's) names its variable.
    for (const auto& [flag, env] : flags) {
        const auto at_flag = out.find("  " + flag + " ");
        REQUIRE_MESSAGE(at_flag != std::string::npos, flag);
        const auto next = out.find("\n  -", at_flag);
        const auto entry = out.substr(at_flag, next == std::string::npos ? next : next - at_flag);
        CHECK_MESSAGE(entry.find("(Env:" + env + ")") != std::string::npos, entry);
    }
    // And no flag is missing from the list above.
    const std::regex any_flag(R"(\n  (--[a-z-]+))");
    for (std::sregex_iterator it(out.begin(), out.end(), any_flag), end; it != end; ++it) {
        const std::string flag = (*it)[1];
        if (flag == "--help" || flag == "--version") continue;  // no variable: they only print
        CHECK_MESSAGE(
            std::any_of(flags.begin(), flags.end(), [&](const auto& f) { return f.first == flag; }),
            flag);
    }
}

TEST_CASE("sensor-pub takes its settings from RILL_* environment variables") {
    TempDir dir("rill-sensor-pub");
    const auto outbox = dir.path() / "outbox";
    {
        Process p(
            {bin("sensor-pub")},
            {.env = {"RILL_SENSOR_ID=env-test", "RILL_PUB=@tcp://127.0.0.1:0",
                     "RILL_REPLAY=@tcp://127.0.0.1:0", "RILL_OUTBOX=" + outbox.string(),
                     "RILL_COUNT=3", "RILL_INTERVAL=10ms", "RILL_LINGER=0s", "RILL_FSYNC=always"},
             .stderr_path = (dir.path() / "log").string()});
        REQUIRE(p.wait_for(30s) == 0);
    }
    check_consecutive(read_outbox(outbox, "env-test"), 1, 3);
    int code = 0;
    const auto out = exit_output({"--sensor-id", "env-test", "--count", "1"}, code,
                                 {"RILL_OUTBOX=" + outbox.string(), "RILL_FSYNC=sometimes",
                                  "RILL_PUB=@tcp://127.0.0.1:0", "RILL_REPLAY=none"});
    CHECK(code != 0);
    CHECK_MESSAGE(out.find("--fsync") != std::string::npos, out);
}

TEST_CASE("sensor-pub publishes to a subscriber it connects to (--pub >tcp://...)") {
    TempDir dir("rill-sensor-pub");
    const std::string sensor = "connect-test";
    // A plain SUB socket bound on port 0 (rill::Subscriber does not report its bound port).
    zmq::socket_t sub(default_context(), zmq::socket_type::sub);
    sub.set(zmq::sockopt::subscribe, "");
    sub.bind("tcp://127.0.0.1:0");
    const auto endpoint = sub.get(zmq::sockopt::last_endpoint);
    const auto log = (dir.path() / "log").string();
    Process p(
        {bin("sensor-pub"), "--sensor-id", sensor, "--pub", ">" + endpoint, "--replay",
         "@tcp://127.0.0.1:0", "--outbox", (dir.path() / "outbox").string(), "--heartbeat-interval",
         "100ms", "--count", "20", "--interval", "100ms", "--linger", "1s"},
        {.stderr_path = log});
    std::vector<Reading> readings;
    std::uint64_t announced = 0;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (p.running() && std::chrono::steady_clock::now() < deadline) {
        std::vector<zmq::message_t> frames;
        zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 50ms);
        if (!(item.revents & ZMQ_POLLIN)) continue;
        (void)zmq::recv_multipart(sub, std::back_inserter(frames));
        REQUIRE(frames.size() == 2);
        auto msg = decode_message(frames[0].to_string_view(), frames[1].to_string_view());
        if (auto* batch = std::get_if<std::vector<Reading>>(&msg)) {
            readings.insert(readings.end(), batch->begin(), batch->end());
        } else {
            for (const auto& [s, newest] : std::get<Heartbeat>(msg).newest)
                if (s == sensor) announced = newest;
        }
    }
    REQUIRE(p.wait_for(10s) == 0);
    CHECK(read_file(log).find("publishing on >" + endpoint) != std::string::npos);
    REQUIRE(!readings.empty());
    check_consecutive(readings, readings.front().seq, 20);
    CHECK(announced == 20u);
}
