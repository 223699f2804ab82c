// tap: prints the live stream of readings as JSON lines (like mosquitto_sub or kcat).
//
//   tap tcp://pi:5556 [more endpoints] [--sensors PREFIX] [--count N] [--heartbeats] [--gaps]
//
// One JSON object per reading on stdout; gaps, heartbeats and publisher liveness on stderr
// when asked. Exits 0 after --count readings, or on SIGINT/SIGTERM.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "common/app_options.hpp"
#include "common/shutdown.hpp"
#include "rill/stream.hpp"
#include "rill/stream_json.hpp"

namespace {

struct Options {
    std::vector<std::string> endpoints;
    std::vector<std::string> prefixes;
    std::uint64_t count = 0;
    bool heartbeats = false;
    bool gaps = false;
    // A printing tool is quiet by default: warnings and errors only.
    rill::app::CommonOptions common{.log_level = "warn"};
};

void add_options(CLI::App& app, Options& o) {
    app.add_option("endpoints", o.endpoints,
                   "Publisher endpoints to subscribe to (tcp://HOST:PORT; bare = connect, "
                   "@ = bind; comma lists allowed)")
        ->required()
        ->envname("RILL_TAP_ENDPOINTS");
    app.add_option("--sensors", o.prefixes,
                   "Only sensors whose id starts with PREFIX (repeatable, or a comma list)")
        ->delimiter(',')
        ->envname("RILL_TAP_SENSORS");
    app.add_option("--count", o.count, "Exit 0 after printing N readings (0 = run until stopped)")
        ->envname("RILL_TAP_COUNT")
        ->capture_default_str();
    app.add_flag("--heartbeats", o.heartbeats,
                 "Print heartbeats and publisher silence/return as JSON lines on stderr")
        ->envname("RILL_TAP_HEARTBEATS");
    app.add_flag("--gaps", o.gaps, "Print detected gaps as JSON lines on stderr")
        ->envname("RILL_TAP_GAPS");
    rill::app::add_common_options(app, o.common, "");
    app.remove_option(app.get_option("--metrics"));  // a terminal tool: no admin endpoint
}

void write_line(std::FILE* f, std::string& line) {
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), f);
    line.clear();
}

// Prints one event as the options ask; returns the readings printed (at most `room`).
std::uint64_t print(const rill::StreamEvent& event, const Options& o, std::uint64_t room) {
    std::string line;
    if (const auto* batch = std::get_if<rill::ReadingBatch>(&event)) {
        std::uint64_t printed = 0;
        for (const auto& r : batch->readings) {
            if (o.count != 0 && printed >= room) break;
            rill::append_json(line, r);
            write_line(stdout, line);
            ++printed;
        }
        std::fflush(stdout);
        return printed;
    }
    if (const auto* gap = std::get_if<rill::Gap>(&event)) {
        if (!o.gaps) return 0;
        rill::append_json(line, *gap);
        write_line(stderr, line);
    } else if (o.heartbeats) {
        std::visit(
            [&](const auto& e) {
                using T = std::decay_t<decltype(e)>;
                if constexpr (!std::is_same_v<T, rill::ReadingBatch> &&
                              !std::is_same_v<T, rill::Gap>) {
                    rill::append_json(line, e);
                    write_line(stderr, line);
                }
            },
            event);
    }
    return 0;
}

int run(const Options& o) {
    rill::app::apply_common_options(o.common);
    std::string spec;
    for (const auto& e : o.endpoints)
        spec += (spec.empty() ? "" : ",") + e;
    rill::Subscriber sub(spec, {.prefixes = o.prefixes});

    auto& shutdown = rill::app::Shutdown::install();
    // A printing tool ends quietly when its reader goes away (tap ... | head), as before.
    std::signal(SIGPIPE, SIG_DFL);
    std::uint64_t printed = 0;
    while (!shutdown.requested() && (o.count == 0 || printed < o.count)) {
        if (auto event = sub.receive(std::chrono::milliseconds(200))) {
            printed += print(*event, o, o.count - printed);
        }
    }
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"tap: print the live rill stream as JSON lines, one reading per line"};
    Options o;
    add_options(app, o);
    return rill::app::run_main(app, argc, argv, "tap", [&] { return run(o); });
}
