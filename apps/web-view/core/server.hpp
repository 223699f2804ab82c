// web-view: the HTTP server (dashboard, JSON/CSV API, SSE, health, metrics).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "rill/metrics.hpp"
#include "rill/reading.hpp"

namespace rill::web {

struct PublisherStatus;

struct ServerOptions {
    std::string conninfo;                    ///< libpq connection string or URL
    std::string host = "127.0.0.1";          ///< address to listen on
    int port = 8080;                         ///< 0: any free port
    std::chrono::seconds stale_after{60};    ///< a sensor is stale after this long without data
    std::chrono::seconds silent_after{600};  ///< ... and silent after this long; also /healthz
    std::size_t db_connections = 8;
    std::size_t max_sse_clients = 64;
    std::size_t page_rows = 50;  ///< rows per page of the dashboard's table
    /// The page, /api/sensors and first pages of /api/readings reuse a database answer for up
    /// to this long (ReadCache); 0 = every request queries.
    std::chrono::milliseconds cache_ttl{1000};
    /// Where the server's metrics live and what /metrics renders; nullptr = default_registry()
    /// (which also holds the live feed's rill_stream_* metrics).
    MetricsRegistry* metrics = nullptr;
};

/// The web-view server. Owns the listening socket, the worker threads, the database pool and
/// the live event ring. Routes: / /assets/* /api/sensors /api/readings /api/readings.csv
/// /api/series /api/series.csv /events /healthz /metrics (see docs/web-view.md).
class Server {
  public:
    explicit Server(ServerOptions options);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Binds the listening socket; returns the bound port. Throws std::runtime_error naming the
    /// address when it cannot bind.
    int bind();
    /// Serves until stop(); blocks the calling thread. Returns false when listening failed.
    bool run();
    /// Ends every SSE stream, stops accepting and makes run() return once in-flight requests
    /// are answered. Thread-safe, idempotent.
    void stop();

    /// Hands a live reading to every connected browser. Thread-safe; called by the live feed.
    void publish(const Reading& r);
    /// Tells every connected browser that a publisher went silent or came back (an SSE event
    /// of type "publisher", see publisher_event_json). Thread-safe; called by the live feed.
    void publish(const PublisherStatus& s);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The JSON object a browser receives for one live reading (one line).
[[nodiscard]] std::string reading_event_json(const Reading& r);
/// The JSON object of a "publisher" event: {"publisher": ID, "state": "silent"|"back",
/// "sensors": [...]}.
[[nodiscard]] std::string publisher_event_json(const PublisherStatus& s);

}  // namespace rill::web
