// Internal: bounded msgpack parsing and packing helpers shared by rpc.cpp and replay.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <msgpack.hpp>

#include "rill/codec.hpp"
#include "rill/rpc.hpp"

namespace rill::detail {

/// The msgpack packer's stream concept over a std::string.
struct StringSink {
    std::string& out;
    void write(const char* p, std::size_t n) { out.append(p, n); }
};
using Packer = msgpack::packer<StringSink>;

inline void pack_str(Packer& pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

inline void pack_bin(Packer& pk, std::string_view s) {
    pk.pack_bin(static_cast<std::uint32_t>(s.size()));
    pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

[[noreturn]] inline void fail(DecodeErrc code, const std::string& what) {
    throw DecodeError(code, what);
}

/// Parses the next msgpack object of `bytes` at `off` (advancing it) under the RPC bounds.
/// Strings and bins are referenced in place, so `bytes` must outlive the handle.
msgpack::object_handle parse_next(std::string_view bytes, std::size_t& off, const char* what);

/// Parses `bytes` as exactly one msgpack object under the RPC bounds.
msgpack::object_handle parse_whole(std::string_view bytes, const char* what);

const char* type_name(msgpack::type::object_type t) noexcept;
void expect_type(const msgpack::object& o, msgpack::type::object_type t, const char* field);
std::uint64_t get_uint(const msgpack::object& o, const char* field);
std::string_view get_str(const msgpack::object& o, const char* field, std::size_t max_bytes);
std::string_view get_bin(const msgpack::object& o, const char* field, std::size_t max_bytes);
const msgpack::object_array& get_array(const msgpack::object& o, const char* field,
                                       std::size_t size);
/// An array of at least `min_size` elements (later revisions may append fields).
const msgpack::object_array& get_array_min(const msgpack::object& o, const char* field,
                                           std::size_t min_size);

}  // namespace rill::detail
