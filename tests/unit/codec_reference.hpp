// codec_reference.hpp: the decoder rill used before lib/src/codec.cpp got its own msgpack
// reader: msgpack-c parses the payload into an object tree, which is then walked. Kept, for tests
// only, as the reference the differential test (codec_differential_test.cpp) compares the
// hand-written decoder against. Same public behaviour as rill::decode_batch, decode_heartbeat
// and decode_message at the commit that replaced it.
#pragma once

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include "rill/codec.hpp"

namespace rill::reference {

[[noreturn]] inline void fail(DecodeErrc code, const std::string& what) {
    throw DecodeError(code, what);
}

// Bounds for msgpack-c's parser; our own walk checks the tighter per-field limits. Strings are
// referenced in place (never copied), so their size is checked by the walk.
inline const msgpack::unpack_limit parse_limits(
    /*array=*/limits::max_batch_readings, /*map=*/limits::max_heartbeat_sensors,
    /*str=*/limits::max_payload_bytes, /*bin=*/limits::max_payload_bytes,
    /*ext=*/limits::max_payload_bytes, /*depth=*/8);

inline bool reference_strings(msgpack::type::object_type, std::size_t, void*) {
    return true;
}

// A parsed payload. Its objects live in a per-thread zone that is reused from one payload to
// the next (a fresh zone per payload was a third of the decoding time); the destructor releases
// them. Decoding never nests, so one zone per thread is enough.
class Parsed {
  public:
    Parsed() = default;
    Parsed(const Parsed&) = delete;
    Parsed& operator=(const Parsed&) = delete;
    ~Parsed() { zone().clear(); }
    [[nodiscard]] const msgpack::object& get() const noexcept { return object_; }
    static msgpack::zone& zone() {
        thread_local msgpack::zone z;
        return z;
    }
    msgpack::object object_;
};

// Parses `payload` into an object tree in the thread's zone; rejects truncation, trailing bytes
// and sizes over the parser limits.
inline void parse(std::string_view payload, Parsed& out) {
    if (payload.size() > limits::max_payload_bytes) {
        fail(DecodeErrc::too_large, "payload is " + std::to_string(payload.size()) +
                                        " bytes, more than " +
                                        std::to_string(limits::max_payload_bytes));
    }
    if (payload.empty()) fail(DecodeErrc::malformed, "payload is empty");
    std::size_t off = 0;
    bool referenced = false;
    try {
        out.object_ = msgpack::unpack(Parsed::zone(), payload.data(), payload.size(), off,
                                      referenced, reference_strings, nullptr, parse_limits);
    } catch (const msgpack::ext_size_overflow& e) {
        // msgpack-c with a 32-bit size_t (armhf) adds the type byte to an ext 32 of 0xffffffff
        // bytes, wraps to 0 and reports the limit; with a 64-bit one it finds the payload
        // truncated. rill's decoder says truncated on every architecture: judge as 64-bit does.
        if (sizeof(std::size_t) < sizeof(std::uint64_t) &&
            payload.find(std::string_view("\xc9\xff\xff\xff\xff", 5)) != std::string_view::npos) {
            fail(DecodeErrc::malformed, "payload is truncated");
        }
        fail(DecodeErrc::too_large,
             std::string("payload declares a size over its limit (") + e.what() + ")");
    } catch (const msgpack::size_overflow& e) {
        fail(DecodeErrc::too_large,
             std::string("payload declares a size over its limit (") + e.what() + ")");
    } catch (const msgpack::insufficient_bytes&) {
        fail(DecodeErrc::malformed, "payload is truncated");
    } catch (const msgpack::parse_error& e) {
        fail(DecodeErrc::malformed, std::string("payload is not msgpack (") + e.what() + ")");
    } catch (const msgpack::unpack_error& e) {
        fail(DecodeErrc::malformed, std::string("payload is not msgpack (") + e.what() + ")");
    }
    if (off != payload.size()) {
        fail(DecodeErrc::trailing_bytes,
             std::to_string(payload.size() - off) + " bytes follow the payload's msgpack object");
    }
}

inline const char* type_name(msgpack::type::object_type t) {
    using namespace msgpack::type;
    switch (t) {
        case NIL:
            return "nil";
        case BOOLEAN:
            return "boolean";
        case POSITIVE_INTEGER:
            return "positive integer";
        case NEGATIVE_INTEGER:
            return "negative integer";
        case FLOAT32:
            return "float32";
        case FLOAT64:
            return "float64";
        case STR:
            return "str";
        case BIN:
            return "bin";
        case ARRAY:
            return "array";
        case MAP:
            return "map";
        case EXT:
            return "ext";
    }
    return "unknown";
}

inline void expect_type(const msgpack::object& o, msgpack::type::object_type t, const char* field) {
    if (o.type != t) {
        fail(DecodeErrc::wrong_type,
             std::string(field) + " is a " + type_name(o.type) + ", expected " + type_name(t));
    }
}

inline std::uint64_t get_uint(const msgpack::object& o, const char* field) {
    expect_type(o, msgpack::type::POSITIVE_INTEGER, field);
    return o.via.u64;
}

inline double get_number(const msgpack::object& o, const char* field) {
    switch (o.type) {
        case msgpack::type::FLOAT32:
        case msgpack::type::FLOAT64:
            return o.via.f64;
        case msgpack::type::POSITIVE_INTEGER:
            return static_cast<double>(o.via.u64);
        case msgpack::type::NEGATIVE_INTEGER:
            return static_cast<double>(o.via.i64);
        default:
            fail(DecodeErrc::wrong_type,
                 std::string(field) + " is a " + type_name(o.type) + ", expected a number");
    }
}

inline std::string_view get_str(const msgpack::object& o, const char* field,
                                std::size_t max_bytes) {
    expect_type(o, msgpack::type::STR, field);
    if (o.via.str.size > max_bytes) {
        fail(DecodeErrc::too_large, std::string(field) + " is " + std::to_string(o.via.str.size) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    return {o.via.str.ptr, o.via.str.size};
}

inline const msgpack::object_array& get_array(const msgpack::object& o, const char* field,
                                              std::size_t min_size) {
    expect_type(o, msgpack::type::ARRAY, field);
    if (o.via.array.size < min_size) {
        fail(DecodeErrc::malformed, std::string(field) + " has " +
                                        std::to_string(o.via.array.size) + " elements, expected " +
                                        std::to_string(min_size) + " or more");
    }
    return o.via.array;
}

// Checks the [version, kind, ...] envelope and returns its elements.
inline const msgpack::object_array& envelope(const msgpack::object& root, PayloadKind want) {
    const auto& a = get_array(root, "payload", 2);
    const auto version = a.ptr[0];
    if (version.type != msgpack::type::POSITIVE_INTEGER) {
        fail(DecodeErrc::wrong_type, std::string("payload version is a ") +
                                         type_name(version.type) + ", expected an integer");
    }
    if (version.via.u64 != wire_version) {
        fail(DecodeErrc::unknown_version, "payload version " + std::to_string(version.via.u64) +
                                              " is not supported (this "
                                              "decoder knows version " +
                                              std::to_string(wire_version) + ")");
    }
    const auto kind = get_uint(a.ptr[1], "payload kind");
    if (kind != static_cast<std::uint64_t>(PayloadKind::readings) &&
        kind != static_cast<std::uint64_t>(PayloadKind::heartbeat)) {
        fail(DecodeErrc::unknown_kind, "payload kind " + std::to_string(kind) + " is unknown");
    }
    if (kind != static_cast<std::uint64_t>(want)) {
        fail(DecodeErrc::wrong_type, want == PayloadKind::readings
                                         ? "payload is a heartbeat, expected readings"
                                         : "payload is readings, expected a heartbeat");
    }
    return a;
}

inline void decode_reading(const msgpack::object& o, std::string_view sensor, std::size_t index,
                           Reading& r) {
    try {
        const auto& f = get_array(o, "reading", 4);
        r.sensor.assign(sensor);
        r.seq = get_uint(f.ptr[0], "seq");
        if (r.seq == 0) fail(DecodeErrc::invalid_value, "seq is 0; sequence numbers start at 1");
        if (r.seq > limits::max_seq) {
            fail(DecodeErrc::invalid_value,
                 "seq " + std::to_string(r.seq) + " is above 2^63 - 1, the largest seq");
        }
        if (f.ptr[1].type == msgpack::type::NEGATIVE_INTEGER) {
            fail(DecodeErrc::invalid_value, "timestamp is negative");
        }
        const auto ts = get_uint(f.ptr[1], "timestamp");
        if (ts == 0 || ts > static_cast<std::uint64_t>(limits::max_ts_us)) {
            fail(DecodeErrc::invalid_value,
                 "timestamp " + std::to_string(ts) + " us is outside (0, year 9999]");
        }
        r.ts = Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(ts)}};
        // nil is "not measured"; a number, a float NaN included, must be in range.
        const bool t_measured = f.ptr[2].type != msgpack::type::NIL;
        const double t = t_measured ? get_number(f.ptr[2], "temperature") : 0;
        if (t_measured &&
            (!std::isfinite(t) || t < limits::min_temperature || t > limits::max_temperature)) {
            fail(DecodeErrc::invalid_value,
                 "temperature " + std::to_string(t) + " is not in [-273.15, 1000]");
        }
        const bool h_measured = f.ptr[3].type != msgpack::type::NIL;
        const double h = h_measured ? get_number(f.ptr[3], "humidity") : 0;
        if (h_measured && (!std::isfinite(h) || h < 0 || h > 100)) {
            fail(DecodeErrc::invalid_value,
                 "humidity " + std::to_string(h) + " is not in [0, 100]");
        }
        r.temperature = t_measured ? static_cast<float>(t) : not_measured;
        r.humidity = h_measured ? static_cast<float>(h) : not_measured;
        r.extras.clear();
        if (f.size >= 5 && f.ptr[4].type != msgpack::type::NIL) {
            expect_type(f.ptr[4], msgpack::type::MAP, "extras");
            const auto& m = f.ptr[4].via.map;
            if (m.size > limits::max_extras) {
                fail(DecodeErrc::too_large, "extras has " + std::to_string(m.size) +
                                                " entries, more than " +
                                                std::to_string(limits::max_extras));
            }
            r.extras.reserve(m.size);
            for (std::uint32_t i = 0; i < m.size; ++i) {
                const auto name = get_str(m.ptr[i].key, "extra name", limits::max_extra_name_bytes);
                if (name.empty() || !is_clean_utf8(name)) {
                    fail(DecodeErrc::invalid_value, "extra name is not clean UTF-8 text");
                }
                for (const auto& e : r.extras) {
                    if (e.name == name) {
                        fail(DecodeErrc::invalid_value,
                             "extra '" + std::string(name) + "' appears twice");
                    }
                }
                const double v = get_number(m.ptr[i].val, "extra value");
                if (!std::isfinite(v)) {
                    fail(DecodeErrc::invalid_value,
                         "extra '" + std::string(name) + "' is not finite");
                }
                r.extras.push_back(Extra{std::string(name), v});
            }
        }
        if (!t_measured && !h_measured && r.extras.empty()) {
            fail(DecodeErrc::invalid_value,
                 "reading measures nothing: no temperature, humidity or extra");
        }
    } catch (const DecodeError& e) {
        // Name the reading once, here, so that the checks above stay plain.
        throw DecodeError(e.code(), "reading " + std::to_string(index) + ": " + e.what());
    }
}

inline std::string_view checked_sensor(const msgpack::object& o) {
    const auto sensor = get_str(o, "sensor id", limits::max_sensor_id_bytes);
    if (auto problem = sensor_id_problem(sensor)) fail(DecodeErrc::invalid_value, *problem);
    return sensor;
}

inline void decode_readings(const msgpack::object_array& a, std::vector<Reading>& out) {
    if (a.size < 4) fail(DecodeErrc::malformed, "readings payload has fewer than 4 fields");
    const auto sensor = checked_sensor(a.ptr[2]);
    const auto& items = get_array(a.ptr[3], "readings", 1);
    if (items.size > limits::max_batch_readings) {
        fail(DecodeErrc::too_large, "batch has " + std::to_string(items.size) +
                                        " readings, more than " +
                                        std::to_string(limits::max_batch_readings));
    }
    const std::size_t first = out.size();
    try {
        out.resize(first + items.size);
        std::uint64_t prev = 0;
        for (std::uint32_t i = 0; i < items.size; ++i) {
            Reading& r = out[first + i];
            decode_reading(items.ptr[i], sensor, i, r);
            if (r.seq <= prev) {
                fail(DecodeErrc::invalid_value, "reading " + std::to_string(i) + ": seq " +
                                                    std::to_string(r.seq) + " does not follow " +
                                                    std::to_string(prev) +
                                                    " (seq must increase within a batch)");
            }
            prev = r.seq;
        }
    } catch (...) {
        out.resize(first);
        throw;
    }
}

inline Heartbeat decode_heartbeat(const msgpack::object_array& a) {
    if (a.size < 7) fail(DecodeErrc::malformed, "heartbeat payload has fewer than 7 fields");
    Heartbeat hb;
    const auto publisher = get_str(a.ptr[2], "publisher id", limits::max_publisher_id_bytes);
    if (publisher.empty() || !is_clean_utf8(publisher)) {
        fail(DecodeErrc::invalid_value, "publisher id is not clean UTF-8 text");
    }
    hb.publisher.assign(publisher);
    const auto sent = get_uint(a.ptr[3], "heartbeat sent_at");
    if (sent == 0 || sent > static_cast<std::uint64_t>(limits::max_ts_us)) {
        fail(DecodeErrc::invalid_value, "heartbeat sent_at is not a timestamp in (0, year 9999]");
    }
    hb.sent_at = Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(sent)}};
    const auto interval = get_uint(a.ptr[4], "heartbeat interval");
    if (interval == 0 || interval > 86'400'000) {
        fail(DecodeErrc::invalid_value,
             "heartbeat interval " + std::to_string(interval) + " ms is not in [1, 86400000]");
    }
    hb.interval = std::chrono::milliseconds{static_cast<std::int64_t>(interval)};
    const auto replay = get_str(a.ptr[5], "replay endpoint", limits::max_endpoint_bytes);
    if (!is_clean_utf8(replay)) fail(DecodeErrc::invalid_value, "replay endpoint is not text");
    hb.replay_endpoint.assign(replay);
    expect_type(a.ptr[6], msgpack::type::MAP, "heartbeat sensors");
    const auto& m = a.ptr[6].via.map;
    hb.newest.reserve(m.size);
    for (std::uint32_t i = 0; i < m.size; ++i) {
        const auto sensor = checked_sensor(m.ptr[i].key);
        hb.newest.emplace_back(std::string(sensor), get_uint(m.ptr[i].val, "newest seq"));
    }
    return hb;
}

