#include "rill/codec.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include <msgpack.hpp>

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

// The msgpack packer's stream concept over a std::string.
struct StringSink {
    std::string& out;
    void write(const char* p, std::size_t n) { out.append(p, n); }
};
using Packer = msgpack::packer<StringSink>;

void pack_str(Packer& pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// msgpack-c 4 packs floats holding whole numbers as integers; rill always writes float32 for
// temperature and humidity and float64 for extras, so that encoders agree byte for byte.
void pack_f32(StringSink& sink, float v) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    const char b[5] = {'\xca', static_cast<char>(bits >> 24), static_cast<char>(bits >> 16),
                       static_cast<char>(bits >> 8), static_cast<char>(bits)};
    sink.write(b, sizeof b);
}

void pack_f64(StringSink& sink, double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    char b[9] = {'\xcb'};
    for (int i = 0; i < 8; ++i)
        b[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    sink.write(b, sizeof b);
}

void pack_reading(Packer& pk, StringSink& sink, const Reading& r) {
    pk.pack_array(r.extras.empty() ? 4 : 5);
    pk.pack_uint64(r.seq);
    pk.pack_int64(r.ts.time_since_epoch().count());
    pack_f32(sink, r.temperature);
    pack_f32(sink, r.humidity);
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
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(4);
    pk.pack_uint64(wire_version);
    pk.pack_uint8(static_cast<std::uint8_t>(PayloadKind::readings));
    pack_str(pk, sensor);
    pk.pack_array(static_cast<std::uint32_t>(batch.size()));
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

[[noreturn]] void fail(DecodeErrc code, const std::string& what) {
    throw DecodeError(code, what);
}

// The structural errors, worded as before (msgpack-c's parser names the limit it hit).
[[noreturn]] void truncated() {
    fail(DecodeErrc::malformed, "payload is truncated");
}
[[noreturn]] void not_msgpack() {
    fail(DecodeErrc::malformed, "payload is not msgpack (parse error)");
}
[[noreturn]] void over_limit(const char* which) {
    fail(DecodeErrc::too_large,
         std::string("payload declares a size over its limit (") + which + " size overflow)");
}

// Parser limits, which apply to every value, known or not; the fields have tighter ones of their
// own. An array or map, even an empty one, may sit at most max_depth levels deep (the payload is
// level 1).
constexpr std::size_t max_array_elements = limits::max_batch_readings;
constexpr std::size_t max_map_entries = limits::max_heartbeat_sensors;
constexpr int max_depth = 8;

enum class Type : std::uint8_t {
    nil,
    boolean,
    positive,  // any integer >= 0, whatever its encoding (int8..int64 too)
    negative,
    float32,
    float64,
    str,
    bin,
    array,
    map,
    ext,
};

const char* type_name(Type t) {
    switch (t) {
        case Type::nil:
            return "nil";
        case Type::boolean:
            return "boolean";
        case Type::positive:
            return "positive integer";
        case Type::negative:
            return "negative integer";
        case Type::float32:
            return "float32";
        case Type::float64:
            return "float64";
        case Type::str:
            return "str";
        case Type::bin:
            return "bin";
        case Type::array:
            return "array";
        case Type::map:
            return "map";
        case Type::ext:
            return "ext";
    }
    return "unknown";
}

// One value's header. Scalars carry their value; str, bin and ext their bytes, which the cursor
// has moved past; array and map their element count, whose elements follow.
struct Value {
    Type type = Type::nil;
    std::uint32_t size = 0;  // str/bin/ext bytes, array elements, map entries
    std::uint64_t u = 0;     // positive
    std::int64_t i = 0;      // negative
    double f = 0;            // float32, float64
    const char* bytes = nullptr;
};

template <typename T>
T load_be(const unsigned char* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (sizeof(T) > 1 && std::endian::native == std::endian::little) {
        if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
        if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
        if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    }
    return v;
}

// A read position in a payload; every read is bounds-checked.
class Cursor {
  public:
    explicit Cursor(std::string_view payload) noexcept
        : p_(reinterpret_cast<const unsigned char*>(payload.data())), end_(p_ + payload.size()) {}

    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - p_);
    }

    // The next `n` bytes, moved past; throws (truncated) when fewer remain.
    const unsigned char* take(std::size_t n) {
        if (remaining() < n) truncated();
        const unsigned char* q = p_;
        p_ += n;
        return q;
    }

    template <typename T>
    T take_be() {
        return load_be<T>(take(sizeof(T)));
    }

    // Reads the header of the value at `level` (the payload is 1) and, for str, bin and ext,
    // moves past its bytes. Throws for bytes that are not msgpack, truncation and containers
    // over the parser limits.
    Value next(int level) {
        const unsigned b = *take(1);
        Value v;
        if (b <= 0x7f) {
            v.type = Type::positive;
            v.u = b;
        } else if (b >= 0xe0) {
            v.type = Type::negative;
            v.i = static_cast<std::int8_t>(b);
        } else if (b <= 0x8f) {
            container(v, Type::map, b & 0x0fu, level);
        } else if (b <= 0x9f) {
            container(v, Type::array, b & 0x0fu, level);
        } else if (b <= 0xbf) {
            blob(v, Type::str, b & 0x1fu);
        } else {
            switch (b) {
                case 0xc0:
                    v.type = Type::nil;
                    break;
                case 0xc2:
                case 0xc3:
                    v.type = Type::boolean;
                    break;
                case 0xc4:
                    blob(v, Type::bin, take_be<std::uint8_t>());
                    break;
                case 0xc5:
                    blob(v, Type::bin, take_be<std::uint16_t>());
                    break;
                case 0xc6:
                    blob(v, Type::bin, take_be<std::uint32_t>());
                    break;
                case 0xc7:  // ext: a type byte, then the data
                    blob(v, Type::ext, std::uint64_t{take_be<std::uint8_t>()} + 1);
                    break;
                case 0xc8:
                    blob(v, Type::ext, std::uint64_t{take_be<std::uint16_t>()} + 1);
                    break;
                case 0xc9:
                    blob(v, Type::ext, std::uint64_t{take_be<std::uint32_t>()} + 1);
                    break;
                case 0xca: {
                    const auto bits = take_be<std::uint32_t>();
                    float f;
                    std::memcpy(&f, &bits, sizeof f);
                    v.type = Type::float32;
                    v.f = f;
                    break;
                }
                case 0xcb: {
                    const auto bits = take_be<std::uint64_t>();
                    std::memcpy(&v.f, &bits, sizeof v.f);
                    v.type = Type::float64;
                    break;
                }
                case 0xcc:
                    unsigned_value(v, take_be<std::uint8_t>());
                    break;
                case 0xcd:
                    unsigned_value(v, take_be<std::uint16_t>());
                    break;
                case 0xce:
                    unsigned_value(v, take_be<std::uint32_t>());
                    break;
                case 0xcf:
                    unsigned_value(v, take_be<std::uint64_t>());
                    break;
                case 0xd0:
                    signed_value(v, static_cast<std::int8_t>(take_be<std::uint8_t>()));
                    break;
                case 0xd1:
                    signed_value(v, static_cast<std::int16_t>(take_be<std::uint16_t>()));
                    break;
                case 0xd2:
                    signed_value(v, static_cast<std::int32_t>(take_be<std::uint32_t>()));
                    break;
                case 0xd3:
                    signed_value(v, static_cast<std::int64_t>(take_be<std::uint64_t>()));
                    break;
                case 0xd4:  // fixext 1, 2, 4, 8, 16: a type byte, then the data
                    blob(v, Type::ext, 2);
                    break;
                case 0xd5:
                    blob(v, Type::ext, 3);
                    break;
                case 0xd6:
                    blob(v, Type::ext, 5);
                    break;
                case 0xd7:
                    blob(v, Type::ext, 9);
                    break;
                case 0xd8:
                    blob(v, Type::ext, 17);
                    break;
                case 0xd9:
                    blob(v, Type::str, take_be<std::uint8_t>());
                    break;
                case 0xda:
                    blob(v, Type::str, take_be<std::uint16_t>());
                    break;
                case 0xdb:
                    blob(v, Type::str, take_be<std::uint32_t>());
                    break;
                case 0xdc:
                    container(v, Type::array, take_be<std::uint16_t>(), level);
                    break;
                case 0xdd:
                    container(v, Type::array, take_be<std::uint32_t>(), level);
                    break;
                case 0xde:
                    container(v, Type::map, take_be<std::uint16_t>(), level);
                    break;
                case 0xdf:
                    container(v, Type::map, take_be<std::uint32_t>(), level);
                    break;
                default:  // 0xc1, never used
                    not_msgpack();
            }
        }
        return v;
    }

    // Fast paths for the forms rill's encoder writes, at levels where the depth limit cannot
    // apply. Each reads what next() would, or returns false and reads nothing; callers then use
    // next(), which handles every form and every error.
    bool fast_uint(std::uint64_t& u) noexcept {
        if (p_ == end_) return false;
        const unsigned b = *p_;
        if (b <= 0x7f) {
            u = b;
            ++p_;
            return true;
        }
        switch (b) {
            case 0xcc:
                return fast_load<std::uint8_t>(u);
            case 0xcd:
                return fast_load<std::uint16_t>(u);
            case 0xce:
                return fast_load<std::uint32_t>(u);
            case 0xcf:
                return fast_load<std::uint64_t>(u);
            default:
                return false;
        }
    }
    bool fast_float(double& f) noexcept {
        if (remaining() >= 5 && *p_ == 0xca) {
            const auto bits = load_be<std::uint32_t>(p_ + 1);
            float x;
            std::memcpy(&x, &bits, sizeof x);
            f = x;
            p_ += 5;
            return true;
        }
        if (remaining() >= 9 && *p_ == 0xcb) {
            const auto bits = load_be<std::uint64_t>(p_ + 1);
            std::memcpy(&f, &bits, sizeof f);
            p_ += 9;
            return true;
        }
        return false;
    }
    bool fast_fixarray(std::uint32_t& n) noexcept {
        if (p_ == end_ || (*p_ & 0xf0) != 0x90) return false;
        n = *p_++ & 0x0fu;
        return true;
    }
    bool fast_fixstr(std::string_view& s) noexcept {
        if (p_ == end_ || (*p_ & 0xe0) != 0xa0) return false;
        const std::size_t n = *p_ & 0x1fu;
        if (remaining() < 1 + n) return false;
        s = {reinterpret_cast<const char*>(p_ + 1), n};
        p_ += 1 + n;
        return true;
    }

    // Moves past the value at `level`, whatever it is. Recursion is bounded by max_depth, and
    // the loops by the bytes that remain: each element takes at least one, or throws.
    void skip(int level) {
        const Value v = next(level);
        if (v.type == Type::array) {
            for (std::uint32_t k = 0; k < v.size; ++k)
                skip(level + 1);
        } else if (v.type == Type::map) {
            for (std::uint32_t k = 0; k < v.size; ++k) {
                skip(level + 1);
                skip(level + 1);
            }
        }
    }

  private:
    // Reads the header byte and a big-endian T after it into `u`, if they are all there.
    template <typename T>
    bool fast_load(std::uint64_t& u) noexcept {
        if (remaining() < 1 + sizeof(T)) return false;
        u = load_be<T>(p_ + 1);
        p_ += 1 + sizeof(T);
        return true;
    }
    static void unsigned_value(Value& v, std::uint64_t u) noexcept {
        v.type = Type::positive;
        v.u = u;
    }
    static void signed_value(Value& v, std::int64_t i) noexcept {
        if (i >= 0) {
            unsigned_value(v, static_cast<std::uint64_t>(i));
        } else {
            v.type = Type::negative;
            v.i = i;
        }
    }
    void blob(Value& v, Type t, std::uint64_t n) {
        v.type = t;
        v.bytes = reinterpret_cast<const char*>(take(static_cast<std::size_t>(n)));
        v.size = static_cast<std::uint32_t>(t == Type::ext ? n - 1 : n);
    }
    static void container(Value& v, Type t, std::uint32_t n, int level) {
        if (t == Type::array && n > max_array_elements) over_limit("array");
        if (t == Type::map && n > max_map_entries) over_limit("map");
        if (level > max_depth) over_limit("depth");
        v.type = t;
        v.size = n;
    }

    const unsigned char* p_;
    const unsigned char* end_;
};

