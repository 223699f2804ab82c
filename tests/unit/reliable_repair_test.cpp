// ReliableSubscriber's repair against hand-made publishers: a raw PUB socket sending readings
// and heartbeats as any publisher would, and replay endpoints that answer well, answer
// garbage or never answer.
#include "rill/reliable.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "support/msgpack.hpp"

using namespace rill;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

Reading reading(const std::string& sensor, std::uint64_t seq) {
    Reading r;
    r.sensor = sensor;
    r.seq = seq;
    r.ts = now();
    r.temperature = 21.0f;
    r.humidity = 45.0f;
    return r;
}

std::vector<Reading> readings(const std::string& sensor, std::uint64_t first, std::uint64_t last) {
    std::vector<Reading> out;
    for (auto seq = first; seq <= last; ++seq)
        out.push_back(reading(sensor, seq));
    return out;
}

// A publisher made by hand: one PUB socket sending readings with the seqs the test chooses and
// heartbeats for any number of publisher identities, each announcing its replay endpoint and
// the sensors the test lists for it.
struct FakePublisher {
    struct Identity {
        std::string replay_endpoint;
        std::map<std::string, std::uint64_t> newest;
    };
    zmq::socket_t pub{default_context(), zmq::socket_type::pub};
    std::string endpoint;
    std::map<std::string, Identity> identities;
    Clock::time_point next_beat{};

    FakePublisher() {
        identities["pub-0"] = {};  // heartbeats from the start, listing nothing
        pub.set(zmq::sockopt::linger, 0);
        pub.bind("tcp://127.0.0.1:0");
        endpoint = pub.get(zmq::sockopt::last_endpoint);
    }
    void send(const std::vector<Reading>& batch) {
        const auto payload = encode_batch(batch);
        pub.send(zmq::buffer(batch.front().sensor), zmq::send_flags::sndmore);
        pub.send(zmq::buffer(payload), zmq::send_flags::none);
    }
    void beat() {
        for (const auto& [id, ident] : identities) {
            Heartbeat hb;
            hb.publisher = id;
            hb.sent_at = now();
            hb.interval = 50ms;
            hb.replay_endpoint = ident.replay_endpoint;
            for (const auto& [sensor, newest] : ident.newest)
                hb.newest.emplace_back(sensor, newest);
            const auto payload = encode_heartbeat(hb);
            pub.send(zmq::buffer(heartbeat_topic), zmq::send_flags::sndmore);
            pub.send(zmq::buffer(payload), zmq::send_flags::none);
        }
        next_beat = Clock::now() + 50ms;
    }
    void tick() {
        if (Clock::now() >= next_beat) beat();
    }
};

// A replay service holding readings 1..newest of each sensor it is given; counts requests.
struct GoodReplay {
    std::mutex mutex;
    std::map<std::string, std::uint64_t> newest;
    std::map<std::string, int> asked;  // requests per sensor
    ReplayServer server;

    GoodReplay()
        : server(default_context(), "tcp://127.0.0.1:0", [this](const ReplayRequest& req) {
              std::lock_guard lock(mutex);
              ++asked[req.sensor];
              ReplayReply reply;
              reply.newest = newest[req.sensor];
              const auto last =
                  std::min<std::uint64_t>(reply.newest, req.from_seq + req.max_readings - 1);
              if (req.from_seq <= last) reply.readings = readings(req.sensor, req.from_seq, last);
              return reply;
          }) {}
    // Sets the newest seq it holds for `sensor` (the server thread reads it).
    void hold(const std::string& sensor, std::uint64_t seq) {
        std::lock_guard lock(mutex);
        newest[sensor] = seq;
    }
    int requests(const std::string& sensor) {
        std::lock_guard lock(mutex);
        return asked[sensor];
    }
};

// A replay service that answers every request with something that is not a valid answer, in
// turn: not a reply at all, another sensor's readings, a reading above the newest seq it
// announces, a lost range its first_available contradicts. Records when each request came.
struct GarbageReplay {
    std::mutex mutex;
    std::vector<Clock::time_point> times;
    RpcServer server{default_context(), "tcp://127.0.0.1:0"};

