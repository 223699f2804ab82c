// MessageParser: MQTT topic rules and device payloads (Tasmota, ESPHome, Zigbee2MQTT, Shelly
// Gen2, plain numbers) to readings. See rill/mqtt_payload.hpp for the contract and
// docs/integrations.md ("Devices") for the formats, with the real payloads the tests use.
//
// Every function here reports a bad message as a value (an error string), never by throwing:
// nlohmann::json is only used through its non-throwing entry points (parse with
// allow_exceptions = false, is_*() before get<>()).
#include "rill/mqtt_payload.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace rill::mqtt {
namespace {

using Json = nlohmann::json;

// --- small text helpers ------------------------------------------------------------------

std::vector<std::string_view> split_levels(std::string_view s) {
    std::vector<std::string_view> levels;
    std::size_t start = 0;
    for (;;) {
        const std::size_t slash = s.find('/', start);
        if (slash == std::string_view::npos) {
            levels.push_back(s.substr(start));
            return levels;
        }
        levels.push_back(s.substr(start, slash - start));
        start = slash + 1;
    }
}

std::string join_levels(const std::vector<std::string_view>& levels, std::size_t from,
                        std::size_t to) {
    std::string out;
    for (std::size_t i = from; i < to && i < levels.size(); ++i) {
        if (i > from) out += '/';
        out += levels[i];
    }
    return out;
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return false;
        }
        if (s.size() - i <= n) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            const unsigned first_lo = k == 1 ? lo : 0x80, first_hi = k == 1 ? hi : 0xBF;
            if (cc < first_lo || cc > first_hi) return false;
        }
        i += n + 1;
    }
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    constexpr std::string_view space = " \t\r\n";
    const std::size_t first = s.find_first_not_of(space);
    if (first == std::string_view::npos) return {};
    const std::size_t last = s.find_last_not_of(space);
    return s.substr(first, last - first + 1);
}

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

// A value for a message: at most 40 bytes of the text, control bytes and non-ASCII escaped,
// so that an error string is printable whatever the device sent.
std::string quote(std::string_view s) {
    std::string out = "'";
    const std::size_t shown = std::min<std::size_t>(s.size(), 40);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c >= 0x7F || c == '\'') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    if (shown < s.size()) out += "...";
    return out + "'";
}

std::string number_text(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// A bare decimal number as devices print it ("21.5", "-3", "1.2e3", surrounded by
// whitespace); not "nan", "inf", hex, a leading '+' or '.', or anything after the number.
std::optional<double> parse_bare_number(std::string_view text, std::string& error) {
    const std::string_view s = trim(text);
    if (s.empty()) {
        error = "is empty or whitespace, expected a number";
        return std::nullopt;
    }
    std::size_t i = 0;
    if (s[i] == '-') ++i;
    const std::size_t int_start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9')
        ++i;
    bool ok = i > int_start;
    if (ok && i < s.size() && s[i] == '.') {
        const std::size_t frac_start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9')
            ++i;
        ok = i > frac_start;
    }
    if (ok && i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        const std::size_t exp_start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9')
            ++i;
        ok = i > exp_start;
    }
    if (!ok || i != s.size()) {
        error = quote(s) + " is not a number";
        return std::nullopt;
    }
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
        error = quote(s) + " is not a finite number";
        return std::nullopt;
    }
    return v;
}

// Nesting depth of a JSON text (brackets outside strings), stopping once above `limit`.
std::size_t json_depth(std::string_view s, std::size_t limit) noexcept {
    std::size_t depth = 0, deepest = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit) return deepest;
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

// --- what a format makes of a message ------------------------------------------------------

// One reading in the making: the part of the device it comes from and its values (NaN when not
// reported), before the sensor id is made and the values are checked.
struct Item {
    std::string key;      // Tasmota sensor name, Shelly component index; empty otherwise
    bool suffix = false;  // append "-<key>" to the sensor id when the template has no {key}
    double temperature = std::nan("");
    double humidity = std::nan("");
    std::vector<Extra> extras;
    std::string where;  // names the item in error messages ("AM2301", "temperature:0")
};

struct Outcome {
    std::vector<Item> items;
    std::string error;
    std::string ignored;          // non-empty: the message carries no reading
    std::string device;           // what {device} stands for
    std::optional<Timestamp> ts;  // the device's own time, if it sent one that parses
};

