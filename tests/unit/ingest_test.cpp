// The ingest contract in-process: IngestLoop and SinkWriter over an in-memory Sink, fed by a
// real ReliablePublisher on port 0.
#include "rill/ingest.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "rill/metrics.hpp"
#include "support/process.hpp"
#include "support/publisher.hpp"
#include "support/readings.hpp"

using namespace rill;
using namespace std::chrono_literals;
using rill::test::reading;
using rill::test::TempDir;
using Clock = std::chrono::steady_clock;

namespace {

// A Sink in memory. Like a database it skips rows it already holds; it also records how often
// each (sensor, seq) was offered, so that tests see whether the writer resent stored readings.
class MemorySink : public Sink {
  public:
    using Key = std::pair<std::string, std::uint64_t>;

    void open() override {
        std::lock_guard lock(mutex_);
        if (down_) throw SinkError("cannot open the memory sink: it is down", true);
        open_ = true;
        ++opens_;
    }
    [[nodiscard]] bool is_open() const noexcept override { return open_; }
    void close() noexcept override { open_ = false; }
    [[nodiscard]] std::map<std::string, SeqRanges> stored(std::string_view prefix) override {
        std::lock_guard lock(mutex_);
        std::map<std::string, SeqRanges> out;
        for (const auto& [key, reading] : rows_) {
            if (key.first.starts_with(prefix)) out[key.first].insert(key.second);
        }
        return out;
    }
    std::uint64_t write(std::span<const Reading> batch) override {
        std::lock_guard lock(mutex_);
        if (down_) throw SinkError("cannot write to the memory sink: it is down", true);
        std::uint64_t added = 0;
        for (const auto& r : batch) {
            const Key key{r.sensor, r.seq};
            if (rows_.contains(key)) ++offered_again_;
            if (rows_.try_emplace(key, r).second) ++added;
        }
        if (lose_answers_ > 0) {
            --lose_answers_;  // committed, but the caller never hears so
            open_ = false;
            throw SinkError("connection lost while committing to the memory sink", true);
        }
        return added;
    }
    [[nodiscard]] std::string name() const override { return "memory"; }

    void set_down(bool down) {
        std::lock_guard lock(mutex_);
        down_ = down;
        if (down) open_ = false;
    }
    void lose_answers(int n) {
        std::lock_guard lock(mutex_);
        lose_answers_ = n;
    }
    void preload(const Reading& r) {
        std::lock_guard lock(mutex_);
        rows_.try_emplace(Key{r.sensor, r.seq}, r);
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return rows_.size();
    }
    [[nodiscard]] std::map<Key, Reading> rows() const {
        std::lock_guard lock(mutex_);
        return rows_;
    }
    // Readings offered to write() that the sink already held.
    [[nodiscard]] std::uint64_t offered_again() const {
        std::lock_guard lock(mutex_);
        return offered_again_;
    }
    [[nodiscard]] int opens() const {
        std::lock_guard lock(mutex_);
        return opens_;
    }

  private:
    mutable std::mutex mutex_;
    std::atomic<bool> open_{false};
    bool down_ = false;
    int lose_answers_ = 0;
    int opens_ = 0;
    std::uint64_t offered_again_ = 0;
    std::map<Key, Reading> rows_;
};

std::vector<Reading> batch(std::size_t n) {
    std::vector<Reading> b;
    for (std::size_t i = 0; i < n; ++i)
        b.push_back(reading("s1", 0));
    return b;
}

// Options of a loop reading `rp`, with its metrics in `registry` and short delays.
IngestOptions ingest_options(ReliablePublisher& rp, MetricsRegistry& registry) {
    IngestOptions o;
    o.subscriber.endpoints = rp.publisher().bound().front();
    o.subscriber.replay_chunk = 300;
    o.writer.batch_max = 100;
    o.writer.flush_interval = 10ms;
    o.writer.backoff = {20ms, 100ms, 2.0};
    o.writer.registry = &registry;
    o.probe_interval = 50ms;
    o.drain_timeout = 5s;
    return o;
}

// Runs an IngestLoop on a thread of its own until stop() (or destruction).
class Running {
  public:
    Running(IngestOptions options, Sink& sink, IngestHooks hooks = {})
        : loop_(std::move(options), sink, std::move(hooks)),
          result_(std::async(std::launch::async, [this] { return loop_.run(stop_); })) {}
    ~Running() {
        stop_.request();
        if (result_.valid()) result_.wait();
    }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;

    IngestSummary stop() {
        stop_.request();
        REQUIRE(result_.wait_for(10s) == std::future_status::ready);
        return result_.get();
    }
    [[nodiscard]] IngestHealth health() const { return loop_.health(); }

  private:
    StopFlag stop_;
    IngestLoop loop_;
    std::future<IngestSummary> result_;
};

// Serves the publisher (heartbeats, batches) on this thread until `done` holds (true) or
// `timeout` passes (false).
bool serve_until(ReliablePublisher& rp, const std::function<bool()>& done,
                 std::chrono::milliseconds timeout = 20s) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        rp.poll_once(10ms);
    }
    return true;
}

