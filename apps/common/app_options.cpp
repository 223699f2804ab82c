#include "common/app_options.hpp"

#include <array>
#include <exception>
#include <iostream>

#include "rill/endpoint.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/security.hpp"
#include "rill/socket.hpp"
#include "rill/units.hpp"
#include "rill/version.hpp"

namespace rill::app {

namespace {

// A CLI11 validator that runs `parse` on the value and turns its std::invalid_argument into the
// validation error CLI11 reports with the flag's name.
template <typename Parse>
CLI::Validator parsed_by(std::string name, Parse parse) {
    return CLI::Validator(
        [parse](std::string& text) {
            try {
                (void)parse(text);
                return std::string();
            } catch (const std::invalid_argument& e) {
                return std::string(e.what());
            }
        },
        std::move(name));
}

// A byte size as parse_size reads it, with the largest exact binary unit: "256MiB", "4096".
std::string size_text(std::uint64_t bytes) {
    constexpr std::array<const char*, 4> units = {"KiB", "MiB", "GiB", "TiB"};
    std::string unit;
    for (const char* u : units) {
        if (bytes == 0 || bytes % 1024 != 0) break;
        bytes /= 1024;
        unit = u;
    }
    return std::to_string(bytes) + unit;
}

}  // namespace

void add_common_options(CLI::App& app, CommonOptions& o, const std::string& metrics_example) {
    app.add_option("--log-level", o.log_level, "debug, info, warn or error")
        ->envname("RILL_LOG_LEVEL")
        ->check(parsed_by("LEVEL", [](const std::string& t) { return parse_log_level(t); }))
        ->capture_default_str();
    app.add_option("--log-format", o.log_format, "text (one line per event) or json")
        ->envname("RILL_LOG_FORMAT")
        ->check(parsed_by("FORMAT", [](const std::string& t) { return parse_log_format(t); }))
        ->capture_default_str();
    app.add_option("--metrics", o.metrics,
                   "serve /metrics and /healthz over HTTP on HOST:PORT, e.g. " + metrics_example)
        ->envname("RILL_METRICS");
}

std::vector<std::pair<std::string, std::string>> parse_curve_server_for(
    const std::vector<std::string>& values) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& value : values) {
        std::size_t pos = 0;
        while (pos < value.size()) {
            const auto end = value.find_first_of(", \t\n", pos);
            const auto entry = value.substr(pos, end == std::string::npos ? end : end - pos);
            pos = end == std::string::npos ? value.size() : end + 1;
            if (entry.empty()) continue;
            const auto eq = entry.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == entry.size()) {
                throw std::invalid_argument("'" + entry + "' is not ENDPOINT=FILE");
            }
            std::vector<Endpoint> endpoint;
            try {
                endpoint = parse_endpoints(entry.substr(0, eq), Attach::connect);
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument("'" + entry + "': " + e.what());
            }
            if (endpoint.size() != 1 || endpoint.front().attach != Attach::connect) {
                throw std::invalid_argument("'" + entry +
                                            "' does not name one endpoint to connect to");
            }
            out.emplace_back(endpoint.front().address, entry.substr(eq + 1));
        }
    }
    return out;
}

std::optional<CurveClientKeys> CurveClientOptions::keys() const {
    std::vector<std::pair<std::string, std::string>> per_endpoint;
    try {
        per_endpoint = parse_curve_server_for(server_for);
    } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--curve-server-for: ") + e.what());
    }
    if (secret.empty()) {
        if (!per_endpoint.empty()) throw UsageError("--curve-server-for needs --curve-secret");
        return std::nullopt;
    }
    auto keys = curve_client_keys(secret, server);
    for (const auto& [address, file] : per_endpoint) {
        try {
            keys.server_public_key_for[address] = read_key_file(file).public_key;
        } catch (const std::exception& e) {
            throw std::runtime_error("--curve-server-for " + address + "=" + file + ": " +
                                     e.what());
        }
    }
    return keys;
}

void add_curve_client_options(CLI::App& app, CurveClientOptions& o) {
    auto* secret =
        app.add_option("--curve-secret", o.secret, "CURVE: this client's secret key file")
            ->envname("RILL_CURVE_SECRET");
    app.add_option("--curve-server", o.server,
                   "CURVE: the publishers' public key file (NAME.key); the default for endpoints "
                   "without --curve-server-for")
        ->envname("RILL_CURVE_SERVER");
    app.add_option("--curve-server-for", o.server_for,
                   "CURVE: ENDPOINT=FILE, the public key file of the publisher at ENDPOINT (a "
                   "--connect endpoint or an announced replay endpoint); repeatable, the "
                   "variable takes entries separated by commas or spaces")
        ->envname("RILL_CURVE_SERVER_FOR")
        ->needs(secret)
        ->check(parsed_by("ENDPOINT=FILE",
                          [](const std::string& t) { return parse_curve_server_for({t}); }));
}

CLI::Option* add_duration_option(CLI::App& app, const std::string& name,
                                 std::chrono::nanoseconds& target, const std::string& help) {
    return app
        .add_option_function<std::string>(
            name, [&target](const std::string& text) { target = parse_duration(text); }, help)
        ->check(parsed_by("DURATION", [](const std::string& t) { return parse_duration(t); }))
        ->default_str(format_duration(target));
}

CLI::Option* add_size_option(CLI::App& app, const std::string& name, std::uint64_t& target,
                             const std::string& help) {
    return app
        .add_option_function<std::string>(
            name, [&target](const std::string& text) { target = parse_size(text); }, help)
        ->check(parsed_by("SIZE", [](const std::string& t) { return parse_size(t); }))
        ->default_str(size_text(target));
}

void apply_common_options(const CommonOptions& o) {
    try {
        set_log_level(parse_log_level(o.log_level));
        set_log_format(parse_log_format(o.log_format));
    } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
    }
}

int report_usage_error(std::string_view program, std::string_view message) {
    std::string line(program);
    line += ": ";
    line += message;
    line += " (see ";
    line += program;
    line += " --help)\n";
    std::cerr << line << std::flush;
    return exit_usage;
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                      std::string_view program) {
    app.set_version_flag("--version", std::string(version()));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version arrive as "errors" with exit code 0: CLI11 prints them.
        if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
        return report_usage_error(program, e.what());
    }
    return std::nullopt;
}

int run_main(CLI::App& app, int argc, char** argv, const std::string& program,
             const std::function<int()>& body) {
    if (const auto code = parse_command_line(app, argc, argv, program)) return *code;
    // A constant 1 whose labels say what runs: join it to other series to see versions.
    default_registry()
        .gauge("rill_build_info", "Always 1; labels: the app and rill's version",
               {{"app", program}, {"version", std::string(version())}})
        .set(1);
    int code = 1;
    try {
        code = body();
    } catch (const UsageError& e) {
        code = report_usage_error(program, e.what());
    } catch (const std::exception& e) {
        log_error(program, e.what());
    }
    // Send what the sockets still queue (the last readings and heartbeat) before exiting.
    if (!close_default_context(std::chrono::seconds(5))) {
        log_warn(program, "exiting with messages still queued after 5 s");
    }
    return code;
}

}  // namespace rill::app
