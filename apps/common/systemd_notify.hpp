// Telling systemd how a service is doing (sd_notify): readiness, status, watchdog, stopping.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace rill::app {

/// The sd_notify(3) protocol of a Type=notify service, through libsystemd.
///
/// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID once, at construction. Without
/// NOTIFY_SOCKET (not started by systemd, or a unit that did not ask) every call does nothing,
/// so an app may call them unconditionally. Sending never throws and never blocks for long:
/// sd_notify writes one datagram to a local socket, and a failure to send is logged once and
/// otherwise ignored (a service must not stop because its supervisor is not listening).
///
/// Not thread-safe: use it from one thread at a time (each app keeps it on the thread that runs
/// its main loop, or guards it).
class SystemdNotifier {
  public:
    using Clock = std::chrono::steady_clock;

    SystemdNotifier();

    /// True when NOTIFY_SOCKET is set: messages go somewhere.
    [[nodiscard]] bool active() const noexcept { return active_; }
    /// True when systemd expects WATCHDOG=1 (WATCHDOG_USEC set, and WATCHDOG_PID unset or ours).
    [[nodiscard]] bool watchdog_enabled() const noexcept { return watchdog_.count() > 0; }
    /// The interval systemd allows between two WATCHDOG=1 (zero when no watchdog).
    [[nodiscard]] std::chrono::microseconds watchdog_interval() const noexcept { return watchdog_; }

    /// READY=1 with a STATUS= line: the service does what it is for from now on.
    void ready(std::string_view status);
    /// STATUS=: what `systemctl status` shows (one line: newlines become spaces). Sends only
    /// when the text changed.
    void status(std::string_view status);
    /// STOPPING=1 with a STATUS= line: shutdown began (e.g. on SIGTERM).
    void stopping(std::string_view status);

    /// WATCHDOG=1 when half the watchdog interval has passed since the last one (or none was
    /// sent): cheap enough to call on every turn of a main loop. Does nothing without a
    /// watchdog.
    void keep_alive();
    /// When keep_alive() has to be called next; Clock::time_point::max() without a watchdog.
    /// A loop that sleeps should not sleep past it.
    [[nodiscard]] Clock::time_point keep_alive_due() const noexcept;

  private:
    void send(const std::string& message);

    bool active_ = false;
    bool send_failed_ = false;
    std::chrono::microseconds watchdog_{0};
    Clock::time_point last_keep_alive_{};
    std::string last_status_;
};

/// GET `path` from the HTTP server at `host`:`port` (a literal IPv4 or IPv6 address; the
/// wildcards 0.0.0.0 and :: mean the loopback address) and returns whether it answered with
/// status 200 within `timeout`. Used as a liveness self-check before WATCHDOG=1 by a service
/// whose work happens on a server's threads. Never throws.
[[nodiscard]] bool http_get_ok(const std::string& host, int port, const std::string& path,
                               std::chrono::milliseconds timeout) noexcept;

}  // namespace rill::app
