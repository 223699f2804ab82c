// sensor-pub: reads a DHT11/DHT22 (libgpiod or the kernel IIO driver), a CSV file or a
// simulator, and publishes the readings durably (outbox, replay service, heartbeats).
//
// Two threads: the source thread blocks in Source::next_batch() and hands measurements over;
// the main thread owns the ReliablePublisher (outbox append, then publish) and its heartbeats.
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>

#include "common/app_options.hpp"
#include "common/counter_sync.hpp"
#include "common/http_admin.hpp"
#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "rill/gpio.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/reliable.hpp"
#include "rill/security.hpp"
#include "rill/source.hpp"
#include "rill/units.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Options {
    std::string sensor_id;
    std::string source = "sim";
    std::string interval;
    double rate = 0;
    std::uint64_t seed = 1;
    std::string batch_interval = "0";
    std::size_t batch_max = 1000;
    std::string pub = "@tcp://127.0.0.1:5556";
    std::string replay = "@tcp://127.0.0.1:5557";
    std::string announce_replay;
    std::string publisher_id;
    std::string outbox;
    std::string fsync = "batch";
    std::string outbox_max_bytes = "256MiB";
    std::string outbox_max_age = "7d";
    std::string outbox_segment_bytes = "16MiB";
    std::uint64_t count = 0;
    std::string linger = "2s";
    std::string heartbeat_interval = "1s";
    std::string chip = "gpiochip0";
    unsigned line = 4;
    bool no_pull_up = false;
    int realtime = 0;
    std::string sysfs_root = "/sys";
    bool csv_paced = false;
    std::string curve_secret;
    std::string curve_allow;
    rill::app::CommonOptions common;
};

// Runs `parse` on a flag's value; an std::invalid_argument it throws is rethrown with the
// flag's name in front, so that the one error line tells which flag was refused.
template <typename Parse>
auto flag_value(std::string_view flag, Parse&& parse) -> decltype(parse()) {
    try {
        return parse();
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string(flag) + ": " + e.what());
    }
}

std::chrono::milliseconds duration_flag(std::string_view flag, const std::string& text) {
    return flag_value(flag, [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(rill::parse_duration(text));
    });
}

std::uint64_t size_flag(std::string_view flag, const std::string& text) {
    return flag_value(flag, [&] { return rill::parse_size(text); });
}

rill::FsyncPolicy parse_fsync(const std::string& s) {
    if (s == "always") return rill::FsyncPolicy::always;
    if (s == "batch") return rill::FsyncPolicy::batch;
    if (s == "never") return rill::FsyncPolicy::never;
    throw std::invalid_argument("--fsync: '" + s + "' is not always, batch or never");
}

// Where the stream goes, for the start line: the addresses bound (port 0 resolved), or the
// endpoints as given when the publisher only connects (">tcp://collector:5556").
std::string published_on(const rill::Publisher& publisher, const std::string& endpoints) {
    std::string out;
    for (const auto& b : publisher.bound())
        out += (out.empty() ? "" : ",") + b;
    return out.empty() ? endpoints : out;
}

std::string hostname() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    return buf;
}

