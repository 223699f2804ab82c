// tests/support/msgpack.hpp: packing test payloads by hand with msgpack-c, for the forms the
// library's encoders never write (other integer widths, unknown fields, hostile values).
#pragma once

#include <string>

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

}  // namespace rill::test