// Throws the structural error of `payload`, if it has one: what msgpack-c's parser reported.
void check_structure(std::string_view payload) {
    Cursor c(payload);
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
        Cursor c(payload);
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

void expect_type(const Value& v, Type t, const char* field) {
    if (v.type != t) {
        fail(DecodeErrc::wrong_type,
             std::string(field) + " is a " + type_name(v.type) + ", expected " + type_name(t));
    }
}

std::uint64_t get_uint(const Value& v, const char* field) {
    expect_type(v, Type::positive, field);
    return v.u;
}

double get_number(const Value& v, const char* field) {
    switch (v.type) {
        case Type::float32:
        case Type::float64:
            return v.f;
        case Type::positive:
            return static_cast<double>(v.u);
        case Type::negative:
            return static_cast<double>(v.i);
        default:
            fail(DecodeErrc::wrong_type,
                 std::string(field) + " is a " + type_name(v.type) + ", expected a number");
    }
}

std::string_view get_str(const Value& v, const char* field, std::size_t max_bytes) {
    expect_type(v, Type::str, field);
    if (v.size > max_bytes) {
        fail(DecodeErrc::too_large, std::string(field) + " is " + std::to_string(v.size) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    return {v.bytes, v.size};
}

void expect_min_size(std::uint32_t size, const char* field, std::size_t min_size) {
    if (size < min_size) {
        fail(DecodeErrc::malformed, std::string(field) + " has " + std::to_string(size) +
                                        " elements, expected " + std::to_string(min_size) +
                                        " or more");
    }
}

// Checks that `v` is an array of at least `min_size` elements; returns its size.
std::uint32_t get_array(const Value& v, const char* field, std::size_t min_size) {
    expect_type(v, Type::array, field);
    expect_min_size(v.size, field, min_size);
    return v.size;
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

void read_reading(Cursor& c, std::string_view sensor, std::size_t index, Reading& r) {
    try {
        const std::uint32_t fields = array_field(c, 3, "reading", 4);
        r.sensor.assign(sensor);
        r.seq = uint_field(c, 4, "seq");
        if (r.seq == 0) fail(DecodeErrc::invalid_value, "seq is 0; sequence numbers start at 1");
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
        const double t = number_field(c, 4, "temperature");
        if (!std::isfinite(t) || t < limits::min_temperature || t > limits::max_temperature) {
            fail(DecodeErrc::invalid_value,
                 "temperature " + std::to_string(t) + " is not in [-273.15, 1000]");
        }
        const double h = number_field(c, 4, "humidity");
        if (!std::isfinite(h) || h < 0 || h > 100) {
            fail(DecodeErrc::invalid_value,
                 "humidity " + std::to_string(h) + " is not in [0, 100]");
        }
        r.temperature = static_cast<float>(t);
        r.humidity = static_cast<float>(h);
        r.extras.clear();
        if (fields >= 5) read_extras(c, r);
        for (std::uint32_t k = 5; k < fields; ++k)
            c.skip(4);
    } catch (const DecodeError& e) {
        // Name the reading once, here, so that the checks above stay plain.
        throw DecodeError(e.code(), "reading " + std::to_string(index) + ": " + e.what());
    }
}

// Reads the rest of a readings payload after its envelope, appending to `out`; returns the
// sensor id (pointing into the payload). `out` is left as it was when this throws.
std::string_view read_readings(Cursor& c, std::uint32_t fields, std::vector<Reading>& out) {
    if (fields < 4) fail(DecodeErrc::malformed, "readings payload has fewer than 4 fields");
    const auto sensor = checked_sensor(c, 2);
    const std::uint32_t n = array_field(c, 2, "readings", 1);
    // Each reading takes at least one byte: a count the bytes left cannot hold is truncation,
    // found here before anything is allocated for it.
    if (n > c.remaining()) truncated();
    const std::size_t first = out.size();
    try {
        out.resize(first + n);
        std::uint64_t prev = 0;
        for (std::uint32_t k = 0; k < n; ++k) {
            Reading& r = out[first + k];
            read_reading(c, sensor, k, r);
            if (r.seq <= prev) {
                fail(DecodeErrc::invalid_value, "reading " + std::to_string(k) + ": seq " +
                                                    std::to_string(r.seq) + " does not follow " +
                                                    std::to_string(prev) +
                                                    " (seq must increase within a batch)");
            }
            prev = r.seq;
        }
        for (std::uint32_t k = 4; k < fields; ++k)
            c.skip(2);
        expect_end(c);
    } catch (...) {
        out.resize(first);
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
        (void)read_readings(c, e.size, out);
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

Message decode_message(std::string_view topic, std::string_view payload) {
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
        const auto sensor = read_readings(c, e.size, batch);
        if (topic != sensor) {
            fail(DecodeErrc::topic_mismatch,
                 "readings of sensor '" + std::string(sensor) + "' arrived under another topic");
        }
        return Message{std::move(batch)};
    });
}

}  // namespace rill
