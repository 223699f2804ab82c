#include "rill/iio_source.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <system_error>

#include "rill/log.hpp"

namespace rill {

using namespace std::chrono_literals;

namespace {

class FileSysfsReader final : public SysfsReader {
  public:
    Result read(const std::filesystem::path& path) override {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return Result{{}, errno};
        char buf[128];
        ssize_t n;
        do {
            n = ::pread(fd, buf, sizeof buf, 0);
        } while (n < 0 && errno == EINTR);
        const int err = n < 0 ? errno : 0;
        ::close(fd);
        if (err != 0) return Result{{}, err};
        return Result{std::string(buf, static_cast<std::size_t>(n)), 0};
    }
};

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r'))
        s.pop_back();
    return s;
}

std::string read_name(const std::filesystem::path& dir) {
    std::ifstream in(dir / "name");
    std::string name;
    std::getline(in, name);
    return trimmed(name);
}

bool name_matches(const std::string& name, const std::string& wanted) {
    return name == wanted ||
           (name.size() > wanted.size() && name.starts_with(wanted) && name[wanted.size()] == '@');
}

}  // namespace

SysfsReader::~SysfsReader() = default;

std::unique_ptr<SysfsReader> make_file_sysfs_reader() {
    return std::make_unique<FileSysfsReader>();
}

std::filesystem::path find_iio_device(const std::filesystem::path& sysfs_root,
                                      const std::string& device) {
    const auto devices = sysfs_root / "bus" / "iio" / "devices";
    if (device.starts_with("iio:device")) {
        const auto dir = devices / device;
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) {
            throw std::runtime_error("IIO device " + dir.string() + " does not exist");
        }
        return dir;
    }
    const std::string wanted = device.empty() ? "dht11" : device;
    std::error_code ec;
    std::vector<std::filesystem::path> dirs;
    for (const auto& entry : std::filesystem::directory_iterator(devices, ec)) {
        if (entry.path().filename().string().starts_with("iio:device")) {
            dirs.push_back(entry.path());
        }
    }
    std::sort(dirs.begin(), dirs.end());
    std::string seen;
    for (const auto& dir : dirs) {
        const std::string name = read_name(dir);
        if (name_matches(name, wanted)) return dir;
        seen += (seen.empty() ? "" : ", ") + dir.filename().string() + " (" + name + ")";
    }
    throw std::runtime_error("no IIO device named '" + wanted + "' under " + devices.string() +
                             (seen.empty()
                                  ? std::string(" (no devices; is dtoverlay=dht11 enabled?)")
                                  : " (found " + seen + ")"));
}

IioSource::IioSource(IioOptions options) : Source(options.metrics), options_(std::move(options)) {
    if (options_.interval.count() <= 0) throw std::invalid_argument("IIO interval must be > 0");
    if (options_.max_retries < 0) throw std::invalid_argument("IIO max_retries must be >= 0");
    options_.retry_delay = std::max<std::chrono::milliseconds>(options_.retry_delay, 2s);
    if (!options_.reader) options_.reader = make_file_sysfs_reader();
    device_ = find_iio_device(options_.sysfs_root, options_.device);
    device_name_ = read_name(device_);
}

std::string IioSource::describe() const {
    return "iio " + device_.filename().string() + " (" + device_name_ + ")";
}

std::chrono::steady_clock::time_point IioSource::steady_now() const {
    return Source::steady_now(options_.clock);
}

IioSource::Outcome IioSource::read_value(const char* attribute, double& value) {
    const auto path = device_ / attribute;
    const auto r = options_.reader->read(path);
    if (r.error == ETIMEDOUT || r.error == EIO) {
        (r.error == ETIMEDOUT ? counters_.failed_timeout : counters_.failed_io).add();
        log_debug("source", describe() + ": " + path.string() + ": " + std::strerror(r.error));
        return Outcome::retry;
    }
    if (r.error == EAGAIN) {
        throw std::system_error(r.error, std::generic_category(),
                                "reading " + path.string() +
                                    ": the dht11 driver needs a clock resolution finer than 34 us "
                                    "(configuration problem, retrying will not help)");
    }
    if (r.error != 0) {
        throw std::system_error(r.error, std::generic_category(), "cannot read " + path.string());
    }
    const std::string text = trimmed(r.text);
    long long milli = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), milli);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
        counters_.failed_parse.add();
        log_warn("source",
                 describe() + ": " + path.string() + " holds '" + text + "', not an integer");
        return Outcome::retry;
    }
    value = static_cast<double>(milli) / 1000.0;
    return Outcome::ok;
}

std::optional<Measurement> IioSource::next() {
    while (!stop_requested()) {
        if (!due_) due_ = steady_now();
        if (!wait_until(options_.clock, *due_)) return std::nullopt;
        std::optional<std::chrono::steady_clock::time_point> last;
        for (int n = 0; n <= options_.max_retries; ++n) {
            if (n > 0) {
                counters_.retries.add();
                if (!wait_until(options_.clock, *last + options_.retry_delay)) return std::nullopt;
            }
            last = steady_now();
            counters_.reads.add();
            double t = 0, h = 0;
            if (read_value("in_temp_input", t) == Outcome::retry) continue;
            if (read_value("in_humidityrelative_input", h) == Outcome::retry) continue;
            if (h < 0 || h > 100 || t < limits::min_temperature || t > limits::max_temperature) {
                counters_.failed_range.add();
                continue;
            }
            Measurement m;
            m.ts = options_.clock.wall ? options_.clock.wall() : rill::now();
            m.temperature = static_cast<float>(t);
            m.humidity = static_cast<float>(h);
            measured(options_.clock, *due_, options_.interval);
            return m;
        }
        missed(*due_, options_.interval, options_.max_retries + 1);
    }
    return std::nullopt;
}

}  // namespace rill
