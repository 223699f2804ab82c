// The source factory: spec strings ("sim", "dht22", "iio:device0", "csv:PATH") to sources.
#include <cmath>
#include <stdexcept>

#include "rill/csv_source.hpp"
#include "rill/dht.hpp"
#include "rill/iio_source.hpp"
#include "rill/sim_source.hpp"
#include "rill/source.hpp"

namespace rill {

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
            sim.metrics = options.metrics;
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
            dht.metrics = options.metrics;
            return std::make_unique<DhtSource>(options.edge_source_factory(options), dht);
        }
        case SourceKind::iio: {
            IioOptions iio;
            iio.sysfs_root = options.sysfs_root;
            iio.device = spec.argument;
            iio.interval = interval;
            iio.clock = options.clock;
            iio.metrics = options.metrics;
            return std::make_unique<IioSource>(iio);
        }
        case SourceKind::csv: {
            CsvOptions csv;
            csv.paced = options.csv_paced;
            csv.metrics = options.metrics;
            return std::make_unique<CsvSource>(spec.argument, csv);
        }
    }
    throw std::invalid_argument("unknown source kind");
}

}  // namespace rill
