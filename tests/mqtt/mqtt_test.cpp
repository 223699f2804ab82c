// The MQTT bridge (rill/mqtt_bridge.hpp, apps/mqtt-bridge) end to end: a Mosquitto of the
// test's own, mosquitto_pub as the devices, the real mqtt-bridge and store-sub over a throwaway
// PostgreSQL. Every delivery test checks that the readings table holds exactly seqs 1..N of each
// device once: a message lost or stored twice changes N. Topics are plain numbers with rules
// given by --topic (never the default rules).
#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <csignal>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "mqtt/redelivery.hpp"
#include "rill/mqtt_bridge.hpp"
#include "support/mosquitto.hpp"
#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace rill::test;
using namespace std::chrono_literals;

namespace {

constexpr auto start_bound = 30s;
constexpr auto store_bound = 90s;
const std::string rule = "dev/+/temperature={1}:plain";

bool contains(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// The first match of `pattern`'s group 1 on a complete line of `log`.
std::optional<std::string> first_match(const std::string& log, const std::string& pattern) {
    std::smatch m;
    const auto complete = log.substr(0, log.rfind('\n') + 1);
    if (!std::regex_search(complete, m, std::regex(pattern))) return std::nullopt;
    return m[1].str();
}

struct BridgeOptions {
    std::string broker;
    std::filesystem::path outbox;
    std::string pub = "@tcp://127.0.0.1:0";
    std::string replay = "@tcp://127.0.0.1:0";
    std::vector<std::string> extra;
    bool wait_connected = true;  ///< wait for the subscription to be acknowledged
};

// An mqtt-bridge process with client id "test-bridge"; the constructor waits for its start
// line (and, unless told not to, its subscription) and reads its endpoints.
class Bridge {
  public:
    Bridge(const std::filesystem::path& dir, BridgeOptions o) {
        static int n = 0;
        log_path_ = (dir / ("mqtt-bridge-" + std::to_string(++n) + ".log")).string();
        std::vector<std::string> argv{bin("mqtt-bridge"),
                                      "--broker",
                                      o.broker,
                                      "--client-id",
                                      "test-bridge",
                                      "--topic",
                                      rule,
                                      "--outbox",
                                      o.outbox.string(),
                                      "--pub",
                                      o.pub,
                                      "--replay",
                                      o.replay,
                                      "--heartbeat-interval",
                                      "200ms",
                                      "--metrics",
                                      "127.0.0.1:0"};
        argv.insert(argv.end(), o.extra.begin(), o.extra.end());
        process_ = std::make_unique<Process>(argv, ProcessOptions{.stderr_path = log_path_});
        const std::string marker = "info mqtt-bridge: bridging ";
        const bool started = wait_until(
            [&] {
                const auto text = log();
                const auto stream = first_match(text, marker + ".* publishing on ([^,]+),");
                const auto replay = first_match(text, marker + ".* replay on ([^,]+),");
                const auto admin = first_match(text, "/metrics and /healthz on (\\S+)");
                if (!stream || !replay || !admin) return !process_->running();
                stream_ = *stream;
                replay_ = *replay;
                admin_ = *admin;
                return true;
            },
            start_bound);
        if (!started || stream_.empty()) {
            throw std::runtime_error("mqtt-bridge did not start:\n" + log());
        }
        if (o.wait_connected && !wait_log("info mqtt-bridge: subscribed to ", start_bound)) {
            throw std::runtime_error("mqtt-bridge did not subscribe:\n" + log());
        }
    }
    [[nodiscard]] std::string log() const { return read_file(log_path_); }
    bool wait_log(const std::string& text, std::chrono::milliseconds timeout) {
        return wait_until([&] { return contains(log(), text); }, timeout);
    }
    [[nodiscard]] double metric(const std::string& name, const std::string& label = "") const {
        const auto r = http_get(admin_, "/metrics");
        return r ? metric_sum(r->body, name, label) : -1;
    }
    [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
    [[nodiscard]] const std::string& replay() const noexcept { return replay_; }
    Process& process() noexcept { return *process_; }
    // Stops it with SIGTERM; returns its exit code.
    std::optional<int> stop() {
        process_->signal(SIGTERM);
        return process_->wait_for(30s);
    }

  private:
    std::string log_path_;
    std::unique_ptr<Process> process_;
    std::string stream_, replay_, admin_;
};

// "1.1", "1.2", ...: n distinct temperatures.
std::vector<std::string> values(int first, int count) {
    std::vector<std::string> out;
    for (int i = first; i < first + count; ++i)
        out.push_back(std::to_string(i / 10) + "." + std::to_string(i % 10));
    return out;
}

std::string temperatures_problem(const TempPostgres& pg, const std::string& sensor, int count) {
    // Distinct temperatures = rows: no message stored twice under another seq.
    std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(pg.conninfo().c_str()),
                                                      &PQfinish);
    const std::string sql =
        "select count(*) || ' ' || count(distinct temperature) from readings where sensor = '" +
        sensor + "'";
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(conn.get(), sql.c_str()), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return PQerrorMessage(conn.get());
    const std::string got = PQgetvalue(r.get(), 0, 0);
    const auto expected = std::to_string(count) + " " + std::to_string(count);
    return got == expected ? "" : "rows and distinct temperatures: " + got;
}

}  // namespace

TEST_CASE("the redelivery journal finds a message recorded before the reconnect only") {
    TempDir dir("rill-mqtt");
    const auto path = dir.path() / "journal";
    const auto d1 = mqtt::detail::message_digest("dev/a/temperature", "21.5");
    const auto d2 = mqtt::detail::message_digest("dev/a/temperature", "21.6");
    {
        mqtt::detail::RedeliveryJournal j(path, 4, false);
        j.new_epoch(false);
        j.record(7, d1, {"a", 3});
        CHECK_FALSE(j.find(7, d1));  // same connection: a new message
    }
    mqtt::detail::RedeliveryJournal j(path, 4, false);  // reopened after a kill
    j.new_epoch(true);
    const auto entry = j.find(7, d1);
    REQUIRE(entry);
    CHECK(entry->sensor == "a");
    CHECK(entry->seq == 3);
    CHECK_FALSE(j.find(7, d2));  // same packet id, other payload
    CHECK_FALSE(j.find(8, d1));
    for (int mid = 10; mid < 14; ++mid)  // the window (4) moves past mid 7
        j.record(mid, d2, {"a", 4});
    CHECK_FALSE(j.find(7, d1));
    j.record(20, d1, {"a", 5});
    j.new_epoch(false);  // the broker lost the session: nothing will be redelivered
    CHECK_FALSE(j.find(20, d1));
}

TEST_CASE("broker URLs are parsed with their default ports and bad ones are refused") {
    CHECK(mqtt::parse_broker_url("mqtt://broker") == mqtt::BrokerAddress{"broker", 1883, false});
    CHECK(mqtt::parse_broker_url("mqtts://b:1") == mqtt::BrokerAddress{"b", 1, true});
    CHECK(mqtt::parse_broker_url("mqtt://[::1]:99") == mqtt::BrokerAddress{"::1", 99, false});
    CHECK_THROWS_AS((void)mqtt::parse_broker_url("tcp://b:1"), std::invalid_argument);
    CHECK_THROWS_AS((void)mqtt::parse_broker_url("mqtt://b:0"), std::invalid_argument);
    CHECK_THROWS_AS((void)mqtt::parse_broker_url("mqtt://:1883"), std::invalid_argument);
    CHECK_THROWS_AS((void)mqtt::parse_broker_url("mqtt://b/x"), std::invalid_argument);
}

TEST_CASE("plain readings flow from the broker through the bridge into PostgreSQL") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    Bridge bridge(dir.path(), {.broker = broker.url(), .outbox = dir.path() / "outbox"});
    StoreSub sub(dir.path(), {.connect = {bridge.stream()}, .db = pg.conninfo()});

    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", values(100, 50)) == 0);
    REQUIRE(publish_lines(broker.port(), "dev/cellar/temperature", values(300, 30)) == 0);
    REQUIRE(wait_rows(pg, 80, store_bound));
    CHECK(exactly_once_problem(pg, {{"kitchen", 50}, {"cellar", 30}}) == "");
    CHECK(temperatures_problem(pg, "kitchen", 50) == "");
    CHECK(bridge.metric("rill_mqtt_messages_received_total") == 80);
    CHECK(bridge.metric("rill_mqtt_readings_published_total") == 80);
    CHECK(bridge.metric("rill_mqtt_broker_connected") == 1);
    CHECK(bridge.stop() == 0);
    CHECK(contains(bridge.log(), "info mqtt-bridge: disconnected from"));
    CHECK_FALSE(contains(bridge.log(), "lost the connection"));
}

