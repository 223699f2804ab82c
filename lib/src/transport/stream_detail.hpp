// What the send side (publisher.cpp: Publisher, Pusher) and the receive side (subscriber.cpp:
// Subscriber, Puller) of rill/stream.hpp share. Internal.
#pragma once

#include <chrono>
#include <cstddef>

#include "rill/codec.hpp"
#include "rill/metrics.hpp"
#include "rill/socket.hpp"

namespace rill::stream_detail {

using Clock = std::chrono::steady_clock;

/// How many DecodeErrc values there are (one malformed-frames counter each).
inline constexpr std::size_t decode_errc_count =
    static_cast<std::size_t>(DecodeErrc::topic_mismatch) + 1;

/// `m`, or default_registry() when null.
inline MetricsRegistry& registry_of(MetricsRegistry* m) {
    return m != nullptr ? *m : default_registry();
}
/// `c`, or default_context() when null.
inline zmq::context_t& context_of(zmq::context_t* c) {
    return c != nullptr ? *c : default_context();
}

}  // namespace rill::stream_detail
