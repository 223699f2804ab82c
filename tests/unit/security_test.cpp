#include "rill/security.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "rill/codec.hpp"
#include "rill/metrics.hpp"
#include "rill/reliable.hpp"
#include "rill/rpc.hpp"
#include "rill/stream.hpp"
#include "support/process.hpp"
#include "support/publisher.hpp"
#include "support/readings.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mode & 0777u;
}

rill::Reading reading(std::uint64_t seq) {
    return rill::test::reading("greenhouse-07", seq);
}

// Publishes a reading of `topic` every 20 ms (for slow joiners) until the subscriber gets one of
// that topic or `timeout` passes; returns what the subscriber decoded (other topics are skipped).
std::vector<rill::Reading> exchange(rill::Socket& pub, rill::Socket& sub,
                                    std::chrono::milliseconds timeout,
                                    const std::string& topic = "greenhouse-07") {
    const auto payload = rill::encode(rill::test::reading(topic, 5));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        (void)pub.raw().send(zmq::buffer(topic), zmq::send_flags::sndmore);
        (void)pub.raw().send(zmq::buffer(payload), zmq::send_flags::none);
        std::array<zmq::pollitem_t, 1> items{{{sub.raw().handle(), 0, ZMQ_POLLIN, 0}}};
        zmq::poll(items.data(), 1, 20ms);
        zmq::message_t got;
        zmq::message_t body;
        while ((items[0].revents & ZMQ_POLLIN) && sub.raw().recv(got, zmq::recv_flags::dontwait)) {
            REQUIRE(sub.raw().recv(body));
            if (got.to_string_view() == topic) {
                return std::get<std::vector<rill::Reading>>(
                    rill::decode_message(got.to_string_view(), body.to_string_view()));
            }
        }
    }
    return {};
}

// Key material for one server and two clients; only `good` is in the allow-list directory.
struct Keys {
    rill::test::TempDir dir{"rill-keys"};
    fs::path allowed = dir.path() / "allowed";
    rill::KeyFiles server;
    rill::KeyFiles good;
    rill::KeyFiles stranger;
    Keys() {
        fs::create_directories(allowed);
        server = rill::write_key_files(rill::generate_curve_keypair(), dir.path(), "server");
        good = rill::write_key_files(rill::generate_curve_keypair(), dir.path(), "good");
        stranger = rill::write_key_files(rill::generate_curve_keypair(), dir.path(), "stranger");
        fs::copy_file(good.public_file, allowed / "good.key");
    }
    [[nodiscard]] rill::SocketOptions server_options() const {
        rill::SocketOptions o;
        o.curve_server = rill::curve_server_keys(server.secret_file);
        return o;
    }
    [[nodiscard]] rill::SocketOptions client_options(const rill::KeyFiles& who) const {
        rill::SocketOptions o;
        o.curve_client = rill::curve_client_keys(who.secret_file, server.public_file);
        return o;
    }
};

// A CURVE rpc server answering "ping" with "pong", behind a ZAP handler over keys.allowed.
struct PingServer {
    zmq::context_t ctx;
    rill::ZapHandler zap;
    rill::RpcServer server;
    explicit PingServer(const Keys& keys)
        : zap(ctx, keys.allowed), server(ctx, "tcp://127.0.0.1:0", keys.server_options()) {
        server.handle("ping", [](std::string_view) { return rill::rpc_pack::str("pong"); });
        server.start();
    }
    // True when a new client with `options` gets "pong" within `timeout`, false on a timeout.
    bool ping(const rill::SocketOptions& options, std::chrono::milliseconds timeout) {
        rill::RpcClient client(ctx, server.last_endpoint(), options);
        try {
            return rill::rpc_pack::to_str(client.call("ping", {}, {timeout, 0})) == "pong";
        } catch (const rill::RpcTimeout&) {
            return false;
        }
    }
};

