#include "rill/pump.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <optional>
#include <stdexcept>
#include <thread>

#include "rill/outbox.hpp"
#include "rill/replay.hpp"
#include "rill/sim_source.hpp"
#include "rill/socket.hpp"
#include "support/process.hpp"
#include "support/publisher.hpp"

using namespace rill;
using namespace std::chrono_literals;
using rill::test::TempDir;
using rill::test::wait_until;

namespace {

// A finite source for the pump: waits until release() (or a stop), then yields `count`
// measurements (temperature 20 + i) and ends; or throws `error` instead when one is set.
class ScriptedSource final : public Source {
  public:
    explicit ScriptedSource(int count, std::string error = {})
        : count_(count), error_(std::move(error)) {}

    void release() { released_ = true; }

    std::optional<Measurement> next() override {
        while (!released_) {
            if (!wait_until(std::chrono::steady_clock::now() + 5ms)) return std::nullopt;
        }
        if (!error_.empty()) throw std::runtime_error(error_);
        if (given_ == count_ || stop_requested()) return std::nullopt;
        Measurement m;
        m.ts = now();
        m.temperature = 20.0f + static_cast<float>(given_++);
        m.humidity = 50.0f;
        return m;
    }
    [[nodiscard]] std::string describe() const override { return "scripted"; }

  private:
    int count_;
    int given_ = 0;
    std::string error_;
    std::atomic<bool> released_{false};
};

PumpOptions pump_options(MetricsRegistry& registry) {
    PumpOptions o;
    o.sensor_id = "pumped";
    o.metrics = &registry;
    return o;
}

// Receives from `sub` until `want` fresh readings arrived or 5 s passed.
std::vector<Reading> receive_readings(Subscriber& sub, std::size_t want) {
    std::vector<Reading> got;
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (got.size() < want && std::chrono::steady_clock::now() < until) {
        auto ev = sub.receive(100ms);
        if (auto* b = ev ? std::get_if<ReadingBatch>(&*ev) : nullptr) {
            for (const auto& r : b->fresh())
                got.push_back(r);
        }
    }
    return got;
}

// Waits up to 5 s for a heartbeat on `sub`: the subscription is in place.
bool heartbeat_seen(Subscriber& sub) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until) {
        auto ev = sub.receive(100ms);
        if (ev && std::holds_alternative<HeartbeatSeen>(*ev)) return true;
    }
    return false;
}

// A pump over `count` measurements of a released ScriptedSource, lingering up to 30 s after
// them, running on a thread of its own from construction; the destructor stops it.
class LingeringPump {
  public:
    LingeringPump(int count, const TempDir& dir)
        : rp_(rill::test::loopback_publisher(dir, "pump-test")),
          pump_(options(registry_, input_ended_), released(count), rp_),
          running_(std::async(std::launch::async, [this] { return pump_.run(stop_); })) {}
    ~LingeringPump() {
        stop_.request();
        if (running_.valid()) running_.wait();
    }
    LingeringPump(const LingeringPump&) = delete;
    LingeringPump& operator=(const LingeringPump&) = delete;

    // Waits up to 5 s for the end of the input.
    [[nodiscard]] bool input_ended() const {
        return wait_until([&] { return input_ended_.load(); }, 5s);
    }
    ReliablePublisher& publisher() noexcept { return rp_; }
    std::future<PumpSummary>& running() noexcept { return running_; }
    void stop() { stop_.request(); }

  private:
    static PumpOptions options(MetricsRegistry& registry, std::atomic<bool>& ended) {
        auto o = pump_options(registry);
        o.linger = 30s;
        o.hooks.stopping = [&ended](PumpEnd end, const PumpStatus&) {
            ended = end == PumpEnd::end_of_input;
        };
        return o;
    }
    static std::unique_ptr<Source> released(int count) {
        auto source = std::make_unique<ScriptedSource>(count);
        source->release();
        return source;
    }

    MetricsRegistry registry_;
    std::atomic<bool> input_ended_{false};
    ReliablePublisher rp_;
    SourcePump pump_;
    StopFlag stop_;
    std::future<PumpSummary> running_;
};

}  // namespace

