// rill/dht.hpp: DHT11 / DHT22 (AM2302) sensors: a pure frame decoder, the EdgeSource seam over
// the GPIO line, and DhtSource, which paces, retries and counts reads.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "rill/source.hpp"

namespace rill {

enum class DhtModel { dht11, dht22 };

/// "dht11" / "dht22".
[[nodiscard]] std::string_view to_string(DhtModel model) noexcept;

enum class DhtStatus {
    ok,        ///< 40 bits decoded and the checksum matches
    timeout,   ///< fewer than 41 falling edges: the sensor did not answer (or edges were lost)
    sync,      ///< a gap between falling edges outside 50..150 us: lost or merged edges
    checksum,  ///< the bits decoded but (b0 + b1 + b2 + b3) & 0xFF != b4
};

[[nodiscard]] std::string_view to_string(DhtStatus status) noexcept;

/// The outcome of decoding one DHT frame.
struct DhtResult {
    /// ok, or why the frame was rejected.
    DhtStatus status = DhtStatus::timeout;
    std::array<std::uint8_t, 5> bytes{};  ///< the raw frame when status is ok or checksum
    float temperature = 0;                ///< degrees Celsius, when ok
    float humidity = 0;                   ///< percent RH, when ok
    /// True when status is DhtStatus::ok.
    [[nodiscard]] bool ok() const noexcept { return status == DhtStatus::ok; }
};

/// Converts a checksum-valid frame to values. DHT11: integer byte + decimal byte / 10 (the
/// decimal is usually 0, some units send tenths). DHT22: 16-bit values / 10, temperature in
/// sign-magnitude (bit 7 of b2 = negative).
[[nodiscard]] DhtResult convert_dht_frame(const std::array<std::uint8_t, 5>& bytes,
                                          DhtModel model) noexcept;

/// Decodes a frame from falling-edge timestamps (monotonic, ascending, any epoch). Anchors on
/// the tail: the last 41 edges give 40 gaps (50 us low + the high pulse), each gap > 100 us is
/// a 1, MSB first; a gap outside 50..150 us is `sync`. Edges before the frame (the response
/// pulse, missed or spurious leading edges) are ignored. A missing edge inside the frame or a
/// flipped bit gives an error status, never wrong values. Pure; never throws.
[[nodiscard]] DhtResult decode_dht_falling_edges(std::span<const std::chrono::nanoseconds> edges,
                                                 DhtModel model) noexcept;

/// The GPIO side of a DHT read, as a seam: libgpiod in rill::gpio, a fake in tests.
class EdgeSource {
  public:
    virtual ~EdgeSource();
    /// Sends the start pulse (drives the line low for `start_pulse`, then releases it) and
    /// collects falling-edge timestamps (monotonic) until `window` after the release or until
    /// the line has been quiet after a full frame. Blocks for about start_pulse + window.
    /// Returns the timestamps in ascending order (possibly none). Throws std::system_error
    /// naming the chip and line when the line cannot be requested or read.
    [[nodiscard]] virtual std::vector<std::chrono::nanoseconds> capture(
        std::chrono::microseconds start_pulse, std::chrono::microseconds window) = 0;
    /// "gpiochip0 line 4" or similar, for logs.
    [[nodiscard]] virtual std::string describe() const = 0;
};

/// How DhtSource reads and paces its sensor.
struct DhtOptions {
    /// The sensor model: sets the frame conversion and the minimum read spacing.
    DhtModel model = DhtModel::dht22;
    /// Time between measurements; raised to the minimum read spacing when shorter.
    std::chrono::nanoseconds interval = std::chrono::seconds(5);
    /// Minimum spacing between two read attempts; 0 means the model's (1 s DHT11, 2 s DHT22).
    std::chrono::milliseconds min_read_spacing{0};
    /// Retries per measurement after a bad read; the n-th retry waits
    /// max(min spacing, retry_backoff * 2^(n-1)) capped at max_backoff after the previous
    /// attempt. When all fail, the measurement is counted as missed and the next one is tried
    /// at the next interval.
    int max_retries = 5;
    /// The delay before the first retry; it doubles with each further retry.
    std::chrono::milliseconds retry_backoff{2000};
    /// The longest delay between two retries.
    std::chrono::milliseconds max_backoff{16000};
    /// How long the line is driven low to wake the sensor.
    std::chrono::microseconds start_pulse{19000};
    /// How long falling edges are collected after the start pulse.
    std::chrono::microseconds capture_window{10000};
    /// Time seam (tests); empty members use the real clocks.
    SourceClock clock;
    /// Where the source registers its metrics (see rill::Source); nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
};

/// Reads a DHT11/DHT22 through an EdgeSource. next() blocks until the next interval, reads,
/// retries bad reads with backoff (counted per reason) and returns only checksum-valid,
/// plausible values stamped with the wall-clock time of the read. It never reads the sensor
/// more often than the minimum spacing. A capture that throws std::system_error with EACCES,
/// EPERM, EBUSY (the pin is claimed, e.g. by the dht11 overlay), ENOENT, ENODEV, ENXIO or EINVAL
/// is a configuration problem: next() rethrows it. Other capture errors count as failed_io and
/// are retried. Owns the edge source.
class DhtSource final : public Source {
  public:
    /// Throws std::invalid_argument when `edges` is null or options are out of range.
    DhtSource(std::unique_ptr<EdgeSource> edges, DhtOptions options);

    [[nodiscard]] std::optional<Measurement> next() override;
    [[nodiscard]] std::string describe() const override;

  private:
    [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const;
    [[nodiscard]] std::optional<Measurement> attempt();

    std::unique_ptr<EdgeSource> edges_;
    DhtOptions options_;
    std::chrono::milliseconds spacing_;
    std::chrono::nanoseconds interval_;
    std::optional<std::chrono::steady_clock::time_point> last_attempt_;
    std::optional<std::chrono::steady_clock::time_point> due_;
};

}  // namespace rill
