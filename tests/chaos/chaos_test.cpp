// The chaos scenarios of issue 7 (docs/reliability.md, "Chaos scenarios"): the pipeline spread
// over hosts on one machine with network namespaces (three sensor-pub hosts, one store-sub
// host, one database host running PostgreSQL, joined by a bridge), then crashes, outages, cut
// links, a throttled database and an overflowing outbox. Every scenario ends with the same
// check: every (sensor, seq) from 1 to the last published is stored exactly once and nothing
// else (except what an overflowing outbox dropped, which must be exactly what store-sub
// reports lost), and prints one summary line:
//
//   <scenario>: published N, stored N, lost L, duplicated D, reported lost K
//
// Short versions run under ctest (label chaos); RILL_CHAOS_LONG=1 (./run chaos) runs the long
// versions, 10+ million readings in all. Needs root and `ip netns`; fails (never skips)
// without them.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "support/netns.hpp"
#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace rill::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const std::vector<std::string> sensors{"s1", "s2", "s3"};
constexpr int stream_port = 5556;  // every sensor host is its own namespace: fixed ports are fine
constexpr int replay_port = 5557;

bool long_mode() {
    const char* v = std::getenv("RILL_CHAOS_LONG");
    return v != nullptr && std::string(v) == "1";
}

// Short or long: the figure for the mode this run is in.
template <typename T>
T pick(T short_value, T long_value) {
    return long_mode() ? long_value : short_value;
}

std::mt19937& rng() {
    static std::mt19937 r(std::random_device{}());
    return r;
}

std::chrono::milliseconds random_between(std::chrono::milliseconds lo,
                                         std::chrono::milliseconds hi) {
    std::uniform_int_distribution<std::chrono::milliseconds::rep> d(lo.count(), hi.count());
    return std::chrono::milliseconds(d(rng()));
}

struct Summary {
    std::uint64_t published = 0;
    std::uint64_t stored = 0;  // distinct (sensor, seq) in 1..last published
    std::uint64_t rows = 0;
    std::uint64_t lost = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t reported_lost = 0;
    std::map<std::string, SeqRanges> reported;  // per sensor: the union of the lost ranges
};

// The sum of "stopped; stored N readings" over the store-sub logs in `logs`, and how many
// store-sub runs logged it (a run killed with SIGKILL does not).
std::pair<std::uint64_t, int> committed_by_store_sub(const std::string& logs) {
    std::uint64_t sum = 0;
    int runs = 0;
    const std::string marker = "info store-sub: stopped; stored ";
    for (auto at = logs.find(marker); at != std::string::npos; at = logs.find(marker, at + 1)) {
        sum += std::stoull(logs.substr(at + marker.size()));
        ++runs;
    }
    return {sum, runs};
}

// The whole pipeline over five namespaces. Members are destroyed in reverse order: the
// processes first, then PostgreSQL (stopped inside its namespace), the directories, and last
// the namespaces.
class Lab {
  public:
    explicit Lab(std::string scenario) : scenario_(std::move(scenario)) {
        std::printf("%s: starting (%s version)\n", scenario_.c_str(),
                    long_mode() ? "long" : "short");
        std::fflush(stdout);
    }

    Network net{{"s1", "s2", "s3", "store", "db"}};
    TempDir dir{"rill-chaos"};
    TempPostgres pg{
        TempPostgres::Options{.tcp = false, .listen = net.address("db"), .netns = net.ns("db")}};

    bool database_stopped = false;  // set by the scenarios that stop PostgreSQL

    std::string stream_of(const std::string& sensor) const {
        return ">tcp://" + net.address(sensor) + ":" + std::to_string(stream_port);
    }

    // (Re)starts the sensor-pub of `sensor` on its host: `count` readings at `rate` per second
    // into its outbox (kept across restarts), then it lingers answering replays.
    SensorPub& start_sensor(const std::string& sensor, std::uint64_t count, unsigned rate,
                            std::vector<std::string> extra = {}) {
        auto& slot = pubs_[sensor];
        slot.reset();
        slot = std::make_unique<SensorPub>(
            dir.path(), SensorPubOptions{.sensor_id = sensor,
                                         .count = count,
                                         .rate = rate,
                                         .outbox = dir.path() / ("outbox-" + sensor),
                                         .linger = "3600s",
                                         .pub = "@tcp://*:" + std::to_string(stream_port),
                                         .replay = "@tcp://*:" + std::to_string(replay_port),
                                         .extra_args = std::move(extra),
                                         .netns = net.ns(sensor)});
        return *slot;
    }

