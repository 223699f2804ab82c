// Shutdown on SIGINT/SIGTERM: a flag to test and a file descriptor to poll.
#pragma once

#include <atomic>
#include <chrono>
#include <span>
#include <string>
#include <zmq.hpp>

#include "rill/stop.hpp"

namespace rill::app {

/// Installs SIGINT and SIGTERM handlers (once per process) that request stop() (a rill::StopFlag:
/// a flag, and fd() readable), so that a loop blocked in poll/zmq::poll wakes at once. A second
/// signal while shutting down restores the default action, so a third Ctrl-C kills a stuck process.
class Shutdown {
  public:
    static Shutdown& install();
    [[nodiscard]] bool requested() const noexcept { return stop_.requested(); }
    /// Readable once shutdown was requested; add it to a poll set (zmq::pollitem_t{nullptr, fd}).
    [[nodiscard]] int fd() const noexcept { return stop_.fd(); }
    /// The flag the signals set: what library loops (rill::IngestLoop, rill::SourcePump) take.
    [[nodiscard]] const StopFlag& stop() const noexcept { return stop_; }
    /// The signal that asked for shutdown (0 when none, or when request() was called).
    [[nodiscard]] int signal_number() const noexcept { return signal_.load(); }
    /// What asked for shutdown, for logs and systemd's STATUS: "SIGTERM", "SIGINT", "request"
    /// (request() or another signal), or "" when shutdown was not requested.
    [[nodiscard]] std::string reason() const;
    /// Asks for shutdown from code, as a signal would.
    void request() noexcept;

  private:
    Shutdown() = default;
    static void handler(int sig) noexcept;
    StopFlag stop_;
    std::atomic<int> signal_{0};
};

/// zmq::poll on `items` for up to `timeout` (negative: no limit). A signal interrupting the wait
/// (EINTR: SIGTERM arriving on the polling thread) ends it early like a timeout, so the caller's
/// loop gets to check Shutdown::requested(); zmq::poll would throw then. Throws zmq::error_t for
/// any other failure.
void poll_interruptible(std::span<zmq::pollitem_t> items, std::chrono::milliseconds timeout);

}  // namespace rill::app
