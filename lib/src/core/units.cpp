#include "rill/units.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>

namespace rill {

namespace {

[[noreturn]] void bad(std::string_view what, std::string_view text) {
    throw std::invalid_argument("'" + std::string(text) + "' is not a " + std::string(what));
}

// Reads an optional fraction (".25") at s[pos] as a number below 1; advances pos.
double fraction(std::string_view s, std::size_t& pos) {
    double v = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        double scale = 0.1;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            v += (s[pos++] - '0') * scale;
            scale /= 10;
        }
    }
    return v;
}

// Reads a non-negative decimal number at s[pos]; advances pos.
bool number(std::string_view s, std::size_t& pos, double& out) {
    const std::size_t start = pos;
    double v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9')
        v = v * 10 + (s[pos++] - '0');
    out = v + fraction(s, pos);
    return pos > start && !(pos == start + 1 && s[start] == '.');
}

}  // namespace

std::chrono::nanoseconds parse_duration(std::string_view text) {
    constexpr std::pair<std::string_view, double> units[] = {
        {"ns", 1.0}, {"us", 1e3},   {"µs", 1e3},    {"ms", 1e6},     {"s", 1e9},
        {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9}, {"w", 604800e9}, {"y", 365 * 86400e9}};
    if (text == "0") return std::chrono::nanoseconds{0};
    if (text.empty()) bad("duration", text);
    std::size_t pos = 0;
    double total = 0;
    while (pos < text.size()) {
        double v;
        if (!number(text, pos, v)) bad("duration (use e.g. 5s, 250ms, 1h30m)", text);
        std::size_t end = pos;
        while (end < text.size() && !(text[end] >= '0' && text[end] <= '9') && text[end] != '.') {
            ++end;
        }
        const auto unit = text.substr(pos, end - pos);
        bool found = false;
        for (const auto& [name, scale] : units) {
            if (unit == name) {
                total += v * scale;
                found = true;
                break;
            }
        }
        if (!found) bad("duration (units: ns, us, ms, s, m, h, d, w, y)", text);
        pos = end;
    }
    if (!std::isfinite(total) || total > 9.2e18) bad("duration in range", text);
    return std::chrono::nanoseconds{static_cast<std::int64_t>(std::llround(total))};
}

std::uint64_t parse_size(std::string_view text) {
    // Exact integer arithmetic in 64 bits on every target (size_t and long are 32 bits on
    // armhf): the integer part is read digit by digit with an overflow check, and only a
    // fraction goes through a double (less than one unit: below 2^40, exact to the byte).
    constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
    std::size_t pos = 0;
    std::uint64_t whole = 0;
    bool overflow = false;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
        const auto digit = static_cast<std::uint64_t>(text[pos++] - '0');
        if (whole > (max - digit) / 10) overflow = true;
        whole = overflow ? 0 : whole * 10 + digit;
    }
    const std::size_t whole_end = pos;
    const double part_of_unit = fraction(text, pos);
    if (pos == 0 || (pos == 1 && whole_end == 0)) bad("size (use e.g. 256MiB, 1G, 4096)", text);
    const auto unit = text.substr(pos);
    unsigned shift = 0;
    if (!(unit.empty() || unit == "B")) {
        const auto rest = unit.substr(1);
        if (!(rest.empty() || rest == "B" || rest == "iB")) bad("size", text);
        switch (unit[0]) {
            case 'K':
            case 'k':
                shift = 10;
                break;
            case 'M':
                shift = 20;
                break;
            case 'G':
                shift = 30;
                break;
            case 'T':
                shift = 40;
                break;
            default:
                bad("size (units: B, KiB, MiB, GiB, TiB)", text);
        }
    }
    if (overflow || whole > (max >> shift)) bad("size in range (at most 2^64 - 1 bytes)", text);
    const std::uint64_t bytes = whole << shift;
    const auto part =
        static_cast<std::uint64_t>(std::llround(std::ldexp(part_of_unit, static_cast<int>(shift))));
    if (part > max - bytes) bad("size in range (at most 2^64 - 1 bytes)", text);
    return bytes + part;
}

std::string format_duration(std::chrono::nanoseconds d) {
    const auto n = d.count();
    if (n == 0) return "0";
    constexpr std::pair<const char*, std::int64_t> units[] = {{"y", 365 * 86'400'000'000'000},
                                                              {"d", 86'400'000'000'000},
                                                              {"h", 3'600'000'000'000},
                                                              {"m", 60'000'000'000},
                                                              {"s", 1'000'000'000},
                                                              {"ms", 1'000'000},
                                                              {"us", 1'000}};
    for (const auto& [name, scale] : units) {
        if (n % scale == 0) return std::to_string(n / scale) + name;
    }
    return std::to_string(n) + "ns";
}

}  // namespace rill