// `sub` is refused by `zap` (an empty allow-list) and knocks again: once `zap` saw two refusals
// the good key is allowed, and readings of `sensor` are published on `pub` until `sub` receives
// one. True when each step happened in time and `zap` admitted the subscriber.
bool knocks_until_admitted(rill::ZapHandler& zap, const Keys& keys, rill::Publisher& pub,
                           rill::Subscriber& sub, const std::string& sensor) {
    // libzmq 4.3 does not retry a connection ZAP refused; the Subscriber does.
    const bool refused = rill::test::wait_until(
        [&] {
            (void)sub.receive(50ms);
            return zap.rejected() >= 2;
        },
        10s);
    zap.allow(rill::read_key_file(keys.good.public_file).public_key);
    std::uint64_t seq = 0;
    bool got = false;
    const bool admitted = rill::test::wait_until(
        [&] {
            pub.publish(rill::test::reading(sensor, ++seq));
            pub.flush();
            while (auto e = sub.receive(20ms)) {
                got = got || std::holds_alternative<rill::ReadingBatch>(*e);
            }
            return got;
        },
        15s);
    return refused && admitted && zap.accepted() >= 1;
}

// Two groups of publishers, each a CURVE server with its own key pair, and one client whose
// default server key (`wrong`) is neither: it reaches a server only through a per-endpoint key.
struct TwoServerKeys : Keys {
    rill::KeyFiles other =
        rill::write_key_files(rill::generate_curve_keypair(), dir.path(), "other");
    rill::KeyFiles wrong =
        rill::write_key_files(rill::generate_curve_keypair(), dir.path(), "wrong");
    [[nodiscard]] rill::SocketOptions other_server_options() const {
        rill::SocketOptions o;
        o.curve_server = rill::curve_server_keys(other.secret_file);
        return o;
    }
    // The good client trusting `wrong` by default and the listed key for each endpoint.
    [[nodiscard]] rill::CurveClientKeys client(
        const std::map<std::string, const rill::KeyFiles*>& per_endpoint) const {
        auto c = rill::curve_client_keys(good.secret_file, wrong.public_file);
        for (const auto& [endpoint, files] : per_endpoint) {
            c.server_public_key_for[endpoint] = rill::read_key_file(files->public_file).public_key;
        }
        return c;
    }
};

std::vector<rill::Reading> sensor_batch(const std::string& sensor, std::size_t n) {
    std::vector<rill::Reading> b;
    for (std::size_t i = 0; i < n; ++i)
        b.push_back(rill::test::reading(sensor, i + 1));
    return b;
}

