// rill::mqtt::MessageParser: topic rules and device payloads to readings. Every device payload
// here is a real one, copied from the project's documentation or from a public project that
// logged it; the comment above each names where it comes from.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "rill/mqtt_payload.hpp"

using namespace rill;
using namespace rill::mqtt;

namespace {

const Timestamp received{std::chrono::microseconds(1'764'928'800'000'000)};  // 2025-12-05T10:00Z

const MessageParser& defaults() {
    static const MessageParser parser(default_topic_rules());
    return parser;
}

const MessageParser& automatic() {
    static const MessageParser parser({{"#", "{device}", PayloadFormat::automatic}});
    return parser;
}

// The one reading of a message that must read cleanly.
Reading only(const ParseResult& r) {
    INFO("error: " << r.error << " ignored: " << r.ignored_reason);
    REQUIRE(r.error.empty());
    REQUIRE_FALSE(r.ignored);
    REQUIRE(r.readings.size() == 1);
    return r.readings.front();
}

const Extra* extra(const Reading& r, const std::string& name) {
    for (const auto& e : r.extras) {
        if (e.name == name) return &e;
    }
    return nullptr;
}

bool has_error(const ParseResult& r, const std::string& part) {
    INFO("error: " << r.error);
    return r.readings.empty() && !r.ignored && r.error.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("topic filters match topics as an MQTT broker does") {
    CHECK(topic_matches("tele/+/SENSOR", "tele/kitchen/SENSOR"));
    CHECK_FALSE(topic_matches("tele/+/SENSOR", "tele/a/b/SENSOR"));
    CHECK_FALSE(topic_matches("tele/+/SENSOR", "tele/kitchen/STATE"));
    CHECK(topic_matches("zigbee2mqtt/#", "zigbee2mqtt/living room/sensor"));
    CHECK(topic_matches("zigbee2mqtt/#", "zigbee2mqtt"));  // '#' also matches the parent
    CHECK(topic_matches("#", "a/b/c"));
    CHECK(topic_matches("+/+", "/finance"));  // an empty level is a level
    CHECK_FALSE(topic_matches("+", "/finance"));
    CHECK(topic_matches("a/+/c", "a//c"));
    CHECK_FALSE(topic_matches("a/b", "a/b/c"));
    CHECK_FALSE(topic_matches("a/b/c", "a/b"));
    CHECK(topic_matches("Tele/+", "Tele/x"));
    CHECK_FALSE(topic_matches("tele/+", "Tele/x"));  // case matters
    // MQTT 3.1.1 section 4.7.2: a leading wildcard does not match topics starting with '$'.
    CHECK_FALSE(topic_matches("#", "$SYS/broker/uptime"));
    CHECK_FALSE(topic_matches("+/broker/uptime", "$SYS/broker/uptime"));
    CHECK(topic_matches("$SYS/#", "$SYS/broker/uptime"));
}

TEST_CASE("malformed topic filters are named with what is wrong") {
    CHECK_FALSE(topic_filter_problem("tele/+/SENSOR"));
    CHECK_FALSE(topic_filter_problem("#"));
    CHECK_FALSE(topic_filter_problem("+"));
    CHECK(topic_filter_problem("")->find("empty") != std::string::npos);
    CHECK(topic_filter_problem("a/#/b")->find("'#'") != std::string::npos);
    CHECK(topic_filter_problem("a/b#")->find("'#'") != std::string::npos);
    CHECK(topic_filter_problem("a/b+/c")->find("'+'") != std::string::npos);
    CHECK(topic_filter_problem(std::string("a\0b", 3))->find("NUL") != std::string::npos);
    CHECK(topic_filter_problem("a/\xff")->find("UTF-8") != std::string::npos);
}

TEST_CASE("topic rules parse from their flag form and reject what they cannot use") {
    CHECK(parse_topic_rule("tele/+/SENSOR={1}:tasmota") ==
          TopicRule{"tele/+/SENSOR", "{1}", PayloadFormat::tasmota});
    CHECK(parse_topic_rule("home/+/temperature={1}") ==
          TopicRule{"home/+/temperature", "{1}", PayloadFormat::automatic});
    CHECK(parse_topic_rule("z/#={device}:z2m").format == PayloadFormat::zigbee2mqtt);
    CHECK(parse_topic_rule("a/+=x:{1}:plain") == TopicRule{"a/+", "x:{1}", PayloadFormat::plain});
    CHECK(parse_topic_rule("a/+=garden-{1}:auto").format == PayloadFormat::automatic);
    CHECK(parse_topic_rule("a/b=garden:shelly").format == PayloadFormat::shelly);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("tele/+/SENSOR"), doctest::Contains("FILTER="),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("a/+={1}:x"), doctest::Contains("unknown format"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("a/+={2}"), doctest::Contains("{2}"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("=x"), doctest::Contains("empty"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("a/+=:plain"), doctest::Contains("empty"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("a/#/b=x"), doctest::Contains("'#'"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("a/+={name}"),
                         doctest::Contains("unknown placeholder"), std::invalid_argument);
    CHECK_THROWS_WITH_AS((void)parse_topic_rule("a/+={1"), doctest::Contains("without"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(MessageParser(std::vector<TopicRule>{{"a/+", "{0}"}}),
                         doctest::Contains("{0}"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(MessageParser(std::vector<TopicRule>{{"a/+", ""}}),
                         doctest::Contains("rule 1"), std::invalid_argument);
}

TEST_CASE("a parser subscribes to its rules' filters in rule order") {
    const MessageParser parser({{"b/#", "{1}"}, {"a/+", "{1}"}});
    CHECK(parser.subscriptions() == std::vector<std::string>{"b/#", "a/+"});
    CHECK(defaults().subscriptions() == std::vector<std::string>{"tele/+/SENSOR",
                                                                 "+/sensor/+/state",
                                                                 "zigbee2mqtt/#", "+/events/rpc"});
}

TEST_CASE("the first matching rule decides and wildcards fill the sensor template") {
    const MessageParser parser({{"home/+/+/temperature", "{1}-{2}", PayloadFormat::plain},
                                {"home/#", "other-{1}", PayloadFormat::plain}});
    CHECK(only(parser.parse("home/house/garden/temperature", "4.5", received)).sensor ==
          "house-garden");
    CHECK(only(parser.parse("home/shed/temperature", "4.5", received)).sensor ==
          "other-shed/temperature");
    // The bridge counts this error by its exact start.
    const auto none = parser.parse("office/temperature", "4.5", received);
    CHECK(none.error.rfind("topic matches no rule", 0) == 0);
    CHECK(none.readings.empty());
}

TEST_CASE("a Tasmota AM2301 SENSOR message becomes one reading with its dew point as an extra") {
    // The brief's example, the shape Tasmota 9+ sends (DewPoint added to every humidity sensor).
    const auto r = only(defaults().parse(
        "tele/kitchen/SENSOR",
        R"({"Time":"2026-12-05T10:00:00","AM2301":{"Temperature":21.5,"Humidity":48.1,"DewPoint":10.1},"TempUnit":"C"})",
        received));
    CHECK(r.sensor == "kitchen");
    CHECK(r.seq == 0);
    CHECK(r.ts == received);  // the device's Time is not trusted by default
    CHECK(r.temperature == 21.5f);
    CHECK(r.humidity == 48.1f);
    REQUIRE(extra(r, "dew_point"));
    CHECK(extra(r, "dew_point")->value == doctest::Approx(10.1));

    // https://tasmota.github.io/docs/AM2301/ ("Sensor sends a tele/%topic%/SENSOR JSON").
    const auto doc = only(defaults().parse(
        "tele/garage/SENSOR",
        R"({"Time":"2019-01-01T00:00:00","AM2301":{"Temperature":24.6,"Humidity":58.2},"TempUnit":"C"})",
        received));
    CHECK(doc.sensor == "garage");
    CHECK(doc.temperature == 24.6f);
    CHECK(doc.humidity == 58.2f);
    CHECK(doc.extras.empty());
}

TEST_CASE("a Tasmota DHT11 SENSOR message becomes a reading") {
    // A Forth DHT11 driver printing Tasmota's format, comment "SENSOR = {...}" (found by
    // searching public sources for "DHT11":{"Temperature":).
    const auto r = only(defaults().parse(
        "tele/dht/SENSOR",
        R"({"Time":"2020-02-22T11:20:23","DHT11":{"Temperature":18.2,"Humidity":42.0},"TempUnit":"C"})",
        received));
    CHECK(r.sensor == "dht");
    CHECK(r.temperature == 18.2f);
    CHECK(r.humidity == 42.0f);
}

TEST_CASE("a Tasmota BME280 reports pressure as an extra and FullTopic prefixes are understood") {
    // A Prometheus exporter's comment: topic tasmota/tele/sens-br1/SENSOR (FullTopic
    // tasmota/%prefix%/%topic%/).
    const MessageParser parser({{"tasmota/tele/+/SENSOR", "{device}", PayloadFormat::tasmota}});
    const auto r = only(parser.parse("tasmota/tele/sens-br1/SENSOR",
                                     R"({"Time":"2019-06-29T14:27:51","BME280":{"Temperature":25.5,
            "Humidity":76.0,"Pressure":991.2
           },"PressureUnit":"hPa","TempUnit":"C"})",
                                     received));
    CHECK(r.sensor == "sens-br1");
    CHECK(r.temperature == 25.5f);
    CHECK(r.humidity == 76.0f);
    REQUIRE(r.extras.size() == 1);
    CHECK(r.extras[0] == Extra{"pressure", 991.2});
}

TEST_CASE("a Tasmota DS18B20 reports a temperature and no humidity") {
    // https://tasmota.github.io/docs/DS18x20/ (the Id is a string, not an extra).
    const auto r = only(defaults().parse(
        "tele/boiler/SENSOR",
        R"({"Time":"2021-07-17T17:29:51","DS18B20":{"Id":"000003287EF1","Temperature":24.7},"TempUnit":"C"})",
        received));
    CHECK(r.sensor == "boiler");
    CHECK(r.temperature == 24.7f);
    CHECK_FALSE(is_measured(r.humidity));
    CHECK(r.extras.empty());
}

TEST_CASE("several sensors on one Tasmota device become one sensor each") {
    // Logged by a C++ openHAB bridge: "A38/STH16_S/tele/SENSOR = {...}" (FullTopic
    // %topic%/%prefix%/, so the device level comes before "tele").
    const std::string payload =
        R"({"Time":"2020-02-08T17:17:11","DS18B20-1":{"Id":"031197790115","Temperature":19.6},"DS18B20-2":{"Id":"031497793BB5","Temperature":19.5},"SI7021":{"Temperature":20.6,"Humidity":31.9},"TempUnit":"C"})";
    const MessageParser parser({{"A38/+/tele/SENSOR", "{device}", PayloadFormat::tasmota}});
    const auto r = parser.parse("A38/STH16_S/tele/SENSOR", payload, received);
    REQUIRE(r.error.empty());
    REQUIRE(r.readings.size() == 3);
    CHECK(r.readings[0].sensor == "STH16_S-DS18B20-1");
    CHECK(r.readings[0].temperature == 19.6f);
    CHECK_FALSE(is_measured(r.readings[0].humidity));
    CHECK(r.readings[1].sensor == "STH16_S-DS18B20-2");
    CHECK(r.readings[1].temperature == 19.5f);
    CHECK(r.readings[2].sensor == "STH16_S-SI7021");
    CHECK(r.readings[2].humidity == 31.9f);

    // {key} places the sensor's name itself, and then nothing is appended.
    const MessageParser keyed({{"A38/+/tele/SENSOR", "{key}@{1}", PayloadFormat::tasmota}});
    const auto k = keyed.parse("A38/STH16_S/tele/SENSOR", payload, received);
    REQUIRE(k.readings.size() == 3);
    CHECK(k.readings[0].sensor == "DS18B20-1@STH16_S");
    CHECK(k.readings[2].sensor == "SI7021@STH16_S");

    // A numbered DS18B20 alone keeps its number, so its id does not change when the others
    // stop reporting.
    // From a Tasmota-to-Influx script's test (five DS18B20, here the first one alone).
    const auto one = only(defaults().parse(
        "tele/heating/SENSOR",
        R"({"Time":"2020-11-15T21:05:00","DS18B20-1":{"Id":"01183379C9FF","Temperature":46.9},"TempUnit":"C"})",
        received));
    CHECK(one.sensor == "heating-DS18B20-1");
}

TEST_CASE("Tasmota Fahrenheit temperatures and dew points are converted to Celsius") {
    // A Hubitat Tasmota driver's comment: "Tasmota example: {...,"TempUnit":"F"}".
    const auto r = only(defaults().parse(
        "tele/office/SENSOR",
        R"({"Time":"2022-05-17T03:33:05","SI7021":{"Temperature":69,"Humidity":28,"DewPoint":34},"TempUnit":"F"})",
        received));
    CHECK(r.temperature == doctest::Approx(20.5556).epsilon(1e-4));
    CHECK(r.humidity == 28.0f);  // humidity has no unit to convert
    // Two names giving one extra name keep the first in JSON order, so extras stay unique.
    const auto twice = only(defaults().parse(
        "tele/x/SENSOR", R"({"AM2301":{"Temperature":1,"DewPoint":2,"dew_point":3}})", received));
    CHECK(twice.extras == std::vector<Extra>{{"dew_point", 2}});
    REQUIRE(extra(r, "dew_point"));
    CHECK(extra(r, "dew_point")->value == doctest::Approx(1.1111).epsilon(1e-4));
}

TEST_CASE(
    "Tasmota sensors reporting null and objects without Temperature or Humidity are skipped") {
    // A Ruby Tasmota agent's comment: an SI7021 that failed to read reports nulls.
    const auto r = defaults().parse(
        "tele/hall/SENSOR",
        R"({"Time":"2019-11-14T08:14:01","DS18B20":{"Temperature":21.5},"SI7021":{"Temperature":null,"Humidity":null},"BME280":{"Temperature":21.1,"Humidity":46.9,"Pressure":1014.4},"TempUnit":"C", "PressureUnit":"hPa"})",
        received);
    REQUIRE(r.error.empty());
    REQUIRE(r.readings.size() == 2);  // JSON names in byte order: BME280, DS18B20
    CHECK(r.readings[0].sensor == "hall-BME280");
    CHECK(r.readings[0].extras == std::vector<Extra>{{"pressure", 1014.4}});
    CHECK(r.readings[1].sensor == "hall-DS18B20");

    // A Tasmota energy plug carries no temperature: ignored. Logged by a Go MQTT client
    // ("Received message: ... from topic: tele/taylor_water/SENSOR").
    const auto plug = defaults().parse(
        "tele/taylor_water/SENSOR",
        R"({"Time":"2022-08-07T02:39:55","ENERGY":{"TotalStartTime":"2022-08-02T20:37:49","Total":0.006,"Yesterday":0.000,"Today":0.000,"Period": 0,"Power": 0,"ApparentPower": 0,"ReactivePower": 0,"Factor":0.00,"Voltage":121,"Current":0.000}})",
        received);
    CHECK(plug.ignored);
    CHECK(plug.error.empty());
    CHECK(plug.readings.empty());
}

TEST_CASE("Tasmota STATUS10 answers wrap the sensors in StatusSNS") {
    // A Tasmota client library's comment: the answer to "Status 10" (stat/<device>/STATUS10).
    const MessageParser parser({{"stat/+/STATUS10", "{1}", PayloadFormat::tasmota}});
    const auto r = only(parser.parse(
        "stat/attic/STATUS10",
        R"({"StatusSNS":{"Time":"2020-01-26T01:24:16","BMP280":{"Temperature":23.710,"Pressure":1017.6},"PressureUnit":"hPa","TempUnit":"C"}})",
        received));
    CHECK(r.sensor == "attic");
    CHECK(r.temperature == 23.71f);
    CHECK_FALSE(is_measured(r.humidity));

    // "Status 8" of a Tasmota ESP32 plug (a blog post's curl output): the chip's own
    // temperature is a sensor, the ENERGY object is not.
    const MessageParser status8({{"stat/+/STATUS8", "{1}", PayloadFormat::tasmota}});
    const auto esp = only(status8.parse(
        "stat/sonoff/STATUS8",
        R"({"StatusSNS":{"Time":"2022-10-18T12:08:14","ENERGY":{"TotalStartTime":"2022-10-13T10:12:20","Total":0.392,"Yesterday":0.179,"Today":0.213,"Power":17,"ApparentPower":36,"ReactivePower":32,"Factor":0.47,"Voltage":230,"Current":0.156},"ESP32":{"Temperature":26.7},"TempUnit":"C"}})",
        received));
    CHECK(esp.sensor == "sonoff");
    CHECK(esp.temperature == 26.7f);
    CHECK(esp.extras.empty());
}

TEST_CASE("Tasmota STATE, LWT and other telemetry topics are ignored") {
    const MessageParser parser({{"tele/#", "{device}", PayloadFormat::tasmota}});
    // https://tasmota.github.io/docs/MQTT/: LWT is "Online" / "Offline" (retained). The STATE
    // payload is from a mosquitto_sub tutorial's output (its Time is the one of the SENSOR
    // line logged with it).
    for (
        const auto& [topic, payload] : std::vector<std::pair<std::string, std::string>>{
            {"tele/kitchen/LWT", "Online"},
            {"tele/kitchen/LWT", "Offline"},
            {"tele/kitchen/STATE",
             R"({"Time":"2020-03-11T17:49:33","Uptime":"0T18:30:12","UptimeSec":66612,"Heap":28,"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER":"ON","Wifi":{"AP":1,"SSId":"no_net","BSSId":"82:2A:A8:D1:25:5D","Channel":6,"RSSI":62,"Signal":-69,"LinkCount":1,"Downtime":"0T00:00:05"}})"},
        }) {
        const auto r = parser.parse(topic, payload, received);
        CHECK(r.ignored);
        CHECK(r.error.empty());
        CHECK_FALSE(r.ignored_reason.empty());
    }
    // With automatic, the same topics are recognised as Tasmota's.
    CHECK(automatic().parse("tele/kitchen/LWT", "Online", received).ignored);
}

TEST_CASE("Tasmota's Time is the reading time only when the device time is trusted") {
    const MessageParser trusting(default_topic_rules(), {.device_time = DeviceTime::trust});
    const std::string payload =
        R"({"Time":"2026-12-05T10:00:00","AM2301":{"Temperature":21.5,"Humidity":48.1,"DewPoint":10.1},"TempUnit":"C"})";
    CHECK(only(trusting.parse("tele/kitchen/SENSOR", payload, received)).ts ==
          *parse_time("2026-12-05T10:00:00Z"));
    CHECK(only(defaults().parse("tele/kitchen/SENSOR", payload, received)).ts == received);
    // A device that has no time yet (before NTP) sends garbage: the receive time is used.
    CHECK(only(trusting.parse("tele/kitchen/SENSOR",
                              R"({"Time":"1970-01-01T00:00:00","AM2301":{"Temperature":21.5}})",
                              received))
              .ts == received);
    CHECK(only(trusting.parse("tele/kitchen/SENSOR", R"({"Time":"soon","AM2301":{"Humidity":40}})",
                              received))
              .ts == received);
}

TEST_CASE("ESPHome state topics become readings of the quantity their name ends with") {
    // ESPHome's MQTT discovery for a sensor "Living Room Temperature" on node esp32-wroom-a
    // (ESPHome 2023.2.4, logged by a Python MQTT tool): state topic
    // esp32-wroom-a/sensor/living_room_temperature/state, availability esp32-wroom-a/status.
    // The state is the number with the sensor's accuracy_decimals (esphome.io, "MQTT Client").
    const auto t = only(
        defaults().parse("esp32-wroom-a/sensor/living_room_temperature/state", "21.50", received));
    CHECK(t.sensor == "esp32-wroom-a");
    CHECK(t.temperature == 21.5f);
    CHECK_FALSE(is_measured(t.humidity));
    CHECK(t.extras.empty());

    const auto h =
        only(defaults().parse("esp32-wroom-a/sensor/living_room_humidity/state", "48", received));
    CHECK(h.sensor == "esp32-wroom-a");
    CHECK_FALSE(is_measured(h.temperature));
    CHECK(h.humidity == 48.0f);

    const auto p =
        only(defaults().parse("esp32-wroom-a/sensor/bme280_pressure/state", "1013.2", received));
    CHECK_FALSE(is_measured(p.temperature));
    CHECK_FALSE(is_measured(p.humidity));
    CHECK(p.extras == std::vector<Extra>{{"bme280_pressure", 1013.2}});

    // The availability topic and other components carry no reading.
    const MessageParser node({{"esp32-wroom-a/#", "garden", PayloadFormat::esphome}});
    CHECK(node.parse("esp32-wroom-a/status", "online", received).ignored);
    CHECK(node.parse("esp32-wroom-a/binary_sensor/door/state", "ON", received).ignored);
    CHECK(only(node.parse("esp32-wroom-a/sensor/outside_temp/state", "-3.1", received)).sensor ==
          "garden");
    // ESPHome publishes "nan" when a sensor has no valid state: an error, not a reading.
    CHECK(has_error(node.parse("esp32-wroom-a/sensor/outside_temp/state", "nan", received),
                    "esphome payload 'nan' is not a number"));
}

TEST_CASE("quantity levels are recognised by their common spellings") {
    const MessageParser parser({{"q/+", "s", PayloadFormat::plain}});
    for (const char* t : {"temperature", "Temperature", "temp", "TEMP", "outside_temp",
                          "living_room_temperature", "dht-temperature", "sensor.temp"}) {
        INFO(t);
        CHECK(only(parser.parse(std::string("q/") + t, "20", received)).temperature == 20.0f);
    }
    for (const char* h :
         {"humidity", "Humidity", "hum", "humi", "rh", "RH", "relative_humidity", "bath_hum"}) {
        INFO(h);
        CHECK(only(parser.parse(std::string("q/") + h, "50", received)).humidity == 50.0f);
    }
    for (const char* x : {"pressure", "temperature_f", "battery", "temps", "co2"}) {
        INFO(x);
        const auto r = only(parser.parse(std::string("q/") + x, "7", received));
        REQUIRE(r.extras.size() == 1);
        CHECK(r.extras[0].name == x);
    }
    // A quantity level that is no valid extra name (more than 32 bytes) is an error.
    CHECK(has_error(parser.parse("q/" + std::string(33, 'x'), "7", received), "extra name"));
}

TEST_CASE("Zigbee2MQTT device states become readings with the other numbers as extras") {
    // An Aqara WSDCGQ11LM logged by zigbee2mqtt 1.x (domoticz-zigbee2mqtt-plugin issue #307);
    // "battery" is a string in that version, so it is no extra.
    const auto r = only(defaults().parse(
        "zigbee2mqtt/WeatherGuestRoom",
        R"({"temperature":24.59,"linkquality":39,"humidity":36.56,"pressure":990,"battery":"37.00","voltage":2975})",
        received));
    CHECK(r.sensor == "WeatherGuestRoom");
    CHECK(r.temperature == 24.59f);
    CHECK(r.humidity == 36.56f);
    CHECK(r.extras ==
          std::vector<Extra>{{"linkquality", 39}, {"pressure", 990}, {"voltage", 2975}});

    // Friendly names may hold '/'
    // (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html): the device is
    // everything after the base topic.
    const auto nested = only(defaults().parse(
        "zigbee2mqtt/living room/climate",
        R"({"battery":100,"humidity":51.2,"linkquality":120,"temperature":21.3,"voltage":3005,"last_seen":"2026-12-05T09:59:58+01:00","update":{"state":"idle"}})",
        received));
    CHECK(nested.sensor == "living room/climate");
    CHECK(nested.extras.size() == 3);  // battery, linkquality, voltage; not last_seen or update
    CHECK(nested.ts == received);
    const MessageParser trusting(default_topic_rules(), {.device_time = DeviceTime::trust});
    CHECK(only(trusting.parse("zigbee2mqtt/living room/climate",
                              R"({"temperature":21.3,"last_seen":"2026-12-05T09:59:58+01:00"})",
                              received))
              .ts == *parse_time("2026-12-05T08:59:58Z"));
    CHECK(only(trusting.parse("zigbee2mqtt/a", R"({"temperature":21.3,"last_seen":1764928798000})",
                              received))
              .ts == Timestamp{std::chrono::milliseconds(1764928798000)});
}

TEST_CASE("Zigbee2MQTT bridge, availability, command and non-climate topics are ignored") {
    // zigbee2mqtt.io, "MQTT Topics and Messages": bridge/state, bridge/info, <name>/availability.
    CHECK(defaults().parse("zigbee2mqtt/bridge/state", R"({"state":"online"})", received).ignored);
    CHECK(defaults()
              .parse("zigbee2mqtt/bridge/logging", R"({"level":"info","message":"x"})", received)
              .ignored);
    CHECK(defaults()
              .parse("zigbee2mqtt/kitchen/availability", R"({"state":"online"})", received)
              .ignored);
    CHECK(defaults().parse("zigbee2mqtt/kitchen/set", R"({"state":"ON"})", received).ignored);
    CHECK(defaults().parse("zigbee2mqtt/kitchen/set/brightness", "20", received).ignored);
    // A switch's state has no temperature or humidity.
    const auto sw = defaults().parse("zigbee2mqtt/hall switch",
                                     R"({"linkquality":120,"state":"ON"})", received);
    CHECK(sw.ignored);
    CHECK(sw.readings.empty());
}

TEST_CASE("Zigbee2MQTT extras are bounded to 16, the first by name") {
    std::string payload = R"({"temperature":20)";
    for (char c = 'a'; c <= 'z'; ++c) {
        payload += ",\"";
        payload += c;
        payload += "_value\":1";
    }
    payload += "}";
    const auto r = only(defaults().parse("zigbee2mqtt/many", payload, received));
    REQUIRE(r.extras.size() == limits::max_extras);
    CHECK(r.extras.front().name == "a_value");
    CHECK(r.extras.back().name == "p_value");
    // A rule naming one device in full reads it too.
    const MessageParser one({{"zigbee2mqtt/kitchen", "kitchen", PayloadFormat::zigbee2mqtt}});
    CHECK(only(one.parse("zigbee2mqtt/kitchen", R"({"temperature":20})", received)).sensor ==
          "kitchen");
    // Names that are no valid extra name (over 32 bytes) are left out.
    const auto longname = only(defaults().parse(
        "zigbee2mqtt/x", R"({"temperature":20,")" + std::string(33, 'n') + R"(":1,"ok":2})",
        received));
    CHECK(longname.extras == std::vector<Extra>{{"ok", 2}});
}

TEST_CASE("Shelly Gen2 notifications become readings with the battery as extras") {
    // A Shelly Plus H&T's NotifyFullStatus on shellyplusht-b8d61a8b17cc/events/rpc (gist
    // "Status from a Shelly Plus Heat & Temperature sensor (via MQTT)", NelsonMinar), abridged:
    // the wifi and ws components are left out.
    const std::string full = R"({
        "src": "shellyplusht-b8d61a8b17cc", "dst": "shellyplusht-b8d61a8b17cc/events",
        "method": "NotifyFullStatus",
        "params": {"ts": 1680962879.62, "ble": {}, "cloud": {"connected": false},
          "devicepower:0": {"id": 0, "battery": {"V": 0.43, "percent": 0}, "external": {"present": true}},
          "ht_ui": {}, "humidity:0": {"id": 0, "rh": 42.2}, "mqtt": {"connected": true},
          "sys": {"mac": "B8D61A8B17CC", "restart_required": false, "time": null, "unixtime": null,
                  "uptime": 3, "ram_size": 235300, "ram_free": 164244, "fs_size": 458752,
                  "fs_free": 118784, "cfg_rev": 10, "kvs_rev": 0, "webhook_rev": 0,
                  "available_updates": {}, "wakeup_reason": {"boot": "deepsleep_wake",
                  "cause": "status_update"}, "wakeup_period": 600},
          "temperature:0": {"id": 0, "tC": 19.8, "tF": 67.6}}})";
    const auto r = only(defaults().parse("shellyplusht-b8d61a8b17cc/events/rpc", full, received));
    CHECK(r.sensor == "shellyplusht-b8d61a8b17cc");
    CHECK(r.temperature == 19.8f);
    CHECK(r.humidity == 42.2f);
    CHECK(r.extras == std::vector<Extra>{{"battery_v", 0.43}, {"battery_percent", 0}});
    CHECK(r.ts == received);
    const MessageParser trusting(default_topic_rules(), {.device_time = DeviceTime::trust});
    CHECK(only(trusting.parse("shellyplusht-b8d61a8b17cc/events/rpc", full, received)).ts ==
          Timestamp{std::chrono::microseconds(1'680'962'879'620'000)});

    // A Shelly H&T Gen3 NotifyStatus as documented by a home-automation script's docstring.
    const auto g3 =
        only(automatic().parse("shellyhtg3-aabbcc112233/events/rpc",
                               R"({"src":"shellyhtg3-aabbcc112233","method":"NotifyStatus",
            "params":{"ts":1234567890.0,
              "temperature:0":{"id":0,"tC":22.5,"tF":72.5},
              "humidity:0":{"id":0,"rh":54.3},
              "devicepower:0":{"id":0,"battery":{"V":6.12,"percent":92}}}})",
                               received));
    CHECK(g3.sensor == "shellyhtg3-aabbcc112233");
    CHECK(g3.humidity == 54.3f);

    // The per-component status topic (Shelly cloud API example of a temperature:0 status).
    const MessageParser status({{"+/status/+", "{1}", PayloadFormat::shelly}});
    const auto s = only(status.parse("shellyplusht-b8d61a8b17cc/status/temperature:0",
                                     R"({"id":0,"tC":24.7,"tF":76.4})", received));
    CHECK(s.temperature == 24.7f);
    CHECK_FALSE(is_measured(s.humidity));
    CHECK(
        status.parse("shellyplusht-b8d61a8b17cc/status/sys", R"({"uptime":3})", received).ignored);
    // A second add-on probe (temperature:101) is its own sensor.
    const auto addon = status.parse("shelly1pm-x/status/temperature:101",
                                    R"({"id":101,"tC":30.1,"tF":86.2})", received);
    REQUIRE(addon.readings.size() == 1);
    CHECK(addon.readings[0].sensor == "shelly1pm-x-101");
    // Events (button pushes) carry no reading.
    CHECK(defaults()
              .parse("shellyplusht-b8d61a8b17cc/events/rpc",
                     R"({"src":"x","method":"NotifyEvent","params":{"ts":1.0,"events":[]}})",
                     received)
              .ignored);
}

TEST_CASE("plain numbers with surrounding whitespace become readings of the topic's quantity") {
    const MessageParser parser({{"home/+/+", "{1}", PayloadFormat::plain}});
    const auto t = only(parser.parse("home/garden/temperature", " -3.25\r\n", received));
    CHECK(t.sensor == "garden");
    CHECK(t.temperature == -3.25f);
    CHECK_FALSE(is_measured(t.humidity));
    CHECK(only(parser.parse("home/garden/humidity", "87", received)).humidity == 87.0f);
    CHECK(only(parser.parse("home/garden/temperature", "2.15e1", received)).temperature == 21.5f);
    for (const char* bad : {"21,5", "+21", ".5", "21.", "0x15", "21 C", "inf", "-inf", "NaN", "1e",
                            "--1", "\"21.5\""}) {
        INFO(bad);
        CHECK(has_error(parser.parse("home/garden/temperature", bad, received), "number"));
    }
    CHECK(has_error(parser.parse("home/garden/temperature", "1e999", received),
                    "plain payload '1e999' is not a finite number"));
    CHECK(has_error(parser.parse("home/garden/temperature", " \n", received),
                    "plain payload is empty or whitespace"));
}

TEST_CASE("automatic chooses the format from the topic's shape, then the payload") {
    CHECK(only(automatic().parse("tele/kitchen/SENSOR", R"({"DHT11":{"Temperature":20.5}})",
                                 received))
              .sensor == "kitchen");
    CHECK(only(automatic().parse("node1/sensor/room_humidity/state", "40", received)).humidity ==
          40.0f);
    CHECK(automatic().parse("node1/status", "offline", received).ignored);
    CHECK(
        only(automatic().parse("zigbee2mqtt/bed room", R"({"temperature":19})", received)).sensor ==
        "bed room");
    CHECK(automatic().parse("zigbee2mqtt/bridge/state", "online", received).ignored);
    CHECK(
        only(automatic().parse("shellyplusht-1/status/humidity:0", R"({"id":0,"rh":50})", received))
            .sensor == "shellyplusht-1");
    const auto json =
        only(automatic().parse("lab/probe", R"({"temperature":4.5,"rssi":-70})", received));
    CHECK(json.sensor == "probe");  // generic JSON: the device is after the first level
    CHECK(json.extras == std::vector<Extra>{{"rssi", -70}});
    const auto plain = only(automatic().parse("lab/fridge/temp", "4.5", received));
    CHECK(plain.sensor == "lab/fridge");
    CHECK(plain.temperature == 4.5f);
    CHECK(has_error(automatic().parse("lab/fridge/temp", "warm", received), "not a number"));
}

TEST_CASE("out-of-range and non-finite values are errors, never readings") {
    CHECK(has_error(
        defaults().parse("tele/x/SENSOR", R"({"AM2301":{"Temperature":1000.5}})", received),
        "temperature"));
    CHECK(has_error(
        defaults().parse("tele/x/SENSOR", R"({"AM2301":{"Temperature":-273.16}})", received),
        "temperature"));
    CHECK(only(defaults().parse("tele/x/SENSOR", R"({"AM2301":{"Temperature":-273.15}})", received))
              .temperature == -273.15f);
    CHECK(has_error(defaults().parse("tele/x/SENSOR",
                                     R"({"AM2301":{"Temperature":20,"Humidity":100.1}})", received),
                    "humidity"));
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", R"({"humidity":-1})", received), "humidity"));
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", R"({"temperature":1e999})", received),
                    "zigbee2mqtt"));
    CHECK(has_error(
        defaults().parse("zigbee2mqtt/x", R"({"temperature":20,"voltage":1e999})", received),
        "zigbee2mqtt"));
    // 2000 °F is 1093 °C: checked after the conversion.
    CHECK(
        has_error(defaults().parse("tele/x/SENSOR",
                                   R"({"DS18B20":{"Temperature":2000},"TempUnit":"F"})", received),
                  "temperature"));
    // One bad sensor makes the whole message an error: a message is read whole or not at all.
    const auto mixed = defaults().parse(
        "tele/x/SENSOR", R"({"DS18B20-1":{"Temperature":19.6},"DS18B20-2":{"Temperature":4000}})",
        received);
    CHECK(has_error(mixed, "DS18B20-2"));
}

TEST_CASE("numbers as strings, wrong types and broken JSON are errors naming the field") {
    CHECK(has_error(
        defaults().parse("tele/x/SENSOR", R"({"AM2301":{"Temperature":"21.5"}})", received),
        "Temperature is a string"));
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", R"({"temperature":"21.5"})", received),
                    "temperature is a string"));
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", R"({"humidity":true})", received),
                    "not a number"));
    CHECK(
        has_error(defaults().parse("tele/x/SENSOR", R"({"AM2301":{"Temperature":21.5})", received),
                  "not valid JSON"));
    CHECK(has_error(defaults().parse("tele/x/SENSOR", "[1,2,3]", received),
                    "expected a JSON object"));
    CHECK(has_error(defaults().parse("tele/x/SENSOR", "Online", received), "not valid JSON"));
    CHECK(has_error(defaults().parse("tele/x/SENSOR",
                                     R"({"AM2301":{"Temperature":1},"TempUnit":"K"})", received),
                    "TempUnit"));
    CHECK(has_error(defaults().parse("x/events/rpc", R"({"params":{}})", received), "method"));
    CHECK(has_error(defaults().parse("x/events/rpc", R"({"method":"NotifyStatus"})", received),
                    "params"));
    CHECK(has_error(
        defaults().parse("x/events/rpc",
                         R"({"method":"NotifyStatus","params":{"temperature:0":{"tC":"hot"}}})",
                         received),
        "tC is a string"));
}

TEST_CASE("nested, huge, empty and non-UTF-8 payloads are errors with a reason") {
    CHECK(has_error(defaults().parse("zigbee2mqtt/x",
                                     std::string(100000, '[') + std::string(100000, ']'), received),
                    "bytes"));
    CHECK(has_error(
        defaults().parse("zigbee2mqtt/x",
                         "{\"a\":" + std::string(40, '[') + std::string(40, ']') + "}", received),
        "nested deeper"));
    // Nesting inside strings does not count.
    CHECK(
        only(defaults().parse("zigbee2mqtt/x",
                              R"({"temperature":1,"s":")" + std::string(40, '[') + "\"}", received))
            .temperature == 1.0f);
    std::string big = R"({"temperature":20,"pad":")";
    big += std::string(max_payload_bytes, ' ');
    big += "\"}";
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", big, received), "more than 65536"));
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", "", received), "empty"));
    CHECK(has_error(defaults().parse("zigbee2mqtt/x", "   ", received), "not valid JSON"));
    CHECK(has_error(
        defaults().parse("zigbee2mqtt/x", "{\"temperature\":20,\"n\":\"\xc3\x28\"}", received),
        "UTF-8"));
    CHECK(has_error(
        defaults().parse("zigbee2mqtt/x", "{\"temperature\":20,\"n\":\"\xed\xa0\x80\"}", received),
        "UTF-8"));  // a UTF-16 surrogate
    CHECK(has_error(
        defaults().parse("zigbee2mqtt/x", "{\"temperature\":20,\"n\":\"\xc0\xaf\"}", received),
        "UTF-8"));  // an overlong '/'
    CHECK(only(defaults().parse("zigbee2mqtt/x", "{\"temperature\":20,\"n\":\"\xe2\x82\xac\"}",
                                received))
              .temperature == 20.0f);
}

