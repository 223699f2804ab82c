// Small text helpers shared by the library's parsers (internal).
#pragma once

#include <string_view>

namespace rill::detail {

/// `s` without leading spaces and tabs and without trailing spaces, tabs and carriage returns.
inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace rill::detail
