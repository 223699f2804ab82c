// Live updates: readings from the stream reach /events; a resuming client gets exactly what it
// missed; bad messages are counted, never fatal; SIGTERM ends the streams and exits 0.
#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "rill/codec.hpp"
#include "rill/security.hpp"
#include "rill/socket.hpp"
#include "rill/stream.hpp"
#include "support/pipeline.hpp"
#include "support/readings.hpp"
#include "web_view_fixture.hpp"

using namespace rill::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

void publish(rill::Socket& pub, const std::string& sensor, std::uint64_t seq, float t = 20) {
    const auto payload =
        rill::encode(rill::test::taken_at(rill::test::reading(sensor, seq, t, 50), rill::now()));
    (void)pub.raw().send(zmq::buffer(sensor), zmq::send_flags::sndmore);
    (void)pub.raw().send(zmq::buffer(payload), zmq::send_flags::none);
}

std::string metrics(const WebView& w) {
    return get(w, "/metrics")->body;
}

}  // namespace

TEST_CASE("live readings reach /events and a resuming client gets no duplicates") {
    TempPostgres pg;
    create_readings_table(pg);
    rill::Socket pub(rill::default_context(), zmq::socket_type::pub);
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    WebView w(pg.conninfo(), {"--connect", pub.last_endpoint()});
    std::uint64_t warm = 1;
    REQUIRE(wait_until(
        [&] {
            publish(pub, "warmup", warm++);
            return metrics(w).find("rill_web_live_readings_total 0") == std::string::npos;
        },
        15s));

    SseClient first(w);
    REQUIRE(wait_until([&] { return metrics(w).find("rill_sse_clients 1") != std::string::npos; },
                       10s));
    for (std::uint64_t s = 1; s <= 5; ++s)
        publish(pub, "garden", s, 20.0f + static_cast<float>(s));
    REQUIRE(first.wait_for(5, 10s));
    auto seen = first.events();
    REQUIRE(seen.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) {
        CHECK(seen[i].type.empty());
        CHECK(seen[i].data["sensor"] == "garden");
        CHECK(seen[i].data["seq"] == i + 1);
        CHECK(seen[i].data["temperature"].get<double>() ==
              doctest::Approx(21.0 + static_cast<double>(i)));
        CHECK(seen[i].data["ts_ms"].is_number_integer());  // whole milliseconds
        if (i > 0) CHECK(seen[i].id == seen[i - 1].id + 1);
    }

    // A browser that saw up to seq 3 comes back: it gets 4 and 5 from the ring, then new ones.
    SseClient resumed(w, seen[2].id);
    REQUIRE(resumed.wait_for(2, 10s));
    publish(pub, "garden", 6);
    REQUIRE(resumed.wait_for(3, 10s));
    const auto again = resumed.events();
    REQUIRE(again.size() == 3);
    CHECK(again[0].data["seq"] == 4);
    CHECK(again[0].id == seen[3].id);
    CHECK(again[1].data["seq"] == 5);
    CHECK(again[2].data["seq"] == 6);
    REQUIRE(first.wait_for(6, 10s));
    CHECK(first.events()[5].id == again[2].id);

    // The page's first connection resumes from the id it was rendered at (?after=).
    SseClient from_page(w, std::nullopt, "/events?after=" + std::to_string(seen[3].id));
    REQUIRE(from_page.wait_for(2, 10s));
    CHECK(from_page.events()[0].data["seq"] == 5);
    CHECK(from_page.events()[1].data["seq"] == 6);

    // A Last-Event-ID this process never issued (a browser from before a restart): resync.
    SseClient stranger(w, 1);
    REQUIRE(stranger.wait_for(1, 10s));
    CHECK(stranger.events()[0].type == "resync");

    // Garbage on the stream is counted (by rill::Subscriber) and logged, never fatal.
    (void)pub.raw().send(zmq::buffer(std::string("garden")), zmq::send_flags::sndmore);
    (void)pub.raw().send(zmq::buffer(std::string("\xc1not msgpack")), zmq::send_flags::none);
    (void)pub.raw().send(zmq::buffer(std::string("lonely frame")), zmq::send_flags::none);
    CHECK(wait_until(
        [&] {
            return metrics(w).find(
                       "rill_stream_malformed_frames_total{reason=\"malformed\","
                       "socket=\"sub\"} 2") != std::string::npos;
        },
        10s));
    publish(pub, "garden", 7);
    CHECK(first.wait_for(7, 10s));
    CHECK(w.log().find("rejected message (malformed)") != std::string::npos);

    // SIGTERM: the streams end, the process exits 0.
    w.process().signal(SIGTERM);
    const auto code = w.process().wait_for(15s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(wait_until([&] { return first.ended() && resumed.ended(); }, 10s));
    CHECK(w.log().find("stopped") != std::string::npos);
}

TEST_CASE("a publisher that stops its heartbeats is reported silent to browsers, then back") {
    TempPostgres pg;
    create_readings_table(pg);
    rill::PublisherOptions options;
    options.identity = "attic-pi";
    options.heartbeat_interval = 100ms;  // silent after 3 missed: 300 ms
    rill::Publisher pub("@tcp://127.0.0.1:0", options);
    WebView w(pg.conninfo(), {"--connect", pub.bound().front()});
    SseClient client(w);
    REQUIRE(wait_until([&] { return metrics(w).find("rill_sse_clients 1") != std::string::npos; },
                       10s));
    std::uint64_t seq = 1;
    REQUIRE(wait_until(
        [&] {
            rill::Reading r;
            r.sensor = "attic";
            r.seq = seq++;
            r.ts = rill::now();
            r.temperature = 18;
            r.humidity = 40;
            pub.publish(r);
            pub.poll_once(50ms);
            return metrics(w).find("rill_web_live_readings_total 0") == std::string::npos;
        },
        15s));
    // Heartbeats (announcing "attic") flow while the owner keeps servicing the publisher.
    const auto heartbeats_until = std::chrono::steady_clock::now() + 500ms;
    while (std::chrono::steady_clock::now() < heartbeats_until)
        pub.poll_once(50ms);

    auto publisher_events = [&] {
        std::vector<SseEvent> out;
        for (auto& e : client.events()) {
            if (e.type == "publisher") out.push_back(e);
        }
        return out;
    };
    CHECK(publisher_events().empty());
    // The publisher's owner stops calling it: no more heartbeats.
    REQUIRE(wait_until([&] { return !publisher_events().empty(); }, 10s));
    auto seen = publisher_events();
    CHECK(seen[0].data["publisher"] == "attic-pi");
    CHECK(seen[0].data["state"] == "silent");
    CHECK(seen[0].data["sensors"] == json::array({"attic"}));
    CHECK(metrics(w).find("rill_stream_publishers_silent_total{socket=\"sub\"} 1") !=
          std::string::npos);

    REQUIRE(wait_until(
        [&] {
            pub.poll_once(50ms);
            return publisher_events().size() >= 2;
        },
        10s));
    seen = publisher_events();
    CHECK(seen[1].data["publisher"] == "attic-pi");
    CHECK(seen[1].data["state"] == "back");
    CHECK(seen[1].data["sensors"] == json::array({"attic"}));
    CHECK(seen[1].id > seen[0].id);
    CHECK(w.log().find("publisher attic-pi is silent") != std::string::npos);
}

TEST_CASE("a browser beyond --max-live-clients gets 503 and a closed stream frees its place") {
    TempPostgres pg;
    create_readings_table(pg);
    rill::Socket pub(rill::default_context(), zmq::socket_type::pub);
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    WebView w(pg.conninfo(), {"--max-live-clients", "1", "--connect", pub.last_endpoint()});
    {
        SseClient first(w);
        REQUIRE(wait_until(
            [&] { return metrics(w).find("rill_sse_clients 1") != std::string::npos; }, 10s));
        const auto refused = get(w, "/events");
        CHECK(refused->status == 503);
        CHECK(refused->get_header_value("Retry-After") == "10");
        CHECK(json::parse(refused->body)["error"] == "too many live clients");
        CHECK(metrics(w).find("rill_sse_clients 1") != std::string::npos);
    }
    // The server notices the closed stream at its next write: a live event (or a keepalive
    // within 15 s).
    std::uint64_t seq = 1;
    CHECK(wait_until(
        [&] {
            publish(pub, "porch", seq++);
            return metrics(w).find("rill_sse_clients 0") != std::string::npos;
        },
        30s));
    SseClient again(w);
    CHECK(wait_until([&] { return metrics(w).find("rill_sse_clients 1") != std::string::npos; },
                     10s));
}

TEST_CASE(
    "web-view subscribes as a CURVE client: an allowed key gets live readings, a stranger none") {
    TempDir keys;
    const auto server =
        rill::write_key_files(rill::generate_curve_keypair(), keys.path(), "server");
    std::filesystem::create_directory(keys.path() / "allowed");
    const auto web =
        rill::write_key_files(rill::generate_curve_keypair(), keys.path() / "allowed", "web");
    const auto stranger =
        rill::write_key_files(rill::generate_curve_keypair(), keys.path(), "stranger");

    zmq::context_t ctx;
    rill::ZapHandler zap(ctx, keys.path() / "allowed");
    rill::SocketOptions server_options;
    server_options.curve_server = rill::curve_server_keys(server.secret_file);
    rill::Socket pub(ctx, zmq::socket_type::pub, server_options);
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);

    TempPostgres pg;
    create_readings_table(pg);
    WebView allowed(pg.conninfo(),
                    {"--connect", pub.last_endpoint(), "--curve-secret", web.secret_file.string(),
                     "--curve-server", server.public_file.string()});
    WebView other(pg.conninfo(),
                  {"--connect", pub.last_endpoint(), "--curve-secret",
                   stranger.secret_file.string(), "--curve-server", server.public_file.string()});
    std::uint64_t seq = 1;
    REQUIRE(wait_until(
        [&] {
            publish(pub, "garden", seq++);
            return metrics(allowed).find("rill_web_live_readings_total 0") == std::string::npos;
        },
        15s));
    // The stranger's handshake was refused by the ZAP handler: it never receives anything.
    REQUIRE(wait_until([&] { return zap.rejected() >= 1; }, 10s));
    const auto live = [](const WebView& w) {
        return metric_sum(metrics(w), "rill_web_live_readings_total");
    };
    // Readings published by the loop above may still be on their way: count from a quiet moment
    // (no change over 300 ms), so that exactly the next 20 are what the count must grow by.
    double before = live(allowed);
    REQUIRE(wait_until(
        [&] {
            std::this_thread::sleep_for(300ms);
            const double now = live(allowed);
            return std::exchange(before, now) == now;
        },
        10s));
    for (int i = 0; i < 20; ++i)
        publish(pub, "garden", seq++);
    CHECK(wait_until([&] { return live(allowed) == before + 20; }, 10s));
    CHECK(metrics(other).find("rill_web_live_readings_total 0") != std::string::npos);
    CHECK(zap.accepted() >= 1);
}

