// store-sub: subscribes to sensor-pub streams and stores every reading exactly once in
// PostgreSQL, repairing gaps by replay.
//
// One thread owns everything (the ReliableSubscriber runs its replay requests on a thread of its
// own): receive -> BatchWriter::add -> flush when due. When the writer's buffer is full (the
// database is down or slow), the loop stops reading the stream; what the stream drops meanwhile
// is replayed afterwards.
#include <atomic>
#include <cerrno>
#include <csignal>
#include <deque>

#include "common/app_options.hpp"
#include "common/counter_sync.hpp"
#include "common/http_admin.hpp"
#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/reliable.hpp"
#include "rill/security.hpp"
#include "rill/store.hpp"
#include "rill/units.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
    std::vector<std::string> connect;
    std::string db;
    std::vector<std::string> sensors;
    std::size_t batch_max = 10'000;
    std::string flush_interval = "20ms";
    std::size_t pending_max = 500'000;
    std::uint32_t replay_chunk = 10'000;
    std::string replay_timeout = "5s";
    unsigned silent_after = 3;
    std::string stale_after = "60s";
    std::string drain_timeout = "10s";
    rill::app::CurveClientOptions curve;
    rill::app::CommonOptions common;
};

template <typename D>
std::chrono::milliseconds ms(D d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

using rill::app::CounterSync;

int run(const Options& o) {
    rill::app::apply_common_options(o.common);
    auto& shutdown = rill::app::Shutdown::install();
    // Readiness (docs/operations.md): READY=1 once subscribed with the database open, or, when
    // the database does not answer at start, after the first failed attempt: waiting for it is
    // a state store-sub rides out on its own (the publishers' outboxes keep the readings), so
    // `systemctl start` returns and STATUS says what it waits for instead of the start timing
    // out into a restart loop.
    rill::app::SystemdNotifier systemd;
    bool ready = false;
    if (o.db.empty()) {
        throw std::invalid_argument("no database: give --db CONNINFO or set DATABASE_URL");
    }
    std::string endpoints;
    for (const auto& e : o.connect)
        endpoints += (endpoints.empty() ? "" : ",") + e;

    rill::store::WriterOptions wo;
    wo.conninfo = o.db;
    wo.batch_max = o.batch_max;
    wo.flush_interval = ms(rill::parse_duration(o.flush_interval));
    wo.pending_max = o.pending_max;
    if (o.sensors.size() == 1) wo.sensor_prefix = o.sensors.front();
    auto log_reconnect = [](const rill::store::ReconnectEvent& e) {
        if (e.succeeded) {
            rill::log_info("store", "database reachable again after " + std::to_string(e.attempt) +
                                        " attempts");
        } else {
            rill::log_warn("store", "database unreachable (attempt " + std::to_string(e.attempt) +
                                        "): " + e.error + "; next try in " +
                                        std::to_string(e.next_delay.count()) + " ms");
        }
    };
    rill::log_info("store-sub", "connecting to the database");
    std::optional<rill::store::BatchWriter> opened;
    try {
        opened.emplace(rill::store::open_writer(
            wo,
            [&] {
                systemd.keep_alive();
                return !shutdown.requested();
            },
            [&](const rill::store::ReconnectEvent& e) {
                log_reconnect(e);
                const auto waiting = "waiting for the database (attempt " +
                                     std::to_string(e.attempt) + "): " + e.error;
                if (!ready) {
                    systemd.ready(waiting);
                    ready = true;
                } else {
                    systemd.status(waiting);
                }
            }));
    } catch (const rill::store::StoreError&) {
        if (!shutdown.requested()) throw;
        // Asked to stop while waiting for the database: nothing was received, nothing is lost.
        systemd.stopping("stopping on " + shutdown.reason() + " before the database answered");
        rill::log_info("store-sub", "stopped before the database was reachable");
        return 0;
    }
    auto& writer = *opened;
    writer.on_reconnect(log_reconnect);
    rill::log_info("store-sub", "database ready; " + std::to_string(writer.sensors().size()) +
                                    " sensors already stored");

    rill::ReliableSubscriberOptions ro;
    ro.endpoints = endpoints;
    ro.subscriber.prefixes = o.sensors;
    ro.subscriber.silent_after_missed = o.silent_after;
    ro.subscriber.socket.recv_hwm = 1'000'000;
    ro.replay_chunk = o.replay_chunk;
    ro.replay_call.timeout = ms(rill::parse_duration(o.replay_timeout));
    if (const auto keys = o.curve.keys()) {
        ro.subscriber.socket.curve_client = keys;
        ro.replay_socket.curve_client = keys;
    }
    rill::ReliableSubscriber rs(
        ro, [&](const std::string& sensor) { return writer.stored_ranges(sensor); });
    rill::log_info("store-sub", "subscribed to " + endpoints);
    const auto started = "subscribed to " + endpoints + ", database open, " +
                         std::to_string(writer.sensors().size()) + " sensors already stored";
    if (!ready) {
        systemd.ready(started);
        ready = true;
    } else {
        systemd.status(started);
    }

    // Metrics and health, computed here on the owner thread and read by the HTTP thread.
    auto& reg = rill::default_registry();
    CounterSync stored{reg.counter("rill_store_readings_total", "Readings committed")};
    CounterSync batches{reg.counter("rill_store_batches_total", "Batches committed")};
    CounterSync dup_mem{reg.counter("rill_store_duplicates_skipped_total",
                                    "Readings dropped in memory as already stored or pending")};
    CounterSync dup_db{reg.counter("rill_store_duplicates_hit_total",
                                   "Readings the database already had (fallback path)")};
    CounterSync invalid{reg.counter("rill_store_invalid_total", "Readings refused as invalid")};
    CounterSync db_errors{reg.counter("rill_store_database_errors_total",
                                      "Failed batch attempts and connection attempts")};
    CounterSync reconnects{
        reg.counter("rill_store_reconnects_total", "Successful reconnections to the database")};
    auto& latency = reg.histogram("rill_store_batch_latency_seconds",
                                  "Time to write and commit one batch", rill::latency_buckets());
    auto& pending = reg.gauge("rill_store_pending_readings", "Readings held, not yet committed");
    auto& fill = reg.gauge("rill_store_buffer_fill_ratio", "pending / --pending-max");
    auto& connected = reg.gauge("rill_store_database_up", "1 while the database is reachable");
    std::atomic<bool> healthy{true};
    std::string health_detail = "ok";
    std::mutex health_mutex;
    std::optional<rill::app::HttpAdmin> admin;
    if (!o.common.metrics.empty()) {
        admin.emplace(
            o.common.metrics, [&] { return reg.render_prometheus(); },
            [&] {
                std::lock_guard lock(health_mutex);
                return rill::app::Health{healthy.load(), health_detail};
            });
    }
    const auto stale_after = rill::parse_duration(o.stale_after);
    auto last_stored_at = Clock::now();
    auto last_heartbeat_at = Clock::time_point{};
    std::uint64_t last_total_latency_us = 0;
    auto last_probe = Clock::now();
    auto refresh = [&] {
        // While idle, ask the database now and then: a database that went away between batches
        // must show in /healthz and rill_store_database_up.
        if (writer.pending() == 0 && Clock::now() - last_probe >= 5s) {
            last_probe = Clock::now();
            (void)writer.probe();
        }
        const auto s = writer.stats();
        if (s.readings_stored > stored.last) last_stored_at = Clock::now();
        if (s.batches > batches.last) {
            const auto n = s.batches - batches.last;
            const auto us = static_cast<std::uint64_t>(s.total_batch_latency.count());
            const double mean =
                static_cast<double>(us - last_total_latency_us) / 1e6 / static_cast<double>(n);
            for (std::uint64_t i = 0; i < n; ++i)
                latency.observe(mean);
            last_total_latency_us = us;
        }
        stored.to(s.readings_stored);
        batches.to(s.batches);
        dup_mem.to(s.duplicates_skipped);
        dup_db.to(s.duplicates_hit);
        invalid.to(s.invalid_rejected);
        db_errors.to(s.database_errors);
        reconnects.to(s.reconnects);
        pending.set(static_cast<double>(writer.pending()));
        fill.set(writer.fill());
        connected.set(writer.connected() ? 1 : 0);
        (void)rs.stats();  // refreshes rill_replay_wanted_readings
        // Unhealthy: the database is unreachable, or nothing was stored for --stale-after while
        // publishers are alive and readings wait to be stored.
        std::string detail = "ok";
        bool ok = true;
        const auto now = Clock::now();
        if (!writer.connected()) {
            ok = false;
            detail = "database unreachable";
        } else if (now - last_stored_at > stale_after && now - last_heartbeat_at < stale_after &&
                   (writer.pending() > 0 || rs.wanted() > 0)) {
            ok = false;
            detail =
                "nothing stored for " + rill::format_duration(stale_after) + " while readings wait";
        }
        systemd.status("stored " + std::to_string(s.readings_stored) + " readings since start, " +
                       std::to_string(writer.pending()) + " pending, " +
                       (writer.connected() ? "database up" : "database unreachable") +
                       (ok ? "" : "; unhealthy: " + detail));
        std::lock_guard lock(health_mutex);
        healthy = ok;
        health_detail = detail;
    };

    // Readings the writer could not take yet (its buffer was full).
    std::deque<std::vector<rill::Reading>> backlog;
    auto offer = [&](std::vector<rill::Reading>&& readings) {
        if (backlog.empty()) {
            const auto n = writer.add(readings);
            if (n == readings.size()) return;
            readings.erase(readings.begin(), readings.begin() + static_cast<std::ptrdiff_t>(n));
        }
        backlog.push_back(std::move(readings));
    };

    auto next_refresh = Clock::now();
    zmq::pollitem_t wake{nullptr, shutdown.fd(), ZMQ_POLLIN, 0};
    while (!shutdown.requested()) {
        systemd.keep_alive();
        while (!backlog.empty()) {
            auto& front = backlog.front();
            const auto n = writer.add(front);
            if (n == front.size()) {
                backlog.pop_front();
                continue;
            }
            front.erase(front.begin(), front.begin() + static_cast<std::ptrdiff_t>(n));
            break;
        }
        if (writer.due() || !backlog.empty()) writer.flush();
        if (Clock::now() >= next_refresh) {
            refresh();
            next_refresh = Clock::now() + 1s;
        }
        if (!backlog.empty()) {
            // Full: don't read the stream; wait for the database (flush retries on its own
            // schedule), waking for a signal.
            const auto until = writer.next_deadline().value_or(Clock::now() + 50ms);
            rill::app::poll_interruptible({&wake, 1},
                                          std::clamp(ms(until - Clock::now()), 1ms, 50ms));
            continue;
        }
        auto timeout = 100ms;
        if (const auto d = writer.next_deadline()) {
            timeout = std::clamp(ms(*d - Clock::now()), 0ms, 100ms);
        }
        auto ev = rs.receive(timeout);
        if (!ev) continue;
        if (auto* d = std::get_if<rill::Delivery>(&*ev)) {
            offer(std::move(d->readings));
        } else if (std::get_if<rill::HeartbeatSeen>(&*ev)) {
            last_heartbeat_at = Clock::now();
        } else if (auto* s = std::get_if<rill::PublisherSilent>(&*ev)) {
            rill::log_warn("store-sub", "publisher " + s->publisher + " is silent for " +
                                            std::to_string(s->silent_for.count()) + " ms");
        } else if (auto* b = std::get_if<rill::PublisherBack>(&*ev)) {
            rill::log_info("store-sub", "publisher " + b->publisher + " is back");
        } else if (auto* g = std::get_if<rill::Gap>(&*ev)) {
            rill::log_debug("store-sub", "gap in " + g->sensor + ": " + std::to_string(g->from) +
                                             ".." + std::to_string(g->to) + ", replaying");
        }
        // rill::Lost is logged and counted by the ReliableSubscriber.
    }

    // Shutdown: stop reading, write what is held, commit, exit.
    systemd.stopping("stopping on " + shutdown.reason() + ": writing " +
                     std::to_string(writer.pending()) + " pending readings");
    rill::log_info("store-sub",
                   "stopping: writing " + std::to_string(writer.pending()) + " pending readings");
    for (auto& b : backlog) {
        for (auto& r : b)
            (void)writer.add(std::move(r));
    }
    const bool drained = writer.drain(Clock::now() + rill::parse_duration(o.drain_timeout));
    refresh();
    const auto s = writer.stats();
    rill::log_info("store-sub", "stopped; stored " + std::to_string(s.readings_stored) +
                                    " readings in " + std::to_string(s.batches) + " batches" +
                                    (drained ? ""
                                             : "; some readings were not written (the "
                                               "publishers' outboxes still hold them)"));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "store-sub: subscribe to sensor-pub streams and store every reading exactly once in "
        "PostgreSQL, asking the publishers to replay whatever was missed."};
    app.add_option("--connect", o.connect,
                   "A publisher's stream, tcp://HOST:PORT (repeatable, or a comma list)")
        ->required()
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
    app.add_option("--flush-interval", o.flush_interval,
                   "Write a batch when its oldest reading waited this long")
        ->envname("RILL_FLUSH_INTERVAL")
        ->capture_default_str();
    app.add_option("--pending-max", o.pending_max,
                   "Readings held in memory while the database is slow or down; beyond it the "
                   "stream is not read (missed readings are replayed later)")
        ->envname("RILL_PENDING_MAX")
        ->capture_default_str();
    app.add_option("--replay-chunk", o.replay_chunk, "Readings per replay request")
        ->envname("RILL_REPLAY_CHUNK")
        ->capture_default_str();
    app.add_option("--replay-timeout", o.replay_timeout, "Timeout of one replay request")
        ->envname("RILL_REPLAY_TIMEOUT")
        ->capture_default_str();
    app.add_option("--silent-after", o.silent_after,
                   "A publisher is silent after this many missed heartbeats")
        ->envname("RILL_SILENT_AFTER")
        ->capture_default_str();
    app.add_option("--stale-after", o.stale_after,
                   "/healthz fails when nothing was stored this long while readings wait")
        ->envname("RILL_STALE_AFTER")
        ->capture_default_str();
    app.add_option("--drain-timeout", o.drain_timeout,
                   "On SIGTERM: how long to keep writing what is held")
        ->envname("RILL_DRAIN_TIMEOUT")
        ->capture_default_str();
    rill::app::add_curve_client_options(app, o.curve);
    rill::app::add_common_options(app, o.common, "127.0.0.1:9102");
    return rill::app::run_main(app, argc, argv, "store-sub", [&] { return run(o); });
}