    GarbageReplay() {
        server.handle(std::string(replay_method), [this](std::string_view params) {
            const auto req = decode_replay_request(params);
            std::size_t n = 0;
            {
                std::lock_guard lock(mutex);
                n = times.size();
                times.push_back(Clock::now());
            }
            const auto from = req.from_seq;
            switch (n % 4) {
                case 0:
                    return std::string("\xc0", 1);  // nil
                case 1: {
                    ReplayReply other;
                    other.readings = readings("someone-else", from, from);
                    other.first_available = 1;
                    other.newest = from + 10;
                    return encode_replay_reply(other);
                }
                case 2:  // a reading above the newest seq announced in the same reply
                    return rill::test::packed([&](rill::test::Packer& pk) {
                        const auto payload = encode_batch(readings(req.sensor, from, from));
                        pk.pack_array(4);
                        pk.pack_bin(static_cast<std::uint32_t>(payload.size()));
                        pk.pack_bin_body(payload.data(),
                                         static_cast<std::uint32_t>(payload.size()));
                        pk.pack(std::uint64_t{1});
                        pk.pack(from - 1);
                        pk.pack_nil();
                    });
                default:  // lost [from, from + 5] while first_available says nothing is lost
                    return rill::test::packed([&](rill::test::Packer& pk) {
                        pk.pack_array(4);
                        pk.pack_bin(0);
                        pk.pack(std::uint64_t{1});
                        pk.pack(from + 10);
                        pk.pack_array(2);
                        pk.pack(from);
                        pk.pack(from + 5);
                    });
            }
        });
        server.start();
    }
    std::vector<Clock::time_point> requests() {
        std::lock_guard lock(mutex);
        return times;
    }
};

// A replay endpoint that accepts connections and never answers (a ROUTER nobody reads).
struct SilentReplay {
    zmq::socket_t router{default_context(), zmq::socket_type::router};
    std::string endpoint;
    SilentReplay() {
        router.set(zmq::sockopt::linger, 0);
        router.bind("tcp://127.0.0.1:0");
        endpoint = router.get(zmq::sockopt::last_endpoint);
    }
    // True when a request arrives within `timeout`.
    bool request_arrives(std::chrono::milliseconds timeout) {
        std::array<zmq::pollitem_t, 1> items{{{router.handle(), 0, ZMQ_POLLIN, 0}}};
        return zmq::poll(items.data(), items.size(), timeout) == 1;
    }
};

struct Owner {
    std::map<std::string, std::set<std::uint64_t>> delivered;
    std::map<std::string, std::set<std::uint64_t>> replayed;
    std::vector<Lost> lost;
    int heartbeats = 0;

    SeqRanges stored(const std::string& sensor) const {
        SeqRanges s;
        if (auto it = delivered.find(sensor); it != delivered.end()) {
            for (auto seq : it->second)
                s.insert(seq);
        }
        return s;
    }
    void take(ReliableEvent&& ev) {
        if (auto* d = std::get_if<Delivery>(&ev)) {
            for (const auto& r : d->readings) {
                delivered[r.sensor].insert(r.seq);
                if (d->replayed) replayed[r.sensor].insert(r.seq);
            }
        } else if (auto* l = std::get_if<Lost>(&ev)) {
            lost.push_back(*l);
        } else if (std::holds_alternative<HeartbeatSeen>(ev)) {
            ++heartbeats;
        }
    }
    bool has(const std::string& sensor, std::uint64_t first, std::uint64_t last) const {
        auto it = delivered.find(sensor);
        if (it == delivered.end()) return false;
        for (auto seq = first; seq <= last; ++seq) {
            if (!it->second.contains(seq)) return false;
        }
        return true;
    }
};

// Runs the fake publisher's heartbeats and the subscriber's receive loop until `done` holds
// (true) or `timeout` passes (false).
bool pump(FakePublisher& fp, ReliableSubscriber& rs, Owner& owner,
          const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        fp.tick();
        if (auto ev = rs.receive(10ms)) owner.take(std::move(*ev));
    }
    return true;
}

void pump_for(FakePublisher& fp, ReliableSubscriber& rs, Owner& owner,
              std::chrono::milliseconds d) {
    (void)pump(
        fp, rs, owner, [] { return false; }, d);
}

// Pumps until a request reached `silent` (it stays unanswered).
void in_flight(FakePublisher& fp, ReliableSubscriber& rs, Owner& owner, SilentReplay& silent) {
    REQUIRE(pump(
        fp, rs, owner, [&] { return silent.request_arrives(0ms); }, 5s));
}

ReliableSubscriberOptions options_for(const FakePublisher& fp) {
    ReliableSubscriberOptions o;
    o.endpoints = fp.endpoint;
    return o;
}

