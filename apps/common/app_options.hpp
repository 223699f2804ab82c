// Flags every rill executable shares: logging and the admin endpoint.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "rill/socket.hpp"

namespace rill::app {

struct CommonOptions {
    std::string log_level = "info";
    std::string log_format = "text";
    std::string metrics;  ///< empty: no admin HTTP endpoint
};

/// Adds --log-level, --log-format and --metrics (with RILL_LOG_LEVEL, RILL_LOG_FORMAT and
/// RILL_METRICS twins) to `app`.
void add_common_options(CLI::App& app, CommonOptions& options, const std::string& metrics_example);

/// A subscriber's CURVE settings: its secret key file and the publishers' public key file.
struct CurveClientOptions {
    std::string secret;
    std::string server;
    /// The keys read from both files; nothing without a secret key file (CURVE off). Throws
    /// like rill::curve_client_keys when a file cannot be read or holds no valid key.
    [[nodiscard]] std::optional<CurveClientKeys> keys() const;
};

/// Adds --curve-secret and --curve-server (RILL_CURVE_SECRET, RILL_CURVE_SERVER) to `app`.
void add_curve_client_options(CLI::App& app, CurveClientOptions& options);

/// Adds a duration flag to `app`. Its value is read with rill::parse_duration, the one syntax of
/// every duration flag ("5s", "250ms", "1h30m", "0"), while the command line is parsed, so a bad
/// value is an argument error that names the flag. `target` keeps its value when the flag is not
/// given; --help shows it as the default, formatted the same way. Returns the option, e.g. for
/// ->envname().
CLI::Option* add_duration_option(CLI::App& app, const std::string& name,
                                 std::chrono::nanoseconds& target, const std::string& help);

/// As add_duration_option for a byte size, read with rill::parse_size ("256MiB", "16M", "4096").
CLI::Option* add_size_option(CLI::App& app, const std::string& name, std::uint64_t& target,
                             const std::string& help);

/// Applies the logging settings. Throws std::invalid_argument on unknown values.
void apply_common_options(const CommonOptions& options);

/// Parses argv with CLI11 and runs `body`; turns exceptions into one log line and exit code 1,
/// and CLI parse errors into CLI11's message and its exit code. Returns the process exit code.
int run_main(CLI::App& app, int argc, char** argv, const std::string& component,
             const std::function<int()>& body);

}  // namespace rill::app
