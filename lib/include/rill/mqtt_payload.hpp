// rill/mqtt_payload.hpp: MQTT messages from devices (Tasmota, ESPHome, Zigbee2MQTT, plain
// numbers) to readings. Pure functions over (topic, payload): no network, no clock, no state
// between messages, so the bridge (rill/mqtt_bridge.hpp) and tests use the same code.
// docs/integrations.md lists the formats with real payloads; part of rill::mqtt.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include "rill/reading.hpp"

namespace rill::mqtt {

/// How a message's payload is read.
enum class PayloadFormat {
    automatic,    ///< decided per message from the topic and the payload (see MessageParser)
    tasmota,      ///< Tasmota `tele/<device>/SENSOR` JSON (AM2301, DHT11, BME280, DS18B20, ...)
    esphome,      ///< ESPHome state topics, one number per topic
    zigbee2mqtt,  ///< Zigbee2MQTT device JSON (`temperature`, `humidity`, other numbers as extras)
    plain,        ///< a bare number: the quantity comes from the topic rule
};

/// One rule of the topic mapping: which topics are read, how, and as which sensor.
struct TopicRule {
    /// An MQTT topic filter (`+` and `#` wildcards), subscribed to as given.
    std::string filter;
    /// The sensor id made from a matching topic; `{1}`, `{2}`, ... stand for the topic levels
    /// the filter's wildcards matched, `{device}` for the device part of the known formats.
    std::string sensor;
    /// How payloads on these topics are read.
    PayloadFormat format = PayloadFormat::automatic;
};

/// What a message turned into.
struct ParseResult {
    /// Readings made from the message: sensor and ts set, seq 0 (the outbox assigns it). A
    /// quantity the device did not report is `not_measured` (see rill/reading.hpp).
    std::vector<Reading> readings;
    /// Empty when the message was read; otherwise why it was not ("topic matches no rule",
    /// "tasmota payload: expected a JSON object", ...): counted and logged (rate-limited) by
    /// the bridge, never fatal.
    std::string error;
    /// True when the message is known and carries no reading (Tasmota `tele/+/STATE`, an
    /// ESPHome `status` topic, ...): neither an error nor a reading.
    bool ignored = false;
};

/// Turns (topic, payload) into readings by the first TopicRule whose filter matches.
/// Thread-safe once made (const).
class MessageParser {
  public:
    /// Throws std::invalid_argument naming the rule when a rule is malformed (bad filter,
    /// placeholder beyond the filter's wildcards, empty sensor template).
    explicit MessageParser(std::vector<TopicRule> rules);

    /// The topic filters to subscribe to, one per rule, in rule order.
    [[nodiscard]] std::vector<std::string> subscriptions() const;

    /// Reads one message received at `received` (used as the reading time when the payload
    /// carries none). Never throws on any topic or payload bytes.
    [[nodiscard]] ParseResult parse(std::string_view topic, std::string_view payload,
                                    Timestamp received) const;

  private:
    std::vector<TopicRule> rules_;
};

/// Parses a rule from its flag form `FILTER=SENSOR[:FORMAT]` (e.g.
/// `tele/+/SENSOR={1}:tasmota`). Throws std::invalid_argument saying what is wrong.
[[nodiscard]] TopicRule parse_topic_rule(std::string_view text);

/// The rules used when none are given: Tasmota, ESPHome and Zigbee2MQTT default topics
/// (docs/integrations.md lists them).
[[nodiscard]] std::vector<TopicRule> default_topic_rules();

}  // namespace rill::mqtt
