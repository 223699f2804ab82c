// rill/mqtt_bridge.hpp: the loop of the mqtt-bridge app. Messages from an MQTT broker become
// readings (rill/mqtt_payload.hpp) published durably through a ReliablePublisher, so that
// store-sub and web-view take them like any sensor-pub's. Part of rill::mqtt (libmosquitto).
//
// Delivery (docs/integrations.md, "MQTT bridge"): a persistent session (clean session off, a
// stable client id), QoS 1 subscriptions, and the broker's acknowledgement (PUBACK) written only
// after the message's readings were appended to the outbox. A message the broker sends again
// after a connection loss (QoS 1 redelivery) is recognised by a journal kept beside the outbox
// and not stored twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rill/backoff.hpp"
#include "rill/mqtt_payload.hpp"
#include "rill/reliable.hpp"
#include "rill/stop.hpp"

namespace rill::mqtt {

/// A broker address from its URL form.
struct BrokerAddress {
    std::string host;        ///< host name or address
    std::uint16_t port = 0;  ///< TCP port
    bool tls = false;        ///< mqtts://: TLS to the broker
    /// Member-wise equality.
    bool operator==(const BrokerAddress&) const = default;
};

/// Parses `mqtt://HOST[:PORT]` (port 1883 by default) or `mqtts://HOST[:PORT]` (8883); an IPv6
/// host is written in brackets (`mqtt://[::1]:1883`). Throws std::invalid_argument saying what
/// is wrong.
[[nodiscard]] BrokerAddress parse_broker_url(std::string_view url);

/// TLS files for an mqtts:// broker (PEM). Empty paths are not used.
struct BrokerTls {
    /// CA certificates the broker's certificate is verified against; empty: the system's
    /// (/etc/ssl/certs).
    std::filesystem::path ca_file;
    std::filesystem::path cert_file;  ///< this client's certificate (with key_file)
    std::filesystem::path key_file;   ///< this client's private key (with cert_file)
};

/// Where a bridge holds a message, for tests of the delivery guarantee only.
enum class TestHold {
    none,           ///< never (production)
    before_append,  ///< the first message, after it was received and before its append
    after_append,   ///< the first message, after its append, before its acknowledgement
};

/// What MqttBridge connects to and how.
struct MqttBridgeOptions {
    /// The broker's URL (parse_broker_url).
    std::string broker = "mqtt://127.0.0.1:1883";
    /// The MQTT client id: stable across restarts, since the broker keeps the session (the
    /// messages not yet acknowledged) under it. Required.
    std::string client_id;
    std::string username;  ///< empty: none
    std::string password;  ///< used with username
    BrokerTls tls;         ///< used for mqtts://
    /// Which topics are read and how (MessageParser); at least one.
    std::vector<TopicRule> rules;
    /// MQTT keep-alive: the broker drops the connection after 1.5 times this without traffic.
    std::chrono::seconds keepalive{30};
    /// Delays between connection attempts after a failure or a loss.
    BackoffOptions reconnect{std::chrono::milliseconds{500}, std::chrono::milliseconds{30'000},
                             2.0};
    /// Messages remembered in the redelivery journal: must be at least the broker's
    /// max_inflight_messages (Mosquitto: 20 by default), at most 32768. 0: no journal (a
    /// redelivery is stored again: at least once), for a broker that does not give packet ids
    /// in turn (see docs/integrations.md).
    std::size_t redelivery_window = 1024;
    /// The shortest time between two reads of the broker's socket: each read takes every
    /// message that has arrived (up to 1024 packets), so the messages of a fleet publishing
    /// evenly over the second are appended, published and acknowledged a batch per wake-up
    /// instead of one wake-up each. A message waits at most this long more before its append
    /// (and its PUBACK). A broker that sends at most N messages before their PUBACKs caps the
    /// bridge at N per interval (Mosquitto 2.0.11 was measured not to: bench/RESULTS.md).
    /// 0: read as soon as anything arrives. At most 1 s. The stop flag and the publisher's
    /// duties are not delayed by it.
    std::chrono::milliseconds read_interval{10};
    /// Component name of log lines.
    std::string log_component = "mqtt-bridge";
    /// Tests only: hold the first message received this long at `test_hold`.
    TestHold test_hold = TestHold::none;
    /// Tests only: how long test_hold holds.
    std::chrono::milliseconds test_hold_for{0};
};

/// Counters of a bridge since construction (also in the default metrics registry).
struct MqttBridgeStats {
    std::uint64_t messages = 0;     ///< messages received
    std::uint64_t readings = 0;     ///< readings appended and published
    std::uint64_t rejected = 0;     ///< messages with no reading: unknown topic or malformed
    std::uint64_t ignored = 0;      ///< messages known to carry no reading, retained messages
    std::uint64_t redelivered = 0;  ///< redeliveries recognised and not stored again
    std::uint64_t connects = 0;     ///< connections accepted by the broker
    bool connected = false;         ///< connected to the broker now
};

/// What run() calls on its thread besides bridging (e.g. systemd's notifications).
struct MqttBridgeHooks {
    /// Called once a second with the stats (e.g. systemd's STATUS line); may be empty.
    std::function<void(const MqttBridgeStats&)> status;
    /// Called on every turn of the loop; returns when it wants to be called next (the loop does
    /// not sleep past it; SteadyTime::max() for no particular time), e.g. a watchdog ping. May be
    /// empty.
    std::function<SteadyTime()> keep_alive;
};

/// The bridge loop: one thread (the caller of run()) owns the MQTT connection and the
/// ReliablePublisher's duties.
///
/// Contract of a message received at QoS 1: its readings are appended to the outbox (and the
/// append is durable as the outbox's fsync policy says) before its PUBACK is written, and the
/// message is entered into the redelivery journal (`mqtt-redelivery` in the outbox directory)
/// right after; a redelivery of a journalled message is acknowledged without being stored again.
/// Messages with retain set (a broker's stored copy sent on subscribing) are ignored. Unknown and
/// malformed messages are counted (rill_mqtt_messages_rejected_total) and logged, rate limited.
class MqttBridge {
  public:
    /// Checks the options (std::invalid_argument naming the option), opens the redelivery
    /// journal (unless redelivery_window is 0) in the publisher's outbox directory
    /// (std::system_error) and creates the MQTT client (std::runtime_error). Connects nothing yet.
    /// `publisher` must outlive the bridge and is used only from run()'s thread.
    MqttBridge(MqttBridgeOptions options, ReliablePublisher& publisher);
    /// Closes the MQTT client without a DISCONNECT when run() did not end normally.
    ~MqttBridge();
    MqttBridge(const MqttBridge&) = delete;
    MqttBridge& operator=(const MqttBridge&) = delete;

    /// Connects (retrying with backoff, logging each change of the connection's state once),
    /// subscribes to every rule's filter at QoS 1 and bridges messages until `stop` is requested;
    /// then writes the acknowledgements due, disconnects and flushes the publisher. Blocks. Calls
    /// the hooks as MqttBridgeHooks says. Throws std::system_error when an append to the outbox
    /// fails (the message is not acknowledged: the broker sends it again to the next run), and
    /// what ReliablePublisher::service throws.
    void run(const StopFlag& stop, const MqttBridgeHooks& hooks = {});

    /// The counters now. Thread-safe.
    [[nodiscard]] MqttBridgeStats stats() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill::mqtt
