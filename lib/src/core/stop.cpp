#include "rill/stop.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <system_error>

namespace rill {

StopFlag::StopFlag() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (fd_ < 0) {
        throw std::system_error(errno, std::generic_category(), "cannot create a stop eventfd");
    }
}

StopFlag::~StopFlag() {
    ::close(fd_);
}

void StopFlag::request() noexcept {
    requested_.store(true, std::memory_order_release);
    // The counter is never read, so the fd stays readable; EAGAIN (counter at its maximum) keeps
    // it readable too.
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

}  // namespace rill
