#include "rill/source.hpp"

#include <cmath>
#include <stdexcept>

#include "rill/csv_source.hpp"
#include "rill/dht.hpp"
#include "rill/iio_source.hpp"
#include "rill/log.hpp"
#include "rill/sim_source.hpp"

namespace rill {

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
    constexpr auto r = std::memory_order_relaxed;
    return SourceCounters{c.measurements.load(r),    c.reads.load(r),
                          c.failed_timeout.load(r),  c.failed_sync.load(r),
                          c.failed_checksum.load(r), c.failed_io.load(r),
                          c.failed_range.load(r),    c.failed_parse.load(r),
                          c.retries.load(r),         c.missed.load(r)};
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
    counters_.measurements.fetch_add(1, std::memory_order_relaxed);
}

void Source::missed(std::chrono::steady_clock::time_point& due, std::chrono::nanoseconds interval,
                    int attempts) {
    counters_.missed.fetch_add(1, std::memory_order_relaxed);
    log_warn("source", describe() + ": no good read after " + std::to_string(attempts) +
                           " attempts; trying again at the next interval");
    due += interval;
}

SourceSpec parse_source_spec(std::string_view spec) {
    const auto colon = spec.find(':');
    const std::string_view kind = spec.substr(0, colon);
    const bool has_arg = colon != std::string_view::npos;
    const std::string arg = has_arg ? std::string(spec.substr(colon + 1)) : std::string();
    auto no_argument = [&](SourceKind k) {
        if (has_arg) {
            throw std::invalid_argument("source '" + std::string(spec) + "': " + std::string(kind) +
                                        " takes no argument after ':'");
        }
        return SourceSpec{k, {}};
    };
    if (kind == "sim") return no_argument(SourceKind::sim);
    if (kind == "dht11") return no_argument(SourceKind::dht11);
    if (kind == "dht22") return no_argument(SourceKind::dht22);
    if (kind == "iio") {
        if (has_arg && arg.empty()) {
            throw std::invalid_argument("source '" + std::string(spec) +
                                        "': iio: needs a device name or iio:deviceN after ':'");
        }
        return SourceSpec{SourceKind::iio, arg};
    }
    if (kind == "csv") {
        if (arg.empty()) {
            throw std::invalid_argument("source '" + std::string(spec) +
                                        "': csv needs a file, as in csv:readings.csv");
        }
        return SourceSpec{SourceKind::csv, arg};
    }
    if (spec.empty()) {
        throw std::invalid_argument(
            "empty source (use sim, dht11, dht22, iio[:DEVICE] or csv:PATH)");
    }
    throw std::invalid_argument("unknown source '" + std::string(spec) +
                                "' (use sim, dht11, dht22, iio[:DEVICE] or csv:PATH)");
}

std::chrono::nanoseconds resolve_interval(const SourceOptions& options) {
    if (options.interval && options.rate_hz) {
        throw std::invalid_argument("give either an interval or a rate, not both");
    }
    if (options.interval) {
        if (options.interval->count() <= 0) {
            throw std::invalid_argument("interval must be positive, got " +
                                        std::to_string(options.interval->count()) + " ns");
        }
        return *options.interval;
    }
    if (options.rate_hz) {
        const double hz = *options.rate_hz;
        if (!std::isfinite(hz) || hz <= 0) {
            throw std::invalid_argument("rate must be a positive number of Hz, got " +
                                        std::to_string(hz));
        }
        const double ns = std::round(1e9 / hz);
        if (ns < 1) throw std::invalid_argument("rate above 1 GHz is not supported");
        return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
    }
    return std::chrono::seconds(5);
}

std::unique_ptr<Source> make_source(std::string_view spec_text, const SourceOptions& options) {
    const SourceSpec spec = parse_source_spec(spec_text);
    const auto interval = resolve_interval(options);
    switch (spec.kind) {
        case SourceKind::sim: {
            SimOptions sim;
            sim.interval = interval;
            sim.seed = options.seed;
            sim.start = options.start;
            return std::make_unique<SimSource>(sim);
        }
        case SourceKind::dht11:
        case SourceKind::dht22: {
            if (!options.edge_source_factory) {
                throw std::invalid_argument(
                    "source '" + std::string(spec_text) +
                    "' needs a GPIO edge source: link rill::gpio and call rill::gpio::make_source "
                    "(or set SourceOptions::edge_source_factory)");
            }
            DhtOptions dht;
            dht.model = spec.kind == SourceKind::dht11 ? DhtModel::dht11 : DhtModel::dht22;
            dht.interval = interval;
            dht.clock = options.clock;
            return std::make_unique<DhtSource>(options.edge_source_factory(options), dht);
        }
        case SourceKind::iio: {
            IioOptions iio;
            iio.sysfs_root = options.sysfs_root;
            iio.device = spec.argument;
            iio.interval = interval;
            iio.clock = options.clock;
            return std::make_unique<IioSource>(iio);
        }
        case SourceKind::csv: {
            CsvOptions csv;
            csv.paced = options.csv_paced;
            return std::make_unique<CsvSource>(spec.argument, csv);
        }
    }
    throw std::invalid_argument("unknown source kind");
}

}  // namespace rill