// Subscribes (a heartbeat arrived), then sends readings 1..3 of each sensor and waits for them.
void start(FakePublisher& fp, ReliableSubscriber& rs, Owner& owner,
           const std::vector<std::string>& sensors) {
    REQUIRE(pump(fp, rs, owner, [&] { return owner.heartbeats > 0; }));
    for (const auto& s : sensors)
        fp.send(readings(s, 1, 3));
    REQUIRE(pump(fp, rs, owner, [&] {
        for (const auto& s : sensors) {
            if (!owner.has(s, 1, 3)) return false;
        }
        return true;
    }));
}

// Announces `sensors` under publisher `id` with `replay` as its replay endpoint, newest 3, and
// waits until the subscriber saw that heartbeat.
void announce(FakePublisher& fp, ReliableSubscriber& rs, Owner& owner, const std::string& id,
              const std::string& replay, const std::vector<std::string>& sensors) {
    auto& ident = fp.identities[id];
    ident.replay_endpoint = replay;
    for (const auto& s : sensors)
        ident.newest[s] = 3;
    fp.beat();
    const int seen = owner.heartbeats;
    REQUIRE(pump(fp, rs, owner, [&] { return owner.heartbeats >= seen + 2; }));
}

// Sends reading 7 of `sensor` (4..6 go missing) and raises its newest in heartbeats to 7.
void gap(FakePublisher& fp, const std::string& id, const std::string& sensor) {
    fp.send({reading(sensor, 7)});
    fp.identities[id].newest[sensor] = 7;
    fp.beat();
}

}  // namespace

TEST_CASE(
    "after a heartbeat announced a sensor, a gap in its stream becomes a replay request "
    "on the announced endpoint well before the wait for an announcement would end") {
    FakePublisher fp;
    GoodReplay good;
    Owner owner;
    ReliableSubscriber rs(options_for(fp), [&](const std::string& s) { return owner.stored(s); });
    start(fp, rs, owner, {"s1"});
    good.hold("s1", 3);
    announce(fp, rs, owner, "pub", good.server.last_endpoint(), {"s1"});
    REQUIRE(good.requests("s1") == 0);  // 1..3 were stored: nothing to ask for

    good.hold("s1", 7);
    gap(fp, "pub", "s1");
    const auto t0 = Clock::now();
    REQUIRE(pump(
        fp, rs, owner, [&] { return owner.has("s1", 4, 7); }, 5s));
    CHECK(Clock::now() - t0 < 2s);  // that wait: 3 heartbeat intervals, at least 1 s each
    CHECK(good.requests("s1") >= 1);
    CHECK(owner.replayed["s1"] == std::set<std::uint64_t>{4, 5, 6});
    CHECK(owner.lost.empty());
    CHECK(rs.wanted() == 0);
}

TEST_CASE(
    "a gap of a sensor no heartbeat lists is reported lost, never asked for, and not "
    "asked for or counted again when a heartbeat lists the sensor later") {
    FakePublisher fp;
    GoodReplay good;
    Owner owner;
    ReliableSubscriber rs(options_for(fp), [&](const std::string& s) { return owner.stored(s); });
    start(fp, rs, owner, {"listed", "orphan"});
    good.hold("listed", 3);
    good.hold("orphan", 7);  // the service would have them: nobody says so
    announce(fp, rs, owner, "pub", good.server.last_endpoint(), {"listed"});

    fp.send({reading("orphan", 7)});  // 4..6 missing
    const auto t0 = Clock::now();
    REQUIRE(pump(
        fp, rs, owner, [&] { return !owner.lost.empty(); }, 10s));
    const auto waited = Clock::now() - t0;
    // silent_after_missed (3) x max(1 s, the 50 ms interval seen).
    CHECK(waited >= 2900ms);
    CHECK(waited < 5s);
    REQUIRE(owner.lost.size() == 1);
    CHECK(owner.lost.front().sensor == "orphan");
    CHECK(owner.lost.front().range == SeqRange{4, 6});
    CHECK(owner.lost.front().kind == LossKind::dropped);
    CHECK(owner.lost.front().reason.find("no heartbeat lists sensor orphan") != std::string::npos);
    CHECK(rs.stats().lost_readings == 3);
    CHECK(rs.wanted() == 0);
    CHECK(good.requests("orphan") == 0);

    // Announced at last: 4..6 were reported lost, so they are neither fetched nor reported again.
    fp.identities["pub"].newest["orphan"] = 7;
    fp.beat();
    pump_for(fp, rs, owner, 700ms);
    CHECK(good.requests("orphan") == 0);
    CHECK(owner.lost.size() == 1);
    CHECK(owner.delivered["orphan"] == std::set<std::uint64_t>{1, 2, 3, 7});
    CHECK(rs.stats().lost_readings == 3);
}

