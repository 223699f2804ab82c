// Flags every rill executable shares (logging, the admin endpoint) and the one command-line
// voice: argument errors print "PROGRAM: message" and exit 64 (EX_USAGE), runtime failures exit 1.
#pragma once

#include <sysexits.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/socket.hpp"

namespace rill::app {

/// The exit code of every argument error (an unknown flag, a bad or missing value, a value the
/// program refuses): EX_USAGE from <sysexits.h>. Runtime failures exit 1, --help/--version 0.
inline constexpr int exit_usage = EX_USAGE;

/// A flag value the program refuses after parsing (out of range, two flags that exclude each
/// other). run_main reports it like a parse error: "PROGRAM: message", exit code exit_usage.
class UsageError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

struct CommonOptions {
    std::string log_level = "info";
    std::string log_format = "text";
    std::string metrics;  ///< empty: no admin HTTP endpoint
};

/// Adds --log-level, --log-format and --metrics (with RILL_LOG_LEVEL, RILL_LOG_FORMAT and
/// RILL_METRICS twins) to `app`.
void add_common_options(CLI::App& app, CommonOptions& options, const std::string& metrics_example);

/// A subscriber's CURVE settings: its secret key file, the publishers' public key file (the
/// default server key) and per-endpoint server key files.
struct CurveClientOptions {
    std::string secret;
    std::string server;
    /// --curve-server-for values: ENDPOINT=FILE entries, several per value separated by commas
    /// or whitespace (RILL_CURVE_SERVER_FOR).
    std::vector<std::string> server_for;
    /// The keys read from the files; nothing without a secret key file (CURVE off). Throws
    /// UsageError naming the entry for a malformed --curve-server-for entry or one given without
    /// --curve-secret, and like rill::curve_client_keys (naming the entry) when a file cannot be
    /// read or holds no valid key.
    [[nodiscard]] std::optional<CurveClientKeys> keys() const;
};

/// The (endpoint address, key file) pairs of --curve-server-for values: each value is split at
/// commas and whitespace; each entry is ENDPOINT=FILE, ENDPOINT a connect endpoint ("tcp://h:p"
/// or ">tcp://h:p"; the address is returned without the prefix). Throws std::invalid_argument
/// naming the first malformed entry ("'x' is not ENDPOINT=FILE").
[[nodiscard]] std::vector<std::pair<std::string, std::string>> parse_curve_server_for(
    const std::vector<std::string>& values);

/// Adds --curve-secret, --curve-server and the repeatable --curve-server-for (RILL_CURVE_SECRET,
/// RILL_CURVE_SERVER, RILL_CURVE_SERVER_FOR) to `app`.
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

/// Applies the logging settings (already checked while parsing). Throws UsageError on unknown
/// values.
void apply_common_options(const CommonOptions& options);

/// Writes "PROGRAM: message (see PROGRAM --help)" as one line on stderr and returns exit_usage.
int report_usage_error(std::string_view program, std::string_view message);

/// Adds --version and parses argv with CLI11. Returns the exit code when the program should end
/// now: 0 after printing --help or --version, exit_usage after an argument error (reported by
/// report_usage_error); nothing when it should run.
[[nodiscard]] std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                                    std::string_view program);

/// parse_command_line, then `body`. A UsageError from `body` is an argument error (exit_usage);
/// any other exception becomes one error log line of component `program` and exit code 1. Then
/// flushes what the default ZeroMQ context still queues (at most 5 s). Returns the exit code.
int run_main(CLI::App& app, int argc, char** argv, const std::string& program,
             const std::function<int()>& body);

}  // namespace rill::app
