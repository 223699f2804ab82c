// The publisher side as a subscriber of another implementation sees it: what heartbeats
// announce after multi-reading frames, read off a raw SUB socket; what the stream socket tells
// its owner about subscribers (StreamAudience); what the replay service was asked
// (ReplayActivity).
#include <doctest/doctest.h>

#include <zmq_addon.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rill/codec.hpp"
#include "rill/reliable.hpp"
#include "rill/replay.hpp"
#include "rill/socket.hpp"
#include "rill/stream.hpp"
#include "support/process.hpp"
#include "support/publisher.hpp"

using namespace rill;
using namespace std::chrono_literals;
using rill::test::TempDir;
using rill::test::wait_until;

namespace {

// A plain SUB socket (no rill::Subscriber logic in between) on everything a publisher sends.
class RawSub {
  public:
    explicit RawSub(const std::string& endpoint)
        : socket_(default_context(), zmq::socket_type::sub) {
        socket_.set(zmq::sockopt::linger, 0);
        socket_.set(zmq::sockopt::subscribe, "");
        socket_.connect(endpoint);
    }

    // The next message, decoded, waiting up to 50 ms; `service` runs before each wait.
    std::optional<Message> next(const std::function<void()>& service) {
        service();
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, 50ms);
        if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
        std::vector<zmq::message_t> frames;
        (void)zmq::recv_multipart(socket_, std::back_inserter(frames));
        REQUIRE(frames.size() == 2);
        return decode_message(frames[0].to_string_view(), frames[1].to_string_view());
    }

    // Waits up to 5 s for any heartbeat: the subscription is in effect.
    bool subscribed(const std::function<void()>& service) {
        const auto until = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < until) {
            auto m = next(service);
            if (m && std::holds_alternative<Heartbeat>(*m)) return true;
        }
        return false;
    }

    zmq::socket_t& socket() noexcept { return socket_; }

  private:
    zmq::socket_t socket_;
};

std::vector<Reading> readings_of(const std::string& sensor, int n) {
    std::vector<Reading> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(Reading{sensor,
                              static_cast<std::uint64_t>(i + 1),
                              now(),
                              20.0f + static_cast<float>(i),
                              50.0f,
                              {}});
    }
    return out;
}

// What the first heartbeat after the frames seen so far announces for `sensor`, and the sizes
// of the readings frames of `sensor` that came before it (up to 5 s).
struct AfterFrames {
    std::vector<std::size_t> frames;
    std::optional<std::uint64_t> announced;
};