TEST_CASE("malformed payloads are counted and logged and other devices are unaffected") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    Bridge bridge(dir.path(), {.broker = broker.url(),
                               .outbox = dir.path() / "outbox",
                               .extra = {"--topic", "other/+={1}:plain"}});
    StoreSub sub(dir.path(), {.connect = {bridge.stream()}, .db = pg.conninfo()});

    REQUIRE(publish_lines(broker.port(), "dev/bad/temperature",
                          {"abc", "{\"t\":1}", "", "1e999"}) == 0);
    REQUIRE(publish_lines(broker.port(), "dev/good/temperature", values(200, 20)) == 0);
    REQUIRE(wait_rows(pg, 20, store_bound));
    CHECK(exactly_once_problem(pg, {{"good", 20}}) == "");
    CHECK(wait_until(
        [&] {
            return bridge.metric("rill_mqtt_messages_rejected_total", R"(reason="malformed")") == 4;
        },
        10s));
    CHECK(contains(bridge.log(), "dev/bad/temperature: plain payload"));
    CHECK(bridge.process().running());
}

TEST_CASE("a bridge killed with kill -9 mid-stream and restarted stores every reading once") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    const auto outbox = dir.path() / "outbox";
    auto bridge = std::make_unique<Bridge>(dir.path(), BridgeOptions{broker.url(), outbox});
    const auto stream = bridge->stream();
    const auto replay = bridge->replay();
    StoreSub sub(dir.path(), {.connect = {stream}, .db = pg.conninfo()});

    // The device publishes 400 messages, paced, while the bridge is killed and restarted.
    const int n = 400;
    std::thread device([&] {
        (void)publish_lines(broker.port(), "dev/kitchen/temperature", values(1000, n), 1, 5ms);
    });
    const bool midway = wait_until(
        [&] { return bridge->metric("rill_mqtt_messages_received_total") >= 100; }, store_bound);
    bridge->process().signal(SIGKILL);
    (void)bridge->process().wait_for(10s);
    const auto first_log = bridge->log();
    bridge = std::make_unique<Bridge>(
        dir.path(),
        BridgeOptions{broker.url(), outbox, "@" + stream, "@" + replay, {"--log-level", "debug"}});
    device.join();
    REQUIRE(midway);
    INFO("first run:\n" << first_log << "second run:\n" << bridge->log());
    REQUIRE(wait_rows(pg, n, store_bound));
    std::this_thread::sleep_for(1s);  // a duplicate would arrive by now
    CHECK(exactly_once_problem(pg, {{"kitchen", n}}) == "");
    CHECK(temperatures_problem(pg, "kitchen", n) == "");
}