Outcome error_outcome(std::string why) {
    Outcome o;
    o.error = std::move(why);
    return o;
}

Outcome ignored_outcome(std::string why) {
    Outcome o;
    o.ignored = std::move(why);
    return o;
}

// --- quantities named by a topic level (plain, ESPHome) ------------------------------------

enum class Quantity { temperature, humidity, extra };

// The level itself or its last word (after '_', '-', '.' or ' ') names the quantity, case
// insensitive: temperature / temp, humidity / hum / humi / rh. docs/integrations.md lists them.
Quantity classify_quantity(std::string_view name) {
    const std::string lower = lower_ascii(name);
    const std::size_t cut = lower.find_last_of("_-. ");
    const std::string_view last = cut == std::string::npos
                                      ? std::string_view(lower)
                                      : std::string_view(lower).substr(cut + 1);
    for (std::string_view word : {std::string_view(lower), last}) {
        if (word == "temperature" || word == "temp") return Quantity::temperature;
        if (word == "humidity" || word == "hum" || word == "humi" || word == "rh") {
            return Quantity::humidity;
        }
    }
    return Quantity::extra;
}

std::optional<std::string> extra_name_problem(std::string_view name) {
    if (name.empty() || name.size() > limits::max_extra_name_bytes || !is_clean_utf8(name)) {
        return "extra name " + quote(name) + " is not 1 to 32 bytes of clean UTF-8";
    }
    return std::nullopt;
}

Outcome single_number(std::string_view quantity_level, std::string_view payload, std::string device,
                      const char* format) {
    std::string why;
    const auto value = parse_bare_number(payload, why);
    if (!value) return error_outcome(std::string(format) + " payload " + why);
    Outcome o;
    o.device = std::move(device);
    Item item;
    item.where = std::string(format) + " " + quote(quantity_level);
    switch (classify_quantity(quantity_level)) {
        case Quantity::temperature:
            item.temperature = *value;
            break;
        case Quantity::humidity:
            item.humidity = *value;
            break;
        case Quantity::extra:
            if (auto p = extra_name_problem(quantity_level)) {
                return error_outcome(std::string(format) + ": topic level names no known " +
                                     "quantity and is no valid extra: " + *p);
            }
            item.extras.push_back({std::string(quantity_level), *value});
            break;
    }
    o.items.push_back(std::move(item));
    return o;
}

Outcome parse_plain(const std::vector<std::string_view>& levels, std::string_view payload) {
    return single_number(levels.back(), payload, join_levels(levels, 0, levels.size() - 1),
                         "plain");
}

// ESPHome: <prefix>/sensor/<name>/state holds a number; <prefix>/status holds online/offline;
// other components (binary_sensor, switch, text_sensor, ...) carry no reading.
Outcome parse_esphome(const std::vector<std::string_view>& levels, std::string_view payload) {
    const std::size_t n = levels.size();
    if (n >= 2 && levels[n - 1] == "status") {
        return ignored_outcome("esphome status topic (online/offline)");
    }
    if (n < 3 || levels[n - 1] != "state") {
        return ignored_outcome("esphome topic is not <node>/sensor/<name>/state");
    }
    if (levels[n - 3] != "sensor") {
        return ignored_outcome("esphome " + quote(levels[n - 3]) + " component carries no reading");
    }
    return single_number(levels[n - 2], payload, join_levels(levels, 0, n - 3), "esphome");
}

// --- JSON formats --------------------------------------------------------------------------

// Parses a JSON object payload or says why it cannot.
std::optional<Json> parse_json_object(std::string_view payload, const char* format,
                                      std::string& error) {
    if (json_depth(payload, max_json_depth) > max_json_depth) {
        error = std::string(format) + " payload: JSON nested deeper than " +
                std::to_string(max_json_depth) + " levels";
        return std::nullopt;
    }
    Json j = Json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        error = std::string(format) + " payload: not valid JSON";
        return std::nullopt;
    }
    if (!j.is_object()) {
        error = std::string(format) + " payload: expected a JSON object";
        return std::nullopt;
    }
    return j;
}

enum class FieldRead { absent, value, error };

