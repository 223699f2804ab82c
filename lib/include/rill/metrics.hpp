// rill/metrics.hpp: counters, gauges and histograms in a registry, rendered as Prometheus text.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rill {

/// Label pairs of one metric, e.g. {{"reason", "malformed"}}. Order does not matter: the
/// registry sorts them by name.
using Labels = std::vector<std::pair<std::string, std::string>>;

/// The size metrics are aligned to, so that counters updated by different threads never share
/// a cache line (false sharing would make every increment a cache miss).
inline constexpr std::size_t metric_alignment = 64;

/// A monotonically increasing count. All members are thread-safe and lock-free.
class alignas(metric_alignment) Counter {
  public:
    /// Adds `n`.
    void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    /// The current count.
    [[nodiscard]] std::uint64_t value() const noexcept {
        return value_.load(std::memory_order_relaxed);
    }

  private:
    std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down. All members are thread-safe and lock-free.
class alignas(metric_alignment) Gauge {
  public:
    /// Sets the value.
    void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
    /// Adds `d` (negative to subtract).
    void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
    /// The current value.
    [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> value_{0};
};

/// Counts observations into buckets with fixed upper bounds (Prometheus `le`), plus their sum
/// and count. observe() is thread-safe and lock-free; a snapshot taken while others observe
/// may be off by the observations in flight.
class Histogram {
  public:
    /// `bounds` are the buckets' inclusive upper bounds; they are sorted and de-duplicated, and
    /// +Inf is implicit. Throws std::invalid_argument when one is not finite.
    explicit Histogram(std::vector<double> bounds);

    /// Counts `value` in the first bucket whose bound is >= value (+Inf when none), adds it to the
    /// sum.
    void observe(double value) noexcept;

    /// A copy of the histogram's state at one moment.
    struct Snapshot {
        std::vector<double> bounds;         ///< upper bounds, without +Inf
        std::vector<std::uint64_t> counts;  ///< cumulative count per bound, then +Inf last
        /// The sum of all observed values.
        double sum = 0;
        /// The number of observations.
        std::uint64_t count = 0;
    };
    /// The buckets, sum and count now (see the class comment on concurrent observe()).
    [[nodiscard]] Snapshot snapshot() const;
    /// The buckets' upper bounds, sorted, without +Inf.
    [[nodiscard]] const std::vector<double>& bounds() const noexcept { return bounds_; }

  private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // per bucket, not cumulative
    std::atomic<double> sum_{0};
    std::atomic<std::uint64_t> count_{0};
};

/// Bucket bounds for latencies in seconds: 100 µs to about 10 s, in steps of about x2.5.
[[nodiscard]] std::vector<double> latency_buckets();

/// One sample of a collected gauge family (MetricsRegistry::collect_gauges): its labels and its
/// value.
struct Sample {
    /// The sample's labels; names as for the registry's accessors, values any text (escaped
    /// when rendered).
    Labels labels;
    /// The value; NaN and infinities render as `NaN`, `+Inf`, `-Inf`.
    double value = 0;
};

/// Returns a collected family's samples at render time (MetricsRegistry::collect_gauges).
using GaugeCollector = std::function<std::vector<Sample>()>;

class MetricsRegistry;

namespace detail {
struct CollectorEntry;
}  // namespace detail

/// Keeps a collector registered with MetricsRegistry::collect_gauges; unregisters it when
/// destroyed or reset. Move-only; moving out empties the source. The registry must outlive it.
class CollectorHandle {
  public:
    /// A handle that holds no collector.
    CollectorHandle() noexcept;
    /// Takes `other`'s collector; `other` holds none afterwards.
    CollectorHandle(CollectorHandle&& other) noexcept;
    /// Unregisters the collector held, then takes `other`'s.
    CollectorHandle& operator=(CollectorHandle&& other) noexcept;
    CollectorHandle(const CollectorHandle&) = delete;
    CollectorHandle& operator=(const CollectorHandle&) = delete;
    /// Unregisters the collector held (see reset()).
    ~CollectorHandle();