TEST_CASE("bad topics and topics giving an invalid sensor id are errors, not exceptions") {
    CHECK(has_error(defaults().parse("", "1", received), "not a valid MQTT topic"));
    CHECK(has_error(defaults().parse("tele/+/SENSOR", "{}", received), "not a valid MQTT topic"));
    CHECK(
        has_error(defaults().parse("zigbee2mqtt/\xff", "{}", received), "not a valid MQTT topic"));
    // A 70-byte friendly name is longer than a sensor id may be.
    CHECK(has_error(
        defaults().parse("zigbee2mqtt/" + std::string(70, 'n'), R"({"temperature":1})", received),
        "sensor id"));
    // A control character reaches the id from the topic.
    CHECK(has_error(defaults().parse("zigbee2mqtt/a\tb", R"({"temperature":1})", received),
                    "sensor id"));
    // '#' that matched nothing leaves an empty id.
    const MessageParser parser({{"a/#", "{1}", PayloadFormat::plain}});
    CHECK(has_error(parser.parse("a", "1", received), "sensor id"));
}

TEST_CASE("any bytes give a result without an exception and only valid readings") {
    // A cheap deterministic mutation run over the examples (the fuzz target does this at
    // scale): whatever comes out is an error, ignored, or readings a decoder would accept.
    const std::vector<std::pair<std::string, std::string>> seeds = {
        {"tele/a/SENSOR",
         R"({"Time":"2020-02-08T17:17:11","DS18B20-1":{"Id":"031197790115","Temperature":19.6},"SI7021":{"Temperature":20.6,"Humidity":31.9},"TempUnit":"F"})"},
        {"zigbee2mqtt/a/b", R"({"temperature":24.59,"linkquality":39,"humidity":36.56})"},
        {"n/sensor/x_temperature/state", "21.5"},
        {"s/events/rpc",
         R"({"method":"NotifyStatus","params":{"ts":1.5,"temperature:0":{"tC":1},"humidity:0":{"rh":2}}})"},
    };
    const MessageParser trusting({{"#", "{device}-{key}-{1}"}}, {.device_time = DeviceTime::trust});
    std::mt19937 rng(12345);
    std::size_t readings = 0;
    for (int round = 0; round < 4000; ++round) {
        auto [topic, payload] = seeds[static_cast<std::size_t>(round) % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            std::string& target = rng() % 4 == 0 ? topic : payload;
            if (target.empty()) continue;
            const std::size_t at = rng() % target.size();
            switch (rng() % 3) {
                case 0:
                    target[at] = static_cast<char>(rng() % 256);
                    break;
                case 1:
                    target.erase(at, 1);
                    break;
                default:
                    target.insert(at, 1, "{}[]\":,.-e0123456789/+#"[rng() % 23]);
                    break;
            }
        }
        for (const MessageParser* p : {&defaults(), &automatic(), &trusting}) {
            ParseResult r;
            REQUIRE_NOTHROW(r = p->parse(topic, payload, received));
            if (!r.error.empty() || r.ignored) {
                CHECK(r.readings.empty());
                continue;
            }
            for (auto reading : r.readings) {
                ++readings;
                CHECK_FALSE(sensor_id_problem(reading.sensor));
                CHECK(reading.extras.size() <= limits::max_extras);
                CHECK((is_measured(reading.temperature) || is_measured(reading.humidity) ||
                       !reading.extras.empty()));
                if (is_measured(reading.temperature)) {
                    CHECK(reading.temperature >= limits::min_temperature);
                    CHECK(reading.temperature <= limits::max_temperature);
                }
                if (is_measured(reading.humidity)) {
                    CHECK(reading.humidity >= 0);
                    CHECK(reading.humidity <= 100);
                }
                const auto us = reading.ts.time_since_epoch().count();
                CHECK((us > 0 && us <= limits::max_ts_us));
            }
        }
    }
    CHECK(readings > 100);  // the mutations left enough messages readable to check something
}
