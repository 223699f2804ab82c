// rill/source.hpp: where measurements come from. A Source yields timestamped temperature and
// humidity values, paced by the source itself; sequence numbers are assigned later (outbox).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rill/metrics.hpp"
#include "rill/reading.hpp"

namespace rill {

/// One measurement as a source produced it: no sensor id, no seq.
struct Measurement {
    /// When the measurement was taken.
    Timestamp ts{};
    float temperature = 0;  ///< degrees Celsius
    float humidity = 0;     ///< percent relative humidity, 0 to 100
    /// Extra named values, e.g. pressure.
    std::vector<Extra> extras;
    /// Member-wise equality.
    bool operator==(const Measurement&) const = default;
};

/// A snapshot of what a source has done since it was made. Each failure is counted under
/// exactly one reason; failed reads are never returned as values.
struct SourceCounters {
    std::uint64_t measurements = 0;     ///< values returned by next() / next_batch()
    std::uint64_t reads = 0;            ///< read attempts (sensor reads, CSV data rows)
    std::uint64_t failed_timeout = 0;   ///< DHT: too few edges; IIO: ETIMEDOUT
    std::uint64_t failed_sync = 0;      ///< DHT: a pulse outside 50..150 us
    std::uint64_t failed_checksum = 0;  ///< DHT: checksum mismatch
    std::uint64_t failed_io = 0;        ///< IIO: EIO; DHT: a GPIO error during a capture
    std::uint64_t failed_range = 0;     ///< decoded but implausible (humidity > 100, ...)
    std::uint64_t failed_parse = 0;     ///< CSV: bad rows; IIO: unparsable file contents
    std::uint64_t retries = 0;          ///< reads repeated after a failure
    std::uint64_t missed = 0;           ///< measurements given up after all retries failed
    /// Member-wise equality.
    bool operator==(const SourceCounters&) const = default;
};

/// Time as sources see it. Every member may be left empty for the real thing; tests inject a
/// fake clock. When `steady` is injected, inject `sleep_until` too (the real sleep waits on
/// std::chrono::steady_clock).
struct SourceClock {
    /// Monotonic time used for pacing and read spacing. Empty: steady_clock::now.
    std::function<std::chrono::steady_clock::time_point()> steady;
    /// Wall-clock time stamped on hardware measurements. Empty: rill::now.
    std::function<Timestamp()> wall;
    /// Blocks until the given steady time. Empty: a real wait that request_stop() ends early.
    /// A source checks for a stop request after each call.
    std::function<void(std::chrono::steady_clock::time_point)> sleep_until;
};

namespace detail {
/// One count of a source: the source's own total (what Source::counters() reports) and, when
/// the count is also a metric, the registry series it adds to as well.
class SourceCount {
  public:
    /// Adds `n` to the source's total and to the series, if any.
    void add(std::uint64_t n = 1) noexcept {
        own_.fetch_add(n, std::memory_order_relaxed);
        if (series_ != nullptr) series_->inc(n);
    }
    /// The source's own total.
    [[nodiscard]] std::uint64_t value() const noexcept {
        return own_.load(std::memory_order_relaxed);
    }
    /// Also adds to `series` from now on (the Source constructor registers it).
    void feed(Counter& series) noexcept { series_ = &series; }

  private:
    std::atomic<std::uint64_t> own_{0};
    Counter* series_ = nullptr;
};
/// The counts behind SourceCounters.
struct SourceCounterCells {
    SourceCount measurements, reads, failed_timeout, failed_sync, failed_checksum, failed_io,
        failed_range, failed_parse, retries, missed;
};
}  // namespace detail

/// A stream of measurements. One thread calls next()/next_batch(); any thread may call
/// request_stop(), stop_requested() and counters().
///
/// Metrics: every source registers, in the registry it is given (its options' `metrics`;
/// nullptr = default_registry()), `rill_source_failed_reads_total{reason}` (timeout, sync,
/// checksum, io, range, parse) and `rill_source_missed_total`, and adds its failures to them as
/// they happen. Sources sharing a registry add to the same series.
class Source {
  public:
    virtual ~Source();
    Source(const Source&) = delete;
    Source& operator=(const Source&) = delete;

    /// Blocks until the next measurement is due and returns it. Returns nothing at the end of
    /// the input (CSV) or once request_stop() was called; a stop ends any wait promptly (an IIO
    /// read in progress may still block in the kernel for up to about a second). Never busy
    /// waits. Throws on configuration errors (for example an IIO driver that answers EAGAIN);
    /// bad sensor reads are retried and counted, never thrown or returned.
    [[nodiscard]] virtual std::optional<Measurement> next() = 0;

    /// Appends to `out` up to `max` measurements: blocks like next() for the first one, then
    /// adds only those already due without waiting. Returns how many were appended; 0 means end
    /// of input or stop. The default implementation appends at most one.
    virtual std::size_t next_batch(std::vector<Measurement>& out, std::size_t max);

    /// Asks next() to return nothing as soon as possible. Thread-safe, idempotent, noexcept.
    void request_stop() noexcept;
    /// True once request_stop() was called.
    [[nodiscard]] bool stop_requested() const noexcept {
        return stop_.load(std::memory_order_acquire);
    }

