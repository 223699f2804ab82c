// The Source base class: stop requests, pacing waits, counters and their metrics. The factory
// (parse_source_spec, make_source) is in factory.cpp.
#include "rill/source.hpp"

#include "rill/log.hpp"

namespace rill {

Source::Source(MetricsRegistry* metrics) {
    auto& registry = metrics != nullptr ? *metrics : default_registry();
    const auto failed = [&](detail::SourceCount& count, const char* reason) {
        count.feed(registry.counter("rill_source_failed_reads_total",
                                    "Failed sensor reads, by reason", {{"reason", reason}}));
    };
    failed(counters_.failed_timeout, "timeout");
    failed(counters_.failed_sync, "sync");
    failed(counters_.failed_checksum, "checksum");
    failed(counters_.failed_io, "io");
    failed(counters_.failed_range, "range");
    failed(counters_.failed_parse, "parse");
    counters_.missed.feed(registry.counter("rill_source_missed_total",
                                           "Measurements given up after every retry failed"));
}

Source::~Source() = default;

std::size_t Source::next_batch(std::vector<Measurement>& out, std::size_t max) {
    if (max == 0) return 0;
    auto m = next();
    if (!m) return 0;
    out.push_back(std::move(*m));
    return 1;
}

void Source::request_stop() noexcept {
    {
        const std::lock_guard lock(stop_mutex_);
        stop_.store(true, std::memory_order_release);
    }
    stop_cv_.notify_all();
}

SourceCounters Source::counters() const noexcept {
    const auto& c = counters_;
    return SourceCounters{c.measurements.value(),    c.reads.value(),
                          c.failed_timeout.value(),  c.failed_sync.value(),
                          c.failed_checksum.value(), c.failed_io.value(),
                          c.failed_range.value(),    c.failed_parse.value(),
                          c.retries.value(),         c.missed.value()};
}

bool Source::wait_until(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(stop_mutex_);
    stop_cv_.wait_until(lock, deadline, [&] { return stop_.load(std::memory_order_acquire); });
    return !stop_.load(std::memory_order_acquire);
}

bool Source::wait_until(const SourceClock& clock, std::chrono::steady_clock::time_point deadline) {
    if (stop_requested()) return false;
    if (clock.sleep_until) {
        clock.sleep_until(deadline);
        return !stop_requested();
    }
    return wait_until(deadline);
}

std::chrono::steady_clock::time_point Source::steady_now(const SourceClock& clock) {
    return clock.steady ? clock.steady() : std::chrono::steady_clock::now();
}

void Source::measured(const SourceClock& clock, std::chrono::steady_clock::time_point& due,
                      std::chrono::nanoseconds interval) noexcept {
    due += interval;
    const auto now = steady_now(clock);
    if (due < now) due = now;  // fell behind (retries): restart the cadence
    counters_.measurements.add();
}

void Source::missed(std::chrono::steady_clock::time_point& due, std::chrono::nanoseconds interval,
                    int attempts) {
    counters_.missed.add();
    log_warn("source", describe() + ": no good read after " + std::to_string(attempts) +
                           " attempts; trying again at the next interval");
    due += interval;
}

}  // namespace rill
