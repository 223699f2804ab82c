// mqtt-bridge: subscribes to an MQTT broker and publishes the readings of Tasmota, ESPHome,
// Zigbee2MQTT and plain-number devices durably (outbox, replay service, heartbeats), like
// sensor-pub, so that store-sub and web-view take them unchanged.
//
// flags -> a ReliablePublisher and a rill::mqtt::MqttBridge that runs the loop; this file adds
// the admin HTTP server and systemd's notifications.
#include <cstdlib>
#include <optional>
#include <string>

#include "common/app_options.hpp"
#include "common/http_admin.hpp"
#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "flags.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/mqtt_bridge.hpp"
#include "rill/reliable.hpp"
#include "rill/security.hpp"

namespace {

using rill::mqtt_bridge::Options;

std::string env_value(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

std::string status_line(const rill::mqtt::MqttBridgeStats& s) {
    return std::string(s.connected ? "connected" : "not connected") + " to the broker, " +
           std::to_string(s.messages) + " messages, " + std::to_string(s.readings) +
           " readings published, " + std::to_string(s.rejected) + " rejected";
}

int run(const Options& o) {
    rill::app::apply_common_options(o.common);
    auto& shutdown = rill::app::Shutdown::install();
    rill::app::SystemdNotifier systemd;
    // Every flag value is checked before anything is opened, bound or connected.
    auto po = rill::mqtt_bridge::publisher_options(o);
    auto bo = rill::mqtt_bridge::bridge_options(o, po.outbox_dir, env_value);
    const std::string client_id = bo.client_id;
    std::optional<rill::ZapHandler> zap;
    if (!o.curve_secret.empty() && !o.curve_allow.empty()) {
        zap.emplace(rill::default_context(), o.curve_allow);
    }
    rill::ReliablePublisher rp(std::move(po));
    rill::mqtt::MqttBridge bridge(std::move(bo), rp);
    std::optional<rill::app::HttpAdmin> admin;
    if (!o.common.metrics.empty()) {
        admin.emplace(
            o.common.metrics, [] { return rill::default_registry().render_prometheus(); },
            [&bridge] {
                return bridge.stats().connected
                           ? rill::app::Health{}
                           : rill::app::Health{false, "not connected to the MQTT broker"};
            });
    }
    std::string published;
    for (const auto& b : rp.publisher().bound())
        published += (published.empty() ? "" : ",") + b;
    rill::log_info("mqtt-bridge",
                   "bridging " + o.broker + " as " + client_id + ", publishing on " +
                       (published.empty() ? o.pub : published) + ", replay on " +
                       (rp.replay_endpoint().empty() ? "(none)" : rp.replay_endpoint()) +
                       ", outbox " + rp.outbox().dir().string());
    systemd.ready("connecting to " + o.broker);
    rill::mqtt::MqttBridgeHooks hooks;
    hooks.status = [&systemd](const rill::mqtt::MqttBridgeStats& s) {
        systemd.status(status_line(s));
    };
    hooks.keep_alive = [&systemd] {
        systemd.keep_alive();
        return systemd.keep_alive_due();
    };
    bridge.run(shutdown.stop(), hooks);
    systemd.stopping("stopping on " + shutdown.reason() + ": closing the outbox");
    rp.close();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "mqtt-bridge: subscribe to an MQTT broker (Tasmota, ESPHome, Zigbee2MQTT, plain "
        "numbers) and publish the readings on ZeroMQ like sensor-pub. Every reading is written "
        "to an outbox on disk before the broker's message is acknowledged."};
    rill::mqtt_bridge::add_flags(app, o);
    return rill::app::run_main(app, argc, argv, "mqtt-bridge", [&] { return run(o); });
}