// One ReliableSubscriber, two ReliablePublishers with different CURVE server keys bound on
// `host_a` and `host_b`: each publishes 5 readings before the subscriber starts (so only the
// replay service can deliver them), then live ones. True when the subscriber got all 5 of each
// by replay and a live one of each. `list_replay`: also give the key of each announced replay
// endpoint, else the subscriber derives it from the stream endpoint on the same host.
bool two_curve_publishers_reach_one_subscriber(const std::string& host_a, const std::string& host_b,
                                               bool list_replay) {
    TwoServerKeys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.allowed);
    rill::test::TempDir dir_a("rill-curve-a");
    rill::test::TempDir dir_b("rill-curve-b");
    auto oa = rill::test::loopback_publisher(dir_a, "group-a");
    auto ob = rill::test::loopback_publisher(dir_b, "group-b");
    oa.publish_endpoints = "@tcp://" + host_a + ":0";
    oa.replay_endpoints = "@tcp://" + host_a + ":0";
    ob.publish_endpoints = "@tcp://" + host_b + ":0";
    ob.replay_endpoints = "@tcp://" + host_b + ":0";
    oa.publisher.socket = oa.replay_socket = keys.server_options();
    ob.publisher.socket = ob.replay_socket = keys.other_server_options();
    oa.context = ob.context = &ctx;
    rill::ReliablePublisher pa(oa);
    rill::ReliablePublisher pb(ob);
    auto ba = sensor_batch("group-a-1", 5);
    auto bb = sensor_batch("group-b-1", 5);
    REQUIRE(pa.publish(ba) == rill::SeqRange{1, 5});
    REQUIRE(pb.publish(bb) == rill::SeqRange{1, 5});
    pa.flush();
    pb.flush();

    const auto stream_a = pa.publisher().bound().front();
    // Group b's stream is configured by name when it is on 127.0.0.1: its announced replay
    // endpoint (numeric) then matches it only by address.
    auto stream_b = pb.publisher().bound().front();
    if (host_b == "127.0.0.1" && !list_replay) {
        stream_b.replace(stream_b.find("127.0.0.1"), 9, "localhost");
    }
    std::map<std::string, const rill::KeyFiles*> per_endpoint{{stream_a, &keys.server},
                                                              {stream_b, &keys.other}};
    if (list_replay) {
        per_endpoint[pa.replay_endpoint()] = &keys.server;
        per_endpoint[pb.replay_endpoint()] = &keys.other;
    }
    rill::ReliableSubscriberOptions so;
    so.endpoints = stream_a + "," + stream_b;
    so.subscriber.context = &ctx;
    so.subscriber.socket.curve_client = keys.client(per_endpoint);
    so.replay_socket.curve_client = so.subscriber.socket.curve_client;
    so.replay_call = {500ms, 0};
    so.replay_backoff = 100ms;
    std::map<std::string, std::set<std::uint64_t>> replayed;
    std::map<std::string, bool> live;
    rill::ReliableSubscriber rs(so, [&](const std::string& sensor) {
        rill::SeqRanges stored;
        for (auto seq : replayed[sensor])
            stored.insert(seq);
        return stored;
    });
    const std::set<std::uint64_t> first_five{1, 2, 3, 4, 5};
    auto next_live = std::chrono::steady_clock::now();
    return rill::test::wait_until(
        [&] {
            if (std::chrono::steady_clock::now() >= next_live) {
                auto la = sensor_batch("group-a-1", 1);
                auto lb = sensor_batch("group-b-1", 1);
                (void)pa.publish(la);
                (void)pb.publish(lb);
                next_live += 100ms;
            }
            (void)pa.service();
            (void)pb.service();
            while (auto ev = rs.receive(10ms)) {
                if (auto* d = std::get_if<rill::Delivery>(&*ev)) {
                    for (const auto& r : d->readings) {
                        if (d->replayed && r.seq <= 5) replayed[r.sensor].insert(r.seq);
                        if (!d->replayed) live[r.sensor] = true;
                    }
                }
            }
            return replayed["group-a-1"] == first_five && replayed["group-b-1"] == first_five &&
                   live["group-a-1"] && live["group-b-1"];
        },
        20s);
}

}  // namespace

TEST_CASE("libzmq supports curve") {
    CHECK(rill::curve_available());
}

TEST_CASE("key files round trip and the secret file has mode 0600") {
    rill::test::TempDir dir;
    const auto keys = rill::generate_curve_keypair();
    CHECK(rill::is_z85_key(keys.public_key));
    CHECK(rill::is_z85_key(keys.secret_key));
    CHECK(keys.public_key != keys.secret_key);
    const auto files = rill::write_key_files(keys, dir.path(), "station-1");
    CHECK(files.public_file == dir.path() / "station-1.key");
    CHECK(files.secret_file == dir.path() / "station-1.key_secret");
    CHECK(mode_of(files.secret_file) == 0600u);
    CHECK(mode_of(files.public_file) == 0644u);

    CHECK(rill::read_key_file(files.secret_file) == keys);
    const auto pub = rill::read_key_file(files.public_file);
    CHECK(pub.public_key == keys.public_key);
    CHECK(pub.secret_key.empty());
    CHECK(rill::test::read_file(files.public_file).find(keys.secret_key) == std::string::npos);
    const auto text = rill::test::read_file(files.secret_file);
    CHECK(text.find("curve\n    public-key = \"" + keys.public_key + "\"\n    secret-key = \"" +
                    keys.secret_key + "\"\n") != std::string::npos);

    // Existing files are not replaced unless asked.
    const auto other = rill::generate_curve_keypair();
    CHECK_THROWS_AS((void)rill::write_key_files(other, dir.path(), "station-1"), std::system_error);
    CHECK(rill::read_key_file(files.secret_file) == keys);
    (void)rill::write_key_files(other, dir.path(), "station-1", true);
    CHECK(rill::read_key_file(files.secret_file) == other);
    CHECK(mode_of(files.secret_file) == 0600u);

    CHECK_THROWS_AS((void)rill::write_key_files(keys, dir.path(), "../x"), std::invalid_argument);
    CHECK_THROWS_AS((void)rill::curve_server_keys(files.public_file), std::runtime_error);
    CHECK_THROWS_AS((void)rill::read_key_file(dir.path() / "missing.key"), std::system_error);
}