TEST_CASE("a broker restarted mid-stream with persistence loses and repeats nothing") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    Bridge bridge(dir.path(), {.broker = broker.url(), .outbox = dir.path() / "outbox"});
    StoreSub sub(dir.path(), {.connect = {bridge.stream()}, .db = pg.conninfo()});

    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", values(100, 100)) == 0);
    REQUIRE(wait_rows(pg, 100, store_bound));
    // The bridge is frozen while messages arrive: the broker holds them in flight and queued,
    // writes them to its persistence file at the restart and sends them again after it.
    bridge.process().signal(SIGSTOP);
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", values(200, 100)) == 0);
    broker.stop();
    broker.start();
    bridge.process().signal(SIGCONT);
    REQUIRE(bridge.wait_log("(session resumed)", start_bound));
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", values(300, 100)) == 0);
    REQUIRE(wait_rows(pg, 300, store_bound));
    std::this_thread::sleep_for(1s);
    CHECK(exactly_once_problem(pg, {{"kitchen", 300}}) == "");
    CHECK(temperatures_problem(pg, "kitchen", 300) == "");
    CHECK(contains(bridge.log(), "lost the connection to " + broker.url()));
}

// Starts a bridge that holds the first message at `hold` ("before:60s", "after:60s"),
// publishes one message, kills the bridge with kill -9 while it holds it and starts it again
// (without the hold). Returns the restarted bridge.
std::unique_ptr<Bridge> kill_while_holding(const std::filesystem::path& dir,
                                           const Mosquitto& broker, const std::string& hold) {
    const auto outbox = dir / "outbox";
    auto bridge = std::make_unique<Bridge>(
        dir,
        BridgeOptions{.broker = broker.url(), .outbox = outbox, .extra = {"--test-hold", hold}});
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", {"21.5"}) == 0);
    REQUIRE(bridge->wait_log("test hold: message dev/kitchen/temperature", start_bound));
    std::this_thread::sleep_for(500ms);  // a PUBACK written early would reach the broker now
    bridge->process().signal(SIGKILL);
    (void)bridge->process().wait_for(10s);
    return std::make_unique<Bridge>(dir, BridgeOptions{broker.url(), outbox});
}