AfterFrames first_heartbeat_after_frames(RawSub& sub, const std::string& sensor,
                                         const std::function<void()>& service) {
    AfterFrames out;
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!out.announced && std::chrono::steady_clock::now() < until) {
        auto m = sub.next(service);
        if (!m) continue;
        if (auto* batch = std::get_if<std::vector<Reading>>(&*m)) {
            if (!batch->empty() && batch->front().sensor == sensor) {
                out.frames.push_back(batch->size());
            }
        } else if (!out.frames.empty()) {
            for (const auto& [s, newest] : std::get<Heartbeat>(*m).newest) {
                if (s == sensor) out.announced = newest;
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("a heartbeat after a reliable publisher's multi-reading frame announces its last seq") {
    TempDir dir("rill-reliable-publisher");
    auto options = rill::test::loopback_publisher(dir, "frame-test");
    options.publisher.batch.max_readings = 100;  // the whole publish() call becomes one frame
    ReliablePublisher rp(std::move(options));
    RawSub sub(rp.publisher().bound().at(0));
    auto service = [&] { (void)rp.service(); };
    REQUIRE(sub.subscribed(service));

    auto batch = readings_of("multi", 7);
    const auto seqs = rp.publish(batch);
    REQUIRE(seqs.last == 7);
    const auto seen = first_heartbeat_after_frames(sub, "multi", service);
    REQUIRE(seen.frames == std::vector<std::size_t>{7});  // one frame of seven readings
    REQUIRE(seen.announced.has_value());
    CHECK(*seen.announced == 7);
}

TEST_CASE("a heartbeat after a publisher's batched frame announces the batch's last seq") {
    PublisherOptions options;
    options.heartbeat_interval = 50ms;
    options.batch.max_readings = 4;
    Publisher pub("@tcp://127.0.0.1:0", options);
    RawSub sub(pub.bound().at(0));
    auto service = [&] { (void)pub.service(); };
    REQUIRE(sub.subscribed(service));

    pub.publish(readings_of("batched", 4));  // fills one batch: sent as one frame
    const auto seen = first_heartbeat_after_frames(sub, "batched", service);
    REQUIRE(seen.frames == std::vector<std::size_t>{4});
    REQUIRE(seen.announced.has_value());
    CHECK(*seen.announced == 4);
}

TEST_CASE("a publisher sees subscribers join and leave and counts the heartbeats sent since") {
    PublisherOptions options;
    options.heartbeat_interval = 20ms;
    Publisher pub("@tcp://127.0.0.1:0", options);
    CHECK(pub.audience().subscriptions == 0);
    // Services `pub` until its audience satisfies `want` (up to 5 s).
    auto audience_becomes = [&](const std::function<bool(const StreamAudience&)>& want) {
        return wait_until(
            [&] {
                (void)pub.service();
                return want(pub.audience());
            },
            5s);
    };
    REQUIRE(audience_becomes([](const StreamAudience& a) { return a.heartbeats >= 2; }));
    CHECK(pub.audience().heartbeats_since_subscription == pub.audience().heartbeats);

    std::optional<RawSub> sub(pub.bound().at(0));
    auto service = [&] { (void)pub.service(); };
    REQUIRE(sub->subscribed(service));  // a heartbeat arrived: the join was read before it
    const auto joined = pub.audience();
    CHECK(joined.subscriptions == 1);
    CHECK(joined.active_subscriptions == 1);
    CHECK(joined.heartbeats_since_subscription >= 1);
    CHECK(joined.heartbeats_since_subscription < joined.heartbeats);

    // A second subscriber to the same topic is seen too (verbose), and the count restarts.
    RawSub second(pub.bound().at(0));
    REQUIRE(audience_becomes([](const StreamAudience& a) { return a.subscriptions == 2; }));
    CHECK(pub.audience().active_subscriptions == 2);
    CHECK(pub.audience().heartbeats_since_subscription <= 1);

    // Disconnecting unsubscribes.
    sub.reset();
    CHECK(audience_becomes([](const StreamAudience& a) { return a.active_subscriptions == 1; }));
    CHECK(pub.audience().subscriptions == 2);
}

TEST_CASE(
    "a reliable publisher's replay activity keeps a sensor open until a request reaches "
    "its newest seq") {
    TempDir dir("rill-reliable-publisher");
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "activity-test"));
    auto batch = readings_of("chunked", 10);
    (void)rp.publish(batch);
    CHECK(rp.replay_activity().requests == 0);
    CHECK(rp.replay_activity().open_sensors == 0);

    ReplayClient client(default_context(), rp.replay_endpoint());
    (void)client.request(ReplayRequest{"chunked", 1, 4});  // 1..4 of 10: more to come
    CHECK(rp.replay_activity().requests == 1);
    CHECK(rp.replay_activity().open_sensors == 1);
    (void)client.request(ReplayRequest{"chunked", 5, 5});  // 5..9: still short of 10
    CHECK(rp.replay_activity().open_sensors == 1);
    (void)client.request(ReplayRequest{"chunked", 6, 5});  // 6..10 reaches the newest
    CHECK(rp.replay_activity().requests == 3);
    CHECK(rp.replay_activity().open_sensors == 0);
    (void)client.request(ReplayRequest{"unknown", 1, 1});  // a sensor the outbox lacks
    CHECK(rp.replay_activity().requests == 4);
    CHECK(rp.replay_activity().open_sensors == 0);
}
