// web-view: the live dashboard and JSON/CSV API over the readings table.
#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <thread>
#include <tuple>

#include "common/app_options.hpp"
#include "common/http_admin.hpp"
#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "live_feed.hpp"
#include "rill/log.hpp"
#include "sensor_gauges.hpp"
#include "server.hpp"
#include "supervisor.hpp"

namespace {

using namespace std::chrono_literals;
constexpr const char* component = "web-view";

struct Options {
    std::string db;
    std::string listen = "127.0.0.1:8080";
    std::vector<std::string> connect;
    std::chrono::nanoseconds stale_after = 60s;
    std::chrono::nanoseconds silent_after = 600s;
    std::size_t db_connections = 8;
    std::size_t max_sse = 64;
    std::size_t max_live_sensors = 4096;
    std::size_t max_sensor_gauges = 4096;
    std::chrono::nanoseconds cache_ttl = 1s;
    rill::app::CurveClientOptions curve;
    rill::app::CommonOptions common;
};

std::chrono::seconds whole_seconds(std::chrono::nanoseconds d, const std::string& flag) {
    if (d < 1s) throw rill::app::UsageError(flag + " must be at least 1s");
    return std::chrono::duration_cast<std::chrono::seconds>(d);
}

rill::web::ServerOptions server_options(const Options& o) {
    rill::web::ServerOptions options;
    try {
        std::tie(options.host, options.port) = rill::app::parse_listen(o.listen);
    } catch (const std::invalid_argument&) {
        throw rill::app::UsageError("--listen '" + o.listen +
                                    "' is not HOST:PORT (e.g. 127.0.0.1:8080)");
    }
    options.conninfo = o.db;
    options.stale_after = whole_seconds(o.stale_after, "--stale-after");
    options.silent_after = whole_seconds(o.silent_after, "--silent-after");
    if (options.silent_after < options.stale_after) {
        throw rill::app::UsageError("--silent-after must not be shorter than --stale-after");
    }
    options.db_connections = o.db_connections;
    options.max_sse_clients = o.max_sse;
    options.cache_ttl = std::chrono::duration_cast<std::chrono::milliseconds>(o.cache_ttl);
    return options;
}

// The live readings as gauges on /metrics: none without a live feed or with
// --max-sensor-gauges 0.
std::unique_ptr<rill::web::SensorGauges> sensor_gauges(const Options& o) {
    if (o.connect.empty() || o.max_sensor_gauges == 0) return nullptr;
    return std::make_unique<rill::web::SensorGauges>(
        rill::web::SensorGaugesOptions{.max_sensors = o.max_sensor_gauges});
}

std::unique_ptr<rill::web::LiveFeed> start_feed(const Options& o, rill::web::Server& server,
                                                rill::web::SensorGauges* gauges) {
    if (o.connect.empty()) {
        rill::log_info(component, "no --connect: the page shows stored data without live updates");
        return nullptr;
    }
    rill::web::LiveFeedOptions feed_options;
    feed_options.endpoints = o.connect;
    feed_options.curve = o.curve.keys();
    feed_options.max_sensors = o.max_live_sensors;
    auto feed = std::make_unique<rill::web::LiveFeed>(
        feed_options,
        [&server, gauges](const rill::Reading& r) {
            server.publish(r);
            if (gauges != nullptr) gauges->observe(r);
        },
        [&server](const rill::web::PublisherStatus& s) { server.publish(s); });
    for (const auto& e : o.connect)
        rill::log_info(component, "live feed from " + e);
    return feed;
}

int run(const Options& o) {
    // Handlers first, then SIGINT/SIGTERM blocked before any thread starts: only the supervisor
    // thread unblocks them.
    auto& shutdown = rill::app::Shutdown::install();
    rill::web::block_stop_signals();

    rill::app::apply_common_options(o.common);
    const auto options = server_options(o);
    rill::web::Server server(options);
    const int port = server.bind();
    const auto gauges = sensor_gauges(o);  // outlives the feed that updates it
    const auto feed = start_feed(o, server, gauges.get());

    const std::string host =
        options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host;
    const std::string url = "http://" + host + ":" + std::to_string(port) + "/";
    rill::log_info(component, "listening on " + url);

    // systemd: READY=1 once the socket listens (connections queue until run() accepts them).
    rill::app::SystemdNotifier systemd;
    systemd.ready("listening on " + url +
                  (o.connect.empty()
                       ? std::string(", no live feed")
                       : ", live feed from " + std::to_string(o.connect.size()) + " endpoint(s)"));
    std::atomic<bool> done{false};
    std::thread supervisor(
        [&] { rill::web::supervise(shutdown, systemd, server, options.host, port, done); });
    const bool ok = server.run();
    done = true;
    supervisor.join();
    if (feed) feed->stop();
    server.stop();
    if (!ok) {
        rill::log_error(component, "the HTTP server failed");
        return 1;
    }
    rill::log_info(component, "stopped");
    return 0;
}

void add_options(CLI::App& app, Options& o) {
    app.add_option("--db", o.db, "PostgreSQL connection string or URL")
        ->envname("DATABASE_URL")
        ->required();
    app.add_option("--listen", o.listen, "HTTP address HOST:PORT (port 0: any free port)")
        ->envname("RILL_WEB_LISTEN")
        ->capture_default_str();
    app.add_option("--connect", o.connect,
                   "stream endpoint to subscribe to for live updates (tcp://HOST:PORT or "
                   ">tcp://HOST:PORT; repeatable, or comma-separated)")
        ->envname("RILL_WEB_CONNECT")
        ->delimiter(',');
    rill::app::add_duration_option(app, "--stale-after", o.stale_after,
                                   "time without a reading before a sensor is stale")
        ->envname("RILL_WEB_STALE_AFTER");
    rill::app::add_duration_option(
        app, "--silent-after", o.silent_after,
        "time without a reading before a sensor is silent (and /healthz fails)")
        ->envname("RILL_WEB_SILENT_AFTER");
    app.add_option("--db-connections", o.db_connections, "database connections at most")
        ->envname("RILL_WEB_DB_CONNECTIONS")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    app.add_option("--max-live-clients", o.max_sse, "browsers on /events at most")
        ->envname("RILL_WEB_MAX_LIVE_CLIENTS")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    app.add_option("--max-live-sensors", o.max_live_sensors,
                   "sensors the live feed keeps track of at most (the least recently seen is "
                   "forgotten first, counted in rill_web_live_evicted_total)")
        ->envname("RILL_WEB_MAX_LIVE_SENSORS")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
        ->capture_default_str();
    app.add_option("--max-sensor-gauges", o.max_sensor_gauges,
                   "sensors whose newest live reading /metrics shows as rill_sensor_* gauges at "
                   "most (3 series each; the one heard from least recently is forgotten first; "
                   "0: none)")
        ->envname("RILL_WEB_MAX_SENSOR_GAUGES")
        ->check(CLI::Range(std::size_t{0}, std::size_t{1'000'000}))
        ->capture_default_str();
    rill::app::add_duration_option(app, "--cache-ttl", o.cache_ttl,
                                   "how long the page, /api/sensors and first pages of "
                                   "/api/readings reuse a database answer (0: off)")
        ->envname("RILL_WEB_CACHE_TTL");
    rill::app::add_curve_client_options(app, o.curve);
    rill::app::add_common_options(app, o.common, "127.0.0.1:9103");
    // /metrics and /healthz are served on --listen with the dashboard: no separate admin port.
    app.remove_option(app.get_option("--metrics"));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "web-view: the live dashboard and JSON/CSV API over rill's readings table.\n"
        "Serves / (dashboard), /api/sensors, /api/readings, /api/readings.csv, /api/series,\n"
        "/events (Server-Sent Events), /healthz and /metrics."};
    Options o;
    add_options(app, o);
    return rill::app::run_main(app, argc, argv, component, [&] { return run(o); });
}
