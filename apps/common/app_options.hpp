// Flags every rill executable shares: logging and the admin endpoint.
#pragma once

#include <CLI/CLI.hpp>
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

/// Applies the logging settings. Throws std::invalid_argument on unknown values.
void apply_common_options(const CommonOptions& options);

/// Parses argv with CLI11 and runs `body`; turns exceptions into one log line and exit code 1,
/// and CLI parse errors into CLI11's message and its exit code. Returns the process exit code.
int run_main(CLI::App& app, int argc, char** argv, const std::string& component,
             const std::function<int()>& body);

}  // namespace rill::app
