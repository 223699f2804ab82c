#include "rill/stream_json.hpp"

#include <charconv>
#include <cmath>

#include "rill/log.hpp"

namespace rill {

namespace {

template <typename Number>
void append_number(std::string& out, Number v) {
    if constexpr (std::is_floating_point_v<Number>) {
        if (!std::isfinite(v)) {
            out += "null";
            return;
        }
    }
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
}

void append_string(std::string& out, std::string_view s) {
    out += '"';
    append_json_escaped(out, s);
    out += '"';
}

void append_key(std::string& out, std::string_view key) {
    append_string(out, key);
    out += ':';
}

}  // namespace

void append_json(std::string& out, const Reading& r) {
    out += "{\"sensor\":";
    append_string(out, r.sensor);
    out += ",\"seq\":";
    append_number(out, r.seq);
    out += ",\"ts\":\"";
    out += to_iso8601(r.ts);
    out += "\",\"temperature\":";
    append_number(out, r.temperature);
    out += ",\"humidity\":";
    append_number(out, r.humidity);
    if (!r.extras.empty()) {
        out += ",\"extras\":{";
        bool first = true;
        for (const auto& e : r.extras) {
            if (!first) out += ',';
            first = false;
            append_key(out, e.name);
            append_number(out, e.value);
        }
        out += '}';
    }
    out += '}';
}

void append_json(std::string& out, const Gap& gap) {
    out += "{\"event\":\"gap\",\"sensor\":";
    append_string(out, gap.sensor);
    out += ",\"from\":";
    append_number(out, gap.from);
    out += ",\"to\":";
    append_number(out, gap.to);
    out += '}';
}

void append_json(std::string& out, const HeartbeatSeen& hb) {
    out += "{\"event\":\"heartbeat\",\"publisher\":";
    append_string(out, hb.heartbeat.publisher);
    out += ",\"peer\":";
    append_string(out, hb.peer_address);
    out += ",\"replay\":";
    append_string(out, hb.replay_endpoint);
    out += ",\"interval_ms\":";
    append_number(out, hb.heartbeat.interval.count());
    out += ",\"sent_at\":\"";
    out += to_iso8601(hb.heartbeat.sent_at);
    out += "\",\"newest\":{";
    bool first = true;
    for (const auto& [sensor, seq] : hb.heartbeat.newest) {
        if (!first) out += ',';
        first = false;
        append_key(out, sensor);
        append_number(out, seq);
    }
    out += "}}";
}

void append_json(std::string& out, const PublisherSilent& s) {
    out += "{\"event\":\"silent\",\"publisher\":";
    append_string(out, s.publisher);
    out += ",\"silent_for_ms\":";
    append_number(out, s.silent_for.count());
    out += '}';
}

void append_json(std::string& out, const PublisherBack& b) {
    out += "{\"event\":\"back\",\"publisher\":";
    append_string(out, b.publisher);
    out += '}';
}

}  // namespace rill
