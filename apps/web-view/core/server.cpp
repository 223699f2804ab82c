#include "server.hpp"

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>

#include "assets.hpp"
#include "events.hpp"
#include "live_feed.hpp"
#include "page.hpp"
#include "params.hpp"
#include "read_cache.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/store.hpp"
#include "text.hpp"

namespace rill::web {

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* component = "web-view";
constexpr auto sse_keepalive = 15s;
constexpr std::size_t csv_page = 1000;

thread_local std::chrono::steady_clock::time_point request_start;

// cpp-httplib 0.11 (Debian 12's, built with brotli) answers every request whose Accept-Encoding
// names "br" with brotli at the encoder's default quality, 11: about 1.7 s for an all-sensor
// /api/series answer, where gzip takes 8 ms. Browsers name br over HTTPS, so behind a TLS proxy
// every chart would wait for it. web-view therefore offers gzip (or nothing) only: the
// request's "br" is removed before httplib picks the coding. The const_cast is sound: httplib
// hands its handlers a Request that it created non-const (Server::process_request).
void offer_no_brotli(const httplib::Request& req) {
    auto& headers = const_cast<httplib::Request&>(req).headers;
    const auto [first, last] = headers.equal_range("Accept-Encoding");
    if (first == last) return;
    std::string asked;  // several header lines are one comma-separated list (RFC 9110 5.3)
    for (auto it = first; it != last; ++it)
        asked += (asked.empty() ? "" : ", ") + it->second;
    auto offered = without_coding(asked, "br");
    headers.erase(first, last);
    if (!offered.empty()) headers.emplace("Accept-Encoding", std::move(offered));
}

// Logs a database outage twice: once when the first request finds the database unavailable, once
// when a request reads it again; the requests in between answer 503 without a log line each.
class OutageLog {
  public:
    void down(const std::string& why) {
        std::lock_guard lock(mutex_);
        if (down_) return;
        down_ = true;
        since_ = std::chrono::steady_clock::now();
        log_warn(component, "database unavailable, answering 503 until it is back: " + why);
    }
    void up() {
        if (!down_.load(std::memory_order_relaxed)) return;  // the common case: no lock
        std::lock_guard lock(mutex_);
        if (!down_) return;
        down_ = false;
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::steady_clock::now() - since_);
        log_info(component,
                 "database available again after " + std::to_string(secs.count()) + " s");
    }

  private:
    std::mutex mutex_;
    std::atomic<bool> down_{false};
    std::chrono::steady_clock::time_point since_;
};

// web-view's metrics in a rill::MetricsRegistry, named like the other apps' (rill_ prefix, the
// unit in the name). The per-route ones are looked up per request (a map lookup under the
// registry's mutex); the others once.
class WebMetrics {
  public:
    explicit WebMetrics(MetricsRegistry& reg)
        : reg_(reg),
          sse_clients_(reg.gauge("rill_sse_clients", "Browsers connected to /events")),
          live_readings_(
              reg.counter("rill_web_live_readings_total", "Live readings handed to /events")),
          publisher_events_(reg.counter("rill_web_publisher_events_total",
                                        "Publisher silent/back events handed to /events")),
          db_errors_(
              reg.counter("rill_web_database_errors_total", "Database queries that failed")) {}

    void observe_request(const std::string& route, int status, std::chrono::nanoseconds latency) {
        reg_.counter("rill_http_requests_total", "HTTP requests answered, by route and status",
                     {{"route", route}, {"status", std::to_string(status)}})
            .inc();
        reg_.histogram("rill_http_request_duration_seconds", "Time to answer a request, by route",
                       latency_buckets(), {{"route", route}})
            .observe(std::chrono::duration<double>(latency).count());
    }
    /// Counts a new /events client unless `max` are connected; returns whether it was counted.
    bool sse_connect(long max) noexcept {
        long n = sse_count_.load();
        do {
            if (n >= max) return false;
        } while (!sse_count_.compare_exchange_weak(n, n + 1));
        sse_clients_.add(1);
        return true;
    }
    void sse_disconnected() noexcept {
        --sse_count_;
        sse_clients_.add(-1);
    }
    void live_reading() noexcept { live_readings_.inc(); }
    void publisher_event() noexcept { publisher_events_.inc(); }
    void db_error() noexcept { db_errors_.inc(); }
    [[nodiscard]] std::string render() const { return reg_.render_prometheus(); }