TEST_CASE(
    "invalid replay answers are retried with a doubling backoff and reported lost as "
    "invalid after the limit, then never asked for again") {
    FakePublisher fp;
    GarbageReplay garbage;
    Owner owner;
    auto o = options_for(fp);
    o.replay_backoff = 100ms;
    o.replay_backoff_max = 400ms;
    o.replay_invalid_limit = 5;
    ReliableSubscriber rs(o, [&](const std::string& s) { return owner.stored(s); });
    start(fp, rs, owner, {"bad"});
    announce(fp, rs, owner, "pub", garbage.server.last_endpoint(), {"bad"});
    gap(fp, "pub", "bad");

    REQUIRE(pump(
        fp, rs, owner, [&] { return !owner.lost.empty(); }, 10s));
    pump_for(fp, rs, owner, 1000ms);
    const auto times = garbage.requests();
    REQUIRE(times.size() == 5);  // the limit, and none after it
    // Waits of 100, 200, 400, 400 ms between the attempts (less a little for timer slack).
    const std::array<std::chrono::milliseconds, 4> least{90ms, 190ms, 390ms, 390ms};
    for (std::size_t i = 1; i < times.size(); ++i) {
        CHECK_MESSAGE(times[i] - times[i - 1] >= least[i - 1], "attempt " << i);
    }
    REQUIRE(owner.lost.size() == 1);
    CHECK(owner.lost.front().range == SeqRange{4, 6});
    CHECK(owner.lost.front().kind == LossKind::invalid);
    CHECK(owner.lost.front().reason.find("5 invalid answers in a row") != std::string::npos);
    CHECK(rs.stats().replay_failures == 5);
    CHECK(rs.stats().lost_readings == 3);
    CHECK(rs.stats().invalid_readings == 3);
    CHECK(rs.wanted() == 0);
}

TEST_CASE(
    "replay endpoints that answer garbage or never answer do not delay another "
    "endpoint's sensor") {
    FakePublisher fp;
    GarbageReplay garbage;
    SilentReplay silent;
    GoodReplay good;
    Owner owner;
    auto o = options_for(fp);
    o.replay_call = {6000ms, 0};
    ReliableSubscriber rs(o, [&](const std::string& s) { return owner.stored(s); });
    // Sorted before "d-good": a single queue would serve them first.
    const std::vector<std::string> all{"a-garbage", "b-silent", "c-silent", "d-good"};
    start(fp, rs, owner, all);
    good.hold("d-good", 3);
    fp.identities["pub-a"] = {garbage.server.last_endpoint(), {{"a-garbage", 3}}};
    fp.identities["pub-b"] = {silent.endpoint, {{"b-silent", 3}, {"c-silent", 3}}};
    announce(fp, rs, owner, "pub-d", good.server.last_endpoint(), {"d-good"});

    gap(fp, "pub-a", "a-garbage");
    gap(fp, "pub-b", "b-silent");
    gap(fp, "pub-b", "c-silent");
    in_flight(fp, rs, owner, silent);
    REQUIRE(pump(
        fp, rs, owner, [&] { return !garbage.requests().empty(); }, 5s));
    good.hold("d-good", 7);
    const auto t0 = Clock::now();
    gap(fp, "pub-d", "d-good");
    REQUIRE(pump(
        fp, rs, owner, [&] { return owner.has("d-good", 4, 6); }, 10s));
    CHECK(Clock::now() - t0 < 2s);  // well under the silent endpoint's 6 s timeout
    CHECK(owner.replayed["d-good"] == std::set<std::uint64_t>{4, 5, 6});
}

