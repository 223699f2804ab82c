// A free loopback TCP port for the servers tests start that cannot pick their own (mosquitto,
// Prometheus, sensor-pub's stream in some tests).
#pragma once

#include <cstdint>

namespace rill::test {

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed), for
/// a server that cannot be told to pick its own.
[[nodiscard]] std::uint16_t free_loopback_port();

}  // namespace rill::test