void serve_for(ReliablePublisher& rp, std::chrono::milliseconds d) {
    (void)serve_until(
        rp, [] { return false; }, d);
}

// True when the sink holds s1's seqs 1..n, each with the values reading() gives it.
bool holds_exactly(const MemorySink& sink, std::uint64_t n) {
    const auto rows = sink.rows();
    if (rows.size() != n) return false;
    std::uint64_t want = 1;
    for (const auto& [key, r] : rows) {
        if (key != MemorySink::Key{"s1", want} || r.seq != want) return false;
        if (r.temperature != reading("s1", want).temperature) return false;
        ++want;
    }
    return true;
}

// Publishes batches whose temperatures follow reading()'s rule for the seqs they will get.
std::uint64_t publish_values(ReliablePublisher& rp, std::size_t batches, std::size_t size) {
    std::uint64_t newest = rp.outbox().newest("s1");
    for (std::size_t i = 0; i < batches; ++i) {
        auto b = batch(size);
        for (std::size_t j = 0; j < size; ++j)
            b[j].temperature = reading("s1", newest + j + 1).temperature;
        newest = rp.publish(b).last;
    }
    rp.flush();
    return newest;
}

// Hooks that count READY and check that its status starts with `expected`.
IngestHooks counting_ready(std::atomic<int>& ready, std::string expected) {
    IngestHooks hooks;
    hooks.ready = [&ready, expected = std::move(expected)](const std::string& status) {
        CHECK(status.starts_with(expected));
        ++ready;
    };
    return hooks;
}

// A publisher on port 0 with its outbox in a temporary directory, an in-memory sink, and a
// registry for the writer's metrics: what every loop test starts from.
struct Pipeline {
    TempDir dir{"rill-ingest"};
    ReliablePublisher rp{rill::test::loopback_publisher(dir, "ingest-test")};
    MetricsRegistry registry;
    MemorySink sink;
};

}  // namespace

TEST_CASE_FIXTURE(Pipeline, "an ingest loop stores every published reading exactly once") {
    std::atomic<int> ready{0};
    Running loop(ingest_options(rp, registry), sink,
                 counting_ready(ready, "subscribed to tcp://127.0.0.1:"));

    const auto newest = publish_values(rp, 20, 50);
    REQUIRE(serve_until(rp, [&] { return sink.size() >= newest; }));
    serve_for(rp, 300ms);  // a duplicate written late would show
    const auto summary = loop.stop();

    CHECK(holds_exactly(sink, 1000));
    CHECK(sink.offered_again() == 0);
    CHECK(ready == 1);
    CHECK(summary.opened);
    CHECK(summary.drained);
    CHECK(summary.stored == 1000);
    CHECK(registry.value("rill_store_readings_total") == 1000.0);
    CHECK(registry.value("rill_store_batches_total") == static_cast<double>(summary.batches));
    // A real histogram: one observation per batch.
    CHECK(registry.value("rill_store_batch_latency_seconds") ==
          static_cast<double>(summary.batches));
}

TEST_CASE_FIXTURE(Pipeline,
                  "readings published before the loop started, and a gap, are repaired by replay") {
    const auto before = publish_values(rp, 5, 40);  // 1..200, before anyone listens
    REQUIRE(before == 200);
    Running loop(ingest_options(rp, registry), sink);
    REQUIRE(serve_until(rp, [&] { return sink.size() == 200; }));

    // 201..250 go to the outbox but never on the wire; 251..300 do.
    auto hidden = batch(50);
    for (std::size_t j = 0; j < hidden.size(); ++j)
        hidden[j].temperature = reading("s1", 201 + j).temperature;
    REQUIRE(rp.outbox().append(hidden).last == 250);
    REQUIRE(publish_values(rp, 1, 50) == 300);
    REQUIRE(serve_until(rp, [&] { return sink.size() == 300; }));
    serve_for(rp, 300ms);
    (void)loop.stop();

    CHECK(holds_exactly(sink, 300));
    CHECK(sink.offered_again() == 0);
}

TEST_CASE_FIXTURE(Pipeline, "what the sink stored before a restart is never written again") {
    REQUIRE(publish_values(rp, 10, 30) == 300);
    for (std::uint64_t seq = 1; seq <= 120; ++seq)
        sink.preload(reading("s1", seq));
    Running loop(ingest_options(rp, registry), sink);
    REQUIRE(serve_until(rp, [&] { return sink.size() == 300; }));
    serve_for(rp, 300ms);
    const auto summary = loop.stop();

    CHECK(holds_exactly(sink, 300));
    CHECK(sink.offered_again() == 0);
    CHECK(summary.stored == 180);
}

