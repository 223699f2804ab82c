// IngestLoop: ReliableSubscriber -> backlog -> SinkWriter, with outage handling, health and
// a graceful drain.
//
// One thread owns everything (the ReliableSubscriber runs its replay requests on a thread of its
// own): receive -> SinkWriter::add -> flush when due. When the writer's buffer is full (the sink
// is down or slow), the loop stops reading the stream; what the stream drops meanwhile is
// replayed afterwards.
#include "rill/ingest.hpp"

#include <poll.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <optional>

#include "rill/log.hpp"
#include "rill/units.hpp"

namespace rill {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

template <typename D>
std::chrono::milliseconds ms(D d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

// Sleeps up to `timeout`, waking early when `stop` is requested.
void wait_for_stop(const StopFlag& stop, std::chrono::milliseconds timeout) {
    pollfd p{stop.fd(), POLLIN, 0};
    (void)::poll(&p, 1, static_cast<int>(timeout.count()));
}

}  // namespace

struct IngestLoop::Impl {
    IngestOptions options;
    Sink& sink;
    IngestHooks hooks;
    bool ready_sent = false;
    mutable std::mutex health_mutex;
    IngestHealth health;
    Clock::time_point outage_start{};  // when the current database outage was first seen

    // State of one run().
    Clock::time_point last_stored_at{};
    Clock::time_point last_heartbeat_at{};
    Clock::time_point last_probe{};
    std::uint64_t last_stored = 0;
    std::deque<std::vector<Reading>> backlog;  // what the writer could not take yet (full)

    Impl(IngestOptions o, Sink& s, IngestHooks h)
        : options(std::move(o)), sink(s), hooks(std::move(h)) {}

    void keep_alive() const {
        if (hooks.keep_alive) hooks.keep_alive();
    }
    // READY the first time, STATUS afterwards.
    void announce(const std::string& text) {
        if (!ready_sent) {
            ready_sent = true;
            if (hooks.ready) hooks.ready(text);
        } else if (hooks.status) {
            hooks.status(text);
        }
    }
    void stopping(const std::string& text) const {
        if (!hooks.stopping) return;
        const std::string reason = hooks.stop_reason ? hooks.stop_reason() : "";
        hooks.stopping("stopping on " + (reason.empty() ? "a stop request" : reason) + text);
    }

    // An outage is logged twice: a warning at its first failed attempt, info when an attempt
    // succeeds again; the attempts in between only at debug level (systemd's STATUS shows them).
    void log_reconnect(const ReconnectEvent& e) {
        if (e.succeeded) {
            const auto secs =
                std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - outage_start);
            log_info("store", "database reachable again after " + std::to_string(secs.count()) +
                                  " s (" + std::to_string(e.attempt) + " attempts)");
            return;
        }
        const auto next = "; next try in " + std::to_string(e.next_delay.count()) + " ms";
        if (e.attempt <= 1) {
            outage_start = Clock::now();
            log_warn("store", "database unreachable: " + e.error + next +
                                  " (later attempts are logged at debug level)");
        } else {
            log_debug("store", "database still unreachable (attempt " + std::to_string(e.attempt) +
                                   "): " + e.error + next);
        }
    }

    std::optional<SinkWriter> open(const StopFlag& stop) {
        log_info(options.log_component, "connecting to the database");
        unsigned failed = 0;
        try {
            auto writer = open_sink_writer(
                sink, options.writer,
                [&] {
                    keep_alive();
                    return !stop.requested();
                },
                [&](const ReconnectEvent& e) {
                    failed = e.attempt;
                    log_reconnect(e);
                    set_health({false, "database unreachable"});
                    announce("waiting for the database (attempt " + std::to_string(e.attempt) +
                             "): " + e.error);
                });
            // An outage at start ends here, like one while running ends in the writer.
            if (failed > 0) log_reconnect({.attempt = failed + 1, .succeeded = true});
            return writer;
        } catch (const SinkError&) {
            if (!stop.requested()) throw;
            // Asked to stop while waiting for the sink: nothing was received, nothing is lost.
            stopping(" before the database answered");
            log_info(options.log_component, "stopped before the database was reachable");
            return std::nullopt;
        }
    }

    // Metrics are the writer's own; this probes an idle sink, computes health and reports the
    // status.
    void refresh(SinkWriter& writer, ReliableSubscriber& rs) {
        const auto now = Clock::now();
        if (writer.pending() == 0 && now - last_probe >= options.probe_interval) {
            last_probe = now;
            (void)writer.probe();
        }
        const auto s = writer.stats();
        if (s.readings_stored > last_stored) {
            last_stored = s.readings_stored;
            last_stored_at = now;
        }
        (void)rs.stats();  // refreshes rill_replay_wanted_readings
        // Unhealthy: the sink is unreachable, or nothing was stored for stale_after while
        // publishers are alive and readings wait to be stored.
        IngestHealth h;
        if (!writer.connected()) {
            h = {false, "database unreachable"};
        } else if (now - last_stored_at > options.stale_after &&
                   now - last_heartbeat_at < options.stale_after &&
                   (writer.pending() > 0 || rs.wanted() > 0)) {
            h = {false, "nothing stored for " + format_duration(options.stale_after) +
                            " while readings wait"};
        }
        if (hooks.status) {
            hooks.status("stored " + std::to_string(s.readings_stored) + " readings since start, " +
                         std::to_string(writer.pending()) + " pending, " +
                         (writer.connected() ? "database up" : "database unreachable") +
                         (h.ok ? "" : "; unhealthy: " + h.detail));
        }
        set_health(std::move(h));
    }

