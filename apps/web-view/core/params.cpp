#include "params.hpp"

#include <charconv>

namespace rill::web {

namespace {

constexpr std::string_view b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view in) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                           (static_cast<unsigned char>(in[i + 1]) << 8) |
                           static_cast<unsigned char>(in[i + 2]);
        out += b64[(v >> 18) & 63];
        out += b64[(v >> 12) & 63];
        out += b64[(v >> 6) & 63];
        out += b64[v & 63];
    }
    if (i + 1 == in.size()) {
        const unsigned v = static_cast<unsigned char>(in[i]) << 16;
        out += b64[(v >> 18) & 63];
        out += b64[(v >> 12) & 63];
    } else if (i + 2 == in.size()) {
        const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                           (static_cast<unsigned char>(in[i + 1]) << 8);
        out += b64[(v >> 18) & 63];
        out += b64[(v >> 12) & 63];
        out += b64[(v >> 6) & 63];
    }
    return out;
}

std::optional<std::string> unbase64url(std::string_view in) {
    if (in.size() % 4 == 1) return std::nullopt;
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (char c : in) {
        const auto p = b64.find(c);
        if (p == std::string_view::npos) return std::nullopt;
        acc = (acc << 6) | static_cast<unsigned>(p);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    // Leftover bits must be zero, so that each cursor has exactly one encoding.
    if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

template <typename T>
std::optional<T> parse_int(std::string_view s) {
    T v{};
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<Timestamp> parse_time_param(const Params& params, const std::string& name) {
    auto v = single_param(params, name);
    if (!v || v->empty()) return std::nullopt;
    auto t = parse_time(*v);
    if (!t || t->time_since_epoch().count() < 0 ||
        t->time_since_epoch().count() > limits::max_ts_us) {
        throw ParamError(name, name + " is not an RFC 3339 time or Unix seconds");
    }
    return t;
}

}  // namespace

std::string encode_cursor(const Cursor& c) {
    // "1:<ts us>:<seq>:<sensor>", version first so the format can change.
    std::string raw = "1:" + std::to_string(c.ts.time_since_epoch().count()) + ":" +
                      std::to_string(c.seq) + ":" + c.sensor;
    return base64url(raw);
}

std::optional<Cursor> decode_cursor(std::string_view token) {
    if (token.empty() || token.size() > 200) return std::nullopt;
    auto raw = unbase64url(token);
    if (!raw || raw->rfind("1:", 0) != 0) return std::nullopt;
    std::string_view s(*raw);
    s.remove_prefix(2);
    const auto c1 = s.find(':');
    if (c1 == std::string_view::npos) return std::nullopt;
    const auto c2 = s.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return std::nullopt;
    const auto ts = parse_int<std::int64_t>(s.substr(0, c1));
    const auto seq = parse_int<std::int64_t>(s.substr(c1 + 1, c2 - c1 - 1));
    Cursor c;
    c.sensor = std::string(s.substr(c2 + 1));
    if (!ts || !seq || *ts < 0 || *ts > limits::max_ts_us || *seq < 0 ||
        sensor_id_problem(c.sensor)) {
        return std::nullopt;
    }
    c.ts = Timestamp{std::chrono::microseconds{*ts}};
    c.seq = *seq;
    return c;
}

std::optional<std::string> single_param(const Params& params, const std::string& name) {
    const auto [first, last] = params.equal_range(name);
    if (first == last) return std::nullopt;
    if (std::next(first) != last) throw ParamError(name, name + " is given more than once");
    if (first->second.size() > param_limits::max_value_bytes) {
        throw ParamError(name, name + " is longer than " +
                                   std::to_string(param_limits::max_value_bytes) + " bytes");
    }
    return first->second;
}

std::optional<std::string> parse_sensor_param(const Params& params, const std::string& name) {
    auto v = single_param(params, name);
    if (!v || v->empty()) return std::nullopt;
    if (auto problem = sensor_id_problem(*v)) throw ParamError(name, name + ": " + *problem);
    return v;
}

ReadingsQuery parse_readings_query(const Params& params, long long default_limit,
                                   long long max_limit) {
    ReadingsQuery q;
    q.sensor = parse_sensor_param(params);
    q.from = parse_time_param(params, "from");
    q.to = parse_time_param(params, "to");
    if (q.from && q.to) {
        if (*q.from >= *q.to) throw ParamError("to", "to must be later than from");
        if (*q.to - *q.from > param_limits::max_range) {
            throw ParamError("to", "the range from..to is longer than 366 days");
        }
    }
    q.limit = default_limit;
    if (auto v = single_param(params, "limit"); v && !v->empty()) {
        auto n = parse_int<long long>(*v);
        if (!n || *n < 1 || *n > max_limit) {
            throw ParamError("limit",
                             "limit must be an integer from 1 to " + std::to_string(max_limit));
        }
        q.limit = *n;
    }
    if (auto v = single_param(params, "cursor"); v && !v->empty()) {
        q.cursor = decode_cursor(*v);
        if (!q.cursor) throw ParamError("cursor", "cursor is not a cursor this server issued");
    }
    return q;
}

SeriesQuery parse_series_query(const Params& params, Timestamp now) {
    SeriesQuery q;
    q.sensor = parse_sensor_param(params);
    auto from = parse_time_param(params, "from");
    auto to = parse_time_param(params, "to");
    q.to = to.value_or(now);
    q.from = from.value_or(q.to - param_limits::default_series_range);
    if (q.from >= q.to) throw ParamError(from ? "to" : "from", "to must be later than from");
    if (q.to - q.from > param_limits::max_range) {
        throw ParamError(to ? "to" : "from", "the range from..to is longer than 366 days");
    }
    if (auto v = single_param(params, "points"); v && !v->empty()) {
        auto n = parse_int<int>(*v);
        if (!n || *n < 1 || *n > param_limits::max_points) {
            throw ParamError("points", "points must be an integer from 1 to " +
                                           std::to_string(param_limits::max_points));
        }
        q.points = static_cast<std::size_t>(*n);
    }
    return q;
}

}  // namespace rill::web
