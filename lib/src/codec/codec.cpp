#include "rill/codec.hpp"

#include <array>
#include <cmath>
#include <cstring>

#include "codec/frame.hpp"
#include "codec/msgpack_cursor.hpp"
#include "codec/msgpack_write.hpp"

namespace rill {

std::string_view to_string(DecodeErrc e) noexcept {
    switch (e) {
        case DecodeErrc::malformed:
            return "malformed";
        case DecodeErrc::trailing_bytes:
            return "trailing_bytes";
        case DecodeErrc::too_large:
            return "too_large";
        case DecodeErrc::wrong_type:
            return "wrong_type";
        case DecodeErrc::unknown_version:
            return "unknown_version";
        case DecodeErrc::unknown_kind:
            return "unknown_kind";
        case DecodeErrc::invalid_value:
            return "invalid_value";
        case DecodeErrc::topic_mismatch:
            return "topic_mismatch";
    }
    return "unknown";
}

namespace {

// ---------------------------------------------------------------------------------------------
// Encoding

using detail::pack_f32;
using detail::pack_f64;
using detail::pack_str;
using detail::Packer;
using detail::StringSink;

// A measured quantity as float32, a not-measured one (NaN) as nil.
void pack_quantity(Packer& pk, StringSink& sink, float v) {
    if (is_measured(v)) {
        pack_f32(sink, v);
    } else {
        pk.pack_nil();
    }
}

void pack_reading(Packer& pk, StringSink& sink, const Reading& r) {
    pk.pack_array(r.extras.empty() ? 4 : 5);
    pk.pack_uint64(r.seq);
    pk.pack_int64(r.ts.time_since_epoch().count());
    pack_quantity(pk, sink, r.temperature);
    pack_quantity(pk, sink, r.humidity);
    if (!r.extras.empty()) {
        pk.pack_map(static_cast<std::uint32_t>(r.extras.size()));
        for (const auto& e : r.extras) {
            pack_str(pk, e.name);
            pack_f64(sink, e.value);
        }
    }
}

}  // namespace

void encode_batch(std::span<const Reading> batch, std::string& out) {
    if (batch.empty()) throw std::invalid_argument("cannot encode an empty batch");
    if (batch.size() > limits::max_batch_readings) {
        throw std::invalid_argument("batch of " + std::to_string(batch.size()) +
                                    " readings is over the limit of " +
                                    std::to_string(limits::max_batch_readings));
    }
    const std::string& sensor = batch.front().sensor;
    std::uint64_t prev = 0;
    for (const auto& r : batch) {
        if (r.sensor != sensor) {
            throw std::invalid_argument("batch mixes sensors '" + sensor + "' and '" + r.sensor +
                                        "'");
        }
        if (r.seq <= prev) {
            throw std::invalid_argument("batch seq " + std::to_string(r.seq) + " does not follow " +
                                        std::to_string(prev));
        }
        prev = r.seq;
        if (auto problem = reading_problem(r)) {
            throw std::invalid_argument("cannot encode reading " + sensor + "/" +
                                        std::to_string(r.seq) + ": " + *problem);
        }
    }
    out.reserve(out.size() + 8 + sensor.size() + batch.size() * 24);
    detail::append_batch_header(out, sensor, batch.size());
    StringSink sink{out};
    Packer pk(sink);
    for (const auto& r : batch)
        pack_reading(pk, sink, r);
}

std::string encode_batch(std::span<const Reading> batch) {
    std::string out;
    encode_batch(batch, out);
    return out;
}

std::string encode(const Reading& reading) {
    return encode_batch(std::span(&reading, 1));
}

std::string encode_heartbeat(const Heartbeat& hb) {
    if (hb.publisher.empty() || hb.publisher.size() > limits::max_publisher_id_bytes ||
        !is_clean_utf8(hb.publisher)) {
        throw std::invalid_argument("heartbeat publisher id '" + hb.publisher +
                                    "' is not 1 to 128 bytes of clean UTF-8");
    }
    if (hb.replay_endpoint.size() > limits::max_endpoint_bytes ||
        !is_clean_utf8(hb.replay_endpoint)) {
        throw std::invalid_argument("heartbeat replay endpoint is not clean text of at most " +
                                    std::to_string(limits::max_endpoint_bytes) + " bytes");
    }
    if (hb.newest.size() > limits::max_heartbeat_sensors) {
        throw std::invalid_argument("heartbeat lists " + std::to_string(hb.newest.size()) +
                                    " sensors, more than " +
                                    std::to_string(limits::max_heartbeat_sensors));
    }
    if (hb.interval.count() <= 0 || hb.interval.count() > 86'400'000) {
        throw std::invalid_argument("heartbeat interval must be in [1 ms, 24 h]");
    }
    const auto sent = hb.sent_at.time_since_epoch().count();
    if (sent <= 0 || sent > limits::max_ts_us) {
        throw std::invalid_argument("heartbeat sent_at is outside (0, year 9999]");
    }
    for (const auto& [sensor, seq] : hb.newest) {
        if (auto problem = sensor_id_problem(sensor)) {
            throw std::invalid_argument("heartbeat: " + *problem);
        }
    }
    std::string out;
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(7);
    pk.pack_uint64(wire_version);
    pk.pack_uint8(static_cast<std::uint8_t>(PayloadKind::heartbeat));
    pack_str(pk, hb.publisher);
    pk.pack_int64(hb.sent_at.time_since_epoch().count());
    pk.pack_uint64(static_cast<std::uint64_t>(hb.interval.count()));
    pack_str(pk, hb.replay_endpoint);
    pk.pack_map(static_cast<std::uint32_t>(hb.newest.size()));
    for (const auto& [sensor, seq] : hb.newest) {
        pack_str(pk, sensor);
        pk.pack_uint64(seq);
    }
    return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Decoding
//
// A strict, bounded msgpack reader specialised for the v1 payloads. It reads the payload once,
// front to back, checking each value as it goes; nothing is allocated before the declared count
// it is for has been checked against the bytes that remain (every element takes at least one
// byte), and unknown values are skipped without building anything. Skipping does not compare a
// count with the bytes left before its loop (a nested value may hold an error that msgpack-c
// reported first); its loops are bounded all the same: counts over the parser limits are refused
// at the header, and each element takes at least one byte or throws, so a skip ends within the
// payload's length.
//
// Which error a bad payload gets is the contract the msgpack-c decoder this replaced set (the
// tests compare the two: tests/unit/codec_differential_test.cpp): a structural error anywhere
// (not msgpack, truncated, a count over the parser limits, nesting too deep, trailing bytes)
// wins over a problem with a value, and problems with values are reported in payload order. The
// single pass meets the second rule by construction; for the first, a pass that fails runs
// check_structure() over the whole payload, whose error, if any, replaces the pass's own.

using detail::Cursor;
using detail::CursorLimits;
using detail::expect_min_size;
using detail::expect_type;
using detail::fail;
using detail::get_array;
using detail::get_number;
using detail::get_str;
using detail::get_uint;
using detail::Type;
using detail::type_name;
using detail::Value;

// Parser limits, which apply to every value, known or not; the fields have tighter ones of their
// own. An array or map, even an empty one, may sit at most 8 levels deep (the payload is
// level 1).
constexpr CursorLimits parse_limits{limits::max_batch_readings, limits::max_heartbeat_sensors, 8};

[[noreturn]] void truncated() {
    fail(DecodeErrc::malformed, "payload is truncated");
}

// Throws the structural error of `payload`, if it has one: what msgpack-c's parser reported.
void check_structure(std::string_view payload) {
    Cursor c(payload, parse_limits);
    c.skip(1);
    if (c.remaining() != 0) {
        fail(DecodeErrc::trailing_bytes,
             std::to_string(c.remaining()) + " bytes follow the payload's msgpack object");
    }
}

// Runs `pass` (a single pass over the payload that throws DecodeError) under the rules above.
template <typename Pass>
auto strict(std::string_view payload, Pass&& pass) {
    if (payload.size() > limits::max_payload_bytes) {
        fail(DecodeErrc::too_large, "payload is " + std::to_string(payload.size()) +
                                        " bytes, more than " +
                                        std::to_string(limits::max_payload_bytes));
    }
    if (payload.empty()) fail(DecodeErrc::malformed, "payload is empty");
    try {
        Cursor c(payload, parse_limits);
        return pass(c);
    } catch (const DecodeError&) {
        check_structure(payload);
        throw;
    }
}

void expect_end(const Cursor& c) {
    if (c.remaining() != 0) {
        fail(DecodeErrc::trailing_bytes,
             std::to_string(c.remaining()) + " bytes follow the payload's msgpack object");
    }
}

// The next value, read as get_uint, get_number, get_str and get_array do, taking the cursor's
// fast path when it can (valid at levels up to max_depth).
std::uint64_t uint_field(Cursor& c, int level, const char* field) {
    std::uint64_t u;
    return c.fast_uint(u) ? u : get_uint(c.next(level), field);
}

double number_field(Cursor& c, int level, const char* field) {
    double f;
    return c.fast_float(f) ? f : get_number(c.next(level), field);
}

// A number or nil (not measured, returned as NaN). A float NaN on the wire is returned as it is,
// for the caller's range check to reject: only nil means "not measured".
double quantity_field(Cursor& c, int level, const char* field, bool& measured) {
    double f;
    measured = true;
    if (c.fast_float(f)) return f;
    const Value v = c.next(level);
    if (v.type == Type::nil) {
        measured = false;
        return not_measured;
    }
    return get_number(v, field);
}

std::string_view str_field(Cursor& c, int level, const char* field, std::size_t max_bytes) {
    std::string_view s;
    if (!c.fast_fixstr(s)) return get_str(c.next(level), field, max_bytes);
    if (s.size() > max_bytes) {
        fail(DecodeErrc::too_large, std::string(field) + " is " + std::to_string(s.size()) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    return s;
}

std::uint32_t array_field(Cursor& c, int level, const char* field, std::size_t min_size) {
    std::uint32_t n;
    if (!c.fast_fixarray(n)) return get_array(c.next(level), field, min_size);
    expect_min_size(n, field, min_size);
    return n;
}

// Reads the [version, kind, ...] envelope; returns the payload's element count and its kind
// (readings or heartbeat).
struct Envelope {
    std::uint32_t size;
    PayloadKind kind;
};

Envelope read_envelope(Cursor& c) {
    const std::uint32_t size = array_field(c, 1, "payload", 2);
    std::uint64_t version;
    if (!c.fast_uint(version)) {
        const Value v = c.next(2);
        if (v.type != Type::positive) {
            fail(DecodeErrc::wrong_type, std::string("payload version is a ") + type_name(v.type) +
                                             ", expected an integer");
        }
        version = v.u;
    }
    if (version != wire_version) {
        fail(DecodeErrc::unknown_version, "payload version " + std::to_string(version) +
                                              " is not supported (this "
                                              "decoder knows version " +
                                              std::to_string(wire_version) + ")");
    }
    const auto kind = uint_field(c, 2, "payload kind");
    if (kind != static_cast<std::uint64_t>(PayloadKind::readings) &&
        kind != static_cast<std::uint64_t>(PayloadKind::heartbeat)) {
        fail(DecodeErrc::unknown_kind, "payload kind " + std::to_string(kind) + " is unknown");
    }
    return {size, static_cast<PayloadKind>(kind)};
}

void expect_kind(const Envelope& e, PayloadKind want) {
    if (e.kind != want) {
        fail(DecodeErrc::wrong_type, want == PayloadKind::readings
                                         ? "payload is a heartbeat, expected readings"
                                         : "payload is readings, expected a heartbeat");
    }
}

// Sensor ids repeat from one payload to the next; the last one found valid on this thread is
// remembered so that it is not validated again.
struct LastValidSensor {
    std::size_t size = 0;
    std::array<char, limits::max_sensor_id_bytes> bytes{};
};

std::string_view checked_sensor(Cursor& c, int level) {
    const auto sensor = str_field(c, level, "sensor id", limits::max_sensor_id_bytes);
    thread_local LastValidSensor last;
    if (sensor.size() == last.size && !sensor.empty() &&
        std::memcmp(sensor.data(), last.bytes.data(), sensor.size()) == 0) {
        return sensor;
    }
    if (auto problem = sensor_id_problem(sensor)) fail(DecodeErrc::invalid_value, *problem);
    std::memcpy(last.bytes.data(), sensor.data(), sensor.size());
    last.size = sensor.size();
    return sensor;
}

void read_extras(Cursor& c, Reading& r) {
    const Value v = c.next(4);
    if (v.type == Type::nil) return;
    expect_type(v, Type::map, "extras");
    if (v.size > limits::max_extras) {
        fail(DecodeErrc::too_large, "extras has " + std::to_string(v.size) +
                                        " entries, more than " +
                                        std::to_string(limits::max_extras));
    }
    r.extras.reserve(v.size);
    for (std::uint32_t k = 0; k < v.size; ++k) {
        const auto name = str_field(c, 5, "extra name", limits::max_extra_name_bytes);
        if (name.empty() || !is_clean_utf8(name)) {
            fail(DecodeErrc::invalid_value, "extra name is not clean UTF-8 text");
        }
        for (const auto& e : r.extras) {
            if (e.name == name) {
                fail(DecodeErrc::invalid_value, "extra '" + std::string(name) + "' appears twice");
            }
        }
        const double value = number_field(c, 5, "extra value");
        if (!std::isfinite(value)) {
            fail(DecodeErrc::invalid_value, "extra '" + std::string(name) + "' is not finite");
        }
        r.extras.push_back(Extra{std::string(name), value});
    }
}

// Reads a reading's array header and seq, the part of a reading that is the payload's
// structure (a bad one voids the whole payload); returns the reading's field count.
std::uint32_t read_reading_head(Cursor& c, std::string_view sensor, Reading& r) {
    const std::uint32_t fields = array_field(c, 3, "reading", 4);
    r.sensor.assign(sensor);
    r.seq = uint_field(c, 4, "seq");
    if (r.seq == 0) fail(DecodeErrc::invalid_value, "seq is 0; sequence numbers start at 1");
    if (r.seq > limits::max_seq) {
        fail(DecodeErrc::invalid_value,
             "seq " + std::to_string(r.seq) + " is above 2^63 - 1, the largest seq");
    }
    return fields;
}

// Reads the rest of a reading after its seq: its content (timestamp, values, extras and the
// fields a later version may add).
void read_reading_body(Cursor& c, std::uint32_t fields, Reading& r) {
    std::uint64_t ts;
    if (!c.fast_uint(ts)) {
        const Value tv = c.next(4);
        if (tv.type == Type::negative) fail(DecodeErrc::invalid_value, "timestamp is negative");
        ts = get_uint(tv, "timestamp");
    }
    if (ts == 0 || ts > static_cast<std::uint64_t>(limits::max_ts_us)) {
        fail(DecodeErrc::invalid_value,
             "timestamp " + std::to_string(ts) + " us is outside (0, year 9999]");
    }
    r.ts = Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(ts)}};
    // The bounds are compared in the precision the number arrived in: a float32 widens to
    // double exactly, and the bounds are the doubles proto/reading_v1.md writes.
    // nil is "not measured"; any number, a float NaN included, goes through the range check.
    bool t_measured;
    const double t = quantity_field(c, 4, "temperature", t_measured);
    if (t_measured &&
        (!std::isfinite(t) || t < limits::min_temperature || t > limits::max_temperature)) {
        fail(DecodeErrc::invalid_value,
             "temperature " + std::to_string(t) + " is not in [-273.15, 1000]");
    }
    bool h_measured;
    const double h = quantity_field(c, 4, "humidity", h_measured);
    if (h_measured && (!std::isfinite(h) || h < 0 || h > 100)) {
        fail(DecodeErrc::invalid_value, "humidity " + std::to_string(h) + " is not in [0, 100]");
    }
    r.temperature = t_measured ? static_cast<float>(t) : not_measured;
    r.humidity = h_measured ? static_cast<float>(h) : not_measured;
    r.extras.clear();
    if (fields >= 5) read_extras(c, r);
    if (!t_measured && !h_measured && r.extras.empty()) {
        fail(DecodeErrc::invalid_value,
             "reading measures nothing: no temperature, humidity or extra");
    }
    for (std::uint32_t k = 5; k < fields; ++k)
        c.skip(4);
}

// Names the reading in an error, once, here, so that the checks stay plain.
[[noreturn]] void rethrow_for_reading(const DecodeError& e, std::size_t index) {
    throw DecodeError(e.code(), "reading " + std::to_string(index) + ": " + e.what());
}

[[noreturn]] void seq_not_increasing(std::size_t index, std::uint64_t seq, std::uint64_t prev) {
    fail(DecodeErrc::invalid_value,
         "reading " + std::to_string(index) + ": seq " + std::to_string(seq) + " does not follow " +
             std::to_string(prev) + " (seq must increase within a batch)");
}

// Reads the rest of a readings payload after its envelope, appending to `out`; returns the
// sensor id (pointing into the payload). `out` (and `invalid`) are left as they were when this
// throws.
//
// Strict (`invalid` null): any problem voids the payload. Lenient: a reading whose content
// fails (read_reading_body throws) is discarded alone and appended to `invalid`: the cursor goes
// back to the reading's first field after its seq and skips its remaining fields, which must
// still be well-formed msgpack within the parser limits (skip throws otherwise, voiding the
// payload as in strict mode).
std::string_view read_readings(Cursor& c, std::uint32_t fields, std::vector<Reading>& out,
                               std::vector<InvalidReading>* invalid) {
    if (fields < 4) fail(DecodeErrc::malformed, "readings payload has fewer than 4 fields");
    const auto sensor = checked_sensor(c, 2);
    const std::uint32_t n = array_field(c, 2, "readings", 1);
    // Each reading takes at least one byte: a count the bytes left cannot hold is truncation,
    // found here before anything is allocated for it.
    if (n > c.remaining()) truncated();
    const std::size_t first = out.size();
    const std::size_t first_invalid = invalid ? invalid->size() : 0;
    try {
        out.resize(first + n);
        std::size_t kept = 0;
        std::uint64_t prev = 0;
        for (std::uint32_t k = 0; k < n; ++k) {
            Reading& r = out[first + kept];
            if (!invalid) {
                try {
                    read_reading_body(c, read_reading_head(c, sensor, r), r);
                } catch (const DecodeError& e) {
                    rethrow_for_reading(e, k);
                }
                if (r.seq <= prev) seq_not_increasing(k, r.seq, prev);
                prev = r.seq;
                ++kept;
                continue;
            }
            std::uint32_t reading_fields = 0;
            try {
                reading_fields = read_reading_head(c, sensor, r);
            } catch (const DecodeError& e) {
                rethrow_for_reading(e, k);
            }
            if (r.seq <= prev) seq_not_increasing(k, r.seq, prev);
            prev = r.seq;
            const Cursor mark = c;
            try {
                read_reading_body(c, reading_fields, r);
                ++kept;
            } catch (const DecodeError& e) {
                c = mark;
                for (std::uint32_t f = 1; f < reading_fields; ++f)
                    c.skip(4);
                invalid->push_back(InvalidReading{std::string(sensor), r.seq, e.what()});
            }
        }
        out.resize(first + kept);
        for (std::uint32_t k = 4; k < fields; ++k)
            c.skip(2);
        expect_end(c);
    } catch (...) {
        out.resize(first);
        if (invalid) invalid->resize(first_invalid);
        throw;
    }
    return sensor;
}

Heartbeat read_heartbeat(Cursor& c, std::uint32_t fields) {
    if (fields < 7) fail(DecodeErrc::malformed, "heartbeat payload has fewer than 7 fields");
    Heartbeat hb;
    const auto publisher = get_str(c.next(2), "publisher id", limits::max_publisher_id_bytes);
    if (publisher.empty() || !is_clean_utf8(publisher)) {
        fail(DecodeErrc::invalid_value, "publisher id is not clean UTF-8 text");
    }
    hb.publisher.assign(publisher);
    const auto sent = get_uint(c.next(2), "heartbeat sent_at");
    if (sent == 0 || sent > static_cast<std::uint64_t>(limits::max_ts_us)) {
        fail(DecodeErrc::invalid_value, "heartbeat sent_at is not a timestamp in (0, year 9999]");
    }
    hb.sent_at = Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(sent)}};
    const auto interval = get_uint(c.next(2), "heartbeat interval");
    if (interval == 0 || interval > 86'400'000) {
        fail(DecodeErrc::invalid_value,
             "heartbeat interval " + std::to_string(interval) + " ms is not in [1, 86400000]");
    }
    hb.interval = std::chrono::milliseconds{static_cast<std::int64_t>(interval)};
    const auto replay = get_str(c.next(2), "replay endpoint", limits::max_endpoint_bytes);
    if (!is_clean_utf8(replay)) fail(DecodeErrc::invalid_value, "replay endpoint is not text");
    hb.replay_endpoint.assign(replay);
    const Value m = c.next(2);
    expect_type(m, Type::map, "heartbeat sensors");
    // Each entry takes at least two bytes; checked before reserving room for them.
    if (m.size > c.remaining() / 2) truncated();
    hb.newest.reserve(m.size);
    for (std::uint32_t k = 0; k < m.size; ++k) {
        const auto sensor = checked_sensor(c, 3);
        hb.newest.emplace_back(std::string(sensor), get_uint(c.next(3), "newest seq"));
    }
    for (std::uint32_t k = 7; k < fields; ++k)
        c.skip(2);
    expect_end(c);
    return hb;
}

}  // namespace

