// rill/stop.hpp: a stop request that a loop can test and wait on.
#pragma once

#include <atomic>

namespace rill {

/// A one-way stop request shared between whoever asks (a signal handler, another thread, a
/// test) and a loop that must notice it: request() sets a flag and makes fd() readable, so a loop
/// blocked in poll(2) / zmq::poll on fd() wakes at once instead of at its next timeout.
///
/// Threads: every member is thread-safe; request() is also async-signal-safe (an atomic store
/// and one write(2) to an eventfd), so a signal handler may call it. Once requested it stays
/// requested.
class StopFlag {
  public:
    /// Creates the eventfd. Throws std::system_error when the process has no descriptor left.
    StopFlag();
    /// Closes the eventfd.
    ~StopFlag();
    StopFlag(const StopFlag&) = delete;
    StopFlag& operator=(const StopFlag&) = delete;

    /// Asks for the stop. Idempotent; never throws.
    void request() noexcept;
    /// True once request() was called.
    [[nodiscard]] bool requested() const noexcept {
        return requested_.load(std::memory_order_acquire);
    }
    /// Readable (POLLIN) from the first request() on, forever: add it to a poll set, e.g.
    /// zmq::pollitem_t{nullptr, flag.fd(), ZMQ_POLLIN, 0}.
    [[nodiscard]] int fd() const noexcept { return fd_; }

  private:
    std::atomic<bool> requested_{false};
    int fd_ = -1;
};

}  // namespace rill
