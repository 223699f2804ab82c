#include "flags.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "rill/units.hpp"

namespace rill::mqtt_bridge {

namespace {

std::string default_client_id(const std::filesystem::path& outbox_dir) {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(outbox_dir, ec);
    if (ec) absolute = outbox_dir;
    std::uint32_t h = 2166136261U;
    for (char c : absolute.lexically_normal().string()) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619U;
    }
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08x", h);
    return "rill-" + app::host_name() + "-" + hex;
}

std::string read_password(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw app::UsageError("--password-file: cannot read " + path);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

void check_file(const std::string& flag, const std::string& path) {
    if (path.empty()) return;
    std::ifstream in(path);
    if (!in) throw app::UsageError(flag + ": cannot read " + path);
}

}  // namespace

void add_flags(CLI::App& app, Options& o) {
    app.add_option("--broker", o.broker,
                   "The MQTT broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        ->envname("RILL_MQTT_BROKER")
        ->capture_default_str();
    app.add_option("--client-id", o.client_id,
                   "MQTT client id, stable across restarts: the broker keeps the session under it "
                   "(default rill-HOSTNAME-XXXXXXXX, from the outbox directory)")
        ->envname("RILL_MQTT_CLIENT_ID");
    app.add_option("--username", o.username, "MQTT user name")->envname("RILL_MQTT_USERNAME");
    app.add_option("--password-file", o.password_file,
                   "File whose first line is the MQTT password (else $RILL_MQTT_PASSWORD)")
        ->envname("RILL_MQTT_PASSWORD_FILE");
    app.add_option("--tls-ca", o.tls_ca,
                   "mqtts: CA certificates (PEM) the broker is verified against (default: the "
                   "system's)")
        ->envname("RILL_MQTT_TLS_CA");
    app.add_option("--tls-cert", o.tls_cert, "mqtts: this client's certificate (PEM)")
        ->envname("RILL_MQTT_TLS_CERT");
    app.add_option("--tls-key", o.tls_key, "mqtts: this client's private key (PEM)")
        ->envname("RILL_MQTT_TLS_KEY");
    app.add_option("--topic", o.topics,
                   "FILTER=SENSOR[:FORMAT], repeatable (several per value separated by spaces): "
                   "topics to subscribe to and the sensor id "
                   "made from them ({1}, {2}: the levels the wildcards matched; docs/"
                   "integrations.md). Default: the Tasmota, ESPHome and Zigbee2MQTT topics")
        ->envname("RILL_MQTT_TOPIC");
    app::add_duration_option(app, "--keepalive", o.keepalive, "MQTT keep-alive interval")
        ->envname("RILL_MQTT_KEEPALIVE");
    app.add_option(
           "--redelivery-window", o.redelivery_window,
           "QoS 1 messages remembered to recognise the broker's redeliveries; at least "
           "the broker's max_inflight_messages (0-32768; 0: off, a redelivery is stored again)")
        ->envname("RILL_MQTT_REDELIVERY_WINDOW")
        ->capture_default_str();
    app::add_duration_option(
        app, "--read-interval", o.read_interval,
        "Shortest time between two reads of the broker's socket; each read takes every "
        "message waiting, so a fleet's messages are handled a batch per wake-up. Adds at most "
        "this much latency (0 to 1s; 0: read as soon as a message arrives)")
        ->envname("RILL_MQTT_READ_INTERVAL");
    app.add_option("--test-hold", o.test_hold,
                   "Tests only: hold the first message before:DURATION or after:DURATION its "
                   "append")
        ->group("");
    app::add_stream_flags(app, o, "the client id");
    app::add_outbox_flags(app, o, outbox_name);
    app::add_common_options(app, o.common, "127.0.0.1:9104");
}

ReliablePublisherOptions publisher_options(const Options& o) {
    auto po = app::publisher_options(o, outbox_name, "");
    if (o.publisher_id.empty()) {
        po.publisher.identity =
            o.client_id.empty() ? default_client_id(po.outbox_dir) : o.client_id;
    }
    return po;
}

mqtt::MqttBridgeOptions bridge_options(const Options& o, const std::filesystem::path& outbox_dir,
                                       const std::function<std::string(const char*)>& env) {
    using std::chrono::duration_cast;
    mqtt::MqttBridgeOptions b;
    try {
        (void)mqtt::parse_broker_url(o.broker);
    } catch (const std::invalid_argument& e) {
        throw app::UsageError(std::string("--broker: ") + e.what());
    }
    b.broker = o.broker;
    b.client_id = o.client_id.empty() ? default_client_id(outbox_dir) : o.client_id;
    b.username = o.username;
    if (!o.password_file.empty()) {
        b.password = read_password(o.password_file);
    } else {
        b.password = env("RILL_MQTT_PASSWORD");
    }
    if (!b.password.empty() && b.username.empty())
        throw app::UsageError("--password-file: a password needs --username");
    check_file("--tls-ca", o.tls_ca);
    check_file("--tls-cert", o.tls_cert);
    check_file("--tls-key", o.tls_key);
    if (o.tls_cert.empty() != o.tls_key.empty())
        throw app::UsageError("--tls-cert and --tls-key: give both or neither");
    b.tls.ca_file = o.tls_ca;
    b.tls.cert_file = o.tls_cert;
    b.tls.key_file = o.tls_key;
    if (o.topics.empty()) {
        b.rules = mqtt::default_topic_rules();
    } else {
        // Each value may hold several rules separated by whitespace (RILL_MQTT_TOPIC).
        for (const auto& value : o.topics) {
            std::istringstream words(value);
            std::string t;
            while (words >> t) {
                try {
                    b.rules.push_back(mqtt::parse_topic_rule(t));
                } catch (const std::invalid_argument& e) {
                    throw app::UsageError(std::string("--topic: ") + e.what());
                }
            }
        }
        if (b.rules.empty()) throw app::UsageError("--topic: no rule given");
    }
    try {
        (void)mqtt::MessageParser(b.rules);
    } catch (const std::invalid_argument& e) {
        throw app::UsageError(std::string("--topic: ") + e.what());
    }
    const auto keepalive = duration_cast<std::chrono::seconds>(o.keepalive);
    if (keepalive < std::chrono::seconds(5) || keepalive > std::chrono::seconds(65535))
        throw app::UsageError("--keepalive: must be 5s to 65535s");
    b.keepalive = keepalive;
    if (o.redelivery_window > 32768)
        throw app::UsageError("--redelivery-window: must be 0 to 32768");
    b.redelivery_window = o.redelivery_window;
    if (o.read_interval < std::chrono::nanoseconds::zero() ||
        o.read_interval > std::chrono::seconds(1))
        throw app::UsageError("--read-interval: must be 0 to 1s");
    b.read_interval = duration_cast<std::chrono::milliseconds>(o.read_interval);
    if (!o.test_hold.empty()) {
        const auto colon = o.test_hold.find(':');
        const auto where = o.test_hold.substr(0, colon);
        if (colon == std::string::npos || (where != "before" && where != "after"))
            throw app::UsageError("--test-hold: expected before:DURATION or after:DURATION");
        b.test_hold =
            where == "before" ? mqtt::TestHold::before_append : mqtt::TestHold::after_append;
        try {
            b.test_hold_for = duration_cast<std::chrono::milliseconds>(
                parse_duration(o.test_hold.substr(colon + 1)));
        } catch (const std::invalid_argument& e) {
            throw app::UsageError(std::string("--test-hold: ") + e.what());
        }
    }
    return b;
}

}  // namespace rill::mqtt_bridge
