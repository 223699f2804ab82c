// The shared check behind every source's "stop interrupts a blocked next()" test.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "rill/source.hpp"

namespace rill::test {

// Checks that request_stop() ends a next() that waits for a measurement far in the future:
// `source` must already have returned its first measurement and have its next one due in
// about an hour. The blocked next() returns nothing within 5 s of the request, and a
// next_batch() after the stop returns 0 at once.
inline void check_stop_interrupts_next(Source& source) {
    using namespace std::chrono_literals;
    std::atomic<bool> returned{false};
    std::optional<Measurement> second;
    std::vector<Measurement> batch;
    std::size_t batched = 99;
    std::thread reader([&] {
        second = source.next();
        batched = source.next_batch(batch, 10);
        returned = true;
    });
    std::this_thread::sleep_for(50ms);
    CHECK_FALSE(returned.load());
    const auto asked = std::chrono::steady_clock::now();
    source.request_stop();
    for (int i = 0; i < 1000 && !returned; ++i)
        std::this_thread::sleep_for(10ms);
    const auto took = std::chrono::steady_clock::now() - asked;
    reader.join();
    CHECK_FALSE(second.has_value());
    CHECK(batched == 0);
    CHECK(took < 5s);
}

}  // namespace rill::test
