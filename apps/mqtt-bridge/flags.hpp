// mqtt-bridge's flags and what they become: bridge options and publisher options.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/app_options.hpp"
#include "common/publisher_flags.hpp"
#include "rill/mqtt_bridge.hpp"
#include "rill/reliable.hpp"

namespace rill::mqtt_bridge {

/// Every flag of mqtt-bridge, with its default (the publishing ones in app::PublisherFlags).
struct Options : app::PublisherFlags {
    std::string broker = "mqtt://127.0.0.1:1883";
    std::string client_id;
    std::string username;
    std::string password_file;
    std::string tls_ca;
    std::string tls_cert;
    std::string tls_key;
    std::vector<std::string> topics;
    std::chrono::nanoseconds keepalive = std::chrono::seconds(30);
    std::size_t redelivery_window = 1024;
    std::chrono::nanoseconds read_interval = std::chrono::milliseconds(10);
    std::string test_hold;  ///< hidden: before:DURATION or after:DURATION
    app::CommonOptions common;
};

/// The outbox directory's name under the default location.
inline constexpr const char* outbox_name = "outbox-mqtt-bridge";

/// Adds every flag (with its RILL_* environment twin) to `app`, writing into `o`.
void add_flags(CLI::App& app, Options& o);

/// The publisher settings the flags ask for (app::publisher_options; the identity defaults to
/// the client id). Throws app::UsageError naming the flag.
[[nodiscard]] ReliablePublisherOptions publisher_options(const Options& o);

/// The bridge settings the flags ask for; the client id defaults to "rill-HOSTNAME-XXXXXXXX",
/// XXXXXXXX a digest of the absolute outbox directory (stable across restarts, distinct per
/// outbox). The password is read from --password-file, else from $RILL_MQTT_PASSWORD (`env`).
/// Throws app::UsageError naming the flag (--broker, --topic, --password-file, --tls-*).
[[nodiscard]] mqtt::MqttBridgeOptions bridge_options(
    const Options& o, const std::filesystem::path& outbox_dir,
    const std::function<std::string(const char*)>& env);

}  // namespace rill::mqtt_bridge