TEST_CASE("a source pump publishes every measurement with seqs 1 to N to the outbox and stream") {
    TempDir dir("rill-pump");
    MetricsRegistry registry;
    std::optional<ReliablePublisher> rp(rill::test::loopback_publisher(dir, "pump-test"));
    Subscriber sub(rp->publisher().bound().at(0));
    auto source = std::make_unique<ScriptedSource>(5);
    auto& scripted = *source;
    int ready = 0;
    std::optional<PumpEnd> stopping;
    auto options = pump_options(registry);
    options.hooks.ready = [&](const PumpStatus& s) {
        ++ready;
        CHECK(s.published_up_to == 0);
    };
    options.hooks.stopping = [&](PumpEnd end, const PumpStatus&) { stopping = end; };
    SourcePump pump(std::move(options), std::move(source), *rp);
    StopFlag stop;
    auto running = std::async(std::launch::async, [&] { return pump.run(stop); });

    REQUIRE(heartbeat_seen(sub));
    scripted.release();
    const auto streamed = receive_readings(sub, 5);
    REQUIRE(running.wait_for(10s) == std::future_status::ready);
    const auto summary = running.get();

    REQUIRE(streamed.size() == 5);
    for (std::size_t i = 0; i < streamed.size(); ++i) {
        CHECK(streamed[i].sensor == "pumped");
        CHECK(streamed[i].seq == i + 1);
        CHECK(streamed[i].temperature == doctest::Approx(20.0 + static_cast<double>(i)));
    }
    rp.reset();  // run() closed it; read what it left on disk
    const auto stored = Outbox(dir.path() / "outbox").read("pumped", 1, 100);
    REQUIRE(stored.readings.size() == 5);
    CHECK(stored.readings.front().seq == 1);
    CHECK(stored.readings.back().seq == 5);
    CHECK(summary.published_up_to == 5);
    CHECK(summary.readings == 5);
    CHECK(summary.end == PumpEnd::end_of_input);
    CHECK(ready == 1);
    CHECK(stopping == PumpEnd::end_of_input);
    CHECK(registry.value("rill_sensor_readings_total") == 5.0);
}

TEST_CASE("a source pump stops after count measurements of an endless source") {
    TempDir dir("rill-pump");
    MetricsRegistry registry;
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "pump-test"));
    auto options = pump_options(registry);
    options.count = 7;
    SourcePump pump(std::move(options),
                    std::make_unique<SimSource>(SimOptions{.interval = 1ms, .seed = 1}), rp);
    StopFlag stop;
    const auto summary = pump.run(stop);
    CHECK(summary.end == PumpEnd::end_of_input);
    CHECK(summary.published_up_to == 7);
    CHECK(rp.outbox().newest("pumped") == 7);
}

TEST_CASE("a stop request ends a source pump's run promptly while the source blocks") {
    TempDir dir("rill-pump");
    MetricsRegistry registry;
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "pump-test"));
    SourcePump pump(pump_options(registry),
                    std::make_unique<SimSource>(SimOptions{.interval = 1h, .seed = 1}), rp);
    StopFlag stop;
    auto running = std::async(std::launch::async, [&] { return pump.run(stop); });
    REQUIRE(wait_until([&] { return rp.outbox().newest("pumped") == 1; }, 5s));
    CHECK(running.wait_for(100ms) == std::future_status::timeout);  // blocked in the source
    const auto asked = std::chrono::steady_clock::now();
    stop.request();
    REQUIRE(running.wait_for(5s) == std::future_status::ready);
    CHECK(std::chrono::steady_clock::now() - asked < 2s);
    const auto summary = running.get();
    CHECK(summary.end == PumpEnd::stop_requested);
    CHECK(summary.published_up_to == 1);
}

TEST_CASE("a source error comes out of a source pump's run") {
    TempDir dir("rill-pump");
    MetricsRegistry registry;
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "pump-test"));
    auto source = std::make_unique<ScriptedSource>(5, "sensor unplugged");
    source->release();
    SourcePump pump(pump_options(registry), std::move(source), rp);
    StopFlag stop;
    auto running = std::async(std::launch::async, [&] { return pump.run(stop); });
    REQUIRE(running.wait_for(5s) == std::future_status::ready);
    CHECK_THROWS_WITH_AS(running.get(), "sensor unplugged", std::runtime_error);
    CHECK_FALSE(stop.requested());
}