// A temperature or humidity field: a number, or null / absent (not reported). Anything else
// (a string such as "21.5", a bool, an object) is an error naming the field.
FieldRead read_quantity(const Json& object, const char* field, const std::string& where,
                        double& out, std::string& error) {
    const auto it = object.find(field);
    if (it == object.end() || it->is_null()) return FieldRead::absent;
    if (!it->is_number()) {
        error = where + "." + field + " is " + (it->is_string() ? "a string" : "not a number") +
                ", expected a number";
        return FieldRead::error;
    }
    out = it->get<double>();
    if (!std::isfinite(out)) {
        error = where + "." + field + " is not a finite number";
        return FieldRead::error;
    }
    return FieldRead::value;
}

// Numbers of `object` other than the `skip`ped names as extras, named by `rename`: the first
// 16 valid ones in the order of their JSON names (byte order); strings, bools, nulls, objects,
// arrays and names that are no valid extra name are left out.
template <typename Rename>
bool collect_extras(const Json& object, std::initializer_list<std::string_view> skip, Rename rename,
                    const std::string& where, std::vector<Extra>& extras, std::string& error) {
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (!it->is_number()) continue;
        const std::string& key = it.key();
        if (std::find(skip.begin(), skip.end(), key) != skip.end()) continue;
        std::string name = rename(key);
        if (extra_name_problem(name)) continue;
        // Two JSON names may give one extra name ("DewPoint" and "dew_point"): the first stays.
        if (std::any_of(extras.begin(), extras.end(),
                        [&](const Extra& e) { return e.name == name; })) {
            continue;
        }
        const double v = it->get<double>();
        if (!std::isfinite(v)) {
            error = where + "." + key + " is not a finite number";
            return false;
        }
        if (extras.size() < limits::max_extras) extras.push_back({std::move(name), v});
    }
    return true;
}

double fahrenheit_to_celsius(double f) {
    return (f - 32.0) * 5.0 / 9.0;
}

// "DewPoint" -> "dew_point", "SeaPressure" -> "sea_pressure", "Pressure" -> "pressure".
std::string snake_case(std::string_view name) {
    std::string out;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool upper = c >= 'A' && c <= 'Z';
        if (upper && i > 0) {
            const char p = name[i - 1];
            if ((p >= 'a' && p <= 'z') || (p >= '0' && p <= '9')) out += '_';
        }
        out += upper ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return out;
}

