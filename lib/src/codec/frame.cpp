#include "codec/frame.hpp"

#include "codec/msgpack_write.hpp"
#include "rill/codec.hpp"

namespace rill::detail {

namespace {

[[noreturn]] void truncated(const char* what) {
    throw DecodeError(DecodeErrc::malformed, std::string("truncated ") + what);
}

// Big-endian unsigned integer of `n` bytes at `p`.
std::uint64_t get_be(const char* p, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}

// A msgpack header at the start of `b`: how many bytes it takes, how many payload bytes follow
// it (str, bin, numbers) and how many nested objects follow (array, map: twice its size).
struct Head {
    std::size_t head = 1;
    std::uint64_t body = 0;
    std::uint64_t children = 0;
};

Head head_of(std::string_view b) {
    if (b.empty()) truncated("msgpack object");
    const auto t = static_cast<unsigned char>(b[0]);
    auto sized = [&](std::size_t n) -> std::uint64_t {
        if (b.size() < 1 + n) truncated("msgpack header");
        return get_be(b.data() + 1, n);
    };
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return {};
    if (t >= 0xa0 && t <= 0xbf) return {1, t & 0x1fU, 0};
    if (t >= 0x90 && t <= 0x9f) return {1, 0, t & 0x0fU};
    if (t >= 0x80 && t <= 0x8f) return {1, 0, 2ULL * (t & 0x0fU)};
    switch (t) {
        case 0xcc:
        case 0xd0:
            return {1, 1, 0};
        case 0xcd:
        case 0xd1:
            return {1, 2, 0};
        case 0xce:
        case 0xd2:
        case 0xca:
            return {1, 4, 0};
        case 0xcf:
        case 0xd3:
        case 0xcb:
            return {1, 8, 0};
        case 0xd9:
        case 0xc4:
            return {2, sized(1), 0};
        case 0xda:
        case 0xc5:
            return {3, sized(2), 0};
        case 0xdb:
        case 0xc6:
            return {5, sized(4), 0};
        case 0xdc:
            return {3, 0, sized(2)};
        case 0xdd:
            return {5, 0, sized(4)};
        case 0xde:
            return {3, 0, 2 * sized(2)};
        case 0xdf:
            return {5, 0, 2 * sized(4)};
        default:
            break;
    }
    throw DecodeError(DecodeErrc::malformed, "msgpack type " + std::to_string(t) +
                                                 " does not occur in a readings payload");
}

std::size_t skip(std::string_view b, int depth) {
    if (depth > 4) throw DecodeError(DecodeErrc::malformed, "msgpack nested too deep");
    const Head h = head_of(b);
    if (b.size() - h.head < h.body) truncated("msgpack object");
    std::size_t n = h.head + static_cast<std::size_t>(h.body);
    for (std::uint64_t i = 0; i < h.children; ++i)
        n += skip(b.substr(n), depth + 1);
    return n;
}

}  // namespace

BatchParts split_batch(std::string_view payload) {
    // encode_batch writes exactly [1, 0, sensor, readings]: a fixarray of 4, then 1 and 0.
    if (payload.size() < 4 || payload[0] != '\x94' ||
        payload[1] != static_cast<char>(wire_version) ||
        payload[2] != static_cast<char>(PayloadKind::readings)) {
        throw DecodeError(DecodeErrc::wrong_type, "not a version 1 readings payload");
    }
    std::string_view rest = payload.substr(3);
    const Head str = head_of(rest);
    const auto st = static_cast<unsigned char>(rest[0]);
    const bool is_str = (st >= 0xa0 && st <= 0xbf) || (st >= 0xd9 && st <= 0xdb);
    if (!is_str || rest.size() - str.head < str.body) {
        throw DecodeError(DecodeErrc::wrong_type, "readings payload without a sensor id");
    }
    BatchParts parts;
    parts.sensor = rest.substr(str.head, static_cast<std::size_t>(str.body));
    rest.remove_prefix(str.head + static_cast<std::size_t>(str.body));
    const Head arr = head_of(rest);  // throws when nothing follows the sensor id
    const auto t = static_cast<unsigned char>(rest[0]);
    if (!((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd)) {
        throw DecodeError(DecodeErrc::wrong_type, "readings payload without a readings array");
    }
    parts.count = static_cast<std::size_t>(arr.children);
    parts.readings = rest.substr(arr.head);
    return parts;
}

std::size_t object_bytes(std::string_view bytes) {
    return skip(bytes, 0);
}

std::uint64_t reading_seq(std::string_view reading) {
    const Head arr = head_of(reading);
    const auto t = static_cast<unsigned char>(reading[0]);
    if (!(t >= 0x90 && t <= 0x9f) || arr.children < 1) {
        throw DecodeError(DecodeErrc::wrong_type, "a reading is not an array");
    }
    const std::string_view seq = reading.substr(1);
    const Head h = head_of(seq);
    const auto s = static_cast<unsigned char>(seq[0]);
    if (s <= 0x7f) return s;
    if (s < 0xcc || s > 0xcf) throw DecodeError(DecodeErrc::wrong_type, "seq is not unsigned");
    if (seq.size() - 1 < h.body) truncated("seq");
    return get_be(seq.data() + 1, static_cast<std::size_t>(h.body));
}

std::size_t batch_header_bytes(std::string_view sensor, std::size_t count) noexcept {
    // fixarray(4), 1, 0; the str header; the array header (fixarray, array16 or array32).
    const std::size_t n = sensor.size();
    const std::size_t str = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
    const std::size_t arr = count < 16 ? 1 : count < 65536 ? 3 : 5;
    return 3 + str + n + arr;
}

void append_batch_header(std::string& out, std::string_view sensor, std::size_t count) {
    // The same packer calls as encode_batch, so that the bytes agree.
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(4);
    pk.pack_uint64(wire_version);
    pk.pack_uint8(static_cast<std::uint8_t>(PayloadKind::readings));
    pack_str(pk, sensor);
    pk.pack_array(static_cast<std::uint32_t>(count));
}

}  // namespace rill::detail