  private:
    MetricsRegistry& reg_;
    Gauge& sse_clients_;
    Counter& live_readings_;
    Counter& publisher_events_;
    Counter& db_errors_;
    std::atomic<long> sse_count_{0};
};

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string route_of(const std::string& path) {
    static const char* known[] = {
        "/",           "/api/sensors",    "/api/readings", "/api/readings.csv",
        "/api/series", "/api/series.csv", "/events",       "/healthz",
        "/metrics"};
    for (const char* k : known) {
        if (path == k) return k;
    }
    if (path.rfind("/assets/", 0) == 0) return "/assets";
    return "other";
}

// Whether a database error means "unavailable right now" (503) rather than a broken query
// (500): anything retrying can fix, and every 57 (operator intervention: shutdown, statement
// timeout) or 08 (connection) SQLSTATE.
bool unavailable(const store::StoreError& e) {
    const auto& s = e.sqlstate();
    return e.transient() || s.starts_with("57") || s.starts_with("08");
}

// A JSON object's members written in order; every number of a reading goes through
// append_json_value (text.hpp), so JSON, CSV and /events show the same text.
class JsonObject {
  public:
    explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
    ~JsonObject() { out_ += '}'; }
    JsonObject(const JsonObject&) = delete;
    JsonObject& operator=(const JsonObject&) = delete;
    std::string& key(std::string_view k) {
        if (!first_) out_ += ',';
        first_ = false;
        append_json_string(out_, k);
        out_ += ':';
        return out_;
    }
    void string(std::string_view k, std::string_view v) { append_json_string(key(k), v); }
    void integer(std::string_view k, long long v) { key(k) += std::to_string(v); }
    void value(std::string_view k, double v) { append_json_value(key(k), v); }

  private:
    std::string& out_;
    bool first_ = true;
};

// The fields every reading shows, in every JSON answer and event.
void reading_members(JsonObject& o, const std::string& sensor, std::int64_t seq, Timestamp ts,
                     double temperature, double humidity) {
    o.string("sensor", sensor);
    o.integer("seq", seq);
    o.string("ts", to_iso8601(ts));
    o.integer("ts_ms", unix_ms(ts));
    o.value("temperature", temperature);
    o.value("humidity", humidity);
}

void append_row_json(std::string& out, const store::StoredReading& r) {
    JsonObject o(out);
    reading_members(o, r.sensor, r.seq, r.ts, r.temperature, r.humidity);
    // The jsonb column's text as PostgreSQL writes it: always valid JSON.
    o.key("extra") += r.extra.empty() ? std::string("null") : r.extra;
}

void append_csv_row(std::string& out, const store::StoredReading& r) {
    out += to_iso8601(r.ts);
    out += ',';
    append_csv_cell(out, r.sensor);
    out += ',';
    out += std::to_string(r.seq);
    out += ',';
    out += format_value(r.temperature);
    out += ',';
    out += format_value(r.humidity);
    out += "\r\n";
}

// One bucket of /api/series as its JSON array and CSV row: the same columns, the same texts.
constexpr const char* series_columns[] = {"ts_ms", "t_avg", "t_min", "t_max",
                                          "h_avg", "h_min", "h_max", "count"};

void append_bucket_cells(std::string& out, const store::SeriesBucket& b, bool as_json) {
    out += std::to_string(unix_ms(b.ts));
    for (double v : {b.t_avg, b.t_min, b.t_max, b.h_avg, b.h_min, b.h_max}) {
        out += ',';
        if (as_json) {
            append_json_value(out, v);
        } else {
            out += format_value(v);
        }
    }
    out += ',';
    out += std::to_string(b.count);
}

void send_json(httplib::Response& res, int status, const json& j) {
    res.status = status;
    res.set_header("Cache-Control", "no-store");
    res.set_content(dump(j), "application/json");
}