bool ends_with_index(std::string_view key) {
    const std::size_t dash = key.rfind('-');
    if (dash == std::string_view::npos || dash + 1 == key.size()) return false;
    return std::all_of(key.begin() + static_cast<std::ptrdiff_t>(dash) + 1, key.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

// Tasmota's {device}: the level after `tele` (or `stat`) when the FullTopic is
// %prefix%/%topic%/, the level before it when it is %topic%/%prefix%/; without such a level,
// the level before the last.
std::string tasmota_device(const std::vector<std::string_view>& levels) {
    const std::size_t n = levels.size();
    for (std::size_t i = 0; i + 1 < n; ++i) {
        if (levels[i] != "tele" && levels[i] != "stat") continue;
        if (i + 2 < n) return std::string(levels[i + 1]);
        if (i > 0) return std::string(levels[i - 1]);
    }
    return n >= 2 ? std::string(levels[n - 2]) : std::string();
}

// Tasmota: tele/<device>/SENSOR (and stat/<device>/STATUS8 or STATUS10, which wrap the same
// object in "StatusSNS"): one reading per sensor object holding Temperature or Humidity.
Outcome parse_tasmota(const std::vector<std::string_view>& levels, std::string_view payload) {
    const std::string_view last = levels.back();
    if (last != "SENSOR" && last != "STATUS8" && last != "STATUS10") {
        return ignored_outcome("tasmota " + quote(last) + " topic carries no reading");
    }
    std::string why;
    auto parsed = parse_json_object(payload, "tasmota", why);
    if (!parsed) return error_outcome(why);
    const Json* root = &*parsed;
    if (const auto sns = root->find("StatusSNS"); sns != root->end() && sns->is_object()) {
        root = &*sns;
    }
    Outcome o;
    o.device = tasmota_device(levels);
    bool fahrenheit = false;
    if (const auto unit = root->find("TempUnit"); unit != root->end()) {
        if (!unit->is_string() || (*unit != "C" && *unit != "F")) {
            return error_outcome("tasmota payload: TempUnit is not \"C\" or \"F\"");
        }
        fahrenheit = *unit == "F";
    }
    if (const auto time = root->find("Time"); time != root->end() && time->is_string()) {
        o.ts = parse_time(time->get_ref<const std::string&>());
    }
    for (auto it = root->begin(); it != root->end(); ++it) {
        if (!it->is_object()) continue;
        Item item;
        item.key = it.key();
        item.where = "tasmota " + quote(item.key);
        const auto t = read_quantity(*it, "Temperature", item.where, item.temperature, why);
        const auto h = read_quantity(*it, "Humidity", item.where, item.humidity, why);
        if (t == FieldRead::error || h == FieldRead::error) return error_outcome(why);
        if (t == FieldRead::absent && h == FieldRead::absent) continue;
        if (!collect_extras(*it, {"Temperature", "Humidity"}, snake_case, item.where, item.extras,
                            why)) {
            return error_outcome(why);
        }
        if (fahrenheit) {
            if (t == FieldRead::value) item.temperature = fahrenheit_to_celsius(item.temperature);
            for (auto& e : item.extras) {
                if (e.name == "dew_point") e.value = fahrenheit_to_celsius(e.value);
            }
        }
        o.items.push_back(std::move(item));
    }
    if (o.items.empty()) {
        return ignored_outcome("tasmota payload has no sensor with Temperature or Humidity");
    }
    for (auto& item : o.items) {
        item.suffix = o.items.size() > 1 || ends_with_index(item.key);
    }
    return o;
}

// Zigbee2MQTT: <base>/<friendly name> holds the device's JSON state; <base>/bridge/... is the
// bridge's own, <name>/availability, <name>/set, <name>/get are not states.
Outcome parse_zigbee2mqtt(const std::vector<std::string_view>& levels, std::size_t base_levels,
                          std::string_view payload) {
    // A filter starting with a wildcard, or naming one device in full: the base topic is the
    // first level (`zigbee2mqtt/`).
    if (base_levels == 0 || base_levels >= levels.size()) base_levels = 1;
    if (levels.size() <= base_levels) {
        return ignored_outcome("zigbee2mqtt base topic without a device");
    }
    if (levels[base_levels] == "bridge") {
        return ignored_outcome("zigbee2mqtt bridge topic");
    }
    std::size_t end = levels.size();
    const std::string_view last = levels.back();
    if (last == "availability") return ignored_outcome("zigbee2mqtt availability topic");
    if (last == "set" || last == "get") return ignored_outcome("zigbee2mqtt command topic");
    if (end >= base_levels + 2 && (levels[end - 2] == "set" || levels[end - 2] == "get")) {
        return ignored_outcome("zigbee2mqtt command topic");
    }
    std::string why;
    auto parsed = parse_json_object(payload, "zigbee2mqtt", why);
    if (!parsed) return error_outcome(why);
    const Json& j = *parsed;
    Outcome o;
    o.device = join_levels(levels, base_levels, end);
    Item item;
    item.where = "zigbee2mqtt " + quote(o.device);
    const auto t = read_quantity(j, "temperature", item.where, item.temperature, why);
    const auto h = read_quantity(j, "humidity", item.where, item.humidity, why);
    if (t == FieldRead::error || h == FieldRead::error) return error_outcome(why);
    if (t == FieldRead::absent && h == FieldRead::absent) {
        return ignored_outcome("zigbee2mqtt payload has no temperature or humidity");
    }
    if (!collect_extras(
            j, {"temperature", "humidity", "last_seen"}, [](const std::string& k) { return k; },
            item.where, item.extras, why)) {
        return error_outcome(why);
    }
    if (const auto seen = j.find("last_seen"); seen != j.end()) {
        if (seen->is_string()) {
            o.ts = parse_time(seen->get_ref<const std::string&>());
        } else if (seen->is_number_integer() || seen->is_number_unsigned()) {
            const double ms = seen->get<double>();  // epoch milliseconds
            if (ms > 0 && ms <= static_cast<double>(limits::max_ts_us / 1000)) {
                o.ts = Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(ms) * 1000}};
            }
        }
    }
    o.items.push_back(std::move(item));
    return o;
}