    void set_health(IngestHealth h) {
        std::lock_guard lock(health_mutex);
        health = std::move(h);
    }

    // Hands `readings` to the writer, keeping what it cannot take yet in the backlog.
    void offer(SinkWriter& writer, std::vector<Reading>&& readings) {
        if (backlog.empty()) {
            const auto n = writer.add(readings);
            if (n == readings.size()) return;
            readings.erase(readings.begin(), readings.begin() + static_cast<std::ptrdiff_t>(n));
        }
        backlog.push_back(std::move(readings));
    }

    // Moves what the writer can take from the backlog into it.
    void feed_backlog(SinkWriter& writer) {
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
    }

    void handle(SinkWriter& writer, ReliableEvent&& ev) {
        if (auto* d = std::get_if<Delivery>(&ev)) {
            offer(writer, std::move(d->readings));
        } else if (std::get_if<HeartbeatSeen>(&ev)) {
            last_heartbeat_at = Clock::now();
        } else if (auto* s = std::get_if<PublisherSilent>(&ev)) {
            log_warn(options.log_component, "publisher " + s->publisher + " is silent for " +
                                                std::to_string(s->silent_for.count()) + " ms");
        } else if (auto* b = std::get_if<PublisherBack>(&ev)) {
            log_info(options.log_component, "publisher " + b->publisher + " is back");
        } else if (auto* g = std::get_if<Gap>(&ev)) {
            log_debug(options.log_component,
                      "gap in " + g->sensor + ": " + std::to_string(g->from) + ".." +
                          std::to_string(g->to) + " missing from the stream");
        }
        // Lost is logged and counted by the ReliableSubscriber.
    }

    // One turn of the loop: feed the writer, flush when due, wait for input or the sink.
    void step(SinkWriter& writer, ReliableSubscriber& rs, const StopFlag& stop) {
        feed_backlog(writer);
        if (writer.due() || !backlog.empty()) writer.flush();
        if (!backlog.empty()) {
            // Full: don't read the stream; wait for the sink (flush retries on its own
            // schedule), waking for the stop request.
            const auto until = writer.next_deadline().value_or(Clock::now() + 50ms);
            wait_for_stop(stop, std::clamp(ms(until - Clock::now()), 1ms, 50ms));
            return;
        }
        auto timeout = 100ms;
        if (const auto d = writer.next_deadline()) {
            timeout = std::clamp(ms(*d - Clock::now()), 0ms, 100ms);
        }
        if (auto ev = rs.receive(timeout)) handle(writer, std::move(*ev));
    }

    IngestSummary run(const StopFlag& stop) {
        auto opened = open(stop);
        if (!opened) return {};
        auto& writer = *opened;
        writer.on_reconnect([this](const ReconnectEvent& e) { log_reconnect(e); });
        const auto known = std::to_string(writer.sensors().size()) + " sensors already stored";
        log_info(options.log_component, "database ready; " + known);
        const auto& endpoints = options.subscriber.endpoints;
        ReliableSubscriber rs(options.subscriber, [&](const std::string& sensor) {
            return writer.stored_ranges(sensor);
        });
        log_info(options.log_component, "subscribed to " + endpoints);
        announce("subscribed to " + endpoints + ", database open, " + known);

        last_stored_at = last_probe = Clock::now();
        auto next_refresh = Clock::now();
        while (!stop.requested()) {
            keep_alive();
            if (Clock::now() >= next_refresh) {
                refresh(writer, rs);
                next_refresh = Clock::now() + 1s;
            }
            step(writer, rs, stop);
        }
        return drain(writer, rs);
    }

    // Shutdown: stop reading, write what is held, commit.
    IngestSummary drain(SinkWriter& writer, ReliableSubscriber& rs) {
        std::size_t held = writer.pending();
        for (const auto& b : backlog)
            held += b.size();
        stopping(": writing " + std::to_string(held) + " pending readings");
        log_info(options.log_component,
                 "stopping: writing " + std::to_string(held) + " pending readings");
        // The backlog may exceed pending_max: flush as it goes in.
        const auto deadline = Clock::now() + options.drain_timeout;
        bool drained = writer.drain(deadline);
        while (drained && !backlog.empty()) {
            feed_backlog(writer);
            drained = writer.drain(deadline);
        }
        drained = drained && backlog.empty();
        backlog.clear();
        refresh(writer, rs);
        const auto s = writer.stats();
        log_info(options.log_component, "stopped; stored " + std::to_string(s.readings_stored) +
                                            " readings in " + std::to_string(s.batches) +
                                            " batches" +
                                            (drained ? ""
                                                     : "; some readings were not written (the "
                                                       "publishers' outboxes still hold them)"));
        return {true, s.readings_stored, s.batches, drained};
    }
};

IngestLoop::IngestLoop(IngestOptions options, Sink& sink, IngestHooks hooks)
    : impl_(std::make_unique<Impl>(std::move(options), sink, std::move(hooks))) {}

IngestLoop::~IngestLoop() = default;

IngestSummary IngestLoop::run(const StopFlag& stop) {
    return impl_->run(stop);
}

IngestHealth IngestLoop::health() const {
    std::lock_guard lock(impl_->health_mutex);
    return impl_->health;
}

}  // namespace rill
