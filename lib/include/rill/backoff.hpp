// rill/backoff.hpp: exponential delays between reconnect attempts.
#pragma once

#include <chrono>

namespace rill {

/// The delays of a Backoff.
struct BackoffOptions {
    std::chrono::milliseconds initial{100};  ///< the first delay after a failure
    std::chrono::milliseconds max{10'000};   ///< delays never grow past this
    double multiplier = 2.0;                 ///< each failure multiplies the delay by this
};

/// Exponential backoff: next_delay() returns initial, initial*m, initial*m^2 ... up to max;
/// reset() after a success starts again at initial. Not thread-safe.
class Backoff {
  public:
    /// Starts with no failures counted.
    explicit Backoff(BackoffOptions options = {}) noexcept : options_(options) {}
    /// Counts one more failure and returns the delay before the next try: initial *
    /// multiplier^(failures before), capped at max.
    [[nodiscard]] std::chrono::milliseconds next_delay() noexcept;
    /// Starts again at `initial` (after a success).
    void reset() noexcept { failures_ = 0; }
    /// Failures counted since construction or reset().
    [[nodiscard]] unsigned failures() const noexcept { return failures_; }

  private:
    BackoffOptions options_;
    unsigned failures_ = 0;
};

}  // namespace rill