// Sends JSON text built without nlohmann (numbers of readings written by text.hpp).
void send_text_json(httplib::Response& res, std::string body) {
    res.status = 200;
    res.set_header("Cache-Control", "no-store");
    res.set_content(std::move(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message,
                const std::string& param = {}) {
    json j = {{"error", message}};
    if (!param.empty()) j["parameter"] = param;
    send_json(res, status, j);
}

}  // namespace

std::string reading_event_json(const Reading& r) {
    std::string out;
    {
        JsonObject o(out);
        reading_members(o, r.sensor, static_cast<std::int64_t>(r.seq), r.ts, r.temperature,
                        r.humidity);
    }
    return out;
}

std::string publisher_event_json(const PublisherStatus& s) {
    return dump(json{{"publisher", s.publisher},
                     {"state", s.silent ? "silent" : "back"},
                     {"sensors", s.sensors}});
}

struct Server::Impl {
    ServerOptions options;
    store::ConnectionPool pool;
    store::Reader db;
    EventRing ring;
    ReadCache cache;
    WebMetrics metrics;
    OutageLog outage;
    httplib::Server http;
    std::atomic<bool> stopping{false};
    int port = 0;

    explicit Impl(ServerOptions o)
        : options(std::move(o)),
          pool(store::PoolOptions{.conninfo = options.conninfo,
                                  .max_connections = options.db_connections,
                                  .application_name = "web-view"}),
          db(pool),
          cache(
              options.cache_ttl, [this] { return ring.last_id(); },
              &(options.metrics != nullptr ? *options.metrics : default_registry())
                   .counter("rill_web_live_evicted_total",
                            "Entries web-view's live tables forgot to stay within their bound",
                            {{"table", "cache"}})),
          metrics(options.metrics != nullptr ? *options.metrics : default_registry()) {
        const std::size_t threads = options.max_sse_clients + 16;
        http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
        // Not httplib's default SO_REUSEPORT, which lets a second web-view bind the same port
        // and take half of the connections: with SO_REUSEADDR alone, a port in use is an error.
        http.set_socket_options([](socket_t sock) {
            const int yes = 1;
            ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        });
        http.set_keep_alive_timeout(5);
        http.set_keep_alive_max_count(1000);
        http.set_tcp_nodelay(true);  // no 40 ms Nagle + delayed-ACK stall per response
        http.set_payload_max_length(64 * 1024);
        http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
            request_start = std::chrono::steady_clock::now();
            offer_no_brotli(req);
            res.set_header("X-Content-Type-Options", "nosniff");
            return httplib::Server::HandlerResponse::Unhandled;
        });
        http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
            metrics.observe_request(route_of(req.path), res.status,
                                    std::chrono::steady_clock::now() - request_start);
        });
        http.set_error_handler(httplib::Server::HandlerWithResponse(
            [](const httplib::Request& req, httplib::Response& res) {
                if (!res.body.empty() || res.content_length_ > 0) {
                    return httplib::Server::HandlerResponse::Unhandled;
                }
                if (res.status == 404) {
                    send_error(res, 404, "no such route: " + req.path.substr(0, 200));
                } else {
                    send_error(res, res.status,
                               "request failed with status " + std::to_string(res.status));
                }
                return httplib::Server::HandlerResponse::Handled;
            }));
        http.set_exception_handler([this](const httplib::Request&, httplib::Response& res,
                                          std::exception_ptr ep) { handle_exception(res, ep); });
        routes();
    }

    // Turns what a handler threw into its answer: 400 naming the parameter, 503 when the
    // database is unreachable, 500 otherwise.
    void handle_exception(httplib::Response& res, const std::exception_ptr& ep) {
        try {
            std::rethrow_exception(ep);
        } catch (const ParamError& e) {
            send_error(res, 400, e.what(), e.param());
        } catch (const store::StoreError& e) {
            metrics.db_error();
            if (!unavailable(e)) {
                log_error(component, std::string("request failed: ") + e.what());
                send_error(res, 500, "internal error");
                return;
            }
            outage.down(e.what());
            res.set_header("Retry-After", "5");
            send_error(res, 503, e.what());
        } catch (const std::exception& e) {
            metrics.db_error();
            log_error(component, std::string("request failed: ") + e.what());
            send_error(res, 500, "internal error");
        } catch (...) {
            send_error(res, 500, "internal error");
        }
    }

    using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
    // `reads_db`: the route queries the database, so an answer below 500 ends an outage.
    Handler guarded(Handler h, bool reads_db = true) {
        return [this, h = std::move(h), reads_db](const httplib::Request& req,
                                                  httplib::Response& res) {
            try {
                h(req, res);
                if (reads_db && res.status < 500) outage.up();
            } catch (...) {
                handle_exception(res, std::current_exception());
            }
        };
    }

    // A database answer that ends an outage: for the routes the cache may serve without one.
    template <typename T>
    T queried(T answer) {
        outage.up();
        return answer;
    }

    void routes() {
        // `/`, /api/sensors and /api/readings may answer from the cache while the database is
        // down: queried() ends an outage there, when a query really succeeded.
        http.Get("/", guarded([this](const auto& req, auto& res) { page(req, res); }, false));
        http.Get("/assets/(.+)",
                 guarded([](const auto& req, auto& res) { asset(req, res); }, false));
        http.Get("/api/sensors",
                 guarded([this](const auto& req, auto& res) { sensors(req, res); }, false));
        http.Get("/api/readings",
                 guarded([this](const auto& req, auto& res) { readings(req, res); }, false));
        http.Get("/api/readings.csv",
                 guarded([this](const auto& req, auto& res) { readings_csv(req, res); }));
        http.Get("/api/series", guarded([this](const auto& req, auto& res) { series_(req, res); }));
        http.Get("/api/series.csv",
                 guarded([this](const auto& req, auto& res) { series_csv(req, res); }));
        http.Get("/events",
                 guarded([this](const auto& req, auto& res) { events(req, res); }, false));
        http.Get("/healthz", guarded([this](const auto& req, auto& res) { healthz(req, res); }));
        http.Get("/metrics", guarded(
                                 [this](const auto&, auto& res) {
                                     res.set_header("Cache-Control", "no-store");
                                     res.set_content(metrics.render(), "text/plain; version=0.0.4");
                                 },
                                 false));
    }

    void page(const httplib::Request& req, httplib::Response& res) {
        PageModel m;
        m.now = rill::now();
        m.stale_after = options.stale_after;
        m.silent_after = options.silent_after;
        ReadingsQuery q;
        q.sensor = parse_sensor_param(req.params);
        if (auto c = single_param(req.params, "cursor"); c && !c->empty()) {
            q.cursor = decode_cursor(*c);
            if (!q.cursor) throw ParamError("cursor", "cursor is not a cursor this server issued");
        }
        q.limit = static_cast<long long>(options.page_rows);
        m.table_sensor = q.sensor;
        m.table_is_first_page = !q.cursor;
        int status = 200;
        try {
            auto latest = cache.latest([this] { return queried(db.latest()); });
            auto table = cache.page(q, [this, &q] { return queried(db.page(q)); });
            m.sensors = std::move(latest.value);
            m.table = std::move(table.value);
            // The older of the two answers' event ids: live events after it may be missing
            // from what they hold, and the page's live stream resumes from there.
            m.last_event_id = std::min(latest.event_id, table.event_id);
        } catch (const store::StoreError& e) {
            if (!unavailable(e)) throw;
            metrics.db_error();
            outage.down(e.what());
            m.problem = std::string("The database is unavailable right now: ") + e.what();
            status = 503;
        }
        res.status = status;
        res.set_header("Cache-Control", "no-store");
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
                       "data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
        res.set_header("Referrer-Policy", "same-origin");
        res.set_content(render_page(m), "text/html; charset=utf-8");
    }

    static void asset(const httplib::Request& req, httplib::Response& res) {
        const Asset* a = find_asset(req.matches[1].str());
        if (a == nullptr) {
            res.status = 404;
            return;
        }
        const std::string etag = "\"" + std::string(a->etag) + "\"";
        res.set_header("ETag", etag);
        res.set_header("Cache-Control", "no-cache");
        if (req.get_header_value("If-None-Match") == etag) {
            res.status = 304;
            return;
        }
        std::string type(a->content_type);
        if (type.rfind("text/", 0) == 0) type += "; charset=utf-8";
        res.set_content(a->body.data(), a->body.size(), type.c_str());
    }

    void sensors(const httplib::Request&, httplib::Response& res) {
        const auto now = rill::now();
        const auto latest = cache.latest([this] { return queried(db.latest()); });
        std::string out = "{\"sensors\":[";
        bool first = true;
        for (const auto& l : latest.value) {
            if (!first) out += ',';
            first = false;
            const auto age = std::chrono::duration_cast<std::chrono::microseconds>(now - l.ts);
            JsonObject o(out);
            reading_members(o, l.sensor, l.seq, l.ts, l.temperature, l.humidity);
            o.key("age_seconds") += dump(json(static_cast<double>(age.count()) / 1e6));
            o.string("status",
                     to_string(freshness(age, options.stale_after, options.silent_after)));
        }
        out += "]}";
        send_text_json(res, std::move(out));
    }

    void readings(const httplib::Request& req, httplib::Response& res) {
        const auto q = parse_readings_query(req.params);
        const auto p = cache.page(q, [this, &q] { return queried(db.page(q)); }).value;
        std::string out = "{\"readings\":[";
        for (std::size_t i = 0; i < p.rows.size(); ++i) {
            if (i > 0) out += ',';
            append_row_json(out, p.rows[i]);
        }
        out += "],\"next_cursor\":";
        if (p.next) {
            append_json_string(out, encode_cursor(*p.next));
        } else {
            out += "null";
        }
        out += '}';
        send_text_json(res, std::move(out));
    }

    void readings_csv(const httplib::Request& req, httplib::Response& res) {
        auto q = parse_readings_query(req.params, param_limits::default_csv_limit,
                                      param_limits::max_csv_limit);
        struct State {
            ReadingsQuery query;
            long long remaining;
            Page page;
            bool header = true;
        };
        auto st = std::make_shared<State>();
        st->remaining = q.limit;
        st->query = q;
        st->query.limit = std::min<long long>(csv_page, st->remaining);
        st->page = db.page(st->query);  // before 200: a down database gives 503
        res.set_header("Cache-Control", "no-store");
        res.set_header("Content-Disposition", "attachment; filename=\"readings.csv\"");
        res.set_chunked_content_provider(
            "text/csv; charset=utf-8", [this, st](std::size_t, httplib::DataSink& sink) {
                std::string out;
                if (st->header) {
                    out += "time,sensor,seq,temperature,humidity\r\n";
                    st->header = false;
                }
                for (const auto& r : st->page.rows)
                    append_csv_row(out, r);
                st->remaining -= static_cast<long long>(st->page.rows.size());
                if (!out.empty() && !sink.write(out.data(), out.size())) return false;
                if (!st->page.next || st->remaining <= 0 || stopping) {
                    sink.done();
                    return true;
                }
                st->query.cursor = st->page.next;
                st->query.limit = std::min<long long>(csv_page, st->remaining);
                try {
                    st->page = db.page(st->query);
                } catch (const std::exception& e) {
                    log_warn(component, std::string("CSV export cut short: ") + e.what());
                    return false;  // the client sees a truncated (unterminated) chunked body
                }
                return true;
            });
    }

    store::Series read_series(const httplib::Request& req) {
        return db.series(parse_series_query(req.params, rill::now()));
    }

    void series_(const httplib::Request& req, httplib::Response& res) {
        const auto series = read_series(req);
        std::string out;
        // About 70 bytes a bucket: one allocation instead of a copy at every doubling.
        out.reserve(256 + series.buckets.size() * 80);
        {
            JsonObject o(out);
            o.string("from", to_iso8601(series.from));
            o.string("to", to_iso8601(series.to));
            o.string("source", store::to_string(series.source));
            o.integer("bucket_seconds",
                      std::chrono::duration_cast<std::chrono::seconds>(series.bucket).count());
            o.key("columns") += dump(json(series_columns));
            auto& list = o.key("series");
            list += '[';
            const std::string* sensor = nullptr;
            for (const auto& b : series.buckets) {
                if (sensor == nullptr || *sensor != b.sensor) {
                    list += sensor == nullptr ? "{\"sensor\":" : "]},{\"sensor\":";
                    append_json_string(list, b.sensor);
                    list += ",\"buckets\":[";
                    sensor = &b.sensor;
                } else {
                    list += ',';
                }
                list += '[';
                append_bucket_cells(list, b, true);
                list += ']';
            }
            list += sensor == nullptr ? "]" : "]}]";
        }
        send_text_json(res, std::move(out));
    }

    // What the chart shows, as CSV: the same query, one row per sensor and bucket.
    void series_csv(const httplib::Request& req, httplib::Response& res) {
        const auto series = read_series(req);
        std::string out = "time,sensor";
        for (const char* c : series_columns)
            out += std::string(",") + c;
        out += "\r\n";
        for (const auto& b : series.buckets) {
            out += to_iso8601(b.ts);
            out += ',';
            append_csv_cell(out, b.sensor);
            out += ',';
            append_bucket_cells(out, b, false);
            out += "\r\n";
        }
        res.set_header("Cache-Control", "no-store");
        res.set_header("Content-Disposition", "attachment; filename=\"series.csv\"");
        res.set_content(std::move(out), "text/csv; charset=utf-8");
    }

    void events(const httplib::Request& req, httplib::Response& res) {
        struct State {
            std::uint64_t after = 0;
            bool first = true;
            bool gap = false;
        };
        auto st = std::make_shared<State>();
        const auto newest = ring.last_id();
        st->after = newest;
        // A reconnecting browser sends Last-Event-ID; the page's first connection passes the
        // event id its content was rendered at as ?after=, so nothing falls in between.
        std::optional<std::string> resume;
        if (req.has_header("Last-Event-ID")) {
            resume = req.get_header_value("Last-Event-ID");
        } else if (auto after = single_param(req.params, "after"); after && !after->empty()) {
            resume = *after;
        }
        if (resume) {
            const auto last = parse_last_event_id(*resume);
            if (last && *last <= newest) {
                st->after = *last;
            } else {
                st->gap = true;  // an id this process never issued: start over
            }
        }
        // Counted from here on; the content provider's release callback uncounts it.
        if (!metrics.sse_connect(static_cast<long>(options.max_sse_clients))) {
            res.set_header("Retry-After", "10");
            send_error(res, 503, "too many live clients");
            return;
        }
        res.set_header("Cache-Control", "no-store");
        res.set_header("X-Accel-Buffering", "no");
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, st](std::size_t, httplib::DataSink& sink) {
                std::string out;
                if (st->first) {
                    st->first = false;
                    out = "retry: 2000\n\n";
                    if (st->gap) out += format_sse(st->after, "resync", "{}");
                    return sink.write(out.data(), out.size());
                }
                if (stopping || ring.closed()) {
                    sink.done();
                    return true;
                }
                auto batch = ring.wait_after(st->after, sse_keepalive);
                if (stopping || ring.closed()) {
                    sink.done();
                    return true;
                }
                if (batch.events.empty()) {
                    out = ": keepalive\n\n";  // also finds browsers that went away
                } else {
                    if (batch.gap) out += format_sse(batch.events.front().id - 1, "resync", "{}");
                    for (const auto& e : batch.events)
                        out += format_sse(e.id, e.type, e.data);
                    st->after = batch.events.back().id;
                }
                return sink.write(out.data(), out.size());
            },
            [this](bool) { metrics.sse_disconnected(); });
    }

    void healthz(const httplib::Request&, httplib::Response& res) {
        if (auto problem = pool.ping()) {
            outage.down(*problem);
            send_json(res, 503,
                      {{"status", "unavailable"}, {"reason", "database unreachable: " + *problem}});
            return;
        }
        outage.up();
        std::vector<Latest> latest;
        try {
            latest = db.latest();
        } catch (const std::exception& e) {
            send_json(res, 503,
                      {{"status", "unavailable"},
                       {"reason", std::string("cannot read readings: ") + e.what()}});
            return;
        }
        if (latest.empty()) {
            send_json(res, 503, {{"status", "unavailable"}, {"reason", "no readings stored yet"}});
            return;
        }
        Timestamp newest = latest.front().ts;
        for (const auto& l : latest)
            newest = std::max(newest, l.ts);
        const auto age = std::chrono::duration<double>(rill::now() - newest).count();
        json j = {{"database", "ok"},
                  {"sensors", latest.size()},
                  {"newest_reading", to_iso8601(newest)},
                  {"newest_age_seconds", age}};
        if (age > static_cast<double>(options.silent_after.count())) {
            j["status"] = "unavailable";
            j["reason"] = "no reading for " + std::to_string(static_cast<long long>(age)) +
                          " s (more than " + std::to_string(options.silent_after.count()) + " s)";
            send_json(res, 503, j);
            return;
        }
        j["status"] = "ok";
        send_json(res, 200, j);
    }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() {
    stop();
}

int Server::bind() {
    auto& i = *impl_;
    errno = 0;  // httplib reports only false: keep bind(2)'s reason for the message
    if (i.options.port == 0) {
        i.port = i.http.bind_to_any_port(i.options.host);
    } else {
        i.port = i.http.bind_to_port(i.options.host, i.options.port) ? i.options.port : -1;
    }
    if (i.port <= 0) {
        const int err = errno;
        throw std::runtime_error("cannot listen on " + i.options.host + ":" +
                                 std::to_string(i.options.port) +
                                 (err != 0 ? std::string(": ") + std::strerror(err) : ""));
    }
    return i.port;
}

bool Server::run() {
    return impl_->http.listen_after_bind();
}

void Server::stop() {
    auto& i = *impl_;
    if (i.stopping.exchange(true)) return;
    i.ring.close();
    i.http.stop();
}

void Server::publish(const Reading& r) {
    impl_->metrics.live_reading();
    impl_->cache.observe(r);
    impl_->ring.publish(reading_event_json(r));
}

void Server::publish(const PublisherStatus& s) {
    impl_->metrics.publisher_event();
    impl_->ring.publish(publisher_event_json(s), "publisher");
}

}  // namespace rill::web
