// web-view: the live dashboard and JSON/CSV API over the readings table.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

#include "common/app_options.hpp"
#include "common/systemd_notify.hpp"
#include "live_feed.hpp"
#include "params.hpp"
#include "rill/log.hpp"
#include "server.hpp"

namespace {

constexpr const char* component = "web-view";

struct Options {
    std::string db;
    std::string listen = "127.0.0.1:8080";
    std::vector<std::string> connect;
    long long stale_after = 60;
    long long silent_after = 600;
    std::size_t db_connections = 8;
    std::size_t max_sse = 64;
    rill::app::CurveClientOptions curve;
    rill::app::CommonOptions common;
};

int run(const Options& o) {
    // SIGINT/SIGTERM are taken by one thread with sigwait: block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    rill::app::apply_common_options(o.common);
    const auto address = rill::web::parse_listen(o.listen);
    if (o.silent_after < o.stale_after) {
        throw std::invalid_argument("--silent-after must not be shorter than --stale-after");
    }
    rill::web::ServerOptions options;
    options.conninfo = o.db;
    options.host = address.host;
    options.port = address.port;
    options.stale_after = std::chrono::seconds(o.stale_after);
    options.silent_after = std::chrono::seconds(o.silent_after);
    options.db_connections = o.db_connections;
    options.max_sse_clients = o.max_sse;
    rill::web::Server server(options);
    const int port = server.bind();

    std::unique_ptr<rill::web::LiveFeed> feed;
    if (!o.connect.empty()) {
        rill::web::LiveFeedOptions feed_options;
        feed_options.endpoints = o.connect;
        feed_options.curve = o.curve.keys();
        feed = std::make_unique<rill::web::LiveFeed>(
            feed_options, [&server](const rill::Reading& r) { server.publish(r); },
            [&server](const rill::web::PublisherStatus& s) { server.publish(s); });
        for (const auto& e : o.connect)
            rill::log_info(component, "live feed from " + e);
    } else {
        rill::log_info(component, "no --connect: the page shows stored data without live updates");
    }

    const std::string host =
        address.host.find(':') != std::string::npos ? "[" + address.host + "]" : address.host;
    const std::string url = "http://" + host + ":" + std::to_string(port) + "/";
    rill::log_info(component, "listening on " + url);

    // systemd: READY=1 once the socket listens (connections queue until run() accepts them).
    // The signal thread owns the notifier from then on: WATCHDOG=1 only after the server answered
    // a request for a static asset (no database involved), so a wedged server gets restarted.
    rill::app::SystemdNotifier systemd;
    systemd.ready("listening on " + url +
                  (o.connect.empty()
                       ? std::string(", no live feed")
                       : ", live feed from " + std::to_string(o.connect.size()) + " endpoint(s)"));
    const auto probe_timeout = std::clamp<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(systemd.watchdog_interval() / 4),
        std::chrono::milliseconds(100), std::chrono::milliseconds(2000));

    std::atomic<bool> done{false};
    std::thread signal_thread([&] {
        const timespec tick{0, 200'000'000};
        bool answering = true;
        while (!done) {
            const int sig = sigtimedwait(&signals, nullptr, &tick);
            if (sig == SIGINT || sig == SIGTERM) {
                const std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
                rill::log_info(component, "stopping on " + name);
                systemd.stopping("stopping on " + name);
                server.stop();
                return;
            }
            if (systemd.watchdog_enabled() &&
                rill::app::SystemdNotifier::Clock::now() >= systemd.keep_alive_due()) {
                const bool ok = rill::app::http_get_ok(address.host, port, "/assets/favicon.svg",
                                                       probe_timeout);
                if (ok) systemd.keep_alive();
                if (ok != answering) {
                    answering = ok;
                    if (ok) {
                        rill::log_info(component, "the HTTP server answers its self-check again");
                    } else {
                        rill::log_warn(component,
                                       "the HTTP server did not answer its self-check (GET "
                                       "/assets/favicon.svg); withholding the watchdog ping");
                    }
                }
            }
        }
    });
    const bool ok = server.run();
    done = true;
    signal_thread.join();
    if (feed) feed->stop();
    server.stop();
    if (!ok) {
        rill::log_error(component, "the HTTP server failed");
        return 1;
    }
    rill::log_info(component, "stopped");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "web-view: the live dashboard and JSON/CSV API over rill's readings table.\n"
        "Serves / (dashboard), /api/sensors, /api/readings, /api/readings.csv, /api/series,\n"
        "/events (Server-Sent Events), /healthz and /metrics."};
    Options o;
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
    app.add_option("--stale-after", o.stale_after,
                   "seconds without a reading before a sensor is stale")
        ->envname("RILL_WEB_STALE_AFTER")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--silent-after", o.silent_after,
                   "seconds without a reading before a sensor is silent (and /healthz fails)")
        ->envname("RILL_WEB_SILENT_AFTER")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--db-connections", o.db_connections, "database connections at most")
        ->envname("RILL_WEB_DB_CONNECTIONS")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    app.add_option("--max-live-clients", o.max_sse, "browsers on /events at most")
        ->envname("RILL_WEB_MAX_LIVE_CLIENTS")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    rill::app::add_curve_client_options(app, o.curve);
    rill::app::add_common_options(app, o.common, "127.0.0.1:9103");
    // /metrics and /healthz are served on --listen with the dashboard: no separate admin port.
    app.remove_option(app.get_option("--metrics"));
    return rill::app::run_main(app, argc, argv, component, [&] { return run(o); });
}