TEST_CASE("a message held before its append and killed there comes back after the restart") {
    // Pins the acknowledgement order: the PUBACK is written only after on_message returned.
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    auto bridge = kill_while_holding(dir.path(), broker, "before:60s");
    StoreSub sub(dir.path(), {.connect = {bridge->stream()}, .db = pg.conninfo()});
    REQUIRE(wait_rows(pg, 1, store_bound));
    CHECK(exactly_once_problem(pg, {{"kitchen", 1}}) == "");
}

TEST_CASE("a message appended and killed before its acknowledgement is not stored twice") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    auto bridge = kill_while_holding(dir.path(), broker, "after:60s");
    StoreSub sub(dir.path(), {.connect = {bridge->stream()}, .db = pg.conninfo()});
    CHECK(wait_until([&] { return bridge->metric("rill_mqtt_redeliveries_total") == 1; },
                     start_bound));
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", {"21.6"}) == 0);
    REQUIRE(wait_rows(pg, 2, store_bound));
    std::this_thread::sleep_for(1s);
    CHECK(exactly_once_problem(pg, {{"kitchen", 2}}) == "");
}

TEST_CASE("a TLS broker is reached with --tls-ca and refused clearly with a wrong CA") {
    TempDir dir("rill-mqtt");
    const auto d = dir.path();
    auto ssl = [&](const std::string& args) {
        std::string out;
        const int rc = run_command({"sh", "-c", "cd '" + d.string() + "' && " + args}, 60s, &out);
        INFO(out);
        REQUIRE(rc == 0);
    };
    ssl("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key "
        "-out ca.pem 2>&1");
    ssl("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout other.key "
        "-out other.pem 2>&1");
    ssl("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out "
        "server.csr 2>&1 && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && openssl x509 -req "
        "-in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out "
        "server.pem 2>&1");
    Mosquitto broker(d / "broker", {.listener = {"certfile " + (d / "server.pem").string(),
                                                 "keyfile " + (d / "server.key").string()}});
    REQUIRE(contains(broker.url(), "mqtts://"));
    {
        Bridge bridge(d, {.broker = broker.url(),
                          .outbox = d / "outbox",
                          .extra = {"--tls-ca", (d / "ca.pem").string()}});
        REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", {"21.5"}, 1, 0ms,
                              {"--cafile", (d / "ca.pem").string()}) == 0);
        CHECK(wait_until([&] { return bridge.metric("rill_mqtt_readings_published_total") == 1; },
                         20s));
        CHECK(bridge.stop() == 0);
    }
    Bridge wrong(d, {.broker = broker.url(),
                     .outbox = d / "outbox-2",
                     .extra = {"--tls-ca", (d / "other.pem").string()},
                     .wait_connected = false});
    CHECK(wrong.wait_log("warn mqtt-bridge: cannot connect to " + broker.url(), 20s));
    INFO(wrong.log());
    CHECK(contains(wrong.log(), "certificate verify failed"));
    CHECK(wrong.metric("rill_mqtt_broker_connected") == 0);
}

