#include "rill/reliable.hpp"

#include <doctest/doctest.h>

#include <array>
#include <functional>
#include <map>
#include <set>

#include "support/process.hpp"
#include "support/publisher.hpp"

using namespace rill;
using namespace std::chrono_literals;
using rill::test::TempDir;

namespace {

std::vector<Reading> batch(const std::string& sensor, std::size_t n) {
    std::vector<Reading> b(n);
    for (auto& r : b) {
        r.sensor = sensor;
        r.ts = now();
        r.temperature = 21.0f;
        r.humidity = 45.0f;
    }
    return b;
}

// Publishes `batches` batches of `size` readings of "s1"; returns the newest seq.
std::uint64_t publish(ReliablePublisher& rp, std::size_t batches, std::size_t size) {
    std::uint64_t newest = 0;
    for (std::size_t i = 0; i < batches; ++i) {
        auto b = batch("s1", size);
        newest = rp.publish(b).last;
    }
    rp.flush();
    return newest;
}

// What an owner of a ReliableSubscriber saw, and what it "stored" (everything delivered).
struct Owner {
    std::map<std::uint64_t, int> delivered;  // seq -> times delivered
    std::set<std::uint64_t> replayed;
    std::vector<Lost> lost;
    std::vector<Gap> gaps;
    int heartbeats = 0;
    SeqRanges also_stored;  // reported as stored without having been delivered

    SeqRanges stored() const {
        SeqRanges s = also_stored;
        for (const auto& [seq, times] : delivered)
            s.insert(seq);
        return s;
    }
    [[nodiscard]] std::uint64_t lost_count() const {
        std::uint64_t n = 0;
        for (const auto& l : lost)
            n += l.range.size();
        return n;
    }
    // True when every seq in [first, last] was delivered or reported lost.
    [[nodiscard]] bool accounted(std::uint64_t first, std::uint64_t last) const {
        SeqRanges seen = stored();
        for (const auto& l : lost)
            seen.insert(l.range);
        return seen.missing_in(SeqRange{first, last}).empty();
    }

    void take(ReliableEvent&& ev) {
        if (auto* d = std::get_if<Delivery>(&ev)) {
            for (const auto& r : d->readings) {
                REQUIRE(r.sensor == "s1");
                ++delivered[r.seq];
                if (d->replayed) replayed.insert(r.seq);
            }
        } else if (auto* l = std::get_if<Lost>(&ev)) {
            lost.push_back(*l);
        } else if (auto* g = std::get_if<Gap>(&ev)) {
            gaps.push_back(*g);
        } else if (std::holds_alternative<HeartbeatSeen>(ev)) {
            ++heartbeats;
        }
    }
};

ReliableSubscriberOptions subscriber_options(ReliablePublisher& rp) {
    ReliableSubscriberOptions o;
    o.endpoints = rp.publisher().bound().front();
    o.replay_chunk = 300;  // several requests per range
    return o;
}

// Runs the publisher's duties and the subscriber's receive loop on this thread until `done`
// holds (true) or 20 s pass (false).
bool pump(ReliablePublisher& rp, ReliableSubscriber& rs, Owner& owner,
          const std::function<bool()>& done, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        (void)rp.service();
        if (auto ev = rs.receive(10ms)) owner.take(std::move(*ev));
    }
    return true;
}

// Keeps pumping for `d` (to see that nothing more arrives).
void pump_for(ReliablePublisher& rp, ReliableSubscriber& rs, Owner& owner,
              std::chrono::milliseconds d) {
    (void)pump(
        rp, rs, owner, [] { return false; }, d);
}

}  // namespace

TEST_CASE("a reliable publisher sends the bytes its outbox stored, encoded once") {
    TempDir dir("reliable");
    auto o = rill::test::loopback_publisher(dir, "reliable-test");
    o.publisher.batch.max_readings = 10;
    ReliablePublisher rp(o);
    zmq::socket_t sub(default_context(), zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, "");
    sub.connect(rp.publisher().bound().front());
    zmq::message_t topic;
    zmq::message_t payload;
    std::array<zmq::pollitem_t, 1> items{{{sub.handle(), 0, ZMQ_POLLIN, 0}}};
    // A heartbeat arriving shows the subscription is in effect.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    bool joined = false;
    while (!joined && std::chrono::steady_clock::now() < deadline) {
        rp.poll_once(20ms);
        while (zmq::poll(items.data(), items.size(), 0ms) == 1) {
            REQUIRE(sub.recv(topic));
            REQUIRE(sub.recv(payload));
            joined = true;
        }
    }
    REQUIRE(joined);
    auto b = batch("s1", 3);
    CHECK(rp.publish(b) == SeqRange{1, 3});
    rp.flush();
    do {
        REQUIRE(zmq::poll(items.data(), items.size(), 5s) == 1);
        REQUIRE(sub.recv(topic));
        REQUIRE(sub.recv(payload));
    } while (topic.to_string_view() == heartbeat_topic);
    CHECK(topic.to_string() == "s1");
    CHECK(payload.to_string() == encode_batch(b));
    CHECK(decode_batch(payload.to_string_view()) == rp.outbox().read("s1", 1, 10).readings);
}

