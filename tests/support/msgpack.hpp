// tests/support/msgpack.hpp: packing test payloads by hand with msgpack-c, for the forms the
// library's encoders never write (other integer widths, unknown fields, hostile values).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <msgpack.hpp>

namespace rill::test {

/// The packer `packed()` hands to its builder.
using Packer = msgpack::packer<msgpack::sbuffer>;

/// The bytes `build(Packer&)` packs, for payloads built field by field.
template <typename Build>
std::string packed(Build&& build) {
    msgpack::sbuffer buf;
    Packer pk(buf);
    build(pk);
    return {buf.data(), buf.size()};
}

/// Any msgpack-c packable value (tuples pack as arrays, maps as maps).
template <typename T>
std::string pack(const T& value) {
    return packed([&](Packer& pk) { pk.pack(value); });
}

/// An array of the fields given, each packed as msgpack-c packs it.
template <typename... T>
std::string pack_array(const T&... fields) {
    return packed([&](Packer& pk) {
        pk.pack_array(sizeof...(T));
        (pk.pack(fields), ...);
    });
}

/// A readings payload (proto/reading_v1.md) of `sensor` with one reading per (seq, temperature),
/// taken at 1'700'000'000'000'000 + seq µs with 40 %RH. Packed by hand: a NaN or out-of-range
/// temperature makes that reading invalid, which the library's encoder refuses to write.
inline std::string readings_payload(const std::string& sensor,
                                    const std::vector<std::pair<std::uint64_t, double>>& rs) {
    return packed([&](Packer& pk) {
        pk.pack_array(4);
        pk.pack(1);
        pk.pack(0);
        pk.pack(sensor);
        pk.pack_array(static_cast<std::uint32_t>(rs.size()));
        for (const auto& [seq, t] : rs) {
            pk.pack_array(4);
            pk.pack(seq);
            pk.pack(1'700'000'000'000'000LL + static_cast<long long>(seq));
            pk.pack(t);
            pk.pack(40.0);
        }
    });
}

}  // namespace rill::test
