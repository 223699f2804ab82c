// The COPY ... (FORMAT binary) encoder for the readings table.
//
// Layout (PostgreSQL documentation, COPY, "Binary Format"): an 11-byte signature
// "PGCOPY\n\377\r\n\0", an int32 flags field (0: no OIDs), an int32 header-extension length (0);
// then per tuple an int16 field count and per field an int32 byte length (-1 = NULL) followed
// by the value in the type's binary send format; then an int16 -1 trailer. Everything is in
// network byte order.
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "pg_epoch.hpp"
#include "rill/log.hpp"
#include "rill/store.hpp"

namespace rill::store {

namespace {

using detail::pg_epoch_offset_us;
constexpr std::int16_t field_count = 6;
constexpr std::uint8_t jsonb_version = 1;

template <typename T>
void put_be(std::string& out, T value) {
    static_assert(std::is_integral_v<T>);
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(value);
    char bytes[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        bytes[sizeof(T) - 1 - i] = static_cast<char>(u & 0xFFu);
        u = static_cast<U>(u >> 8);
    }
    out.append(bytes, sizeof(T));
}

// A real, or NULL (length -1) for a quantity not measured.
void put_float4(std::string& out, float f) {
    if (!is_measured(f)) {
        put_be<std::int32_t>(out, -1);
        return;
    }
    put_be<std::int32_t>(out, 4);
    put_be(out, std::bit_cast<std::uint32_t>(f));
}

// The extras as a JSON object: {"pressure":1013.25,"battery":3.7}. Doubles are written in the
// shortest form that reads back to the same value.
void append_extras_json(const std::vector<Extra>& extras, std::string& out) {
    out += '{';
    bool first = true;
    for (const auto& e : extras) {
        if (!first) out += ',';
        first = false;
        out += '"';
        append_json_escaped(out, e.name);
        out += "\":";
        char num[32];
        const auto res = std::to_chars(num, num + sizeof num, e.value);
        if (res.ec == std::errc{} && std::isfinite(e.value)) {
            out.append(num, res.ptr);
        } else {
            out += "null";  // JSON has no NaN or infinity; add() refuses them anyway
        }
    }
    out += '}';
}

}  // namespace

void append_copy_header(std::string& out) {
    static constexpr char signature[] = "PGCOPY\n\377\r\n";  // + the terminating NUL: 11 bytes
    out.append(signature, sizeof signature);
    put_be<std::int32_t>(out, 0);  // flags
    put_be<std::int32_t>(out, 0);  // header extension length
}

void append_copy_tuple(const Reading& r, std::string& out) {
    put_be(out, field_count);
    put_be(out, static_cast<std::int32_t>(r.sensor.size()));
    out += r.sensor;
    put_be<std::int32_t>(out, 8);
    put_be(out, static_cast<std::int64_t>(r.seq));
    put_be<std::int32_t>(out, 8);
    put_be(out, static_cast<std::int64_t>(r.ts.time_since_epoch().count() - pg_epoch_offset_us));
    put_float4(out, r.temperature);
    put_float4(out, r.humidity);
    if (r.extras.empty()) {
        put_be<std::int32_t>(out, -1);
        return;
    }
    // Reserve the length, write version + JSON, then patch the length in.
    const std::size_t at = out.size();
    put_be<std::int32_t>(out, 0);
    out += static_cast<char>(jsonb_version);
    append_extras_json(r.extras, out);
    const auto len = static_cast<std::uint32_t>(out.size() - at - 4);
    for (std::size_t i = 0; i < 4; ++i) {
        out[at + i] = static_cast<char>((len >> (24 - 8 * i)) & 0xFFu);
    }
}

void append_copy_trailer(std::string& out) {
    put_be<std::int16_t>(out, -1);
}

void encode_copy_binary(std::span<const Reading> readings, std::string& out) {
    append_copy_header(out);
    for (const auto& r : readings)
        append_copy_tuple(r, out);
    append_copy_trailer(out);
}

}  // namespace rill::store
