// store-sub: subscribes to sensor-pub streams and stores every reading exactly once in
// PostgreSQL, repairing gaps by replay.
//
// The delivery loop is rill::IngestLoop (rill/ingest.hpp) over a rill::store::PostgresSink; this
// file maps flags to options and wires the loop's hooks to systemd and /healthz.
#include <cstdio>

#include "common/app_options.hpp"
#include "common/http_admin.hpp"
#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "retention_flags.hpp"
#include "rill/ingest.hpp"
#include "rill/metrics.hpp"
#include "rill/store.hpp"

namespace {

using namespace std::chrono_literals;

struct Options {
    std::vector<std::string> connect;
    std::string db;
    std::vector<std::string> sensors;
    std::size_t batch_max = 10'000;
    std::chrono::nanoseconds flush_interval = 20ms;
    std::size_t pending_max = 500'000;
    std::uint32_t replay_chunk = 10'000;
    std::chrono::nanoseconds replay_timeout = 5s;
    unsigned silent_after = 3;
    std::size_t max_sensors = 65'536;
    std::size_t max_publishers = 1'024;
    std::chrono::nanoseconds stale_after = 60s;
    std::chrono::nanoseconds drain_timeout = 10s;
    rill::store_sub::RetentionFlags retention;
    rill::app::CurveClientOptions curve;
    rill::app::CommonOptions common;
    // --check-rollups mode (docs/storage.md): compare the rollups with the raw readings, exit.
    bool check_rollups = false;
    std::string check_from, check_to;
};

template <typename D>
std::chrono::milliseconds ms(D d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

rill::IngestOptions ingest_options(const Options& o) {
    rill::IngestOptions io;
    io.log_component = "store-sub";
    for (const auto& e : o.connect)
        io.subscriber.endpoints += (io.subscriber.endpoints.empty() ? "" : ",") + e;
    io.subscriber.subscriber.prefixes = o.sensors;
    io.subscriber.subscriber.silent_after_missed = o.silent_after;
    io.subscriber.subscriber.max_sensors = o.max_sensors;
    io.subscriber.subscriber.max_publishers = o.max_publishers;
    io.subscriber.subscriber.socket.recv_hwm = 1'000'000;
    io.subscriber.replay_chunk = o.replay_chunk;
    io.subscriber.replay_call.timeout = ms(o.replay_timeout);
    if (const auto keys = o.curve.keys()) {
        io.subscriber.subscriber.socket.curve_client = keys;
        io.subscriber.replay_socket.curve_client = keys;
    }
    io.writer.batch_max = o.batch_max;
    io.writer.flush_interval = ms(o.flush_interval);
    io.writer.pending_max = o.pending_max;
    if (o.sensors.size() == 1) io.writer.sensor_prefix = o.sensors.front();
    io.stale_after = ms(o.stale_after);
    io.drain_timeout = ms(o.drain_timeout);
    return io;
}

// --check-rollups: one line per mismatch on stdout; exit 0 when there is none, 1 otherwise.
int check_rollups(const Options& o) {
    auto time = [](const std::string& text) -> std::optional<rill::Timestamp> {
        if (text.empty()) return std::nullopt;
        if (auto t = rill::parse_time(text)) return t;
        throw std::invalid_argument("not a time (RFC 3339 or Unix seconds): " + text);
    };
    auto conn = rill::store::Connection::open(o.db);
    const auto mismatches = rill::store::check_rollups(conn, time(o.check_from), time(o.check_to));
    for (const auto& m : mismatches)
        std::printf("%s\n", rill::store::to_string(m).c_str());
    return mismatches.empty() ? 0 : 1;
}

int run(const Options& o) {
    rill::app::apply_common_options(o.common);
    if (o.db.empty()) {
        throw rill::app::UsageError("no database: give --db CONNINFO or set DATABASE_URL");
    }
    if (o.check_rollups) return check_rollups(o);
    if (o.connect.empty()) throw std::invalid_argument("--connect is required");
    auto ingest = ingest_options(o);  // reads the key files: fails before the database is opened
    auto& shutdown = rill::app::Shutdown::install();
    // Readiness (docs/operations.md): READY=1 once subscribed with the database open, or, when
    // the database does not answer at start, after the first failed attempt (IngestHooks::ready).
    rill::app::SystemdNotifier systemd;
    rill::IngestHooks hooks;
    hooks.ready = [&](const std::string& s) { systemd.ready(s); };
    hooks.status = [&](const std::string& s) { systemd.status(s); };
    hooks.keep_alive = [&] { systemd.keep_alive(); };
    hooks.stopping = [&](const std::string& s) { systemd.stopping(s); };
    hooks.stop_reason = [&] { return shutdown.reason(); };

    rill::store::PostgresSink sink(o.db);
    if (const auto m = o.retention.maintenance()) sink.enable_maintenance(*m);
    rill::IngestLoop loop(std::move(ingest), sink, std::move(hooks));
    std::optional<rill::app::HttpAdmin> admin;
    if (!o.common.metrics.empty()) {
        admin.emplace(
            o.common.metrics, [] { return rill::default_registry().render_prometheus(); },
            [&] {
                const auto h = loop.health();
                return rill::app::Health{h.ok, h.detail};
            });
    }
    (void)loop.run(shutdown.stop());
    return 0;
}

void add_options(CLI::App& app, Options& o) {
    app.add_option("--connect", o.connect,
                   "A publisher's stream, tcp://HOST:PORT (repeatable, or a comma list); required "
                   "unless --check-rollups")
        ->envname("RILL_CONNECT");
    app.add_option("--db", o.db, "libpq connection string or postgresql:// URL")
        ->envname("DATABASE_URL");
    app.add_option("--sensors", o.sensors,
                   "Only sensors whose id starts with PREFIX (repeatable): scale out by giving "
                   "instances disjoint prefixes")
        ->delimiter(',')
        ->envname("RILL_SENSORS");
    app.add_option("--batch-max", o.batch_max, "Readings per COPY batch at most")
        ->envname("RILL_BATCH_MAX")
        ->capture_default_str();
    rill::app::add_duration_option(app, "--flush-interval", o.flush_interval,
                                   "Write a batch when its oldest reading waited this long")
        ->envname("RILL_FLUSH_INTERVAL");
    app.add_option("--pending-max", o.pending_max,
                   "Readings held in memory while the database is slow or down; beyond it the "
                   "stream is not read (missed readings are replayed later)")
        ->envname("RILL_PENDING_MAX")
        ->capture_default_str();
    app.add_option("--replay-chunk", o.replay_chunk, "Readings per replay request")
        ->envname("RILL_REPLAY_CHUNK")
        ->capture_default_str();
    rill::app::add_duration_option(app, "--replay-timeout", o.replay_timeout,
                                   "Timeout of one replay request")
        ->envname("RILL_REPLAY_TIMEOUT");
    app.add_option("--silent-after", o.silent_after,
                   "A publisher is silent after this many missed heartbeats")
        ->envname("RILL_SILENT_AFTER")
        ->capture_default_str();
    app.add_option("--max-sensors", o.max_sensors,
                   "Sensors the stream subscriber tracks at most (the least recently seen is "
                   "forgotten first, counted in rill_stream_sensors_evicted_total)")
        ->envname("RILL_MAX_SENSORS")
        ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}))
        ->capture_default_str();
    app.add_option("--max-publishers", o.max_publishers,
                   "Publishers the stream subscriber tracks at most (the one heard from least "
                   "recently is forgotten first, counted in rill_stream_publishers_evicted_total)")
        ->envname("RILL_MAX_PUBLISHERS")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}))
        ->capture_default_str();
    rill::app::add_duration_option(
        app, "--stale-after", o.stale_after,
        "/healthz fails when nothing was stored this long while readings wait")
        ->envname("RILL_STALE_AFTER");
    rill::app::add_duration_option(app, "--drain-timeout", o.drain_timeout,
                                   "On SIGTERM: how long to keep writing what is held")
        ->envname("RILL_DRAIN_TIMEOUT");
    // Rollup check mode: no subscription, one query per rollup table, then exit.
    app.add_flag("--check-rollups", o.check_rollups,
                 "Compare every rollup level (1 min, 15 min, 1 h, 6 h) with the raw readings of "
                 "[--from, --to) "
                 "and exit: 0 when equal, 1 with one line per mismatch");
    app.add_option("--from", o.check_from,
                   "With --check-rollups: from this time (RFC 3339 or Unix seconds; default: all)");
    app.add_option(
        "--to", o.check_to,
        "With --check-rollups: before this time (RFC 3339 or Unix seconds; default: all)");
    rill::store_sub::add_retention_flags(app, o.retention);
    rill::app::add_curve_client_options(app, o.curve);
    rill::app::add_common_options(app, o.common, "127.0.0.1:9102");
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "store-sub: subscribe to sensor-pub streams and store every reading exactly once in "
        "PostgreSQL, asking the publishers to replay whatever was missed."};
    add_options(app, o);
    return rill::app::run_main(app, argc, argv, "store-sub", [&] { return run(o); });
}