    /// Unregisters the collector: its family is gone from later renders, and once reset()
    /// returns the callback is not running and never runs again (a render calling it now is
    /// waited for). The name can then be registered again. Idempotent.
    void reset() noexcept;
    /// Whether the handle holds a registered collector.
    [[nodiscard]] explicit operator bool() const noexcept { return entry_ != nullptr; }

  private:
    friend class MetricsRegistry;
    CollectorHandle(MetricsRegistry* registry, std::shared_ptr<detail::CollectorEntry> entry);
    MetricsRegistry* registry_ = nullptr;
    std::shared_ptr<detail::CollectorEntry> entry_;
};

/// Owns metrics by name and labels and renders them all as Prometheus text.
///
/// The accessors register a metric on first use and return the same object for the same name
/// and labels afterwards; the reference stays valid as long as the registry lives, so hot paths
/// look a metric up once and keep the reference. Accessors and render_prometheus() take a
/// mutex; Counter/Gauge/Histogram operations do not. Names must match
/// [a-zA-Z_:][a-zA-Z0-9_:]* and should carry the `rill_` prefix and their unit
/// (`rill_rpc_latency_seconds`, `rill_stream_readings_received_total`).
class MetricsRegistry {
  public:
    MetricsRegistry();
    ~MetricsRegistry();
    MetricsRegistry(const MetricsRegistry&) = delete;
    MetricsRegistry& operator=(const MetricsRegistry&) = delete;

    /// Returns the counter `name` with `labels`, creating it. Throws std::invalid_argument when
    /// the name or a label name is invalid or `name` is already registered as another kind.
    /// `help` is kept from the first registration of `name`.
    Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
    /// As counter(), for a gauge.
    Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
    /// As counter(), for a histogram; `bounds` are used when it is created (see Histogram).
    Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                         const Labels& labels = {});

    /// The value of a counter or gauge, or the count of a histogram; nothing when no metric of
    /// that name and labels exists. Does not throw.
    [[nodiscard]] std::optional<double> value(std::string_view name,
                                              const Labels& labels = {}) const;

    /// Registers the gauge family `name` whose samples `collect` returns at each render: for
    /// values that live elsewhere and come and go (the newest reading of each sensor a table
    /// holds, say), where children registered with gauge() could never be removed.
    ///
    /// `collect` runs on the rendering thread, once per render_prometheus(), without the
    /// registry's mutex held (so it may call the registry's accessors, and may take its own
    /// locks); it must not reset a CollectorHandle, and it keeps the family bounded: every
    /// sample it returns is rendered. Samples are rendered sorted by labels; one with an
    /// invalid label name (or `le`) is skipped, and of several with the same labels the first
    /// is kept. A render during which `collect` throws shows the family with no samples. The
    /// family is rendered, with `# HELP` and `# TYPE gauge`, until the returned handle is reset
    /// or destroyed; value() does not see it.
    ///
    /// Throws std::invalid_argument when `name` is invalid, already registered (by an accessor
    /// or another collector), or `collect` is empty.
    [[nodiscard]] CollectorHandle collect_gauges(std::string_view name, std::string_view help,
                                                 GaugeCollector collect);

    /// Every metric in Prometheus text exposition format 0.0.4: families sorted by name, each
    /// with `# HELP` and `# TYPE`, histograms as `_bucket{le=...}`, `_sum` and `_count`, and
    /// the samples collected now for each family of collect_gauges().
    [[nodiscard]] std::string render_prometheus() const;

  private:
    friend class CollectorHandle;
    void remove_collector(detail::CollectorEntry& entry) noexcept;
    struct Family;
    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

/// The process-wide registry that rill objects use unless given another one; what an app's
/// `/metrics` endpoint renders. Never destroyed before exit.
[[nodiscard]] MetricsRegistry& default_registry();

}  // namespace rill