// Measurements handed from the source thread to the main thread. Bounded: the source thread
// waits when the main thread falls this far behind. fd() becomes readable when measurements
// arrive or the input ends, so the main thread sleeps in poll until then instead of looking
// every few milliseconds.
class Handoff {
  public:
    explicit Handoff(std::size_t max) : max_(max), fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd_ < 0) {
            throw std::system_error(errno, std::generic_category(), "cannot create an eventfd");
        }
    }
    ~Handoff() { ::close(fd_); }
    Handoff(const Handoff&) = delete;
    Handoff& operator=(const Handoff&) = delete;

    // Source thread. Returns false when the consumer closed the handoff.
    bool put(std::vector<rill::Measurement>&& batch) {
        std::unique_lock lock(mutex_);
        space_.wait(lock, [&] { return size_ < max_ || closed_; });
        if (closed_) return false;
        size_ += batch.size();
        queue_.push_back(std::move(batch));
        if (queue_.size() == 1) signal();
        return true;
    }
    // Source thread: no more input.
    void finish() {
        std::lock_guard lock(mutex_);
        finished_ = true;
        signal();
    }
    // Main thread: takes everything queued.
    std::deque<std::vector<rill::Measurement>> take() {
        std::lock_guard lock(mutex_);
        std::uint64_t count = 0;
        [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);  // EAGAIN when unset
        std::deque<std::vector<rill::Measurement>> out;
        out.swap(queue_);
        size_ = 0;
        space_.notify_all();
        return out;
    }
    [[nodiscard]] bool finished_and_empty() {
        std::lock_guard lock(mutex_);
        return finished_ && queue_.empty();
    }
    void close() {
        std::lock_guard lock(mutex_);
        closed_ = true;
        space_.notify_all();
    }
    // Readable while measurements wait or after finish(); take() resets it.
    [[nodiscard]] int fd() const noexcept { return fd_; }

  private:
    void signal() {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
    }

    std::mutex mutex_;
    std::condition_variable space_;
    std::deque<std::vector<rill::Measurement>> queue_;
    std::size_t size_ = 0;
    std::size_t max_;
    bool finished_ = false;
    bool closed_ = false;
    int fd_;
};