inline void decode_batch(std::string_view payload, std::vector<Reading>& out) {
    Parsed oh;
    parse(payload, oh);
    decode_readings(envelope(oh.get(), PayloadKind::readings), out);
}

inline std::vector<Reading> decode_batch(std::string_view payload) {
    std::vector<Reading> out;
    reference::decode_batch(payload, out);
    return out;
}

inline Heartbeat decode_heartbeat(std::string_view payload) {
    Parsed oh;
    parse(payload, oh);
    return decode_heartbeat(envelope(oh.get(), PayloadKind::heartbeat));
}

inline Message decode_message(std::string_view topic, std::string_view payload) {
    Parsed oh;
    parse(payload, oh);
    const auto& root = oh.get();
    const auto& a = get_array(root, "payload", 2);
    const bool is_heartbeat =
        a.ptr[1].type == msgpack::type::POSITIVE_INTEGER &&
        a.ptr[1].via.u64 == static_cast<std::uint64_t>(PayloadKind::heartbeat);
    if (is_heartbeat) {
        auto hb = decode_heartbeat(envelope(root, PayloadKind::heartbeat));
        if (topic != heartbeat_topic) {
            fail(DecodeErrc::topic_mismatch, "a heartbeat arrived under a sensor topic");
        }
        return hb;
    }
    std::vector<Reading> batch;
    decode_readings(envelope(root, PayloadKind::readings), batch);
    if (topic != batch.front().sensor) {
        fail(DecodeErrc::topic_mismatch,
             "readings of sensor '" + batch.front().sensor + "' arrived under another topic");
    }
    return batch;
}

}  // namespace rill::reference
