// fuzz-mqtt-payload: rill::mqtt::MessageParser (rill/mqtt_payload.hpp) on arbitrary topics and
// payloads. parse() must never throw, a result is an error, ignored, or readings, and every
// reading holds what rill's decoders accept: a valid sensor id, values in range (or
// not_measured), at most 16 extras with valid names, a timestamp in range.
//
// Input: the first byte is the topic's length, then the topic, then the payload
// (rill::fuzz::split_two). Seeds in corpus/mqtt-payload/ are the unit tests' real device
// payloads (tests/unit/mqtt_payload_test.cpp) in that layout.
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_input.hpp"
#include "rill/mqtt_payload.hpp"

namespace {

void check(const rill::mqtt::ParseResult& r) {
    using namespace rill;
    if (!r.error.empty() || r.ignored) {
        if (!r.readings.empty()) fuzz::fail("an error or ignored result has no readings");
        if (!r.error.empty() && r.ignored) fuzz::fail("a result is not both error and ignored");
        return;
    }
    if (r.readings.empty()) fuzz::fail("a read message has readings");
    for (const auto& reading : r.readings) {
        if (sensor_id_problem(reading.sensor)) fuzz::fail("sensor id valid");
        if (reading.seq != 0) fuzz::fail("seq left to the outbox");
        const auto us = reading.ts.time_since_epoch().count();
        if (us <= 0 || us > limits::max_ts_us) fuzz::fail("ts in range");
        const bool t = is_measured(reading.temperature), h = is_measured(reading.humidity);
        if (!t && !h && reading.extras.empty()) fuzz::fail("a reading carries a value");
        if (t && !(reading.temperature >= limits::min_temperature &&
                   reading.temperature <= limits::max_temperature)) {
            fuzz::fail("temperature in range");
        }
        if (h && !(reading.humidity >= 0 && reading.humidity <= 100)) {
            fuzz::fail("humidity in range");
        }
        if (reading.extras.size() > limits::max_extras) fuzz::fail("at most 16 extras");
        for (std::size_t i = 0; i < reading.extras.size(); ++i) {
            const auto& e = reading.extras[i];
            if (e.name.empty() || e.name.size() > limits::max_extra_name_bytes ||
                !is_clean_utf8(e.name)) {
                fuzz::fail("extra name valid");
            }
            if (!std::isfinite(e.value)) fuzz::fail("extra finite");
            for (std::size_t j = 0; j < i; ++j) {
                if (reading.extras[j].name == e.name) fuzz::fail("extra names unique");
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace rill::mqtt;
    static const MessageParser defaults(default_topic_rules());
    static const MessageParser automatic({{"#", "{device}-{key}"}},
                                         {.device_time = DeviceTime::trust});
    static const MessageParser each({{"+/+/+/+", "{1}{2}{3}{4}", PayloadFormat::plain},
                                     {"+/+/+", "{2}", PayloadFormat::esphome},
                                     {"+/#", "{device}{1}", PayloadFormat::tasmota},
                                     {"#", "{device}", PayloadFormat::shelly}},
                                    {.device_time = DeviceTime::trust});
    const auto [topic, payload] = rill::fuzz::split_two(data, size);
    const rill::Timestamp received{std::chrono::microseconds(1'764'928'800'000'000)};
    for (const MessageParser* p : {&defaults, &automatic, &each}) {
        check(p->parse(topic, payload, received));
    }
    (void)topic_matches(topic, payload);
    if (!topic_filter_problem(topic)) {
        for (std::string_view t : {payload, std::string_view("$SYS/x"), std::string_view("a/b")}) {
            (void)topic_matches(topic, t);
        }
    }
    return 0;
}
