#include "rill/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "rill/reading.hpp"

namespace rill {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::atomic<int> g_format{static_cast<int>(LogFormat::text)};

constexpr std::string_view level_name(LogLevel l) {
    switch (l) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
    }
    return "info";
}
}  // namespace

void set_log_level(LogLevel level) noexcept {
    g_level = static_cast<int>(level);
}
void set_log_format(LogFormat format) noexcept {
    g_format = static_cast<int>(format);
}
LogLevel log_level() noexcept {
    return static_cast<LogLevel>(g_level.load());
}

LogLevel parse_log_level(std::string_view t) {
    for (auto l : {LogLevel::debug, LogLevel::info, LogLevel::warn, LogLevel::error}) {
        if (t == level_name(l)) return l;
    }
    throw std::invalid_argument("unknown log level '" + std::string(t) +
                                "' (use debug, info, warn or error)");
}

LogFormat parse_log_format(std::string_view t) {
    if (t == "text") return LogFormat::text;
    if (t == "json") return LogFormat::json;
    throw std::invalid_argument("unknown log format '" + std::string(t) + "' (use text or json)");
}

void append_json_escaped(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (ch) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xF];
                } else {
                    out += ch;
                }
        }
    }
}

std::string one_line(std::string_view message) {
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    std::string out;
    out.reserve(message.size());
    bool pending_space = false;  // a run of whitespace holding a line break
    for (std::size_t i = 0; i < message.size(); ++i) {
        const char ch = message[i];
        if (ch == '\n' || ch == '\r') {
            while (!out.empty() && (out.back() == ' '))
                out.pop_back();
            while (i + 1 < message.size() && blank(message[i + 1]))
                ++i;
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) {
            out += ' ';
            pending_space = false;
        }
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '\t') {
            out += ' ';
        } else if (c < 0x20 || c == 0x7F) {
            out += '?';
        } else {
            out += ch;
        }
    }
    const auto first = out.find_first_not_of(' ');
    if (first == std::string::npos) return {};
    out.erase(0, first);
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

void log(LogLevel level, std::string_view component, std::string_view message_text) noexcept {
    if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
    try {
        const std::string message = one_line(message_text);
        std::string line;
        line.reserve(message.size() + component.size() + 64);
        if (static_cast<LogFormat>(g_format.load()) == LogFormat::json) {
            line += "{\"ts\":\"";
            line += to_iso8601(now());
            line += "\",\"level\":\"";
            line += level_name(level);
            line += "\",\"component\":\"";
            append_json_escaped(line, component);
            line += "\",\"msg\":\"";
            append_json_escaped(line, message);
            line += "\"}\n";
        } else {
            line += level_name(level);
            line += ' ';
            line += component;
            line += ": ";
            line += message;  // one_line: no control characters left
            line += '\n';
        }
        // One write(2) per line: lines from several threads never interleave.
        const char* p = line.data();
        std::size_t left = line.size();
        while (left > 0) {
            const ssize_t n = ::write(STDERR_FILENO, p, left);
            if (n <= 0) break;
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    } catch (...) {
    }
}

RateLimitedLog::RateLimitedLog(std::string component, std::string what, Clock::duration window,
                               LogLevel level)
    : component_(std::move(component)), what_(std::move(what)), window_(window), level_(level) {
    if (window_ <= Clock::duration::zero()) {
        throw std::invalid_argument("RateLimitedLog: the window must be positive");
    }
}

void RateLimitedLog::log(std::string_view message, Clock::time_point now) noexcept {
    if (logged_ && now - last_ < window_) {
        ++suppressed_;
        return;
    }
    try {
        std::string line(message);
        if (suppressed_ > 0) {
            line += " (" + std::to_string(suppressed_) + " similar messages not logged)";
        }
        rill::log(level_, component_, line);
    } catch (...) {
    }
    logged_ = true;
    last_ = now;
    suppressed_ = 0;
}

void RateLimitedLog::flush(Clock::time_point now) noexcept {
    if (suppressed_ == 0 || now < flush_due()) return;
    try {
        const auto secs = std::chrono::duration<double>(now - last_).count();
        char t[32];
        std::snprintf(t, sizeof t, "%.3g", secs);
        rill::log(
            level_, component_,
            std::to_string(suppressed_) + " more " + what_ + " not logged in the last " + t + " s");
    } catch (...) {
    }
    last_ = now;
    suppressed_ = 0;
}

RateLimitedLog::Clock::time_point RateLimitedLog::flush_due() const noexcept {
    return suppressed_ == 0 ? Clock::time_point::max() : last_ + window_;
}

}  // namespace rill
