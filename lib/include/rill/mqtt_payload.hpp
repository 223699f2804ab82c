// rill/mqtt_payload.hpp: MQTT messages from devices (Tasmota, ESPHome, Zigbee2MQTT, Shelly Gen2,
// plain numbers) to readings. Pure functions over (topic, payload): no network, no clock, no
// state between messages, so the bridge (rill/mqtt_bridge.hpp) and tests use the same code.
// docs/integrations.md ("Devices") lists the formats with real payloads; part of rill::mqtt.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
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
    shelly,       ///< Shelly Gen2+ `<id>/events/rpc` notifications and `<id>/status/<component>`
};

/// The largest payload a parser reads; a larger one is an error result, never parsed.
inline constexpr std::size_t max_payload_bytes = 64 * 1024;

/// JSON payloads nested deeper than this (objects and arrays) are an error result.
inline constexpr std::size_t max_json_depth = 32;

/// One rule of the topic mapping: which topics are read, how, and as which sensor.
struct TopicRule {
    /// An MQTT topic filter (`+` and `#` wildcards), subscribed to as given.
    std::string filter;
    /// The sensor id made from a matching topic; `{1}`, `{2}`, ... stand for the topic levels
    /// the filter's wildcards matched (a `#` stands for all the levels it matched, joined by
    /// `/`), `{device}` for the device part of the known formats, `{key}` for the part of a
    /// device a reading comes from (Tasmota's sensor name such as `DS18B20-1`, a Shelly
    /// component's index). Without `{key}`, a device with several sensors gets `-<key>`
    /// appended to each of them (docs/integrations.md, "Devices").
    std::string sensor;
    /// How payloads on these topics are read.
    PayloadFormat format = PayloadFormat::automatic;
    /// Member-wise equality.
    bool operator==(const TopicRule&) const = default;
};

/// Which time a reading gets.
enum class DeviceTime {
    /// The receive time, always (the default): devices' clocks are often unset or in local
    /// time without a zone (Tasmota's `Time`).
    ignore,
    /// The time the payload carries when it has one that parses (Tasmota `Time`, Zigbee2MQTT
    /// `last_seen`, Shelly `params.ts`); a time without a zone is taken as UTC. A missing,
    /// unparsable or out-of-range time falls back to the receive time.
    trust,
};

/// How a MessageParser reads messages beyond its rules.
struct ParserOptions {
    /// Which time a reading gets (see DeviceTime).
    DeviceTime device_time = DeviceTime::ignore;
};

/// What a message turned into.
struct ParseResult {
    /// Readings made from the message: sensor and ts set, seq 0 (the outbox assigns it). A
    /// quantity the device did not report is `not_measured` (see rill/reading.hpp); every
    /// reading has at least one of temperature, humidity or an extra.
    std::vector<Reading> readings;
    /// Empty when the message was read; otherwise why it was not ("topic matches no rule",
    /// "tasmota payload: expected a JSON object", ...): counted and logged (rate-limited) by
    /// the bridge, never fatal. When set, `readings` is empty: a message is read whole or not
    /// at all.
    std::string error;
    /// True when the message is known and carries no reading (Tasmota `tele/+/STATE`, an
    /// ESPHome `status` topic, ...): neither an error nor a reading.
    bool ignored = false;
    /// Why the message was ignored (set when `ignored` is true), for debug logs.
    std::string ignored_reason;
};

/// Turns (topic, payload) into readings by the first TopicRule whose filter matches.
/// Thread-safe once made (const).
class MessageParser {
  public:
    /// Throws std::invalid_argument naming the rule when a rule is malformed (bad filter,
    /// placeholder beyond the filter's wildcards or unknown, empty sensor template).
    explicit MessageParser(std::vector<TopicRule> rules, ParserOptions options = {});

    /// The topic filters to subscribe to, one per rule, in rule order.
    [[nodiscard]] std::vector<std::string> subscriptions() const;

    /// The rules, as given.
    [[nodiscard]] const std::vector<TopicRule>& rules() const noexcept { return rules_; }

    /// Reads one message received at `received` (the reading time unless the options trust
    /// the device's time). Never throws on any topic or payload bytes (only std::bad_alloc).
    [[nodiscard]] ParseResult parse(std::string_view topic, std::string_view payload,
                                    Timestamp received) const;

  private:
    std::vector<TopicRule> rules_;
    ParserOptions options_;
};

/// Parses a rule from its flag form `FILTER=SENSOR[:FORMAT]` (e.g.
/// `tele/+/SENSOR={1}:tasmota`): split at the first `=`; the text after the last `:` is the
/// format when there is a `:` (automatic, auto, tasmota, esphome, zigbee2mqtt, z2m, shelly,
/// plain), so a sensor template holding a `:` needs an explicit format. Throws
/// std::invalid_argument saying what is wrong.
[[nodiscard]] TopicRule parse_topic_rule(std::string_view text);

/// The rules used when none are given: Tasmota, ESPHome, Zigbee2MQTT and Shelly Gen2 default
/// topics (docs/integrations.md lists them).
[[nodiscard]] std::vector<TopicRule> default_topic_rules();

/// The format's name as parse_topic_rule() reads it ("tasmota", ...).
[[nodiscard]] std::string_view format_name(PayloadFormat format) noexcept;

/// Why `filter` is not a valid MQTT topic filter (empty, `#` not alone as the last level, `+`
/// not a whole level, NUL or invalid UTF-8), or nothing when it is valid. Does not throw.
[[nodiscard]] std::optional<std::string> topic_filter_problem(std::string_view filter);

/// True when the topic name `topic` matches the valid filter `filter` as an MQTT 3.1.1/5
/// broker decides: `+` matches one level, `#` the rest (including none: `a/#` matches `a`), and
/// a topic starting with `$` is not matched by a filter starting with a wildcard.
[[nodiscard]] bool topic_matches(std::string_view filter, std::string_view topic) noexcept;

}  // namespace rill::mqtt
