// Test helper: reading a program's log as text.
#pragma once

#include <cstddef>
#include <string>

namespace rill::test {

/// How often `word` occurs in `text` (overlaps counted).
inline std::size_t count_of(const std::string& text, const std::string& word) {
    std::size_t n = 0;
    for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1))
        ++n;
    return n;
}

}  // namespace rill::test