TEST_CASE(
    "a sensor whose publisher announces a new replay endpoint is asked there at once, "
    "not after the previous endpoint's timeout") {
    FakePublisher fp;
    SilentReplay old_endpoint;
    GoodReplay good;
    Owner owner;
    auto o = options_for(fp);
    o.replay_call = {5000ms, 1};
    ReliableSubscriber rs(o, [&](const std::string& s) { return owner.stored(s); });
    start(fp, rs, owner, {"r-dup"});
    announce(fp, rs, owner, "pub", old_endpoint.endpoint, {"r-dup"});
    gap(fp, "pub", "r-dup");
    in_flight(fp, rs, owner, old_endpoint);

    good.hold("r-dup", 7);
    fp.identities["pub"].replay_endpoint = good.server.last_endpoint();
    const auto t0 = Clock::now();
    fp.beat();
    REQUIRE(pump(
        fp, rs, owner, [&] { return owner.has("r-dup", 4, 6); }, 10s));
    CHECK(Clock::now() - t0 < 2s);  // the old endpoint: 5 s timeout, twice
    CHECK(good.requests("r-dup") >= 1);
    CHECK(owner.lost.empty());
    CHECK(rs.stats().replay_failures == 0);  // the withdrawn request's end is not a failure
}

TEST_CASE("destroying a subscriber while its replay request waits for an answer returns at once") {
    FakePublisher fp;
    SilentReplay silent;
    Owner owner;
    auto o = options_for(fp);
    o.replay_call = {10'000ms, 1};
    std::optional<ReliableSubscriber> rs;
    rs.emplace(o, [&](const std::string& s) { return owner.stored(s); });
    start(fp, *rs, owner, {"s1"});
    announce(fp, *rs, owner, "pub", silent.endpoint, {"s1"});
    gap(fp, "pub", "s1");
    in_flight(fp, *rs, owner, silent);
    const auto t0 = Clock::now();
    rs.reset();
    CHECK(Clock::now() - t0 < 1s);  // the call: 10 s timeout, twice
}

TEST_CASE(
    "a flood of invented sensors keeps the replay side at max_sensors with counted evictions, "
    "and a forgotten real sensor's gap is still repaired") {
    FakePublisher fp;
    GoodReplay good;
    Owner owner;
    MetricsRegistry metrics;
    auto o = options_for(fp);
    o.subscriber.metrics = &metrics;
    o.subscriber.max_sensors = 8;
    // The owner holds 1..3 of every invented sensor, so each is idle once reconciled.
    ReliableSubscriber rs(o, [&](const std::string& s) {
        if (s == "real") return owner.stored(s);
        SeqRanges held;
        held.insert(SeqRange{1, 3});
        return held;
    });
    start(fp, rs, owner, {"real"});
    good.hold("real", 3);
    announce(fp, rs, owner, "pub", good.server.last_endpoint(), {"real"});

    std::vector<std::string> invented;
    for (int i = 0; i < 40; ++i)
        invented.push_back("fake-" + std::to_string(i));
    announce(fp, rs, owner, "flood", good.server.last_endpoint(), invented);
    // 41 sensors against a cap of 8: at least 33 forgotten, each counted.
    CHECK(metrics.value("rill_reliable_sensors_evicted_total") >= 33.0);

    good.hold("real", 7);
    gap(fp, "pub", "real");
    REQUIRE(pump(
        fp, rs, owner, [&] { return owner.has("real", 4, 7); }, 10s));
    CHECK(owner.lost.empty());
}

TEST_CASE(
    "a failed replay is asked again when its backoff ends, without waiting for another "
    "heartbeat") {
    // schedule() looks only at sensors whose state changed and at timers that are due (a fleet of
    // thousands of sensors must not cost a walk over all of them per message): a job that ended
    // in failure must arm its sensor's retry by itself, heartbeats or not.
    FakePublisher fp;
    GarbageReplay garbage;
    Owner owner;
    auto o = options_for(fp);
    o.replay_backoff = 100ms;
    o.replay_backoff_max = 100ms;
    o.replay_invalid_limit = 3;
    ReliableSubscriber rs(o, [&](const std::string& s) { return owner.stored(s); });
    start(fp, rs, owner, {"bad"});
    announce(fp, rs, owner, "pub", garbage.server.last_endpoint(), {"bad"});
    gap(fp, "pub", "bad");  // reading 7 and one heartbeat announcing it; then no heartbeat at all

    const auto deadline = Clock::now() + 5s;
    while (owner.lost.empty() && Clock::now() < deadline) {
        if (auto ev = rs.receive(10ms)) owner.take(std::move(*ev));
    }
    CHECK(garbage.requests().size() == 3);  // the first request and two retries on backoff alone
    REQUIRE(owner.lost.size() == 1);
    CHECK(owner.lost.front().range == SeqRange{4, 6});
    CHECK(owner.lost.front().kind == LossKind::invalid);
}
