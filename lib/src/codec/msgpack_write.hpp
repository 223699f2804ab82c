// Internal: the msgpack packing helpers the encoders share (codec.cpp for reading_v1, rpc.cpp
// for the RPC envelope and rpc_pack, replay.cpp for replay_v1). Header-only: they sit on the
// encoders' hot path.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <msgpack.hpp>

namespace rill::detail {

/// The msgpack packer's stream concept over a std::string: appends what it is given.
struct StringSink {
    std::string& out;  ///< where the packed bytes go
    /// Appends `n` bytes at `p`.
    void write(const char* p, std::size_t n) { out.append(p, n); }
};

/// A msgpack-c packer writing into a StringSink.
using Packer = msgpack::packer<StringSink>;

/// Packs `s` as a str (its shortest header).
inline void pack_str(Packer& pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

/// Packs `s` as a bin (its shortest header).
inline void pack_bin(Packer& pk, std::string_view s) {
    pk.pack_bin(static_cast<std::uint32_t>(s.size()));
    pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

// msgpack-c 4 packs floats holding whole numbers as integers; rill always writes float32 for
// temperature and humidity and float64 for extras, so that encoders agree byte for byte.

/// Packs `v` as a float32 (0xca), always.
inline void pack_f32(StringSink& sink, float v) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    const char b[5] = {'\xca', static_cast<char>(bits >> 24), static_cast<char>(bits >> 16),
                       static_cast<char>(bits >> 8), static_cast<char>(bits)};
    sink.write(b, sizeof b);
}

/// Packs `v` as a float64 (0xcb), always.
inline void pack_f64(StringSink& sink, double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    char b[9] = {'\xcb'};
    for (int i = 0; i < 8; ++i)
        b[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    sink.write(b, sizeof b);
}

}  // namespace rill::detail