    // (Re)starts store-sub on its host, connected to the three sensor hosts and to PostgreSQL
    // on the database host over TCP.
    StoreSub& start_store(std::vector<std::string> extra = {}) {
        if (store_) store_logs_ += store_->log();
        store_.reset();
        std::vector<std::string> connect;
        for (const auto& s : sensors)
            connect.push_back(stream_of(s));
        ++store_runs_;
        store_ = std::make_unique<StoreSub>(
            dir.path(), StoreSubOptions{.connect = connect,
                                        .db = pg.tcp_conninfo(net.address("db")),
                                        .extra_args = std::move(extra),
                                        .netns = net.ns("store")});
        return *store_;
    }

    StoreSub& store() { return *store_; }

    // store-sub and the three sensors, each publishing `count` readings at `rate` per second.
    void start_pipeline(std::uint64_t count, unsigned rate) {
        start_store();
        for (const auto& s : sensors)
            start_sensor(s, count, rate);
    }

    void kill_store() {
        store_->process().signal(SIGKILL);
        REQUIRE(store_->process().wait_for(10s).has_value());
    }

    // Waits until every sensor-pub has published its --count; returns the newest seq of each.
    std::map<std::string, std::uint64_t> wait_published() {
        std::map<std::string, std::uint64_t> newest;
        for (const auto& s : sensors) {
            const auto n = pubs_.at(s)->wait_published(pick(120s, 900s));
            REQUIRE_MESSAGE(n.has_value(), "sensor-pub " << s << " did not finish; its log:\n"
                                                         << pubs_.at(s)->log());
            newest[s] = *n;
        }
        return newest;
    }

    // Waits (bounded) until the table holds `rows` rows, then 2 s more: a row beyond them
    // (a duplicate, a seq never published) would then be there for finish() to see.
    void wait_stored(std::uint64_t rows) {
        const bool done = wait_rows(pg, rows, pick(180s, 900s));
        if (!done) {
            MESSAGE("stored rows: " << stored_rows(pg) << " of " << rows
                                    << "; store-sub log tail:\n"
                                    << tail(store_->log()));
        }
        std::this_thread::sleep_for(2s);
    }

    // Computes the summary against `expected` (the seqs that must be stored) and `newest` (the
    // last published seq of each sensor), prints the summary line and checks it.
    Summary finish(const std::map<std::string, std::uint64_t>& newest,
                   const std::map<std::string, SeqRange>& expected) {
        // SIGTERM: store-sub commits what it holds; its log then has its own total.
        store_->process().signal(SIGTERM);
        CHECK(store_->process().wait_for(60s) == 0);
        const auto store_logs = store_logs_ + store_->log();

        Summary s;
        for (const auto& [sensor, n] : newest) {
            s.published += n;
            s.stored +=
                std::stoull(pg.value("SELECT count(DISTINCT seq) FROM readings WHERE sensor = '" +
                                     sensor + "' AND seq BETWEEN 1 AND " + std::to_string(n)));
            SeqRanges reported;
            for (const auto& r : lost_ranges(store_logs, sensor))
                reported.insert(r);
            s.reported_lost += reported.count();
            s.reported[sensor] = reported;
        }
        s.rows = std::stoull(pg.value("SELECT count(*) FROM readings"));
        const auto distinct =
            std::stoull(pg.value("SELECT count(DISTINCT (sensor, seq)) FROM readings"));
        s.duplicated = s.rows - distinct;
        s.lost = s.published - s.stored;
        std::printf(
            "%s: published %llu, stored %llu, lost %llu, duplicated %llu, reported lost %llu\n",
            scenario_.c_str(), static_cast<unsigned long long>(s.published),
            static_cast<unsigned long long>(s.stored), static_cast<unsigned long long>(s.lost),
            static_cast<unsigned long long>(s.duplicated),
            static_cast<unsigned long long>(s.reported_lost));
        // What store-sub itself says it committed (only runs that were not killed say it), and
        // the scenario's wall time.
        const auto [committed, runs] = committed_by_store_sub(store_logs);
        const auto seconds =
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count();
        std::printf("%s: store-sub runs %d, of which stopped cleanly %d committing %llu; %lld s\n",
                    scenario_.c_str(), store_runs_, runs,
                    static_cast<unsigned long long>(committed), static_cast<long long>(seconds));
        std::fflush(stdout);
        // Each run counts only the rows its own COPY or INSERT added: when none was killed, the
        // counts add up to the rows (a batch stored twice would count twice, or fail).
        // A commit whose answer the stopped database never sent is retried and then counted
        // by neither run: with the database stopped, at most the rows.
        if (runs == store_runs_ && database_stopped) CHECK(committed <= s.rows);
        if (runs == store_runs_ && !database_stopped) CHECK(committed == s.rows);

        CHECK(exactly_once_problem(pg, expected) == "");
        CHECK(s.duplicated == 0);
        CHECK(s.rows == s.stored);  // nothing outside 1..published either
        return s;
    }