TEST_CASE("a source pump lingers after the input ended and keeps answering replays") {
    TempDir dir("rill-pump");
    LingeringPump pump(3, dir);
    REQUIRE(pump.input_ended());
    CHECK(pump.publisher().outbox().newest("pumped") == 3);

    ReplayClient client(default_context(), pump.publisher().replay_endpoint());
    const auto replayed = client.fetch("pumped", 1, 3);
    CHECK(replayed.readings.size() == 3);
    CHECK(pump.running().wait_for(0ms) == std::future_status::timeout);  // still lingering

    pump.stop();
    REQUIRE(pump.running().wait_for(5s) == std::future_status::ready);
    const auto summary = pump.running().get();
    CHECK(summary.end == PumpEnd::end_of_input);
    CHECK(summary.linger == LingerEnd::stop_requested);
}

TEST_CASE(
    "a source pump stops lingering once a subscriber that joined after the input ended caught "
    "up") {
    TempDir dir("rill-pump");
    LingeringPump pump(3, dir);
    auto& running = pump.running();
    REQUIRE(pump.input_ended());
    // Nobody was subscribed while the readings went out: the pump waits for a subscriber.
    CHECK(running.wait_for(500ms) == std::future_status::timeout);

    Subscriber sub(pump.publisher().publisher().bound().at(0));
    std::uint64_t announced = 0;
    const auto until = std::chrono::steady_clock::now() + 10s;
    while ((running.wait_for(0ms) != std::future_status::ready || announced != 3) &&
           std::chrono::steady_clock::now() < until) {
        auto ev = sub.receive(20ms);
        if (auto* hb = ev ? std::get_if<HeartbeatSeen>(&*ev) : nullptr) {
            for (const auto& [sensor, newest] : hb->heartbeat.newest)
                if (sensor == "pumped") announced = newest;
        }
    }
    REQUIRE(running.wait_for(0ms) == std::future_status::ready);
    const auto summary = running.get();
    CHECK(summary.end == PumpEnd::end_of_input);
    CHECK(summary.linger == LingerEnd::caught_up);
    CHECK(announced == 3);  // the subscriber was told what to fetch before the pump left
}

TEST_CASE("a source pump with no subscriber lingers for its whole bound") {
    TempDir dir("rill-pump");
    MetricsRegistry registry;
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "pump-test"));
    auto source = std::make_unique<ScriptedSource>(2);
    source->release();
    auto options = pump_options(registry);
    options.linger = 400ms;
    std::optional<std::chrono::steady_clock::time_point> ended;
    options.hooks.stopping = [&](PumpEnd, const PumpStatus&) {
        ended = std::chrono::steady_clock::now();
    };
    SourcePump pump(std::move(options), std::move(source), rp);
    StopFlag stop;
    const auto summary = pump.run(stop);
    REQUIRE(ended.has_value());
    CHECK(std::chrono::steady_clock::now() - *ended >= 400ms);
    CHECK(summary.linger == LingerEnd::bound);
    CHECK(summary.published_up_to == 2);
}

TEST_CASE(
    "a replay fetching in chunks keeps a source pump lingering until it reached the newest seq") {
    TempDir dir("rill-pump");
    LingeringPump pump(10, dir);
    auto& running = pump.running();
    REQUIRE(pump.input_ended());

    Subscriber sub(pump.publisher().publisher().bound().at(0));
    REQUIRE(heartbeat_seen(sub));
    ReplayClient client(default_context(), pump.publisher().replay_endpoint());
    CHECK(client.request(ReplayRequest{"pumped", 1, 4}).readings.size() == 4);
    // Heartbeats every 50 ms: without the open chunk the pump would be gone within a second.
    CHECK(running.wait_for(1500ms) == std::future_status::timeout);
    CHECK(client.request(ReplayRequest{"pumped", 5, 100}).readings.size() == 6);
    REQUIRE(running.wait_for(5s) == std::future_status::ready);
    CHECK(running.get().linger == LingerEnd::caught_up);
}

TEST_CASE("a source pump refuses an invalid sensor id") {
    TempDir dir("rill-pump");
    MetricsRegistry registry;
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "pump-test"));
    auto options = pump_options(registry);
    options.sensor_id = "";
    CHECK_THROWS_AS(SourcePump(std::move(options), std::make_unique<ScriptedSource>(1), rp),
                    std::invalid_argument);
}