// "temperature:0" -> 0 when `name` is `kind` followed by ':' and 1 to 3 digits.
std::optional<int> component_index(std::string_view name, std::string_view kind) {
    if (name.size() <= kind.size() + 1 || name.substr(0, kind.size()) != kind ||
        name[kind.size()] != ':') {
        return std::nullopt;
    }
    const std::string_view digits = name.substr(kind.size() + 1);
    if (digits.size() > 3) return std::nullopt;
    int v = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

// Shelly Gen2+: <id>/events/rpc carries JSON-RPC notifications (NotifyStatus,
// NotifyFullStatus) whose params hold components ("temperature:0": {"tC": ...}, "humidity:0":
// {"rh": ...}, "devicepower:0": {"battery": {"V": ..., "percent": ...}}); <id>/status/<component>
// carries one component's status. One reading per component index.
Outcome parse_shelly(const std::vector<std::string_view>& levels, std::string_view payload) {
    const std::size_t n = levels.size();
    const bool rpc = n >= 3 && levels[n - 2] == "events" && levels[n - 1] == "rpc";
    const bool status = n >= 3 && levels[n - 2] == "status";
    if (!rpc && !status) {
        return ignored_outcome("shelly topic is not <id>/events/rpc or <id>/status/<component>");
    }
    if (status && !component_index(levels[n - 1], "temperature") &&
        !component_index(levels[n - 1], "humidity")) {
        return ignored_outcome("shelly " + quote(levels[n - 1]) + " status carries no reading");
    }
    std::string why;
    auto parsed = parse_json_object(payload, "shelly", why);
    if (!parsed) return error_outcome(why);
    Outcome o;
    o.device = join_levels(levels, 0, n - 2);
    Json components;
    const Json* params = nullptr;
    if (rpc) {
        const auto method = parsed->find("method");
        if (method == parsed->end() || !method->is_string()) {
            return error_outcome("shelly payload: no \"method\" string");
        }
        if (*method != "NotifyStatus" && *method != "NotifyFullStatus") {
            return ignored_outcome("shelly " + quote(method->get_ref<const std::string&>()) +
                                   " notification carries no reading");
        }
        const auto p = parsed->find("params");
        if (p == parsed->end() || !p->is_object()) {
            return error_outcome("shelly payload: no \"params\" object");
        }
        params = &*p;
        if (const auto ts = params->find("ts"); ts != params->end() && ts->is_number()) {
            const double secs = ts->get<double>();
            if (secs > 0 && secs < 2.5e11) {
                o.ts = Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(secs * 1e6)}};
            }
        }
    } else {
        components[std::string(levels[n - 1])] = std::move(*parsed);
        params = &components;
    }
    std::map<int, Item> by_index;
    std::optional<Json> power;
    for (auto it = params->begin(); it != params->end(); ++it) {
        if (!it->is_object()) continue;
        const auto t = component_index(it.key(), "temperature");
        const auto h = component_index(it.key(), "humidity");
        if (auto d = component_index(it.key(), "devicepower"); d && *d == 0) power = *it;
        if (!t && !h) continue;
        const int index = t ? *t : *h;
        Item& item = by_index[index];
        item.key = std::to_string(index);
        item.suffix = index != 0;
        item.where = "shelly " + quote(it.key());
        const auto r = t ? read_quantity(*it, "tC", item.where, item.temperature, why)
                         : read_quantity(*it, "rh", item.where, item.humidity, why);
        if (r == FieldRead::error) return error_outcome(why);
    }
    for (auto& [index, item] : by_index) {
        if (std::isnan(item.temperature) && std::isnan(item.humidity)) continue;
        if (index == 0 && power) {
            if (const auto b = power->find("battery"); b != power->end() && b->is_object()) {
                if (const auto v = b->find("V"); v != b->end() && v->is_number()) {
                    item.extras.push_back({"battery_v", v->get<double>()});
                }
                if (const auto p = b->find("percent"); p != b->end() && p->is_number()) {
                    item.extras.push_back({"battery_percent", p->get<double>()});
                }
            }
        }
        o.items.push_back(std::move(item));
    }
    if (o.items.empty()) return ignored_outcome("shelly message has no temperature or humidity");
    return o;
}

// --- automatic: the format from the topic's shape, then the payload -----------------------

bool is_tasmota_type(std::string_view level) {
    static constexpr std::array<std::string_view, 11> types = {
        "SENSOR", "STATE", "LWT",   "RESULT", "STATUS8", "STATUS10",
        "INFO1",  "INFO2", "INFO3", "UPTIME", "MARGINS"};
    return std::find(types.begin(), types.end(), level) != types.end();
}

