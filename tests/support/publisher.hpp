// A ReliablePublisher set up for in-process tests: loopback ports the kernel picks, an outbox in
// a temporary directory, fast heartbeats.
#pragma once

#include <chrono>
#include <string>

#include "rill/reliable.hpp"
#include "support/process.hpp"

namespace rill::test {

/// Options of a ReliablePublisher that binds its stream and replay service to 127.0.0.1 port 0
/// (read them back from publisher().bound() and replay_endpoint()), keeps its outbox in
/// `dir`/outbox without fsync, heartbeats every 50 ms and calls itself `identity`.
inline ReliablePublisherOptions loopback_publisher(const TempDir& dir, std::string identity) {
    ReliablePublisherOptions o;
    o.outbox_dir = dir.path() / "outbox";
    o.outbox.fsync = FsyncPolicy::never;
    o.publish_endpoints = "@tcp://127.0.0.1:0";
    o.replay_endpoints = "@tcp://127.0.0.1:0";
    o.publisher.heartbeat_interval = std::chrono::milliseconds(50);
    o.publisher.identity = std::move(identity);
    return o;
}

}  // namespace rill::test