TEST_CASE("key files that are not zcert files are rejected") {
    rill::test::TempDir dir;
    const auto write = [&](const std::string& name, const std::string& text) {
        std::ofstream(dir.path() / name) << text;
        return dir.path() / name;
    };
    CHECK_THROWS_AS((void)rill::read_key_file(write("empty.key", "")), std::runtime_error);
    CHECK_THROWS_AS(
        (void)rill::read_key_file(write("short.key", "curve\n    public-key = \"abc\"\n")),
        std::runtime_error);
    CHECK_THROWS_AS((void)rill::read_key_file(write("indent.key", "curve\n  public-key = \"x\"\n")),
                    std::runtime_error);
    // A key outside the curve section does not count.
    const auto k = rill::generate_curve_keypair();
    CHECK_THROWS_AS((void)rill::read_key_file(write(
                        "other.key", "metadata\n    public-key = \"" + k.public_key + "\"\n")),
                    std::runtime_error);
    // czmq's own layout (metadata entries, comments, unquoted values) is read.
    const auto czmq = write("czmq.key",
                            "#   ZeroMQ CURVE Public Certificate\n\nmetadata\n"
                            "    name = \"station\"\ncurve\n    public-key = " +
                                k.public_key + "\n");
    CHECK(rill::read_key_file(czmq).public_key == k.public_key);
}

TEST_CASE("pyzmq reads rill key files and rill reads pyzmq key files") {
    rill::test::TempDir dir;
    const auto keys = rill::generate_curve_keypair();
    const auto files = rill::write_key_files(keys, dir.path(), "rill");
    std::string out;
    const auto script =
        "import sys, zmq.auth\n"
        "p, s = zmq.auth.load_certificate(sys.argv[1])\n"
        "print(p.decode() + ' ' + s.decode())\n"
        "zmq.auth.create_certificates(sys.argv[2], 'py')\n";
    REQUIRE(rill::test::run_command(
                {"/usr/bin/python3", "-c", script, files.secret_file.string(), dir.path().string()},
                30s, &out) == 0);
    CHECK(out.find(keys.public_key + " " + keys.secret_key) != std::string::npos);
    const auto py = rill::read_key_file(dir.path() / "py.key_secret");
    CHECK(rill::is_z85_key(py.secret_key));
    CHECK(rill::read_key_file(dir.path() / "py.key").public_key == py.public_key);
}

TEST_CASE("an allowed curve client receives readings over pub/sub") {
    Keys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.allowed);
    CHECK(zap.allowed_count() == 1);
    rill::Socket pub(ctx, zmq::socket_type::pub, keys.server_options());
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    rill::Socket sub(ctx, zmq::socket_type::sub, keys.client_options(keys.good));
    sub.raw().set(zmq::sockopt::subscribe, "");
    sub.attach(">" + pub.last_endpoint(), rill::Attach::connect);
    const auto got = exchange(pub, sub, 10s);
    REQUIRE(got.size() == 1);
    CHECK(got[0] == reading(5));
    CHECK(zap.accepted() >= 1);
    CHECK(zap.rejected() == 0);
}

TEST_CASE("an allowed curve client calls rpc and a stranger is rejected and counted") {
    Keys keys;
    PingServer s(keys);
    CHECK(s.ping(keys.client_options(keys.good), 10s));
    CHECK_FALSE(s.ping(keys.client_options(keys.stranger), 500ms));
    CHECK(rill::test::wait_until([&] { return s.zap.rejected() >= 1; }, 10s));
    CHECK(s.server.stats().requests == 1);

    // Once its key file is in the directory and the list reloaded, the stranger's next
    // connection gets through (libzmq 4.3 does not retry a connection ZAP rejected).
    fs::copy_file(keys.stranger.public_file, keys.allowed / "stranger.key");
    CHECK(s.zap.reload() == 2);
    CHECK(s.ping(keys.client_options(keys.stranger), 10s));
}