    Summary finish(const std::map<std::string, std::uint64_t>& newest) {
        std::map<std::string, SeqRange> expected;
        for (const auto& [sensor, n] : newest)
            expected[sensor] = SeqRange{1, n};
        auto s = finish(newest, expected);
        CHECK(s.lost == 0);
        CHECK(s.reported_lost == 0);
        return s;
    }

    static std::string tail(const std::string& log) {
        return log.size() > 4000 ? log.substr(log.size() - 4000) : log;
    }

  private:
    std::string scenario_;
    Clock::time_point started_ = Clock::now();
    int store_runs_ = 0;
    std::map<std::string, std::unique_ptr<SensorPub>> pubs_;
    std::unique_ptr<StoreSub> store_;
    std::string store_logs_;  // the logs of earlier store-sub runs (their files stay in dir)
};

// Every test starts here: without root and ip netns there is nothing to test, and that is a
// failure, not a skip (CI runs as root).
void require_netns() {
    const auto problem = netns_problem();
    REQUIRE_MESSAGE(problem.empty(), "the chaos tests cannot run: " << problem);
}

std::uint64_t directory_bytes(const std::filesystem::path& dir) {
    std::uint64_t bytes = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        std::error_code size_ec;
        const auto size = e.file_size(size_ec);  // a segment may be deleted meanwhile
        if (!size_ec) bytes += size;
    }
    return bytes;
}

std::uint64_t total(const std::map<std::string, std::uint64_t>& newest) {
    std::uint64_t t = 0;
    for (const auto& [s, n] : newest)
        t += n;
    return t;
}

}  // namespace

TEST_CASE("kill-store-sub: store-sub killed with kill -9 five times stores every reading once") {
    require_netns();
    Lab lab("kill-store-sub");
    const std::uint64_t count = pick<std::uint64_t>(20'000, 600'000);
    const unsigned rate = pick(5'000u, 15'000u);
    lab.start_pipeline(count, rate);
    // Five kills at random moments while the sensors publish (and the restarted store-sub
    // catches up by replay).
    const auto span = std::chrono::milliseconds(count * 1000 / rate);
    for (int i = 0; i < 5; ++i) {
        std::this_thread::sleep_for(random_between(span / 20, span / 6));
        lab.kill_store();
        lab.start_store();
    }
    const auto newest = lab.wait_published();
    lab.wait_stored(total(newest));
    lab.finish(newest);
}

