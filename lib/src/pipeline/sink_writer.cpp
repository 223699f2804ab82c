// SinkWriter: batches by size and time into any Sink, exactly once by (sensor, seq), reopening
// the sink with backoff; registers its own metrics.
#include <algorithm>
#include <deque>
#include <limits>
#include <thread>
#include <unordered_map>

#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/sink.hpp"

namespace rill {

namespace {

using Clock = std::chrono::steady_clock;

struct SensorState {
    SeqRanges stored;   // known stored
    SeqRanges pending;  // queued, not yet stored
    // A run of consecutive seqs stored by the batch being booked (see book_commit).
    bool has_run = false;
    SeqRange run{};
};

struct Pending {
    Reading reading;
    SensorState* state;  // stable: unordered_map nodes don't move
};

// The series a writer exports; registered once, updated as things happen.
struct WriterMetrics {
    Counter& stored;
    Counter& batches;
    Counter& duplicates_skipped;
    Counter& duplicates_hit;
    Counter& invalid;
    Counter& errors;
    Counter& reconnects;
    Histogram& latency;
    Gauge& pending;
    Gauge& fill;
    Gauge& up;

    WriterMetrics(MetricsRegistry& r, const std::string& p)
        : stored(r.counter(p + "_readings_total", "Readings committed")),
          batches(r.counter(p + "_batches_total", "Batches committed")),
          duplicates_skipped(r.counter(p + "_duplicates_skipped_total",
                                       "Readings dropped in memory as already stored or pending")),
          duplicates_hit(r.counter(p + "_duplicates_hit_total",
                                   "Readings the database already had (fallback path)")),
          invalid(r.counter(p + "_invalid_total", "Readings refused as invalid")),
          errors(r.counter(p + "_database_errors_total",
                           "Failed batch attempts and connection attempts")),
          reconnects(
              r.counter(p + "_reconnects_total", "Successful reconnections to the database")),
          latency(r.histogram(p + "_batch_latency_seconds", "Time to write and commit one batch",
                              latency_buckets())),
          pending(r.gauge(p + "_pending_readings", "Readings held, not yet committed")),
          fill(r.gauge(p + "_buffer_fill_ratio", "pending / --pending-max")),
          up(r.gauge(p + "_database_up", "1 while the database is reachable")) {}
};

}  // namespace

struct SinkWriter::Impl {
    Sink& sink;
    SinkWriterOptions options;
    WriterMetrics metrics;
    Backoff backoff;
    Clock::time_point retry_at{};
    unsigned attempts = 0;  // reopen attempts since the last failure
    std::unordered_map<std::string, SensorState> sensors;
    std::deque<Pending> pending;
    Clock::time_point oldest{};  // when pending last went from empty to non-empty
    std::vector<Reading> batch;  // the batch being written, contiguous for Sink::write
    WriterStats stats;
    std::function<void(const ReconnectEvent&)> observer;

    Impl(Sink& s, SinkWriterOptions o)
        : sink(s),
          options(std::move(o)),
          metrics(options.registry ? *options.registry : default_registry(),
                  options.metrics_prefix),
          backoff(options.backoff) {
        if (options.batch_max == 0) options.batch_max = 1;
        if (options.pending_max < options.batch_max) options.pending_max = options.batch_max;
    }

    void update_gauges() noexcept {
        metrics.pending.set(static_cast<double>(pending.size()));
        metrics.fill.set(static_cast<double>(pending.size()) /
                         static_cast<double>(options.pending_max));
        metrics.up.set(sink.is_open() ? 1 : 0);
    }

    void count_error() noexcept {
        ++stats.database_errors;
        metrics.errors.inc();
    }

    void notify(const ReconnectEvent& e) {
        if (observer) observer(e);
    }

    // After a failure: close the sink and schedule the next attempt. Returns the delay. Logs the
    // failure unless `quiet` (a failed reopen that an observer reports itself).
    std::chrono::milliseconds schedule_retry(const SinkError& e, bool quiet = false) {
        sink.close();
        const auto delay = backoff.next_delay();
        retry_at = Clock::now() + delay;
        if (!quiet) {
            log_warn("store", std::string(e.what()) + "; retrying in " +
                                  std::to_string(delay.count()) + " ms");
        }
        return delay;
    }