TEST_CASE("a stranger subscriber gets no readings") {
    Keys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.allowed);
    const auto counted_before =
        rill::default_registry().value("rill_security_rejected_total").value_or(0);
    rill::Socket pub(ctx, zmq::socket_type::pub, keys.server_options());
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    rill::Socket sub(ctx, zmq::socket_type::sub, keys.client_options(keys.stranger));
    sub.raw().set(zmq::sockopt::subscribe, "");
    sub.attach(">" + pub.last_endpoint(), rill::Attach::connect);
    CHECK(exchange(pub, sub, 1500ms).empty());
    CHECK(rill::test::wait_until([&] { return zap.rejected() >= 1; }, 10s));
    // The rejection also shows on /metrics.
    CHECK(rill::default_registry().value("rill_security_rejected_total").value_or(0) >=
          counted_before + 1);
}

TEST_CASE("a plain-text client cannot talk to a curve server") {
    Keys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.allowed);
    rill::RpcServer server(ctx, "tcp://127.0.0.1:0", keys.server_options());
    server.handle("ping", [](std::string_view) { return rill::rpc_pack::str("pong"); });
    server.start();
    rill::RpcClient plain(ctx, server.last_endpoint());
    CHECK_THROWS_AS((void)plain.call("ping", {}, {1s, 0}), rill::RpcTimeout);
    CHECK(server.stats().requests == 0);
    CHECK(server.stats().malformed == 0);

    rill::Socket pub(ctx, zmq::socket_type::pub, keys.server_options());
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    rill::Socket sub(ctx, zmq::socket_type::sub);
    sub.raw().set(zmq::sockopt::subscribe, "");
    sub.attach(">" + pub.last_endpoint(), rill::Attach::connect);
    CHECK(exchange(pub, sub, 1000ms).empty());
}

TEST_CASE("a second zap handler on one context is refused") {
    zmq::context_t ctx;
    rill::ZapHandler first(ctx, std::set<std::string>{});
    CHECK_THROWS_AS(rill::ZapHandler(ctx, std::set<std::string>{}), std::runtime_error);
    CHECK_THROWS_AS(first.allow("not a key"), std::invalid_argument);
    first.allow(rill::generate_curve_keypair().public_key);
    CHECK(first.allowed_count() == 1);
    CHECK_THROWS_AS((void)first.reload(), std::logic_error);
}

TEST_CASE("rill-keygen writes a key pair that rill reads and refuses to overwrite it") {
    rill::test::TempDir dir;
    const auto keydir = (dir.path() / "keys").string();
    std::string out;
    REQUIRE(rill::test::run_command({rill::test::bin("rill-keygen"), "station-1", "--dir", keydir},
                                    30s, &out) == 0);
    const auto keys = rill::read_key_file(fs::path(keydir) / "station-1.key_secret");
    CHECK(rill::is_z85_key(keys.secret_key));
    CHECK(rill::read_key_file(fs::path(keydir) / "station-1.key").public_key == keys.public_key);
    CHECK(mode_of(fs::path(keydir) / "station-1.key_secret") == 0600u);
    CHECK(rill::test::run_command({rill::test::bin("rill-keygen"), "station-1", "--dir", keydir},
                                  30s, &out) != 0);
    CHECK(out.find("station-1.key_secret") != std::string::npos);
    CHECK(rill::read_key_file(fs::path(keydir) / "station-1.key_secret") == keys);
    CHECK(rill::test::run_command({rill::test::bin("rill-keygen"), "--help"}, 30s, &out) == 0);
    CHECK(out.find("RILL_KEY_DIR") != std::string::npos);
}

TEST_CASE("a client whose key file was the last one deleted is refused after a reload") {
    Keys keys;
    PingServer s(keys);
    CHECK(s.ping(keys.client_options(keys.good), 10s));

    // Revoking the last key (docs/security.md) leaves an empty list: nobody is admitted.
    fs::remove(keys.allowed / "good.key");
    CHECK(s.zap.reload() == 0);
    CHECK(s.zap.allowed_count() == 0);
    const auto rejected_before = s.zap.rejected();
    CHECK_FALSE(s.ping(keys.client_options(keys.good), 1s));
    CHECK(rill::test::wait_until([&] { return s.zap.rejected() > rejected_before; }, 10s));
    CHECK(s.server.stats().requests == 1);
}

