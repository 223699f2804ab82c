// tests/support/msgpack.hpp: packing test payloads by hand with msgpack-c, for the forms the
// library's encoders never write (other integer widths, unknown fields, hostile values).
#pragma once

#include <string>

#include <msgpack.hpp>

namespace rill::test {

/// msgpack-c's stream concept over a std::string.
struct StringSink {
    std::string& out;  ///< where the packed bytes go
    /// Appends `n` bytes at `p`.
    void write(const char* p, std::size_t n) { out.append(p, n); }
};

/// The packer `packed()` hands to its builder.
using Packer = msgpack::packer<StringSink>;

/// The bytes `build(Packer&)` packs, for payloads built field by field.
template <typename Build>
std::string packed(Build&& build) {
    std::string out;
    StringSink sink{out};
    Packer pk(sink);
    build(pk);
    return out;
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
