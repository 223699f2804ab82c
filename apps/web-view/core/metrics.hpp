// web-view: a small self-contained metrics registry in Prometheus text format.
// (To be replaced by the library's registry once it exists.)
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace rill::web {

/// Request counters by (route, status), a request-latency histogram by route, the number of
/// connected SSE clients and live-feed counters. Thread-safe.
class Metrics {
  public:
    static constexpr std::array<double, 12> latency_buckets{
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

    void observe_request(const std::string& route, int status, std::chrono::nanoseconds latency);
    void sse_connected() noexcept { ++sse_clients_; }
    void sse_disconnected() noexcept { --sse_clients_; }
    [[nodiscard]] long sse_clients() const noexcept { return sse_clients_.load(); }
    void feed_reading() noexcept { ++feed_readings_; }
    void feed_decode_error() noexcept { ++feed_decode_errors_; }
    [[nodiscard]] std::uint64_t feed_decode_errors() const noexcept { return feed_decode_errors_; }
    void db_error() noexcept { ++db_errors_; }

    /// The Prometheus text exposition (version 0.0.4) of every metric.
    [[nodiscard]] std::string render() const;

  private:
    struct Histogram {
        std::array<std::uint64_t, latency_buckets.size()> buckets{};
        std::uint64_t count = 0;
        double sum = 0;
    };
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, std::uint64_t> requests_;
    std::map<std::string, Histogram> latency_;
    std::atomic<long> sse_clients_{0};
    std::atomic<std::uint64_t> feed_readings_{0};
    std::atomic<std::uint64_t> feed_decode_errors_{0};
    std::atomic<std::uint64_t> db_errors_{0};
};

}  // namespace rill::web