TEST_CASE("a subscriber that starts late receives everything by replay, once") {
    TempDir dir("rill-reliable");
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "reliable-test"));
    const auto newest = publish(rp, 10, 100);
    REQUIRE(newest == 1000);

    Owner owner;
    ReliableSubscriber rs(subscriber_options(rp),
                          [&](const std::string&) { return owner.stored(); });
    REQUIRE(pump(rp, rs, owner, [&] { return owner.delivered.size() == 1000; }));
    pump_for(rp, rs, owner, 300ms);

    CHECK(owner.delivered.size() == 1000);
    CHECK(owner.delivered.begin()->first == 1);
    CHECK(owner.delivered.rbegin()->first == 1000);
    for (const auto& [seq, times] : owner.delivered) {
        CHECK_MESSAGE(times == 1, "seq " << seq << " delivered " << times << " times");
    }
    CHECK(owner.replayed.size() == 1000);
    CHECK(owner.lost.empty());
    CHECK(rs.stats().replayed_readings == 1000);
    CHECK(rs.stats().replay_requests >= 4);  // chunks of 300
    CHECK(rs.wanted() == 0);
}

TEST_CASE("a gap in the middle of the stream is repaired by replay") {
    TempDir dir("rill-reliable");
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "reliable-test"));
    Owner owner;
    ReliableSubscriber rs(subscriber_options(rp),
                          [&](const std::string&) { return owner.stored(); });
    // Subscribed once heartbeats arrive.
    REQUIRE(pump(rp, rs, owner, [&] { return owner.heartbeats > 0; }));

    REQUIRE(publish(rp, 1, 100) == 100);
    // 101..150 go to the outbox but never on the wire.
    auto hidden = batch("s1", 50);
    REQUIRE(rp.outbox().append(hidden) == SeqRange{101, 150});
    auto tail = batch("s1", 50);
    REQUIRE(rp.publish(tail) == SeqRange{151, 200});
    rp.flush();

    REQUIRE(pump(rp, rs, owner, [&] { return owner.delivered.size() == 200; }));
    pump_for(rp, rs, owner, 300ms);

    REQUIRE(owner.gaps.size() == 1);
    CHECK(owner.gaps.front() == Gap{"s1", 101, 150});
    CHECK(owner.delivered.size() == 200);
    CHECK(owner.delivered.rbegin()->first == 200);
    for (const auto& [seq, times] : owner.delivered) {
        CHECK_MESSAGE(times == 1, "seq " << seq << " delivered " << times << " times");
    }
    // Exactly the hidden ones came by replay.
    CHECK(owner.replayed.size() == 50);
    CHECK(*owner.replayed.begin() == 101);
    CHECK(*owner.replayed.rbegin() == 150);
    CHECK(owner.lost.empty());
}

TEST_CASE("readings the publisher's outbox dropped are reported Lost, exactly those") {
    TempDir dir("rill-reliable");
    auto po = rill::test::loopback_publisher(dir, "reliable-test");
    po.outbox.segment_bytes = 16 * 1024;
    po.outbox.max_bytes = 64 * 1024;
    ReliablePublisher rp(std::move(po));
    const auto newest = publish(rp, 100, 100);
    REQUIRE(newest == 10'000);
    const auto first = rp.outbox().first_available("s1");
    REQUIRE(first > 1);  // the bound dropped the oldest segments
    REQUIRE(first <= newest);

    Owner owner;
    ReliableSubscriber rs(subscriber_options(rp),
                          [&](const std::string&) { return owner.stored(); });
    REQUIRE(pump(rp, rs, owner, [&] { return owner.accounted(1, newest); }));
    pump_for(rp, rs, owner, 300ms);

    // Lost: exactly 1..first-1, each seq once.
    SeqRanges lost;
    for (const auto& l : owner.lost) {
        CHECK(l.sensor == "s1");
        CHECK(l.reason.find("dropped") != std::string::npos);
        CHECK(lost.missing_in(l.range) == std::vector<SeqRange>{l.range});  // no overlap
        lost.insert(l.range);
    }
    CHECK(lost.ranges() == std::vector<SeqRange>{SeqRange{1, first - 1}});
    CHECK(owner.lost_count() == first - 1);
    CHECK(rs.stats().lost_readings == first - 1);
    // Delivered: exactly first..newest, each once.
    CHECK(owner.delivered.size() == newest - first + 1);
    CHECK(owner.delivered.begin()->first == first);
    CHECK(owner.delivered.rbegin()->first == newest);
    for (const auto& [seq, times] : owner.delivered) {
        CHECK_MESSAGE(times == 1, "seq " << seq << " delivered " << times << " times");
    }
}

TEST_CASE("what the owner reports as stored is not fetched again") {
    TempDir dir("rill-reliable");
    ReliablePublisher rp(rill::test::loopback_publisher(dir, "reliable-test"));
    REQUIRE(publish(rp, 10, 100) == 1000);

    Owner owner;
    owner.also_stored.insert(SeqRange{1, 300});
    owner.also_stored.insert(SeqRange{401, 600});
    ReliableSubscriber rs(subscriber_options(rp),
                          [&](const std::string&) { return owner.stored(); });
    REQUIRE(pump(rp, rs, owner, [&] { return owner.delivered.size() == 500; }));
    pump_for(rp, rs, owner, 500ms);

    CHECK(owner.delivered.size() == 500);
    SeqRanges got;
    for (const auto& [seq, times] : owner.delivered) {
        CHECK_MESSAGE(times == 1, "seq " << seq << " delivered " << times << " times");
        got.insert(seq);
    }
    CHECK(got.ranges() == std::vector<SeqRange>{SeqRange{301, 400}, SeqRange{601, 1000}});
    CHECK(rs.stats().replayed_readings == 500);
    CHECK(owner.lost.empty());
}
