// Helpers shared by the fuzz targets: splitting one fuzz input into frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <utility>

namespace rill::fuzz {

/// Splits `data` into two frames: the first byte is the length of the first frame (clamped to
/// what is there), the rest is the second frame.
inline std::pair<std::string_view, std::string_view> split_two(const std::uint8_t* data,
                                                               std::size_t size) {
    if (size == 0) return {};
    const auto* chars = reinterpret_cast<const char*>(data);
    const std::size_t first = std::min<std::size_t>(data[0], size - 1);
    return {std::string_view(chars + 1, first),
            std::string_view(chars + 1 + first, size - 1 - first)};
}

/// Names the broken property on stderr and traps: libFuzzer reports the input as a crash.
[[noreturn]] inline void fail(const char* property) {
    std::fprintf(stderr, "fuzz: property violated: %s\n", property);
    __builtin_trap();
}

}  // namespace rill::fuzz
