#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "rill/iio_source.hpp"
#include "support/process.hpp"
#include "support/source_stop.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

void write_file(const std::filesystem::path& p, const std::string& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

// A fake sysfs: iio:device0 is an ADC, iio:device1 the dht11 driver ("dht11@0").
struct FakeSysfs {
    test::TempDir dir{"rill-iio"};
    std::filesystem::path devices() const { return dir.path() / "bus" / "iio" / "devices"; }
    FakeSysfs() {
        write_file(devices() / "iio:device0" / "name", "3f215000.adc\n");
        write_file(devices() / "iio:device1" / "name", "dht11@0\n");
        set(23400, 45600);
    }
    void set(int milli_c, int milli_rh) {
        write_file(devices() / "iio:device1" / "in_temp_input", std::to_string(milli_c) + "\n");
        write_file(devices() / "iio:device1" / "in_humidityrelative_input",
                   std::to_string(milli_rh) + "\n");
    }
};

struct FakeTime {
    std::chrono::steady_clock::time_point now{std::chrono::seconds(50)};
    SourceClock clock() {
        return SourceClock{[this] { return now; }, [] { return Timestamp{1'000'000us}; },
                           [this](std::chrono::steady_clock::time_point t) {
                               if (t > now) now = t;
                           }};
    }
};

// Reads the real files but first answers with scripted errno values.
class ScriptedReader final : public SysfsReader {
  public:
    ScriptedReader(FakeTime& time, std::deque<int> errors)
        : time_(time), errors_(std::move(errors)) {}
    Result read(const std::filesystem::path& path) override {
        reads.push_back(time_.now);
        if (!errors_.empty()) {
            const int e = errors_.front();
            errors_.pop_front();
            return Result{{}, e};
        }
        return real_->read(path);
    }
    std::vector<std::chrono::steady_clock::time_point> reads;

  private:
    FakeTime& time_;
    std::deque<int> errors_;
    std::unique_ptr<SysfsReader> real_ = make_file_sysfs_reader();
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("IIO source finds the dht11 device by name and reads milli-units") {
    FakeSysfs sysfs;
    FakeTime time;
    IioOptions options;
    options.sysfs_root = sysfs.dir.path();
    options.clock = time.clock();
    IioSource source(options);
    CHECK(source.device_path().filename() == "iio:device1");
    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(m->temperature == doctest::Approx(23.4));
    CHECK(m->humidity == doctest::Approx(45.6));
    CHECK(m->ts == Timestamp{1'000'000us});
    // Each read opens the files afresh.
    sysfs.set(-1500, 50000);
    const auto second = source.next();
    REQUIRE(second.has_value());
    CHECK(second->temperature == doctest::Approx(-1.5));
    CHECK(second->humidity == doctest::Approx(50.0));
    CHECK(time.now == std::chrono::steady_clock::time_point{std::chrono::seconds(55)});
    CHECK(source.counters().measurements == 2);
}

TEST_CASE("IIO devices are chosen by name or by iio:deviceN") {
    FakeSysfs sysfs;
    CHECK(find_iio_device(sysfs.dir.path(), "") == sysfs.devices() / "iio:device1");
    CHECK(find_iio_device(sysfs.dir.path(), "dht11@0") == sysfs.devices() / "iio:device1");
    CHECK(find_iio_device(sysfs.dir.path(), "3f215000.adc") == sysfs.devices() / "iio:device0");
    CHECK(find_iio_device(sysfs.dir.path(), "iio:device0") == sysfs.devices() / "iio:device0");
    const auto missing = error_of([&] { (void)find_iio_device(sysfs.dir.path(), "dht22"); });
    CHECK(missing.find("no IIO device named 'dht22'") != std::string::npos);
    CHECK(missing.find("iio:device1 (dht11@0)") != std::string::npos);
    const auto no_node = error_of([&] { (void)find_iio_device(sysfs.dir.path(), "iio:device7"); });
    CHECK(no_node.find("iio:device7") != std::string::npos);
    test::TempDir empty("rill-iio-empty");
    CHECK(error_of([&] { (void)find_iio_device(empty.path(), ""); }).find("dtoverlay=dht11") !=
          std::string::npos);
}

TEST_CASE("IIO source retries ETIMEDOUT and EIO after at least 2 s") {
    FakeSysfs sysfs;
    FakeTime time;
    auto reader = std::make_shared<ScriptedReader>(time, std::deque<int>{ETIMEDOUT, EIO});
    IioOptions options;
    options.sysfs_root = sysfs.dir.path();
    options.reader = reader;
    options.retry_delay = 10ms;  // raised to the driver's 2 s
    options.clock = time.clock();
    IioSource source(options);
    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(m->temperature == doctest::Approx(23.4));
    const auto c = source.counters();
    CHECK(c.failed_timeout == 1);
    CHECK(c.failed_io == 1);
    CHECK(c.retries == 2);
    CHECK(c.reads == 3);
    REQUIRE(reader->reads.size() == 4);  // two failures, then temperature and humidity
    CHECK(reader->reads[1] - reader->reads[0] >= 2s);
    CHECK(reader->reads[2] - reader->reads[1] >= 2s);
}

TEST_CASE("IIO source gives up after its retries and counts a missed measurement") {
    FakeSysfs sysfs;
    FakeTime time;
    auto reader = std::make_shared<ScriptedReader>(time, std::deque<int>{EIO, EIO, EIO});
    IioOptions options;
    options.sysfs_root = sysfs.dir.path();
    options.reader = reader;
    options.max_retries = 2;
    options.clock = time.clock();
    IioSource source(options);
    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(source.counters().missed == 1);
    CHECK(source.counters().failed_io == 3);
}

TEST_CASE("IIO EAGAIN is reported as a configuration error") {
    FakeSysfs sysfs;
    FakeTime time;
    IioOptions options;
    options.sysfs_root = sysfs.dir.path();
    options.reader = std::make_shared<ScriptedReader>(time, std::deque<int>{EAGAIN});
    options.clock = time.clock();
    IioSource source(options);
    const auto message = error_of([&] { (void)source.next(); });
    CHECK(message.find("in_temp_input") != std::string::npos);
    CHECK(message.find("clock resolution") != std::string::npos);
    CHECK(source.counters().retries == 0);
}

TEST_CASE("IIO source counts unparsable contents and reports missing files") {
    FakeSysfs sysfs;
    FakeTime time;
    write_file(sysfs.devices() / "iio:device1" / "in_temp_input", "garbage\n");
    IioOptions options;
    options.sysfs_root = sysfs.dir.path();
    options.clock = time.clock();
    // The first retry sleep repairs the file, as a later good read would.
    bool repaired = false;
    options.clock.sleep_until = [&](std::chrono::steady_clock::time_point t) {
        if (t <= time.now) return;
        time.now = t;
        if (!repaired) sysfs.set(21000, 30500);
        repaired = true;
    };
    IioSource source(options);
    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(m->temperature == doctest::Approx(21.0));
    CHECK(source.counters().failed_parse == 1);

    std::filesystem::remove(sysfs.devices() / "iio:device1" / "in_humidityrelative_input");
    const auto message = error_of([&] { (void)source.next(); });
    CHECK(message.find("in_humidityrelative_input") != std::string::npos);
}

TEST_CASE("make_source builds an IIO source from iio and iio:DEVICE specs") {
    FakeSysfs sysfs;
    SourceOptions options;
    options.sysfs_root = sysfs.dir.path();
    CHECK(make_source("iio", options)->describe() == "iio iio:device1 (dht11@0)");
    CHECK(make_source("iio:iio:device1", options)->describe() == "iio iio:device1 (dht11@0)");
    CHECK_THROWS_AS((void)make_source("iio:bme280", options), std::runtime_error);
}

TEST_CASE("stop interrupts an IIO source waiting for its next interval") {
    FakeSysfs sysfs;
    IioOptions options;
    options.sysfs_root = sysfs.dir.path();
    options.interval = std::chrono::hours(1);
    IioSource source(options);  // real clock
    REQUIRE(source.next().has_value());
    test::check_stop_interrupts_next(source);
}