PayloadFormat detect_format(const std::vector<std::string_view>& levels, std::string_view payload) {
    const std::size_t n = levels.size();
    if (n >= 2 && is_tasmota_type(levels[n - 1])) return PayloadFormat::tasmota;
    if (n >= 3 && levels[n - 1] == "state") return PayloadFormat::esphome;
    if (n >= 3 && ((levels[n - 2] == "events" && levels[n - 1] == "rpc") ||
                   (levels[n - 2] == "status" && (component_index(levels[n - 1], "temperature") ||
                                                  component_index(levels[n - 1], "humidity"))))) {
        return PayloadFormat::shelly;
    }
    if (n >= 2 && levels[n - 1] == "status") {
        const std::string_view p = trim(payload);
        if (p == "online" || p == "offline") return PayloadFormat::esphome;
    }
    if (levels[0] == "zigbee2mqtt") return PayloadFormat::zigbee2mqtt;
    if (const std::string_view p = trim(payload); !p.empty() && p.front() == '{') {
        return PayloadFormat::zigbee2mqtt;
    }
    return PayloadFormat::plain;
}

// --- topic filters and sensor templates ---------------------------------------------------

struct TopicMatch {
    std::vector<std::string> captures;  // what each wildcard matched, in filter order
    std::size_t literal_prefix = 0;     // levels before the filter's first wildcard
};

std::optional<TopicMatch> match_topic(std::string_view filter, std::string_view topic) {
    if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
        (filter.front() == '+' || filter.front() == '#')) {
        return std::nullopt;
    }
    const auto f = split_levels(filter);
    const auto t = split_levels(topic);
    TopicMatch m;
    bool literal = true;
    for (std::size_t i = 0; i < f.size(); ++i) {
        if (f[i] == "#") {
            m.captures.push_back(i <= t.size() ? join_levels(t, i, t.size()) : std::string());
            return m;
        }
        if (i >= t.size()) return std::nullopt;
        if (f[i] == "+") {
            literal = false;
            m.captures.emplace_back(t[i]);
        } else if (f[i] != t[i]) {
            return std::nullopt;
        } else if (literal) {
            ++m.literal_prefix;
        }
    }
    if (f.size() != t.size()) return std::nullopt;
    return m;
}

std::size_t wildcard_count(std::string_view filter) {
    std::size_t count = 0;
    for (std::string_view level : split_levels(filter)) {
        if (level == "+" || level == "#") ++count;
    }
    return count;
}

// Expands a sensor template, or says why it cannot (an unknown or out-of-range placeholder).
// `device` and `key` are null when checking a rule without a message.
struct Expansion {
    std::string text;
    bool used_key = false;
    std::string error;
};

Expansion expand_template(std::string_view tmpl, const std::vector<std::string>* captures,
                          std::size_t wildcards, const std::string* device,
                          const std::string* key) {
    Expansion e;
    std::size_t i = 0;
    while (i < tmpl.size()) {
        const char c = tmpl[i];
        if (c != '{') {
            if (c == '}') {
                e.error = "'}' without '{' at byte " + std::to_string(i);
                return e;
            }
            e.text += c;
            ++i;
            continue;
        }
        const std::size_t close = tmpl.find('}', i);
        if (close == std::string_view::npos) {
            e.error = "'{' without '}' at byte " + std::to_string(i);
            return e;
        }
        const std::string_view name = tmpl.substr(i + 1, close - i - 1);
        if (name == "device") {
            if (device) e.text += *device;
        } else if (name == "key") {
            e.used_key = true;
            if (key) e.text += *key;
        } else if (!name.empty() && name.size() <= 3 &&
                   std::all_of(name.begin(), name.end(),
                               [](char d) { return d >= '0' && d <= '9'; })) {
            const std::size_t index = std::stoul(std::string(name));
            if (index == 0 || index > wildcards) {
                e.error = "placeholder {" + std::string(name) + "} but the filter has " +
                          std::to_string(wildcards) + " wildcard(s)";
                return e;
            }
            if (captures) e.text += (*captures)[index - 1];
        } else {
            e.error =
                "unknown placeholder {" + std::string(name) + "} (known: {1}.., {device}, {key})";
            return e;
        }
        i = close + 1;
    }
    return e;
}

// The value checks of rill's decoders (rill/reading.hpp limits), on the numbers as the device
// sent them (double), so nothing out of range reaches a reading.
std::optional<std::string> value_problem(const Item& item) {
    if (!std::isnan(item.temperature) && (item.temperature < limits::min_temperature ||
                                          item.temperature > limits::max_temperature)) {
        return item.where + ": temperature " + number_text(item.temperature) +
               " °C is outside [-273.15, 1000]";
    }
    if (!std::isnan(item.humidity) && (item.humidity < 0 || item.humidity > 100)) {
        return item.where + ": humidity " + number_text(item.humidity) + " % is outside [0, 100]";
    }
    for (const auto& extra : item.extras) {
        if (!std::isfinite(extra.value)) {
            return item.where + ": extra " + quote(extra.name) + " is not a finite number";
        }
    }
    return std::nullopt;
}