int run(const Options& o) {
    rill::app::apply_common_options(o.common);
    auto& shutdown = rill::app::Shutdown::install();
    rill::app::SystemdNotifier systemd;
    if (auto problem = rill::sensor_id_problem(o.sensor_id)) {
        throw std::invalid_argument("--sensor-id: " + *problem);
    }

    // Every flag value is checked before anything is opened or bound.
    rill::SourceOptions so;
    if (o.rate > 0) {
        so.rate_hz = o.rate;
    } else if (o.rate < 0 || std::isnan(o.rate)) {
        throw std::invalid_argument("--rate: must be a positive number of readings per second");
    }
    if (!o.interval.empty()) {
        if (o.rate > 0) throw std::invalid_argument("--interval and --rate: give one, not both");
        so.interval = flag_value("--interval", [&] { return rill::parse_duration(o.interval); });
        if (so.interval->count() <= 0) throw std::invalid_argument("--interval: must be positive");
    }
    so.seed = o.seed;
    so.gpio_chip = o.chip;
    so.gpio_line = o.line;
    so.gpio_pull_up = !o.no_pull_up;
    so.gpio_realtime_priority = o.realtime;
    so.sysfs_root = o.sysfs_root;
    so.csv_paced = o.csv_paced;
    (void)flag_value("--source", [&] { return rill::parse_source_spec(o.source); });

    rill::ReliablePublisherOptions po;
    po.outbox_dir = o.outbox.empty() ? "outbox-" + o.sensor_id : o.outbox;
    po.outbox.fsync = parse_fsync(o.fsync);
    po.outbox.max_bytes = size_flag("--outbox-max-bytes", o.outbox_max_bytes);
    po.outbox.max_age = std::chrono::duration_cast<std::chrono::seconds>(
        duration_flag("--outbox-max-age", o.outbox_max_age));
    po.outbox.segment_bytes = size_flag("--outbox-segment-bytes", o.outbox_segment_bytes);
    po.publish_endpoints = o.pub;
    po.replay_endpoints = o.replay == "none" ? "" : o.replay;
    po.announce_replay = o.announce_replay;
    po.publisher.identity =
        o.publisher_id.empty() ? hostname() + "/" + o.sensor_id : o.publisher_id;
    po.publisher.heartbeat_interval = duration_flag("--heartbeat-interval", o.heartbeat_interval);
    po.publisher.batch.max_readings = std::max<std::size_t>(1, o.batch_max);
    po.publisher.batch.max_delay = duration_flag("--batch-interval", o.batch_interval);
    po.publisher.socket.send_hwm = 100'000;
    po.publisher.socket.linger = 1000ms;
    const auto linger = duration_flag("--linger", o.linger);

    // The source (opening it may fail: a missing file, no GPIO chip, no IIO device).
    auto source = rill::gpio::make_source(o.source, so);

    std::optional<rill::ZapHandler> zap;
    if (!o.curve_secret.empty()) {
        const auto keys = rill::curve_server_keys(o.curve_secret);
        po.publisher.socket.curve_server = keys;
        po.replay_socket.curve_server = keys;
        if (!o.curve_allow.empty()) zap.emplace(rill::default_context(), o.curve_allow);
    }
    rill::ReliablePublisher rp(std::move(po));
    const auto& outbox = rp.outbox();

    auto& registry = rill::default_registry();
    auto& published = registry.counter("rill_sensor_readings_total",
                                       "Readings taken from the source and appended to the outbox");
    // Snapshots of the source become metrics when /metrics is read (on the admin server's
    // thread, one request at a time; the snapshot is thread-safe).
    using rill::app::CounterSync;
    auto source_failures = [&](const char* reason) {
        return CounterSync{registry.counter("rill_source_failed_reads_total",
                                            "Failed sensor reads, by reason",
                                            {{"reason", reason}})};
    };
    CounterSync fail_timeout = source_failures("timeout"), fail_sync = source_failures("sync"),
                fail_checksum = source_failures("checksum"), fail_io = source_failures("io"),
                fail_range = source_failures("range"), fail_parse = source_failures("parse");
    CounterSync missed{registry.counter("rill_source_missed_total",
                                        "Measurements given up after every retry failed")};
    // The outbox registers and updates its rill_outbox_* series itself (default registry).
    auto render = [&] {
        const auto c = source->counters();
        fail_timeout.to(c.failed_timeout);
        fail_sync.to(c.failed_sync);
        fail_checksum.to(c.failed_checksum);
        fail_io.to(c.failed_io);
        fail_range.to(c.failed_range);
        fail_parse.to(c.failed_parse);
        missed.to(c.missed);
        return registry.render_prometheus();
    };
    std::optional<rill::app::HttpAdmin> admin;
    if (!o.common.metrics.empty()) {
        admin.emplace(o.common.metrics, render, [&] { return rill::app::Health{}; });
    }

    rill::log_info(
        "sensor-pub",
        "sensor " + o.sensor_id + " from " + source->describe() + ", publishing on " +
            published_on(rp.publisher(), o.pub) + ", replay on " +
            (rp.replay_endpoint().empty() ? std::string("(none)") : rp.replay_endpoint()) +
            ", outbox " + outbox.dir().string() + " at seq " +
            std::to_string(outbox.newest(o.sensor_id)));
    // Ready: the outbox is open and the stream and replay sockets are bound (or connecting).
    // STATUS then follows the outbox once a second: what `systemctl status` shows.
    auto status_line = [&] {
        return "sensor " + o.sensor_id + ": published up to seq " +
               std::to_string(outbox.newest(o.sensor_id)) + ", outbox " +
               std::to_string(outbox.metrics().disk_bytes) + " bytes";
    };
    systemd.ready(status_line());
    auto next_status = Clock::now() + 1s;

    // The source thread: reads until stopped, the input ends or --count is reached.
    Handoff handoff(1'000'000);
    std::exception_ptr source_error;
    std::thread reader([&] {
        try {
            std::uint64_t taken = 0;
            std::vector<rill::Measurement> buf;
            while (o.count == 0 || taken < o.count) {
                std::size_t want = 1024;
                if (o.count != 0) want = std::min<std::uint64_t>(want, o.count - taken);
                buf.clear();
                if (source->next_batch(buf, want) == 0) break;
                taken += buf.size();
                if (!handoff.put(std::move(buf))) break;
                buf = {};
            }
        } catch (...) {
            source_error = std::current_exception();
            shutdown.request();
        }
        handoff.finish();
    });

    std::vector<rill::Reading> batch;
    auto publish_queued = [&] {
        for (auto& ms : handoff.take()) {
            batch.clear();
            batch.reserve(ms.size());
            for (auto& m : ms) {
                batch.push_back(rill::Reading{o.sensor_id, 0, m.ts, m.temperature, m.humidity,
                                              std::move(m.extras)});
            }
            rp.publish(batch);
            published.inc(batch.size());
        }
    };

    zmq::pollitem_t wake{nullptr, shutdown.fd(), ZMQ_POLLIN, 0};
    std::array<zmq::pollitem_t, 2> wake_or_input{
        {wake, zmq::pollitem_t{nullptr, handoff.fd(), ZMQ_POLLIN, 0}}};
    while (!shutdown.requested() && !handoff.finished_and_empty()) {
        publish_queued();
        systemd.keep_alive();
        if (Clock::now() >= next_status) {
            systemd.status(status_line());
            next_status = Clock::now() + 1s;
        }
        const auto next = std::min({rp.service(), systemd.keep_alive_due(), next_status});
        // Sleep until measurements arrive, the next heartbeat or delayed batch is due, or a
        // signal: no periodic wake-ups while the source waits for its next reading.
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now());
        rill::app::poll_interruptible(wake_or_input,
                                      std::clamp<std::chrono::milliseconds>(wait, 0ms, 1000ms));
    }
    systemd.stopping("stopping on " +
                     (shutdown.requested() ? shutdown.reason() : std::string("end of input")) +
                     ": flushing the outbox");
    source->request_stop();
    handoff.close();
    reader.join();
    if (source_error) std::rethrow_exception(source_error);
    publish_queued();
    rp.flush();
    rill::log_info("sensor-pub",
                   "published up to seq " + std::to_string(outbox.newest(o.sensor_id)));

    // --count: stay a while so that subscribers can catch up by replay.
    if (o.count != 0 && !shutdown.requested()) {
        const auto until = Clock::now() + linger;
        while (!shutdown.requested() && Clock::now() < until) {
            systemd.keep_alive();
            const auto next = std::min({rp.service(), until, systemd.keep_alive_due()});
            const auto wait =
                std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
            rill::app::poll_interruptible({&wake, 1},
                                          std::clamp<std::chrono::milliseconds>(wait, 0ms, 100ms));
        }
    }
    rp.close();
    rill::log_info("sensor-pub", shutdown.requested() ? "stopped by signal" : "done");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "sensor-pub: read a DHT11/DHT22 (libgpiod or the kernel IIO driver), a CSV file or a "
        "simulator, and publish the readings on ZeroMQ. Every reading is written to an outbox "
        "on disk before it is sent, and a replay service answers from it."};
    app.add_option("--sensor-id", o.sensor_id, "The sensor's id (1-64 bytes of UTF-8)")
        ->required()
        ->envname("RILL_SENSOR_ID");
    app.add_option("--source", o.source, "sim | dht11 | dht22 | iio[:DEVICE] | csv:PATH")
        ->envname("RILL_SOURCE")
        ->capture_default_str();
    app.add_option("--interval", o.interval, "Time between readings (default 5s)")
        ->envname("RILL_INTERVAL");
    app.add_option("--rate", o.rate, "Readings per second instead of --interval (load tests)")
        ->envname("RILL_RATE");
    app.add_option("--seed", o.seed, "Random seed of the simulator")
        ->envname("RILL_SEED")
        ->capture_default_str();
    app.add_option("--batch-interval", o.batch_interval,
                   "Collect readings this long into one frame (0: send each at once)")
        ->envname("RILL_BATCH_INTERVAL")
        ->capture_default_str();
    app.add_option("--batch-max", o.batch_max, "At most this many readings per frame")
        ->envname("RILL_BATCH_MAX")
        ->capture_default_str();
    app.add_option("--pub", o.pub, "Where to publish (@ binds, > connects)")
        ->envname("RILL_PUB")
        ->capture_default_str();
    app.add_option("--replay", o.replay, "Where the replay service binds ('none' to disable)")
        ->envname("RILL_REPLAY")
        ->capture_default_str();
    app.add_option("--announce-replay", o.announce_replay,
                   "The replay endpoint heartbeats announce (default: the bound one)")
        ->envname("RILL_ANNOUNCE_REPLAY");
    app.add_option("--publisher-id", o.publisher_id,
                   "This publisher's identity in heartbeats (default HOSTNAME/SENSOR-ID)")
        ->envname("RILL_PUBLISHER_ID");
    app.add_option("--outbox", o.outbox, "Outbox directory (default ./outbox-SENSOR-ID)")
        ->envname("RILL_OUTBOX");
    app.add_option("--fsync", o.fsync, "When the outbox syncs to disk: always, batch or never")
        ->envname("RILL_FSYNC")
        ->capture_default_str();
    app.add_option("--outbox-max-bytes", o.outbox_max_bytes,
                   "Outbox size bound; the oldest readings are dropped (and counted) beyond it")
        ->envname("RILL_OUTBOX_MAX_BYTES")
        ->capture_default_str();
    app.add_option("--outbox-max-age", o.outbox_max_age, "Outbox age bound (0: none)")
        ->envname("RILL_OUTBOX_MAX_AGE")
        ->capture_default_str();
    app.add_option("--outbox-segment-bytes", o.outbox_segment_bytes, "Outbox segment file size")
        ->envname("RILL_OUTBOX_SEGMENT_BYTES")
        ->capture_default_str();
    app.add_option("--count", o.count,
                   "Publish N readings, linger, then exit 0 (0: run until stopped)")
        ->envname("RILL_COUNT");
    app.add_option("--linger", o.linger,
                   "After --count: keep heartbeats and replays going this long")
        ->envname("RILL_LINGER")
        ->capture_default_str();
    app.add_option("--heartbeat-interval", o.heartbeat_interval, "Time between heartbeats")
        ->envname("RILL_HEARTBEAT_INTERVAL")
        ->capture_default_str();
    app.add_option("--gpio-chip", o.chip, "dht11/dht22: GPIO chip (name, path or number)")
        ->envname("RILL_GPIO_CHIP")
        ->capture_default_str();
    app.add_option("--gpio-line", o.line, "dht11/dht22: GPIO line offset (BCM number on a Pi)")
        ->envname("RILL_GPIO_LINE")
        ->capture_default_str();
    app.add_flag("--no-pull-up", o.no_pull_up,
                 "dht11/dht22: do not enable the internal pull-up (external resistor fitted)")
        ->envname("RILL_NO_PULL_UP");
    app.add_option("--gpio-realtime", o.realtime,
                   "dht11/dht22: SCHED_FIFO priority 1-99 during a capture (0: off; needs "
                   "CAP_SYS_NICE)")
        ->envname("RILL_GPIO_REALTIME")
        ->capture_default_str();
    app.add_option("--sysfs-root", o.sysfs_root, "iio: where sysfs is mounted")
        ->envname("RILL_SYSFS_ROOT")
        ->capture_default_str();
    app.add_flag("--csv-paced", o.csv_paced, "csv: wait the gaps between row timestamps")
        ->envname("RILL_CSV_PACED");
    app.add_option("--curve-secret", o.curve_secret,
                   "CURVE: this publisher's secret key file (enables encryption)")
        ->envname("RILL_CURVE_SECRET");
    app.add_option("--curve-allow", o.curve_allow,
                   "CURVE: directory of client public key files allowed to connect")
        ->envname("RILL_CURVE_ALLOW");
    rill::app::add_common_options(app, o.common, "127.0.0.1:9101");
    return rill::app::run_main(app, argc, argv, "sensor-pub", [&] { return run(o); });
}
