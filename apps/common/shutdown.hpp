// Shutdown on SIGINT/SIGTERM: a flag to test and a file descriptor to poll.
#pragma once

#include <atomic>
#include <chrono>
#include <span>
#include <string>
#include <zmq.hpp>

namespace rill::app {

/// Installs SIGINT and SIGTERM handlers (once per process) that set a flag and make fd()
/// readable, so that a loop blocked in poll/zmq::poll wakes at once. A second signal while
/// shutting down restores the default action, so a third Ctrl-C kills a stuck process.
class Shutdown {
  public:
    static Shutdown& install();
    [[nodiscard]] bool requested() const noexcept { return requested_.load(); }
    /// Readable once shutdown was requested; add it to a poll set (zmq::pollitem_t{nullptr, fd}).
    [[nodiscard]] int fd() const noexcept { return fd_; }
    /// The signal that asked for shutdown (0 when none, or when request() was called).
    [[nodiscard]] int signal_number() const noexcept { return signal_.load(); }
    /// What asked for shutdown, for logs and systemd's STATUS: "SIGTERM", "SIGINT", "request"
    /// (request() or another signal), or "" when shutdown was not requested.
    [[nodiscard]] std::string reason() const;
    /// Asks for shutdown from code, as a signal would.
    void request() noexcept;

  private:
    Shutdown();
    static void handler(int sig) noexcept;
    std::atomic<bool> requested_{false};
    std::atomic<int> signal_{0};
    int fd_ = -1;
};

/// zmq::poll on `items` for up to `timeout` (negative: no limit). A signal interrupting the wait
/// (EINTR: SIGTERM arriving on the polling thread) ends it early like a timeout, so the caller's
/// loop gets to check Shutdown::requested(); zmq::poll would throw then. Throws zmq::error_t for
/// any other failure.
void poll_interruptible(std::span<zmq::pollitem_t> items, std::chrono::milliseconds timeout);

}  // namespace rill::app
