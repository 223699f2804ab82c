// The flags of an app that publishes readings durably (sensor-pub, mqtt-bridge): the stream,
// the replay service, heartbeats, CURVE and the outbox, and what they become.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "rill/reliable.hpp"

namespace rill::app {

/// The publishing flags, with their defaults.
struct PublisherFlags {
    std::chrono::nanoseconds batch_interval{0};
    std::size_t batch_max = 1000;
    std::string pub = "@tcp://127.0.0.1:5556";
    std::string replay = "@tcp://127.0.0.1:5557";
    std::string announce_replay;
    std::string publisher_id;
    std::string outbox;
    std::string fsync = "batch";
    std::uint64_t outbox_max_bytes = 256ULL << 20;
    std::chrono::nanoseconds outbox_max_age = std::chrono::hours(24 * 7);
    std::uint64_t outbox_segment_bytes = 16ULL << 20;
    std::chrono::nanoseconds heartbeat_interval = std::chrono::seconds(1);
    std::string curve_secret;
    std::string curve_allow;
};

/// This machine's host name ("localhost" when it cannot be read).
[[nodiscard]] std::string host_name();

/// Where an outbox named `name` lives without --outbox: $STATE_DIRECTORY/NAME (systemd's
/// StateDirectory=, the first when it lists several), else $XDG_STATE_HOME/rill/NAME (an absolute
/// $XDG_STATE_HOME only), else $HOME/.local/state/rill/NAME, else ./NAME. `env` reads an
/// environment variable ("" when unset).
[[nodiscard]] std::filesystem::path default_outbox_dir(
    const std::string& name, const std::function<std::string(const char*)>& env);

/// Adds --batch-interval, --batch-max, --pub, --replay, --announce-replay, --publisher-id,
/// --heartbeat-interval, --curve-secret and --curve-allow (with RILL_* twins). `identity_default`
/// says in --help what --publisher-id defaults to.
void add_stream_flags(CLI::App& app, PublisherFlags& f, const std::string& identity_default);

/// Adds --outbox, --fsync, --outbox-max-bytes, --outbox-max-age and --outbox-segment-bytes (with
/// RILL_* twins). `outbox_name` is the directory name --help gives for the default location.
void add_outbox_flags(CLI::App& app, PublisherFlags& f, const std::string& outbox_name);

/// The publisher settings the flags ask for, CURVE keys included; the outbox directory is
/// --outbox or default_outbox_dir(outbox_name), the identity --publisher-id or
/// `identity_default`. Throws UsageError naming the flag (--fsync) when a value is refused, and
/// what rill::curve_server_keys throws for an unreadable key file.
[[nodiscard]] ReliablePublisherOptions publisher_options(const PublisherFlags& f,
                                                         const std::string& outbox_name,
                                                         const std::string& identity_default);

}  // namespace rill::app
