// STAND-IN for rill/mqtt_payload.hpp, plain numbers only, so that the mqtt-bridge branch links
// and its tests run. The payload helper's payload.cpp (Tasmota, ESPHome, Zigbee2MQTT) replaces
// this file wholesale at merge: put nothing else here.
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "rill/mqtt_payload.hpp"

namespace rill::mqtt {

namespace {

std::vector<std::string_view> levels(std::string_view topic) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    while (true) {
        const auto slash = topic.find('/', start);
        out.push_back(topic.substr(start, slash - start));
        if (slash == std::string_view::npos) return out;
        start = slash + 1;
    }
}

// The topic levels the filter's wildcards matched, or nothing when it does not match.
std::optional<std::vector<std::string>> match(std::string_view filter, std::string_view topic) {
    const auto f = levels(filter);
    const auto t = levels(topic);
    std::vector<std::string> captured;
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] == "#") {
            std::string rest;
            for (std::size_t j = i; j < t.size(); ++j)
                rest += (j == i ? "" : "/") + std::string(t[j]);
            captured.push_back(rest);
            return captured;
        }
        if (i >= t.size()) return std::nullopt;
        if (f[i] == "+") {
            captured.emplace_back(t[i]);
        } else if (f[i] != t[i]) {
            return std::nullopt;
        }
    }
    if (f.size() != t.size()) return std::nullopt;
    return captured;
}

std::size_t wildcards(std::string_view filter) {
    std::size_t n = 0;
    for (auto level : levels(filter))
        if (level == "+" || level == "#") ++n;
    return n;
}

std::string expand(const std::string& tmpl, const std::vector<std::string>& captured) {
    std::string out;
    for (std::size_t i = 0; i < tmpl.size(); ++i) {
        if (tmpl[i] == '{') {
            const auto close = tmpl.find('}', i);
            const auto n = std::stoul(tmpl.substr(i + 1, close - i - 1));
            out += captured.at(n - 1);
            i = close;
        } else {
            out += tmpl[i];
        }
    }
    return out;
}

}  // namespace

MessageParser::MessageParser(std::vector<TopicRule> rules) : rules_(std::move(rules)) {
    for (const auto& r : rules_) {
        if (r.filter.empty() || r.sensor.empty())
            throw std::invalid_argument("topic rule '" + r.filter + "': empty filter or sensor");
        const auto n = wildcards(r.filter);
        for (std::size_t i = 0; i < r.sensor.size(); ++i) {
            if (r.sensor[i] != '{') continue;
            const auto close = r.sensor.find('}', i);
            unsigned long k = 0;
            const auto* first = r.sensor.data() + i + 1;
            const auto* last = r.sensor.data() + (close == std::string::npos ? i + 1 : close);
            if (close == std::string::npos || std::from_chars(first, last, k).ec != std::errc{} ||
                k == 0 || k > n)
                throw std::invalid_argument("topic rule '" + r.filter + "=" + r.sensor +
                                            "': placeholder beyond the filter's wildcards");
        }
    }
}

std::vector<std::string> MessageParser::subscriptions() const {
    std::vector<std::string> out;
    for (const auto& r : rules_)
        out.push_back(r.filter);
    return out;
}

ParseResult MessageParser::parse(std::string_view topic, std::string_view payload,
                                 Timestamp received) const {
    ParseResult result;
    for (const auto& r : rules_) {
        auto captured = match(r.filter, topic);
        if (!captured) continue;
        std::string text(payload);
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
            text.pop_back();
        double value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (text.empty() || ec != std::errc{} || end != text.data() + text.size() ||
            !std::isfinite(value)) {
            result.error = "plain payload: expected a number";
            return result;
        }
        Reading reading;
        reading.sensor = expand(r.sensor, *captured);
        reading.ts = received;
        // Stand-in: the quantity not reported is 0 until not_measured is valid end to end.
        if (topic.ends_with("humidity")) {
            reading.humidity = static_cast<float>(value);
        } else {
            reading.temperature = static_cast<float>(value);
        }
        result.readings.push_back(std::move(reading));
        return result;
    }
    result.error = "topic matches no rule";
    return result;
}

TopicRule parse_topic_rule(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == text.size())
        throw std::invalid_argument("'" + std::string(text) + "' is not FILTER=SENSOR[:FORMAT]");
    TopicRule rule;
    rule.filter = std::string(text.substr(0, eq));
    std::string rest(text.substr(eq + 1));
    const auto colon = rest.rfind(':');
    if (colon != std::string::npos) {
        const auto format = rest.substr(colon + 1);
        if (format != "plain")
            throw std::invalid_argument("'" + std::string(text) + "': unknown format '" + format +
                                        "'");
        rule.format = PayloadFormat::plain;
        rest.resize(colon);
    }
    rule.sensor = rest;
    return rule;
}

std::vector<TopicRule> default_topic_rules() {
    return {parse_topic_rule("dev/+/temperature={1}:plain")};
}

}  // namespace rill::mqtt