TEST_CASE("web-view has --help, rejects bad options, reports stale data and exits 0 on SIGINT") {
    std::string out;
    CHECK(run_command({bin("web-view"), "--help"}, 10s, &out) == 0);
    for (const char* flag :
         {"--db", "--listen", "--connect", "DATABASE_URL", "RILL_WEB_LISTEN", "--curve-secret",
          "RILL_CURVE_SECRET", "--curve-server", "RILL_WEB_CONNECT", "--stale-after",
          "--silent-after", "--log-level", "RILL_LOG_LEVEL", "--log-format", "RILL_LOG_FORMAT"}) {
        CHECK_MESSAGE(out.find(flag) != std::string::npos, flag);
    }
    // /metrics is served on --listen: no separate admin endpoint flag.
    CHECK(out.find("--metrics") == std::string::npos);
    CHECK(run_command({bin("web-view"), "--db", "dbname=x", "--log-level", "chatty"}, 10s, &out) !=
          0);
    CHECK(out.find("chatty") != std::string::npos);
    CHECK(run_command({bin("web-view"), "--db", "dbname=x", "--listen", "nonsense"}, 10s, &out) !=
          0);
    CHECK(out.find("--listen") != std::string::npos);

    TempPostgres pg;
    create_readings_table(pg);
    WebView w(pg.conninfo());
    auto health = get(w, "/healthz");
    CHECK(health->status == 503);
    CHECK(json::parse(health->body)["reason"] == "no readings stored yet");
    insert_row(pg, "garden", 1, rill::now() - 1h, 20, 50);  // older than --silent-after
    health = get(w, "/healthz");
    CHECK(health->status == 503);
    CHECK(json::parse(health->body)["reason"].get<std::string>().find("no reading for") == 0);
    insert_row(pg, "garden", 2, rill::now() - 1s, 20, 50);
    CHECK(get(w, "/healthz")->status == 200);
    w.process().signal(SIGINT);
    const auto code = w.process().wait_for(15s);
    REQUIRE(code.has_value());
    CHECK(*code == 0);
}
