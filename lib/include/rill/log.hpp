// rill/log.hpp: one line per event on stderr, level and component first.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace rill {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };
enum class LogFormat { text, json };

/// Process-wide settings; safe to call at any time from any thread.
void set_log_level(LogLevel level) noexcept;
void set_log_format(LogFormat format) noexcept;
[[nodiscard]] LogLevel log_level() noexcept;

/// Parses "debug", "info", "warn", "error" / "text", "json". Throws std::invalid_argument.
[[nodiscard]] LogLevel parse_log_level(std::string_view text);
[[nodiscard]] LogFormat parse_log_format(std::string_view text);

/// Folds a message onto one line, for foreign text such as libpq's
/// "could not connect ...\n\tIs the server running ...?\n": every line break, with the spaces
/// and tabs around it, becomes one space; other tabs become spaces; other control characters
/// become '?'; leading and trailing whitespace is dropped. A message without control characters
/// or outer spaces comes back unchanged.
[[nodiscard]] std::string one_line(std::string_view message);

/// Writes one line to stderr, atomically with respect to other log calls:
///   text: `warn outbox: dropped 120 oldest readings (outbox full)`
///   json: `{"ts":"2026-11-21T10:00:00.000000Z","level":"warn","component":"outbox","msg":"..."}`
/// `message` is folded by one_line first, so one event is always one line. Never throws.
void log(LogLevel level, std::string_view component, std::string_view message) noexcept;

inline void log_debug(std::string_view c, std::string_view m) noexcept {
    log(LogLevel::debug, c, m);
}
inline void log_info(std::string_view c, std::string_view m) noexcept {
    log(LogLevel::info, c, m);
}
inline void log_warn(std::string_view c, std::string_view m) noexcept {
    log(LogLevel::warn, c, m);
}
inline void log_error(std::string_view c, std::string_view m) noexcept {
    log(LogLevel::error, c, m);
}

/// Logs one kind of event ("rejected message", "invalid reading") at most once per window, so a
/// flood cannot flood the log, without hiding how many there were: the events held back are
/// counted and reported, either appended to the next line logged
/// (`... (N similar messages not logged)`) or, when no further event comes, by flush() once the
/// window has passed: `N more <what> not logged in the last T s`. Not thread-safe: one thread
/// uses an instance. Never throws.
class RateLimitedLog {
  public:
    /// The clock windows are measured on.
    using Clock = std::chrono::steady_clock;

    /// Lines go to `component` at `level`; `what` names the events in the flush line (plural,
    /// e.g. "rejected messages"); `window` (> 0) is the least time between two lines.
    explicit RateLimitedLog(std::string component, std::string what,
                            Clock::duration window = std::chrono::seconds(10),
                            LogLevel level = LogLevel::warn);

    /// Logs `message` when no line was logged in the last window (with the count held back
    /// since, if any); otherwise counts it as held back.
    void log(std::string_view message, Clock::time_point now = Clock::now()) noexcept;

    /// Logs the count held back when it is not zero and the window since the last line has
    /// passed; does nothing otherwise. Call it whenever convenient (a receive loop does, and
    /// waits no longer than flush_due()).
    void flush(Clock::time_point now = Clock::now()) noexcept;

    /// When flush() will next have something to log; Clock::time_point::max() when nothing is
    /// held back.
    [[nodiscard]] Clock::time_point flush_due() const noexcept;

    /// Events held back and not reported yet.
    [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_; }

  private:
    std::string component_;
    std::string what_;
    Clock::duration window_;
    LogLevel level_;
    bool logged_ = false;
    Clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
};

/// Appends `s` to `out` as the body of a JSON string (quotes not included): escapes quote,
/// backslash and control characters; passes UTF-8 through.
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace rill
