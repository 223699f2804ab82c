// tap: prints the live stream of readings as JSON lines (like mosquitto_sub or kcat).
//
//   tap tcp://pi:5556 [more endpoints] [--sensors PREFIX] [--count N] [--heartbeats] [--gaps]
//
// One JSON object per reading on stdout; gaps, heartbeats and publisher liveness on stderr
// when asked. Exits 0 after --count readings, or on SIGINT/SIGTERM.
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "rill/log.hpp"
#include "rill/stream.hpp"
#include "rill/stream_json.hpp"
#include "rill/version.hpp"

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int /*sig*/) {
    g_stop.store(true);
}

void write_line(std::FILE* f, std::string& line) {
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), f);
    line.clear();
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"tap: print the live rill stream as JSON lines, one reading per line"};
    std::vector<std::string> endpoints;
    std::vector<std::string> prefixes;
    std::uint64_t count = 0;
    bool heartbeats = false;
    bool gaps = false;
    std::string log_level = "warn";
    app.add_option("endpoints", endpoints,
                   "Publisher endpoints to subscribe to (tcp://HOST:PORT; bare = connect, "
                   "@ = bind; comma lists allowed)")
        ->required()
        ->envname("RILL_TAP_ENDPOINTS");
    app.add_option("--sensors", prefixes,
                   "Only sensors whose id starts with PREFIX (repeatable, or a comma list)")
        ->delimiter(',')
        ->envname("RILL_TAP_SENSORS");
    app.add_option("--count", count, "Exit 0 after printing N readings (0 = run until stopped)")
        ->envname("RILL_TAP_COUNT");
    app.add_flag("--heartbeats", heartbeats,
                 "Print heartbeats and publisher silence/return as JSON lines on stderr")
        ->envname("RILL_TAP_HEARTBEATS");
    app.add_flag("--gaps", gaps, "Print detected gaps as JSON lines on stderr")
        ->envname("RILL_TAP_GAPS");
    app.add_option("--log-level", log_level, "debug, info, warn or error")
        ->envname("RILL_LOG_LEVEL");
    std::string log_format = "text";
    app.add_option("--log-format", log_format, "text (one line per event) or json")
        ->envname("RILL_LOG_FORMAT");
    app.set_version_flag("--version", std::string(rill::version()));
    CLI11_PARSE(app, argc, argv);

    try {
        rill::set_log_level(rill::parse_log_level(log_level));
        rill::set_log_format(rill::parse_log_format(log_format));
        std::string spec;
        for (const auto& e : endpoints)
            spec += (spec.empty() ? "" : ",") + e;
        rill::Subscriber sub(spec, {.prefixes = prefixes});

        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::uint64_t printed = 0;
        std::string line;
        while (!g_stop.load() && (count == 0 || printed < count)) {
            auto event = sub.receive(std::chrono::milliseconds(200));
            if (!event) continue;
            if (auto* batch = std::get_if<rill::ReadingBatch>(&*event)) {
                for (const auto& r : batch->readings) {
                    if (count != 0 && printed >= count) break;
                    rill::append_json(line, r);
                    write_line(stdout, line);
                    ++printed;
                }
                std::fflush(stdout);
            } else if (auto* gap = std::get_if<rill::Gap>(&*event)) {
                if (!gaps) continue;
                rill::append_json(line, *gap);
                write_line(stderr, line);
            } else if (heartbeats) {
                std::visit(
                    [&](const auto& e) {
                        if constexpr (!std::is_same_v<std::decay_t<decltype(e)>,
                                                      rill::ReadingBatch> &&
                                      !std::is_same_v<std::decay_t<decltype(e)>, rill::Gap>) {
                            rill::append_json(line, e);
                            write_line(stderr, line);
                        }
                    },
                    *event);
            }
        }
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        rill::log_error("tap", e.what());
        return 1;
    }
}