TEST_CASE(
    "kill-sensor-pub: a sensor-pub killed with kill -9 at full rate and restarted loses nothing") {
    require_netns();
    Lab lab("kill-sensor-pub");
    const std::uint64_t count = pick<std::uint64_t>(30'000, 600'000);
    // Full rate: no pacing to speak of (about 2 million readings/s into the outbox on the
    // 2-core test machine), so s2 writes its outbox for a fraction of a second or more.
    const std::uint64_t victim_count = pick<std::uint64_t>(300'000, 2'000'000);
    const unsigned full_rate = 10'000'000;
    lab.start_store();
    lab.start_sensor("s1", count, pick(5'000u, 15'000u));
    lab.start_sensor("s3", count, pick(5'000u, 15'000u));
    auto& victim = lab.start_sensor("s2", victim_count, full_rate);
    // Kill it in the middle of writing: once its outbox holds a random amount between about a
    // tenth and a half of what it will write (about 24 bytes a reading).
    const std::uint64_t at_bytes =
        victim_count * 24 / 10 +
        std::uniform_int_distribution<std::uint64_t>(0, victim_count * 24 * 4 / 10)(rng());
    const bool writing = wait_until(
        [&] {
            return directory_bytes(lab.dir.path() / "outbox-s2") >= at_bytes ||
                   !victim.process().running();
        },
        60s);
    REQUIRE(writing);
    REQUIRE_MESSAGE(victim.process().running(),
                    "s2 finished before the kill; raise its count. Its log:\n"
                        << victim.log());
    victim.process().signal(SIGKILL);
    REQUIRE(victim.process().wait_for(10s).has_value());
    // Same outbox, same endpoints: it continues from the outbox's newest seq.
    auto& again = lab.start_sensor("s2", victim_count, full_rate);
    MESSAGE("s2 killed at seq " << again.start_seq());
    CHECK(again.start_seq() > 0);
    CHECK(again.start_seq() < victim_count);  // it was killed while it wrote
    const auto newest = lab.wait_published();
    CHECK(newest.at("s2") == again.start_seq() + victim_count);
    lab.wait_stored(total(newest));
    lab.finish(newest);
}

TEST_CASE("stop-postgres: PostgreSQL stopped and started again mid-stream loses nothing") {
    require_netns();
    Lab lab("stop-postgres");
    const std::uint64_t count = pick<std::uint64_t>(40'000, 600'000);
    const unsigned rate = pick(5'000u, 15'000u);
    lab.start_pipeline(count, rate);
    REQUIRE(wait_rows(lab.pg, 1000, 60s));
    lab.database_stopped = true;
    lab.pg.stop();
    std::this_thread::sleep_for(pick(5s, 20s));
    lab.pg.start();
    const auto newest = lab.wait_published();
    lab.wait_stored(total(newest));
    lab.finish(newest);
}

TEST_CASE("cut-link: a sensor host cut off from the network and healed loses nothing") {
    require_netns();
    Lab lab("cut-link");
    const std::uint64_t count = pick<std::uint64_t>(40'000, 600'000);
    const unsigned rate = pick(5'000u, 15'000u);
    lab.start_pipeline(count, rate);
    REQUIRE(wait_rows(lab.pg, 1000, 60s));
    lab.net.link_down("s1");
    std::this_thread::sleep_for(pick(5s, 30s));
    lab.net.link_up("s1");
    const auto newest = lab.wait_published();
    lab.wait_stored(total(newest));
    lab.finish(newest);
}

TEST_CASE("slow-database: a database link throttled below the sensors' rate loses nothing") {
    require_netns();
    Lab lab("slow-database");
    // The sensors publish faster than the throttled database takes readings, for the whole
    // throttled time (short: 10 s, long: 60 s).
    const unsigned rate = pick(10'000u, 15'000u);
    const std::uint64_t count = rate * pick<std::uint64_t>(10, 60);
    // A small buffer: store-sub falls behind, stops reading and catches up by replay.
    lab.start_store({"--pending-max", "20000"});
    // The switch sends to the database host at most this fast (tbf; see docs/reliability.md).
    const std::string throttle = pick<std::string>("2mbit", "8mbit");
    lab.net.shape("db", throttle);
    for (const auto& s : sensors)
        lab.start_sensor(s, count, rate);
    const auto newest = lab.wait_published();
    const auto during = stored_rows(lab.pg);
    MESSAGE("stored while the database link was throttled to " << throttle << ": " << during
                                                               << " of " << total(newest));
    CHECK(during < total(newest));  // the throttle did slow it down
    lab.net.shape("db", "");
    lab.wait_stored(total(newest));
    lab.finish(newest);
}

TEST_CASE(
    "outbox-overflow: readings an overflowing outbox dropped are exactly those reported lost") {
    require_netns();
    Lab lab("outbox-overflow");
    const std::uint64_t count = pick<std::uint64_t>(40'000, 600'000);
    const unsigned rate = pick(20'000u, 50'000u);
    lab.start_store();
    // s1's host is cut off before s1 starts and stays so until its small outbox has overflowed
    // and s1 has published everything: nothing of s1 reaches store-sub before the drops.
    lab.net.link_down("s1");
    auto& s1 = lab.start_sensor("s1", count, rate,
                                {"--outbox-segment-bytes", pick<std::string>("64KiB", "1MiB"),
                                 "--outbox-max-bytes", pick<std::string>("256KiB", "4MiB")});
    lab.start_sensor("s2", count, pick(5'000u, 15'000u));
    lab.start_sensor("s3", count, pick(5'000u, 15'000u));
    const auto newest = lab.wait_published();
    lab.net.link_up("s1");

    SeqRanges dropped;
    for (const auto& r : dropped_ranges(s1.log(), "s1"))
        dropped.insert(r);
    REQUIRE(!dropped.empty());
    REQUIRE(dropped.island_count() == 1);
    const auto drop = *dropped.front();
    REQUIRE(drop.first == 1);
    REQUIRE(drop.last < newest.at("s1"));

    lab.wait_stored(total(newest) - drop.size());
    CHECK(wait_until(
        [&] { return lab.store().metric("rill_readings_lost_total") == double(drop.size()); },
        30s));
    auto expected = std::map<std::string, SeqRange>{{"s1", {drop.last + 1, newest.at("s1")}},
                                                    {"s2", {1, newest.at("s2")}},
                                                    {"s3", {1, newest.at("s3")}}};
    const auto s = lab.finish(newest, expected);
    CHECK(s.lost == drop.size());
    CHECK(s.reported_lost == drop.size());
    // Exactly the dropped range, and nothing of the other sensors.
    CHECK(s.reported.at("s1").ranges() == std::vector<SeqRange>{drop});
    CHECK(s.reported.at("s2").empty());
    CHECK(s.reported.at("s3").empty());
}