TEST_CASE_FIXTURE(Pipeline,
                  "a sink that fails for a while loses nothing: the loop holds, then catches up") {
    auto options = ingest_options(rp, registry);
    options.writer.pending_max = 150;  // the outage overflows it: the stream is not read then
    Running loop(std::move(options), sink);
    REQUIRE(publish_values(rp, 2, 50) == 100);
    REQUIRE(serve_until(rp, [&] { return sink.size() == 100; }));

    sink.set_down(true);
    REQUIRE(publish_values(rp, 20, 50) == 1100);
    REQUIRE(serve_until(rp, [&] { return !loop.health().ok; }));
    CHECK(loop.health().detail == "database unreachable");
    CHECK(registry.value("rill_store_database_up") == 0.0);
    serve_for(rp, 300ms);
    CHECK(sink.size() == 100);
    CHECK(registry.value("rill_store_pending_readings") <= 150.0);

    sink.set_down(false);
    REQUIRE(serve_until(rp, [&] { return sink.size() == 1100; }));
    REQUIRE(serve_until(rp, [&] { return loop.health().ok; }));
    serve_for(rp, 300ms);
    (void)loop.stop();

    CHECK(holds_exactly(sink, 1100));
    CHECK(sink.offered_again() == 0);
    CHECK(registry.value("rill_store_reconnects_total") >= 1.0);
    CHECK(registry.value("rill_store_database_up") == 1.0);
}

TEST_CASE_FIXTURE(Pipeline, "a stop request drains what the loop holds before run returns") {
    auto options = ingest_options(rp, registry);
    options.writer.flush_interval = 1h;  // nothing is written before the stop
    options.writer.batch_max = 10'000;
    std::string stopping;
    IngestHooks hooks;
    hooks.stopping = [&](const std::string& status) { stopping = status; };
    hooks.stop_reason = [] { return "a test"; };
    Running loop(std::move(options), sink, std::move(hooks));

    REQUIRE(publish_values(rp, 4, 50) == 200);
    REQUIRE(
        serve_until(rp, [&] { return registry.value("rill_store_pending_readings") == 200.0; }));
    CHECK(sink.size() == 0);
    const auto summary = loop.stop();

    CHECK(summary.drained);
    CHECK(summary.stored == 200);
    CHECK(stopping == "stopping on a test: writing 200 pending readings");
    CHECK(holds_exactly(sink, 200));
}

TEST_CASE_FIXTURE(Pipeline,
                  "a loop stopped while its sink never opened returns without having opened it") {
    sink.set_down(true);
    std::atomic<int> ready{0};
    Running loop(ingest_options(rp, registry), sink,
                 counting_ready(ready, "waiting for the database (attempt 1): "));
    REQUIRE(serve_until(rp, [&] { return ready.load() == 1; }));
    const auto summary = loop.stop();
    CHECK_FALSE(summary.opened);
    CHECK(sink.opens() == 0);
}

TEST_CASE("a sink writer retries a batch whose commit answer was lost and stores it once") {
    MetricsRegistry registry;
    MemorySink sink;
    SinkWriterOptions options;
    options.batch_max = 10;
    options.backoff = {1ms, 1ms, 1.0};
    options.registry = &registry;
    SinkWriter writer(sink, options);
    for (std::uint64_t seq = 1; seq <= 25; ++seq)
        REQUIRE(writer.add(reading("s1", seq)) == SinkWriter::AddResult::accepted);
    CHECK(writer.add(reading("s1", 7)) == SinkWriter::AddResult::duplicate);  // pending

    sink.lose_answers(1);  // the first batch commits, then the connection drops
    CHECK(writer.flush() == 0);
    CHECK_FALSE(writer.connected());
    CHECK(writer.pending() == 25);
    CHECK(writer.drain(Clock::now() + 5s));

    CHECK(holds_exactly(sink, 25));
    const auto stats = writer.stats();
    CHECK(stats.readings_stored == 15);  // the lost batch's 10 were stored by the first try
    CHECK(stats.duplicates_hit == 10);
    CHECK(stats.reconnects == 1);
    CHECK(stats.duplicates_skipped == 1);
    CHECK(sink.offered_again() == 10);
    // Once stored, a reading is dropped in memory.
    CHECK(writer.add(reading("s1", 3)) == SinkWriter::AddResult::duplicate);
    CHECK(registry.value("rill_store_duplicates_hit_total") == 10.0);
    CHECK(registry.value("rill_store_database_errors_total") == 1.0);
}

TEST_CASE("a sink writer loads what the sink stored and skips it in memory") {
    MetricsRegistry registry;
    MemorySink sink;
    for (std::uint64_t seq = 1; seq <= 5; ++seq)
        sink.preload(reading("s1", seq));
    sink.preload(reading("other", 1));
    SinkWriterOptions options;
    options.registry = &registry;
    options.sensor_prefix = "s";
    SinkWriter writer(sink, options);
    CHECK(writer.sensors() == std::vector<std::string>{"s1"});
    CHECK(writer.stored_ranges("s1").contains(5));
    CHECK(writer.add(reading("s1", 3)) == SinkWriter::AddResult::duplicate);
    CHECK(writer.add(reading("s1", 6)) == SinkWriter::AddResult::accepted);
    CHECK(registry.value("rill_store_duplicates_skipped_total") == 1.0);
}