    // One reopen attempt. Returns whether it worked; throws on a permanent failure.
    bool reconnect() {
        ++attempts;
        try {
            sink.open();
        } catch (const SinkError& e) {
            count_error();
            if (!e.transient()) throw;
            // An observer reports reopen attempts itself: one log line per event, not two.
            const auto delay = schedule_retry(e, static_cast<bool>(observer));
            notify({attempts, false, delay, e.what()});
            return false;
        }
        ++stats.reconnects;
        metrics.reconnects.inc();
        if (!observer) {
            log_info("store", "reconnected to " + sink.name() + " after " +
                                  std::to_string(attempts) + " attempt(s)");
        }
        notify({attempts, true, std::chrono::milliseconds(0), ""});
        attempts = 0;
        backoff.reset();
        return true;
    }

    // Writes the first n pending readings as one batch. Throws SinkError.
    void write_batch(std::size_t n) {
        const auto start = Clock::now();
        batch.clear();
        for (std::size_t i = 0; i < n; ++i)
            batch.push_back(pending[i].reading);
        const std::uint64_t inserted = std::min<std::uint64_t>(sink.write(batch), n);
        const auto took =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
        if (inserted < n) {
            ++stats.fallback_batches;
            stats.duplicates_hit += n - inserted;
            metrics.duplicates_hit.inc(n - inserted);
            log_info("store", "batch of " + std::to_string(n) + " hit " +
                                  std::to_string(n - inserted) +
                                  " readings already stored; inserted the rest");
        }
        stats.readings_stored += inserted;
        ++stats.batches;
        stats.last_batch_latency = took;
        stats.max_batch_latency = std::max(stats.max_batch_latency, took);
        stats.total_batch_latency += took;
        metrics.stored.inc(inserted);
        metrics.batches.inc();
        metrics.latency.observe(std::chrono::duration<double>(took).count());
        book_commit(n);
    }

    // Moves the first n pending readings from pending to stored, range by range.
    void book_commit(std::size_t n) {
        std::vector<SensorState*> touched;
        auto close_run = [](SensorState* s) {
            s->stored.insert(s->run);
            s->pending.erase(s->run);
            s->has_run = false;
        };
        for (std::size_t i = 0; i < n; ++i) {
            SensorState* s = pending[i].state;
            const std::uint64_t seq = pending[i].reading.seq;
            if (s->has_run && seq == s->run.last + 1) {
                s->run.last = seq;
                continue;
            }
            if (s->has_run) {
                close_run(s);
            } else {
                touched.push_back(s);
            }
            s->has_run = true;
            s->run = {seq, seq};
        }
        for (SensorState* s : touched) {
            if (s->has_run) close_run(s);
        }
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
    }

    bool probe() {
        if (!sink.is_open()) {
            if (Clock::now() < retry_at) return false;
            return reconnect();
        }
        try {
            sink.probe();
            return true;
        } catch (const SinkError& e) {
            count_error();
            if (!e.transient()) throw;
            (void)schedule_retry(e);
            return false;
        }
    }