TEST_CASE("a broker with passwords accepts the right password and refuses a wrong one") {
    TempDir dir("rill-mqtt");
    const auto d = dir.path();
    REQUIRE(
        run_command({"mosquitto_passwd", "-b", "-c", (d / "passwd").string(), "sensor", "s3cret"},
                    30s) == 0);
    std::ofstream(d / "good") << "s3cret\n";
    std::ofstream(d / "bad") << "guess\n";
    Mosquitto broker(d / "broker", {.global = {"allow_anonymous false",
                                               "password_file " + (d / "passwd").string()}});
    {
        Bridge bridge(
            d, {.broker = broker.url(),
                .outbox = d / "outbox",
                .extra = {"--username", "sensor", "--password-file", (d / "good").string()}});
        CHECK(bridge.metric("rill_mqtt_broker_connected") == 1);
        CHECK(bridge.stop() == 0);
    }
    Bridge refused(d, {.broker = broker.url(),
                       .outbox = d / "outbox-2",
                       .extra = {"--username", "sensor", "--password-file", (d / "bad").string()},
                       .wait_connected = false});
    CHECK(refused.wait_log("cannot connect to " + broker.url() + ": refused", 20s));
    INFO(refused.log());
    CHECK(contains(refused.log(), "not authorised"));
    CHECK(refused.metric("rill_mqtt_broker_connected") == 0);
}

TEST_CASE("mqtt-bridge refuses bad flag values with its name first and exit code 64") {
    TempDir dir("rill-mqtt");
    const auto outbox = (dir.path() / "outbox").string();
    auto usage = [&](std::vector<std::string> args, const std::string& names) {
        std::vector<std::string> argv{bin("mqtt-bridge"), "--outbox", outbox};
        argv.insert(argv.end(), args.begin(), args.end());
        std::string out;
        const int rc = run_command(argv, 30s, &out);
        INFO(out);
        CHECK(rc == 64);
        CHECK(out.rfind("mqtt-bridge: ", 0) == 0);
        CHECK(contains(out, names));
    };
    usage({"--broker", "tcp://127.0.0.1:1883"}, "--broker");
    usage({"--broker", "mqtt://127.0.0.1:70000"}, "--broker");
    usage({"--topic", "no-equals-sign"}, "--topic");
    usage({"--topic", "dev/+/t={2}:plain"}, "--topic");
    usage({"--topic", "a/+={1}:plain b/+={2}:plain"}, "--topic");  // the 2nd rule is read too
    usage({"--tls-cert", outbox + "/missing.pem"}, "--tls-cert");
    usage({"--keepalive", "1s"}, "--keepalive");
    usage({"--redelivery-window", "40000"}, "--redelivery-window");
    usage({"--read-interval", "2s"}, "--read-interval");
    usage({"--test-hold", "sometime"}, "--test-hold");
    std::ofstream(dir.path() / "pw") << "secret\n";
    usage({"--password-file", (dir.path() / "pw").string()}, "--username");
    CHECK_FALSE(std::filesystem::exists(outbox));  // checked before anything was opened

    std::string help;
    CHECK(run_command({bin("mqtt-bridge"), "--help"}, 30s, &help) == 0);
    for (const char* env :
         {"RILL_MQTT_BROKER", "RILL_MQTT_CLIENT_ID", "RILL_MQTT_PASSWORD_FILE", "RILL_MQTT_TLS_CA",
          "RILL_MQTT_TOPIC", "RILL_MQTT_READ_INTERVAL", "RILL_OUTBOX", "RILL_PUB"})
        CHECK(contains(help, env));
    CHECK_FALSE(contains(help, "--test-hold"));
}

