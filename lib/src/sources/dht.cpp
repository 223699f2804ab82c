#include "rill/dht.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "rill/log.hpp"

namespace rill {

using namespace std::chrono_literals;

namespace {

// Errors that retrying cannot fix: no permission, the pin claimed elsewhere (the IIO overlay),
// no such chip or line, flags the kernel does not support.
bool is_configuration_error(const std::error_code& ec) {
    if (ec.category() != std::generic_category() && ec.category() != std::system_category()) {
        return false;
    }
    switch (ec.value()) {
        case EACCES:
        case EPERM:
        case EBUSY:
        case ENOENT:
        case ENODEV:
        case ENXIO:
        case EINVAL:
            return true;
        default:
            return false;
    }
}

}  // namespace

std::string_view to_string(DhtModel model) noexcept {
    return model == DhtModel::dht11 ? "dht11" : "dht22";
}

std::string_view to_string(DhtStatus status) noexcept {
    switch (status) {
        case DhtStatus::ok:
            return "ok";
        case DhtStatus::timeout:
            return "timeout";
        case DhtStatus::sync:
            return "sync";
        case DhtStatus::checksum:
            return "checksum";
    }
    return "unknown";
}

DhtResult convert_dht_frame(const std::array<std::uint8_t, 5>& b, DhtModel model) noexcept {
    DhtResult r;
    r.bytes = b;
    if (((b[0] + b[1] + b[2] + b[3]) & 0xFF) != b[4]) {
        r.status = DhtStatus::checksum;
        return r;
    }
    r.status = DhtStatus::ok;
    if (model == DhtModel::dht11) {
        r.humidity = static_cast<float>(b[0]) + static_cast<float>(b[1]) / 10.0f;
        r.temperature = static_cast<float>(b[2]) + static_cast<float>(b[3]) / 10.0f;
    } else {
        r.humidity = static_cast<float>((b[0] << 8) | b[1]) / 10.0f;
        const int magnitude = ((b[2] & 0x7F) << 8) | b[3];
        r.temperature = static_cast<float>((b[2] & 0x80) ? -magnitude : magnitude) / 10.0f;
    }
    return r;
}

DhtResult decode_dht_falling_edges(std::span<const std::chrono::nanoseconds> edges,
                                   DhtModel model) noexcept {
    constexpr std::size_t frame_edges = 41;
    DhtResult r;
    if (edges.size() < frame_edges) {
        r.status = DhtStatus::timeout;
        return r;
    }
    const auto t = edges.last(frame_edges);
    std::array<std::uint8_t, 5> bytes{};
    for (std::size_t i = 0; i < 40; ++i) {
        const auto gap = t[i + 1] - t[i];
        if (gap < 50us || gap > 150us) {
            r.status = DhtStatus::sync;
            return r;
        }
        auto& byte = bytes[i / 8];
        byte = static_cast<std::uint8_t>((byte << 1) | (gap > 100us ? 1 : 0));
    }
    return convert_dht_frame(bytes, model);
}

EdgeSource::~EdgeSource() = default;

DhtSource::DhtSource(std::unique_ptr<EdgeSource> edges, DhtOptions options)
    : Source(options.metrics), edges_(std::move(edges)), options_(std::move(options)) {
    if (!edges_) throw std::invalid_argument("DhtSource needs an edge source");
    if (options_.max_retries < 0) throw std::invalid_argument("DHT max_retries must be >= 0");
    if (options_.interval.count() <= 0) throw std::invalid_argument("DHT interval must be > 0");
    spacing_ = options_.min_read_spacing.count() > 0 ? options_.min_read_spacing
               : options_.model == DhtModel::dht11   ? 1000ms
                                                     : 2000ms;
    interval_ = std::max<std::chrono::nanoseconds>(options_.interval, spacing_);
    if (interval_ != options_.interval) {
        log_warn("source", std::string(to_string(options_.model)) + ": interval raised to " +
                               std::to_string(spacing_.count()) +
                               " ms, the sensor's minimum read spacing");
    }
}

std::string DhtSource::describe() const {
    return std::string(to_string(options_.model)) + " on " + edges_->describe();
}

std::chrono::steady_clock::time_point DhtSource::steady_now() const {
    return Source::steady_now(options_.clock);
}

std::optional<Measurement> DhtSource::attempt() {
    last_attempt_ = steady_now();
    counters_.reads.add();
    std::vector<std::chrono::nanoseconds> edges;
    try {
        edges = edges_->capture(options_.start_pulse, options_.capture_window);
    } catch (const std::system_error& e) {
        if (is_configuration_error(e.code())) throw;
        counters_.failed_io.add();
        log_warn("source", describe() + ": capture failed: " + e.what());
        return std::nullopt;
    } catch (const std::exception& e) {
        counters_.failed_io.add();
        log_warn("source", describe() + ": capture failed: " + e.what());
        return std::nullopt;
    }
    const DhtResult r = decode_dht_falling_edges(edges, options_.model);
    switch (r.status) {
        case DhtStatus::ok:
            break;
        case DhtStatus::timeout:
            counters_.failed_timeout.add();
            break;
        case DhtStatus::sync:
            counters_.failed_sync.add();
            break;
        case DhtStatus::checksum:
            counters_.failed_checksum.add();
            break;
    }
    if (!r.ok()) {
        log_debug("source", describe() + ": bad read (" + std::string(to_string(r.status)) + ", " +
                                std::to_string(edges.size()) + " edges)");
        return std::nullopt;
    }
    if (r.humidity > 100.0f ||
        (options_.model == DhtModel::dht11 && (r.bytes[1] > 9 || r.bytes[3] > 9))) {
        counters_.failed_range.add();
        log_debug("source", describe() + ": implausible frame");
        return std::nullopt;
    }
    Measurement m;
    m.ts = options_.clock.wall ? options_.clock.wall() : rill::now();
    m.temperature = r.temperature;
    m.humidity = r.humidity;
    return m;
}

std::optional<Measurement> DhtSource::next() {
    while (!stop_requested()) {
        if (!due_) due_ = steady_now();
        auto start = *due_;
        if (last_attempt_) start = std::max(start, *last_attempt_ + spacing_);
        if (!wait_until(options_.clock, start)) return std::nullopt;
        for (int n = 0; n <= options_.max_retries; ++n) {
            if (n > 0) {
                counters_.retries.add();
                auto backoff = options_.retry_backoff * (1LL << std::min(n - 1, 20));
                backoff = std::min<std::chrono::milliseconds>(backoff, options_.max_backoff);
                const auto at =
                    *last_attempt_ + std::max<std::chrono::nanoseconds>(backoff, spacing_);
                if (!wait_until(options_.clock, at)) return std::nullopt;
            }
            if (auto m = attempt()) {
                measured(options_.clock, *due_, interval_);
                return m;
            }
        }
        missed(*due_, interval_, options_.max_retries + 1);
    }
    return std::nullopt;
}

}  // namespace rill