    std::size_t flush() {
        std::size_t done = 0;
        while (!pending.empty()) {
            if (!sink.is_open()) {
                if (Clock::now() < retry_at) return done;
                if (!reconnect()) return done;
            }
            const std::size_t n = std::min(options.batch_max, pending.size());
            try {
                write_batch(n);
            } catch (const SinkError& e) {
                count_error();
                if (!e.transient()) throw;
                (void)schedule_retry(e);
                return done;
            }
            done += n;
        }
        return done;
    }
};

SinkWriter::SinkWriter(Sink& sink, SinkWriterOptions options)
    : impl_(std::make_unique<Impl>(sink, std::move(options))) {
    if (!sink.is_open()) sink.open();
    for (auto& [name, ranges] : sink.stored(impl_->options.sensor_prefix)) {
        impl_->sensors[name].stored = std::move(ranges);
    }
    impl_->update_gauges();
}

SinkWriter::~SinkWriter() {
    if (impl_) impl_->sink.close();
}
SinkWriter::SinkWriter(SinkWriter&&) noexcept = default;
SinkWriter& SinkWriter::operator=(SinkWriter&&) noexcept = default;

SinkWriter::AddResult SinkWriter::add(Reading reading) {
    Impl& w = *impl_;
    if (reading.seq > limits::max_seq || reading_problem(reading)) {
        ++w.stats.invalid_rejected;
        w.metrics.invalid.inc();
        return AddResult::invalid;
    }
    auto it = w.sensors.find(reading.sensor);
    if (it != w.sensors.end() &&
        (it->second.stored.contains(reading.seq) || it->second.pending.contains(reading.seq))) {
        ++w.stats.duplicates_skipped;
        w.metrics.duplicates_skipped.inc();
        return AddResult::duplicate;
    }
    if (w.pending.size() >= w.options.pending_max) return AddResult::full;
    if (it == w.sensors.end()) it = w.sensors.try_emplace(reading.sensor).first;
    SensorState& s = it->second;
    s.pending.insert(reading.seq);
    if (w.pending.empty()) w.oldest = Clock::now();
    w.pending.push_back(Pending{std::move(reading), &s});
    w.update_gauges();
    return AddResult::accepted;
}

std::size_t SinkWriter::add(std::span<const Reading> readings) {
    std::size_t taken = 0;
    for (const auto& r : readings) {
        if (add(r) == AddResult::full) break;
        ++taken;
    }
    return taken;
}

bool SinkWriter::due() const noexcept {
    const auto at = next_deadline();
    return at && Clock::now() >= *at;
}

std::optional<std::chrono::steady_clock::time_point> SinkWriter::next_deadline() const noexcept {
    const Impl& w = *impl_;
    if (w.pending.empty()) return std::nullopt;
    const auto ready =
        w.pending.size() >= w.options.batch_max ? w.oldest : w.oldest + w.options.flush_interval;
    if (!w.sink.is_open()) return std::max(ready, w.retry_at);
    return ready;
}

std::size_t SinkWriter::flush() {
    struct Gauges {
        Impl& w;
        ~Gauges() { w.update_gauges(); }
    } gauges{*impl_};
    return impl_->flush();
}

bool SinkWriter::drain(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        (void)flush();
        if (impl_->pending.empty()) return true;
        const auto now = Clock::now();
        if (now >= deadline) return false;
        std::this_thread::sleep_until(std::min(std::max(impl_->retry_at, now), deadline));
    }
}

bool SinkWriter::probe() {
    struct Gauges {
        Impl& w;
        ~Gauges() { w.update_gauges(); }
    } gauges{*impl_};
    return impl_->probe();
}

std::size_t SinkWriter::pending() const noexcept {
    return impl_->pending.size();
}
std::size_t SinkWriter::pending_max() const noexcept {
    return impl_->options.pending_max;
}
double SinkWriter::fill() const noexcept {
    return static_cast<double>(impl_->pending.size()) /
           static_cast<double>(impl_->options.pending_max);
}
bool SinkWriter::connected() const noexcept {
    return impl_->sink.is_open();
}

SeqRanges SinkWriter::stored_ranges(std::string_view sensor) const {
    const auto it = impl_->sensors.find(std::string(sensor));
    return it == impl_->sensors.end() ? SeqRanges{} : it->second.stored;
}

std::vector<std::string> SinkWriter::sensors() const {
    std::vector<std::string> out;
    for (const auto& [name, state] : impl_->sensors) {
        if (!state.stored.empty()) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

WriterStats SinkWriter::stats() const noexcept {
    return impl_->stats;
}

void SinkWriter::on_reconnect(std::function<void(const ReconnectEvent&)> observer) {
    impl_->observer = std::move(observer);
}

SinkWriter open_sink_writer(Sink& sink, const SinkWriterOptions& options,
                            const std::function<bool()>& keep_trying,
                            const std::function<void(const ReconnectEvent&)>& observer) {
    Backoff backoff(options.backoff);
    for (unsigned attempt = 1;; ++attempt) {
        try {
            return SinkWriter(sink, options);
        } catch (const SinkError& e) {
            sink.close();
            if (!e.transient()) throw;
            const auto delay = backoff.next_delay();
            if (observer) {
                observer({attempt, false, delay, e.what()});
            } else {
                log_warn("store", std::string(e.what()) + "; retrying in " +
                                      std::to_string(delay.count()) + " ms");
            }
            const auto until = Clock::now() + delay;
            while (Clock::now() < until) {
                if (!keep_trying()) throw;
                std::this_thread::sleep_for(
                    std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
            }
            if (!keep_trying()) throw;
        }
    }
}

}  // namespace rill
