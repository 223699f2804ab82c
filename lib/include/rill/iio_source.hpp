// rill/iio_source.hpp: a DHT11/DHT22 read through the kernel's dht11 IIO driver (sysfs).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "rill/source.hpp"

namespace rill {

/// How the IIO source reads a sysfs attribute: the real files, or a fake in tests (real files
/// cannot return ETIMEDOUT or EIO).
class SysfsReader {
  public:
    /// The outcome of one read.
    struct Result {
        std::string text;  ///< the contents, when error == 0
        int error = 0;     ///< an errno value when the read failed
    };
    virtual ~SysfsReader();
    /// Reads the whole (small) file, opening it afresh each time. Blocks while the kernel
    /// measures (up to about a second). Never throws for I/O errors: they come back as errno.
    [[nodiscard]] virtual Result read(const std::filesystem::path& path) = 0;
};

/// The real reader: open, pread from offset 0, close.
[[nodiscard]] std::unique_ptr<SysfsReader> make_file_sysfs_reader();

/// How IioSource finds and reads its device.
struct IioOptions {
    /// Where sysfs is mounted.
    std::filesystem::path sysfs_root = "/sys";
    /// Which device: empty or a name (matches a device whose `name` file equals it or starts
    /// with it followed by '@', as in "dht11@0"; default "dht11"), or "iio:deviceN".
    std::string device;
    /// Time between measurements.
    std::chrono::nanoseconds interval = std::chrono::seconds(5);
    /// Retries per measurement after ETIMEDOUT or EIO, each after retry_delay (at least 2 s:
    /// the driver needs that long before it measures again).
    int max_retries = 5;
    /// Wait before each retry (at least 2 s is used).
    std::chrono::milliseconds retry_delay{2000};
    std::shared_ptr<SysfsReader> reader;  ///< empty: the real files
    /// Time seam (tests); empty members use the real clocks.
    SourceClock clock;
    /// Where the source registers its metrics (see rill::Source); nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
};

/// Finds the IIO device directory (<root>/bus/iio/devices/iio:deviceN) for `device` (see
/// IioOptions::device). Throws std::runtime_error listing what was searched when none matches.
[[nodiscard]] std::filesystem::path find_iio_device(const std::filesystem::path& sysfs_root,
                                                    const std::string& device);

/// Reads in_temp_input and in_humidityrelative_input (milli-degrees C, milli-percent) each
/// interval. ETIMEDOUT and EIO are counted (failed_timeout, failed_io) and retried after the
/// retry delay; unparsable contents count as failed_parse. next() throws std::system_error for
/// EAGAIN (the kernel clock is too coarse for the driver: a configuration problem, retrying
/// will not help) and for any other errno (missing files, permissions).
class IioSource final : public Source {
  public:
    /// Locates the device (see find_iio_device). Throws std::runtime_error when none matches.
    explicit IioSource(IioOptions options);

    [[nodiscard]] std::optional<Measurement> next() override;
    [[nodiscard]] std::string describe() const override;

    /// The device directory in use, e.g. /sys/bus/iio/devices/iio:device0.
    [[nodiscard]] const std::filesystem::path& device_path() const noexcept { return device_; }

  private:
    enum class Outcome { ok, retry };
    Outcome read_value(const char* attribute, double& value);
    [[nodiscard]] std::chrono::steady_clock::time_point steady_now() const;

    IioOptions options_;
    std::filesystem::path device_;
    std::string device_name_;
    std::optional<std::chrono::steady_clock::time_point> due_;
};

}  // namespace rill