TEST_CASE("a retained message sent on subscribing is ignored and a live one is read") {
    TempDir dir("rill-mqtt");
    Mosquitto broker(dir.path() / "broker");
    REQUIRE(publish_lines(broker.port(), "dev/attic/temperature", {"19.5"}, 1, 0ms, {"-r"}) == 0);
    Bridge bridge(dir.path(), {.broker = broker.url(), .outbox = dir.path() / "outbox"});
    CHECK(wait_until(
        [&] {
            return bridge.metric("rill_mqtt_messages_ignored_total", R"(reason="retained")") == 1;
        },
        20s));
    REQUIRE(publish_lines(broker.port(), "dev/attic/temperature", {"19.6"}, 1, 0ms, {"-r"}) == 0);
    CHECK(wait_until([&] { return bridge.metric("rill_mqtt_messages_received_total") == 2; }, 20s));
    // The live delivery carries retain 0 (MQTT 3.1.1 3.3.1.3): read, though published retained.
    CHECK(bridge.metric("rill_mqtt_readings_published_total") == 1);
}

TEST_CASE("with a read interval messages arriving one by one are read a batch per wake-up") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    Bridge bridge(dir.path(), {.broker = broker.url(),
                               .outbox = dir.path() / "outbox",
                               .extra = {"--read-interval", "50ms"}});
    StoreSub sub(dir.path(), {.connect = {bridge.stream()}, .db = pg.conninfo()});
    const double reads_before = bridge.metric("rill_mqtt_socket_reads_total");

    // 100 messages 10 ms apart: about 5 per 50 ms read.
    const int n = 100;
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", values(500, n), 1, 10ms) == 0);
    REQUIRE(wait_rows(pg, n, store_bound));
    std::this_thread::sleep_for(500ms);  // a duplicate would arrive by now
    CHECK(exactly_once_problem(pg, {{"kitchen", n}}) == "");
    CHECK(temperatures_problem(pg, "kitchen", n) == "");
    // One wake-up per message would be about 100 reads; batches of about 5 make about 20.
    const double reads = bridge.metric("rill_mqtt_socket_reads_total") - reads_before;
    INFO("socket reads for " << n << " messages: " << reads);
    CHECK(reads > 0);
    CHECK(reads <= n / 2);
    CHECK(bridge.metric("rill_mqtt_messages_received_total") == n);
}

TEST_CASE("with a read interval of 1 s a burst is taken at once and a stop is still prompt") {
    TempDir dir("rill-mqtt");
    TempPostgres pg;
    Mosquitto broker(dir.path() / "broker");
    const auto outbox = dir.path() / "outbox";
    auto bridge =
        std::make_unique<Bridge>(dir.path(), BridgeOptions{.broker = broker.url(),
                                                           .outbox = outbox,
                                                           .extra = {"--read-interval", "1s"}});
    StoreSub sub(dir.path(), {.connect = {bridge->stream()}, .db = pg.conninfo()});

    // Each read takes every message waiting: one message per read would take 1,000 s.
    const int n = 1000;
    const auto published = std::chrono::steady_clock::now();
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", values(1000, n)) == 0);
    REQUIRE(wait_rows(pg, n, 20s));
    INFO("burst of "
         << n << " stored after "
         << std::chrono::duration<double>(std::chrono::steady_clock::now() - published).count()
         << " s");

    // Right after a read of a single message the next read is 1 s away: SIGTERM stops at once.
    REQUIRE(publish_lines(broker.port(), "dev/kitchen/temperature", {"99.9"}) == 0);
    REQUIRE(wait_until([&] { return bridge->metric("rill_mqtt_messages_received_total") == n + 1; },
                       10s));
    const auto asked = std::chrono::steady_clock::now();
    bridge->process().signal(SIGTERM);
    const auto code = bridge->process().wait_for(10s);
    const auto took = std::chrono::steady_clock::now() - asked;
    CHECK(code == 0);
    CHECK(took < 700ms);

    // Every message was acknowledged: the same session gets nothing again.
    const auto stream = bridge->stream();
    const auto replay = bridge->replay();
    bridge = std::make_unique<Bridge>(
        dir.path(),
        BridgeOptions{broker.url(), outbox, "@" + stream, "@" + replay, {"--read-interval", "1s"}});
    std::this_thread::sleep_for(1500ms);  // more than one read interval
    CHECK(bridge->metric("rill_mqtt_messages_received_total") == 0);
    REQUIRE(wait_rows(pg, n + 1, store_bound));
    CHECK(exactly_once_problem(pg, {{"kitchen", n + 1}}) == "");
}
