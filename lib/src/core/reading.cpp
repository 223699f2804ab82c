#include "rill/reading.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

// to_iso8601 and now() go through time_t: it must hold dates past 2038 (lib/CMakeLists.txt sets
// _TIME_BITS=64 on 32-bit targets).
static_assert(sizeof(std::time_t) == 8, "rill needs a 64-bit time_t: build with _TIME_BITS=64");

namespace rill {

bool is_clean_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) return false;
            ++p;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (static_cast<std::size_t>(end - p) < len) return false;
        for (std::size_t i = 1; i < len; ++i) {
            if ((p[i] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF || (cp >= 0x80 && cp < 0xA0)) {
            return false;
        }
        p += len;
    }
    return true;
}

std::optional<std::string> sensor_id_problem(std::string_view id) {
    if (id.empty()) return "sensor id is empty";
    if (id.size() > limits::max_sensor_id_bytes) {
        return "sensor id is " + std::to_string(id.size()) + " bytes, more than " +
               std::to_string(limits::max_sensor_id_bytes);
    }
    if (!is_clean_utf8(id)) return "sensor id is not UTF-8 text without control characters";
    return std::nullopt;
}

std::optional<std::string> reading_problem(const Reading& r) {
    if (auto p = sensor_id_problem(r.sensor)) return p;
    if (r.seq == 0) return std::string("seq is 0; sequence numbers start at 1");
    if (r.seq > limits::max_seq) {
        return "seq " + std::to_string(r.seq) + " is above 2^63 - 1, the largest seq";
    }
    const auto ts = r.ts.time_since_epoch().count();
    if (ts <= 0 || ts > limits::max_ts_us) {
        return "timestamp " + std::to_string(ts) + " us is outside (0, year 9999]";
    }
    // Compared as double, as a decoder compares a float32 from the wire (widened exactly). A NaN
    // is not_measured; an infinity fails the range check.
    const double t = r.temperature;
    if (is_measured(r.temperature) &&
        (!std::isfinite(t) || t < limits::min_temperature || t > limits::max_temperature)) {
        return "temperature " + std::to_string(r.temperature) + " is not in [-273.15, 1000]";
    }
    if (is_measured(r.humidity) &&
        (!std::isfinite(r.humidity) || r.humidity < 0 || r.humidity > 100)) {
        return "humidity " + std::to_string(r.humidity) + " is not in [0, 100]";
    }
    if (!is_measured(r.temperature) && !is_measured(r.humidity) && r.extras.empty()) {
        return std::string("reading measures nothing: no temperature, humidity or extra");
    }
    if (r.extras.size() > limits::max_extras) {
        return "reading has " + std::to_string(r.extras.size()) + " extras, more than " +
               std::to_string(limits::max_extras);
    }
    for (std::size_t i = 0; i < r.extras.size(); ++i) {
        const auto& e = r.extras[i];
        if (e.name.empty() || e.name.size() > limits::max_extra_name_bytes ||
            !is_clean_utf8(e.name)) {
            return "extra name '" + e.name + "' is not 1 to 32 bytes of clean UTF-8";
        }
        if (!std::isfinite(e.value)) return "extra '" + e.name + "' is not a finite number";
        for (std::size_t j = 0; j < i; ++j) {
            if (r.extras[j].name == e.name) return "extra '" + e.name + "' appears twice";
        }
    }
    return std::nullopt;
}

Timestamp now() noexcept {
    // Not std::chrono::system_clock::now(): Debian 12's armhf libstdc++ reads the clock into a
    // 32-bit time_t, which goes back to 1901 in 2038. Compiled here, clock_gettime is glibc's
    // 64-bit one on every target (_TIME_BITS=64 on 32-bit ones: docs/raspberry-pi.md "32-bit time
    // on armhf").
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return Timestamp{std::chrono::seconds{ts.tv_sec} +
                     std::chrono::microseconds{ts.tv_nsec / 1000}};
}

std::string to_iso8601(Timestamp ts) {
    const auto us = ts.time_since_epoch().count();
    auto secs = static_cast<std::time_t>(us / 1'000'000);
    auto frac = us % 1'000'000;
    if (frac < 0) {
        frac += 1'000'000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>(frac));
    return buf;
}

namespace {

// Reads exactly `n` digits at `s[pos]` into `out`; advances `pos`.
bool digits(std::string_view s, std::size_t& pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const char c = s[pos + i];
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    pos += n;
    out = v;
    return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
    if (pos < s.size() && s[pos] == c) {
        ++pos;
        return true;
    }
    return false;
}

}  // namespace

std::optional<Timestamp> parse_time(std::string_view s) {
    using namespace std::chrono;
    if (s.empty() || s.size() > 40) return std::nullopt;
    // Plain Unix seconds.
    if (s.find_first_not_of("0123456789") == std::string_view::npos) {
        if (s.size() > 12) return std::nullopt;
        long long v = 0;
        for (char c : s)
            v = v * 10 + (c - '0');
        return Timestamp{microseconds{v * 1'000'000}};
    }
    std::size_t pos = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!digits(s, pos, 4, y) || !expect(s, pos, '-') || !digits(s, pos, 2, mo) ||
        !expect(s, pos, '-') || !digits(s, pos, 2, d)) {
        return std::nullopt;
    }
    long long frac_us = 0;
    std::chrono::minutes offset{0};
    if (pos < s.size()) {
        if (!(expect(s, pos, 'T') || expect(s, pos, 't') || expect(s, pos, ' '))) {
            return std::nullopt;
        }
        if (!digits(s, pos, 2, h) || !expect(s, pos, ':') || !digits(s, pos, 2, mi)) {
            return std::nullopt;
        }
        if (expect(s, pos, ':') && !digits(s, pos, 2, sec)) return std::nullopt;
        if (expect(s, pos, '.')) {
            std::size_t n = 0;
            while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
                if (n < 6) frac_us = frac_us * 10 + (s[pos] - '0');
                ++n;
                ++pos;
            }
            if (n == 0) return std::nullopt;
            for (; n < 6; ++n)
                frac_us *= 10;
        }
        if (expect(s, pos, 'Z') || expect(s, pos, 'z')) {
        } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
            const int sign = s[pos] == '-' ? -1 : 1;
            ++pos;
            int oh, om;
            if (!digits(s, pos, 2, oh)) return std::nullopt;
            expect(s, pos, ':');
            if (!digits(s, pos, 2, om) || oh > 23 || om > 59) return std::nullopt;
            offset = std::chrono::minutes{sign * (oh * 60 + om)};
        }
        if (pos != s.size()) return std::nullopt;
    }
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - offset;
    return Timestamp{duration_cast<microseconds>(t.time_since_epoch()) + microseconds{frac_us}};
}

}  // namespace rill