void decode_batch(std::string_view payload, std::vector<Reading>& out) {
    strict(payload, [&](Cursor& c) {
        const auto e = read_envelope(c);
        expect_kind(e, PayloadKind::readings);
        (void)read_readings(c, e.size, out, nullptr);
    });
}

void decode_batch(std::string_view payload, std::vector<Reading>& out,
                  std::vector<InvalidReading>& invalid) {
    strict(payload, [&](Cursor& c) {
        const auto e = read_envelope(c);
        expect_kind(e, PayloadKind::readings);
        (void)read_readings(c, e.size, out, &invalid);
    });
}

std::vector<Reading> decode_batch(std::string_view payload) {
    std::vector<Reading> out;
    decode_batch(payload, out);
    return out;
}

Heartbeat decode_heartbeat(std::string_view payload) {
    return strict(payload, [&](Cursor& c) {
        const auto e = read_envelope(c);
        expect_kind(e, PayloadKind::heartbeat);
        return read_heartbeat(c, e.size);
    });
}

namespace {

Message decode_message_impl(std::string_view topic, std::string_view payload,
                            std::vector<InvalidReading>* invalid) {
    return strict(payload, [&](Cursor& c) -> Message {
        const auto e = read_envelope(c);
        if (e.kind == PayloadKind::heartbeat) {
            auto hb = read_heartbeat(c, e.size);
            if (topic != heartbeat_topic) {
                fail(DecodeErrc::topic_mismatch, "a heartbeat arrived under a sensor topic");
            }
            return Message{std::move(hb)};
        }
        std::vector<Reading> batch;
        const std::size_t first_invalid = invalid ? invalid->size() : 0;
        const auto sensor = read_readings(c, e.size, batch, invalid);
        if (topic != sensor) {
            if (invalid) invalid->resize(first_invalid);
            fail(DecodeErrc::topic_mismatch,
                 "readings of sensor '" + std::string(sensor) + "' arrived under another topic");
        }
        return Message{std::move(batch)};
    });
}

}  // namespace

Message decode_message(std::string_view topic, std::string_view payload) {
    return decode_message_impl(topic, payload, nullptr);
}

Message decode_message(std::string_view topic, std::string_view payload,
                       std::vector<InvalidReading>& invalid) {
    return decode_message_impl(topic, payload, &invalid);
}

}  // namespace rill