bool valid_ts(Timestamp ts) {
    const auto us = ts.time_since_epoch().count();
    return us > 0 && us <= limits::max_ts_us;
}

}  // namespace

// --- public API ----------------------------------------------------------------------------

std::string_view format_name(PayloadFormat format) noexcept {
    switch (format) {
        case PayloadFormat::automatic:
            return "automatic";
        case PayloadFormat::tasmota:
            return "tasmota";
        case PayloadFormat::esphome:
            return "esphome";
        case PayloadFormat::zigbee2mqtt:
            return "zigbee2mqtt";
        case PayloadFormat::plain:
            return "plain";
        case PayloadFormat::shelly:
            return "shelly";
    }
    return "unknown";
}

std::optional<std::string> topic_filter_problem(std::string_view filter) {
    if (filter.empty()) return std::string("topic filter is empty");
    if (filter.size() > 65535) return std::string("topic filter is longer than 65535 bytes");
    if (filter.find('\0') != std::string_view::npos) {
        return std::string("topic filter holds a NUL byte");
    }
    if (!valid_utf8(filter)) return std::string("topic filter is not valid UTF-8");
    const auto levels = split_levels(filter);
    for (std::size_t i = 0; i < levels.size(); ++i) {
        const std::string_view level = levels[i];
        if (level.find('#') != std::string_view::npos && (level != "#" || i + 1 != levels.size())) {
            return "topic filter " + quote(filter) + ": '#' must be the whole last level";
        }
        if (level.find('+') != std::string_view::npos && level != "+") {
            return "topic filter " + quote(filter) + ": '+' must be a whole level";
        }
    }
    return std::nullopt;
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
    try {
        return match_topic(filter, topic).has_value();
    } catch (...) {  // std::bad_alloc only
        return false;
    }
}

MessageParser::MessageParser(std::vector<TopicRule> rules, ParserOptions options)
    : rules_(std::move(rules)), options_(options) {
    for (std::size_t i = 0; i < rules_.size(); ++i) {
        const TopicRule& r = rules_[i];
        const std::string name =
            "topic rule " + std::to_string(i + 1) + " (" + r.filter + "=" + r.sensor + ")";
        if (auto p = topic_filter_problem(r.filter)) {
            throw std::invalid_argument(name + ": " + *p);
        }
        if (r.sensor.empty()) throw std::invalid_argument(name + ": the sensor template is empty");
        const auto e =
            expand_template(r.sensor, nullptr, wildcard_count(r.filter), nullptr, nullptr);
        if (!e.error.empty()) throw std::invalid_argument(name + ": " + e.error);
    }
}

std::vector<std::string> MessageParser::subscriptions() const {
    std::vector<std::string> out;
    out.reserve(rules_.size());
    for (const auto& r : rules_)
        out.push_back(r.filter);
    return out;
}