    /// A consistent-enough snapshot of the counters (each is read atomically). Thread-safe.
    [[nodiscard]] SourceCounters counters() const noexcept;

    /// A short human description for logs: "sim every 5s, seed 1", "iio:device0 (dht11@0)".
    [[nodiscard]] virtual std::string describe() const = 0;

  protected:
    /// Registers the source's metrics in `metrics` (nullptr = default_registry()); see the
    /// class comment. Throws std::invalid_argument when a metric of the same name exists there
    /// as another kind.
    explicit Source(MetricsRegistry* metrics = nullptr);

    /// Blocks until `deadline` (per `clock`) or a stop request. Returns true when the deadline
    /// was reached, false when a stop was requested.
    bool wait_until(const SourceClock& clock, std::chrono::steady_clock::time_point deadline);
    /// The same on the real steady clock.
    bool wait_until(std::chrono::steady_clock::time_point deadline);

    /// Steady time per `clock`: its seam when set, else std::chrono::steady_clock.
    [[nodiscard]] static std::chrono::steady_clock::time_point steady_now(const SourceClock& clock);
    /// The bookkeeping of a paced source after a good measurement: counts it and schedules the
    /// next one `interval` after `due`, from now when retries made the source fall behind.
    void measured(const SourceClock& clock, std::chrono::steady_clock::time_point& due,
                  std::chrono::nanoseconds interval) noexcept;
    /// ... and after `attempts` failed reads of one measurement: counts and logs it as missed
    /// and schedules the next try one interval later.
    void missed(std::chrono::steady_clock::time_point& due, std::chrono::nanoseconds interval,
                int attempts);

    /// The counters a source updates (counters() reads them).
    detail::SourceCounterCells counters_;

  private:
    std::atomic<bool> stop_{false};
    std::mutex stop_mutex_;
    std::condition_variable stop_cv_;
};

/// The kinds of source a spec string names.
enum class SourceKind { sim, dht11, dht22, iio, csv };

/// A parsed spec: `sim`, `dht11`, `dht22`, `iio`, `iio:DEVICE` or `csv:PATH`. `argument` is
/// DEVICE (empty: find the device named dht11) or PATH.
struct SourceSpec {
    /// What kind of source.
    SourceKind kind = SourceKind::sim;
    /// The device (iio) or the file path (csv); empty otherwise.
    std::string argument;
    /// Member-wise equality.
    bool operator==(const SourceSpec&) const = default;
};

/// Parses a spec string. Throws std::invalid_argument naming the problem (unknown kind, a
/// missing CSV path, an argument where none is allowed).
[[nodiscard]] SourceSpec parse_source_spec(std::string_view spec);

class EdgeSource;

/// Settings for make_source(); each applies to the kinds named.
struct SourceOptions {
    /// Time between measurements (sim, dht, iio). Default 5 s. A DHT source never reads more
    /// often than its sensor allows (1 s DHT11, 2 s DHT22).
    std::optional<std::chrono::nanoseconds> interval;
    /// Measurements per second instead of an interval (sim for load tests; others accept it
    /// too). Mutually exclusive with `interval`; must be finite and > 0.
    std::optional<double> rate_hz;
    /// sim: the random seed.
    std::uint64_t seed = 1;
    /// sim: the timestamp of the first measurement; default: now.
    std::optional<Timestamp> start;
    /// dht: the GPIO chip (name, path or number) and line offset, and whether to enable the
    /// SoC's internal pull-up (turn off with an external 4.7-10 kOhm pull-up).
    std::string gpio_chip = "gpiochip0";
    /// dht: the GPIO line offset on gpio_chip.
    unsigned gpio_line = 4;
    /// dht: enable the internal pull-up while listening.
    bool gpio_pull_up = true;
    /// dht: SCHED_FIFO priority for the capturing thread during a read (0: off; see
    /// rill::gpio::GpiodEdgeSourceOptions::realtime_priority).
    int gpio_realtime_priority = 0;
    /// iio: where sysfs is mounted (tests point this at a temporary tree).
    std::filesystem::path sysfs_root = "/sys";
    /// csv: wait the gaps between row timestamps instead of reading at full speed.
    bool csv_paced = false;
    /// dht: makes the edge source for the line above. rill::gpio::make_source() fills it with
    /// the libgpiod implementation; rill::make_source() alone cannot read GPIO.
    std::function<std::unique_ptr<EdgeSource>(const SourceOptions&)> edge_source_factory;
    /// Time seam for dht and iio (tests).
    SourceClock clock;
    /// Where the source registers its metrics (see Source); nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
};

/// Makes the source a spec names (see parse_source_spec) with `options`. Throws
/// std::invalid_argument naming the problem (bad spec, interval <= 0, both interval and rate,
/// a DHT spec without edge_source_factory); std::system_error or std::runtime_error when the
/// source cannot be opened (missing CSV file, no IIO device matches).
[[nodiscard]] std::unique_ptr<Source> make_source(std::string_view spec,
                                                  const SourceOptions& options = {});

/// The interval options ask for: `interval`, 1/`rate_hz`, or 5 s. Throws
/// std::invalid_argument when both are set or either is not positive and finite.
[[nodiscard]] std::chrono::nanoseconds resolve_interval(const SourceOptions& options);

}  // namespace rill
