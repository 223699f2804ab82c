// Backoff: exponential reconnect delays.
#include "rill/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace rill {

std::chrono::milliseconds Backoff::next_delay() noexcept {
    const double base = static_cast<double>(options_.initial.count());
    const double factor = std::pow(std::max(options_.multiplier, 1.0), failures_);
    ++failures_;
    const double ms = std::min(base * factor, static_cast<double>(options_.max.count()));
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(ms));
}

}  // namespace rill