ParseResult MessageParser::parse(std::string_view topic, std::string_view payload,
                                 Timestamp received) const {
    ParseResult result;
    if (topic.empty() || topic.size() > 65535 || !valid_utf8(topic) ||
        topic.find_first_of(std::string_view("+#\0", 3)) != std::string_view::npos) {
        result.error = "topic " + quote(topic) + " is not a valid MQTT topic name";
        return result;
    }
    const TopicRule* rule = nullptr;
    std::optional<TopicMatch> match;
    for (const auto& r : rules_) {
        match = match_topic(r.filter, topic);
        if (match) {
            rule = &r;
            break;
        }
    }
    if (!rule) {
        result.error = "topic matches no rule";  // the bridge logs the topic with it
        return result;
    }
    if (payload.size() > max_payload_bytes) {
        result.error = "payload is " + std::to_string(payload.size()) + " bytes, more than " +
                       std::to_string(max_payload_bytes);
        return result;
    }
    if (payload.empty()) {
        result.error = "payload is empty";
        return result;
    }
    if (!valid_utf8(payload)) {
        result.error = "payload is not valid UTF-8";
        return result;
    }
    const auto levels = split_levels(topic);
    PayloadFormat format = rule->format;
    if (format == PayloadFormat::automatic) format = detect_format(levels, payload);
    Outcome o;
    switch (format) {
        case PayloadFormat::tasmota:
            o = parse_tasmota(levels, payload);
            break;
        case PayloadFormat::esphome:
            o = parse_esphome(levels, payload);
            break;
        case PayloadFormat::zigbee2mqtt:
            o = parse_zigbee2mqtt(levels, match->literal_prefix, payload);
            break;
        case PayloadFormat::shelly:
            o = parse_shelly(levels, payload);
            break;
        case PayloadFormat::plain:
        case PayloadFormat::automatic:
            o = parse_plain(levels, payload);
            break;
    }
    if (!o.error.empty()) {
        result.error = std::move(o.error);
        return result;
    }
    if (!o.ignored.empty()) {
        result.ignored = true;
        result.ignored_reason = std::move(o.ignored);
        return result;
    }
    Timestamp ts = received;
    if (options_.device_time == DeviceTime::trust && o.ts && valid_ts(*o.ts)) ts = *o.ts;
    const std::size_t wildcards = wildcard_count(rule->filter);
    for (auto& item : o.items) {
        if (auto p = value_problem(item)) {
            result.readings.clear();
            result.error = std::move(*p);
            return result;
        }
        auto e = expand_template(rule->sensor, &match->captures, wildcards, &o.device, &item.key);
        if (!e.used_key && item.suffix) e.text += "-" + item.key;
        if (auto p = sensor_id_problem(e.text)) {
            result.readings.clear();
            result.error =
                "topic " + quote(topic) + " gives sensor id " + quote(e.text) + ": " + *p;
            return result;
        }
        Reading r;
        r.sensor = std::move(e.text);
        r.ts = ts;
        r.temperature =
            std::isnan(item.temperature) ? not_measured : static_cast<float>(item.temperature);
        r.humidity = std::isnan(item.humidity) ? not_measured : static_cast<float>(item.humidity);
        r.extras = std::move(item.extras);
        result.readings.push_back(std::move(r));
    }
    return result;
}

TopicRule parse_topic_rule(std::string_view text) {
    const std::size_t eq = text.find('=');
    if (eq == std::string_view::npos) {
        throw std::invalid_argument("topic rule " + quote(text) +
                                    ": expected FILTER=SENSOR[:FORMAT]");
    }
    TopicRule rule;
    rule.filter = std::string(text.substr(0, eq));
    std::string_view sensor = text.substr(eq + 1);
    const std::size_t colon = sensor.rfind(':');
    if (colon != std::string_view::npos) {
        const std::string_view name = sensor.substr(colon + 1);
        if (name == "automatic" || name == "auto") {
            rule.format = PayloadFormat::automatic;
        } else if (name == "tasmota") {
            rule.format = PayloadFormat::tasmota;
        } else if (name == "esphome") {
            rule.format = PayloadFormat::esphome;
        } else if (name == "zigbee2mqtt" || name == "z2m") {
            rule.format = PayloadFormat::zigbee2mqtt;
        } else if (name == "shelly") {
            rule.format = PayloadFormat::shelly;
        } else if (name == "plain") {
            rule.format = PayloadFormat::plain;
        } else {
            throw std::invalid_argument(
                "topic rule " + quote(text) + ": unknown format " + quote(name) +
                " (known: automatic, tasmota, esphome, zigbee2mqtt, shelly, plain)");
        }
        sensor = sensor.substr(0, colon);
    }
    rule.sensor = std::string(sensor);
    if (rule.filter.empty())
        throw std::invalid_argument("topic rule " + quote(text) + ": empty filter");
    if (rule.sensor.empty()) {
        throw std::invalid_argument("topic rule " + quote(text) + ": empty sensor template");
    }
    // The same checks as MessageParser's, so that a bad flag is reported while parsing flags.
    (void)MessageParser({rule});
    return rule;
}

std::vector<TopicRule> default_topic_rules() {
    return {
        {"tele/+/SENSOR", "{1}", PayloadFormat::tasmota},
        {"+/sensor/+/state", "{1}", PayloadFormat::esphome},
        {"zigbee2mqtt/#", "{device}", PayloadFormat::zigbee2mqtt},
        {"+/events/rpc", "{1}", PayloadFormat::shelly},
    };
}

}  // namespace rill::mqtt
