// sensor-pub's flags and what they become: source options and publisher options.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "common/app_options.hpp"
#include "common/publisher_flags.hpp"
#include "rill/reliable.hpp"
#include "rill/source.hpp"

namespace rill::sensor_pub {

/// Every flag of sensor-pub, with its default (the publishing ones in app::PublisherFlags).
struct Options : app::PublisherFlags {
    std::string sensor_id;
    std::string source = "sim";
    std::chrono::nanoseconds interval = std::chrono::seconds(5);
    CLI::Option* interval_flag = nullptr;  ///< to tell whether --interval was given
    double rate = 0;
    std::uint64_t seed = 1;
    std::uint64_t count = 0;
    std::chrono::nanoseconds linger = std::chrono::seconds(30);
    bool linger_full = false;
    std::string chip = "gpiochip0";
    unsigned line = 4;
    bool no_pull_up = false;
    int realtime = 0;
    std::string sysfs_root = "/sys";
    bool csv_paced = false;
    app::CommonOptions common;
};

/// Where the outbox lives without --outbox: $STATE_DIRECTORY/outbox-ID (systemd's
/// StateDirectory=, the first when it lists several), else $XDG_STATE_HOME/rill/outbox-ID (an
/// absolute $XDG_STATE_HOME only), else $HOME/.local/state/rill/outbox-ID, else ./outbox-ID.
/// `env` reads an environment variable ("" when unset).
[[nodiscard]] std::filesystem::path default_outbox_dir(
    const std::string& sensor_id, const std::function<std::string(const char*)>& env);

/// Adds every flag (with its RILL_* environment twin) to `app`, writing into `o`.
void add_flags(CLI::App& app, Options& o);

/// The source settings the flags ask for. Throws app::UsageError naming the flag (--rate,
/// --interval, --source) when a value is refused.
[[nodiscard]] SourceOptions source_options(const Options& o);

/// The publisher settings the flags ask for, CURVE keys included; the outbox directory is
/// --outbox or default_outbox_dir. Throws app::UsageError naming the flag (--fsync) when a value
/// is refused, and what rill::curve_server_keys throws for an unreadable key file.
[[nodiscard]] ReliablePublisherOptions publisher_options(const Options& o);

}  // namespace rill::sensor_pub