TEST_CASE("an empty explicit allow-list admits no curve client") {
    Keys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, std::set<std::string>{});
    rill::Socket pub(ctx, zmq::socket_type::pub, keys.server_options());
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    rill::Socket sub(ctx, zmq::socket_type::sub, keys.client_options(keys.good));
    sub.raw().set(zmq::sockopt::subscribe, "");
    sub.attach(">" + pub.last_endpoint(), rill::Attach::connect);
    CHECK(exchange(pub, sub, 1000ms).empty());
    CHECK(rill::test::wait_until([&] { return zap.rejected() >= 1; }, 10s));
    CHECK(zap.accepted() == 0);
}

TEST_CASE("a refused subscriber knocks again and gets readings once its key is allowed") {
    Keys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, std::set<std::string>{});
    rill::Publisher pub(
        "@tcp://127.0.0.1:0",
        {.socket = keys.server_options(), .identity = "curve-pub", .context = &ctx});
    rill::Subscriber sub(pub.bound().front(),
                         {.socket = keys.client_options(keys.good), .context = &ctx});
    CHECK(knocks_until_admitted(zap, keys, pub, sub, "greenhouse-07"));
}

TEST_CASE("one subscriber socket trusts a different curve server key per endpoint") {
    TwoServerKeys keys;
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.allowed);
    rill::Socket pub_a(ctx, zmq::socket_type::pub, keys.server_options());
    pub_a.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    rill::Socket pub_b(ctx, zmq::socket_type::pub, keys.other_server_options());
    pub_b.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    rill::SocketOptions o;
    o.curve_client =
        keys.client({{pub_a.last_endpoint(), &keys.server}, {pub_b.last_endpoint(), &keys.other}});
    rill::Socket sub(ctx, zmq::socket_type::sub, o);
    sub.raw().set(zmq::sockopt::subscribe, "");
    sub.attach(">" + pub_a.last_endpoint() + ",>" + pub_b.last_endpoint(), rill::Attach::connect);
    CHECK(exchange(pub_a, sub, 10s, "group-a-1").size() == 1);
    CHECK(exchange(pub_b, sub, 10s, "group-b-1").size() == 1);
    CHECK(zap.rejected() == 0);
}

TEST_CASE("a reliable subscriber gets the stream and replays of two publishers with own keys") {
    // Both on one host: each announced replay endpoint's key is listed.
    CHECK(two_curve_publishers_reach_one_subscriber("127.0.0.1", "127.0.0.1", true));
}

TEST_CASE("a replay endpoint without a key of its own takes its stream host's key") {
    CHECK(two_curve_publishers_reach_one_subscriber("127.0.0.2", "127.0.0.1", false));
}

TEST_CASE("a refused subscriber knocks again with the server key of that endpoint") {
    TwoServerKeys keys;
    // Group a admits nobody at first; group b admits the subscriber. The subscriber connects a
    // then b, so the key it set last is b's: knocking again at a must set a's key again.
    zmq::context_t ctx_a;
    rill::ZapHandler zap_a(ctx_a, std::set<std::string>{});
    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.allowed);
    rill::Publisher pub_a(
        "@tcp://127.0.0.1:0",
        {.socket = keys.server_options(), .identity = "group-a", .context = &ctx_a});
    rill::Publisher pub_b(
        "@tcp://127.0.0.1:0",
        {.socket = keys.other_server_options(), .identity = "group-b", .context = &ctx});
    const auto a = pub_a.bound().front();
    const auto b = pub_b.bound().front();
    rill::SocketOptions o;
    o.curve_client = keys.client({{a, &keys.server}, {b, &keys.other}});
    rill::Subscriber sub(a + "," + b, {.socket = o, .context = &ctx});
    CHECK(knocks_until_admitted(zap_a, keys, pub_a, sub, "group-a-1"));
}
