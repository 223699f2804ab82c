#include "flags.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "rill/security.hpp"

namespace rill::sensor_pub {

namespace {

using namespace std::chrono_literals;

FsyncPolicy parse_fsync(const std::string& s) {
    if (s == "always") return FsyncPolicy::always;
    if (s == "batch") return FsyncPolicy::batch;
    if (s == "never") return FsyncPolicy::never;
    throw app::UsageError("--fsync: '" + s + "' is not always, batch or never");
}

std::string hostname() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    return buf;
}

void add_source_flags(CLI::App& app, Options& o) {
    app.add_option("--source", o.source, "sim | dht11 | dht22 | iio[:DEVICE] | csv:PATH")
        ->envname("RILL_SOURCE")
        ->capture_default_str();
    o.interval_flag =
        app::add_duration_option(app, "--interval", o.interval, "Time between readings")
            ->envname("RILL_INTERVAL");
    app.add_option("--rate", o.rate,
                   "Readings per second instead of --interval (load tests; 0: use --interval)")
        ->envname("RILL_RATE")
        ->capture_default_str();
    app.add_option("--seed", o.seed, "Random seed of the simulator")
        ->envname("RILL_SEED")
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
}

void add_stream_flags(CLI::App& app, Options& o) {
    app::add_duration_option(app, "--batch-interval", o.batch_interval,
                             "Collect readings this long into one frame (0: send each at once)")
        ->envname("RILL_BATCH_INTERVAL");
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
    app::add_duration_option(app, "--heartbeat-interval", o.heartbeat_interval,
                             "Time between heartbeats")
        ->envname("RILL_HEARTBEAT_INTERVAL");
    app.add_option("--curve-secret", o.curve_secret,
                   "CURVE: this publisher's secret key file (enables encryption)")
        ->envname("RILL_CURVE_SECRET");
    app.add_option("--curve-allow", o.curve_allow,
                   "CURVE: directory of client public key files allowed to connect")
        ->envname("RILL_CURVE_ALLOW");
}

void add_outbox_flags(CLI::App& app, Options& o) {
    app.add_option("--outbox", o.outbox,
                   "Outbox directory (default: $STATE_DIRECTORY/outbox-SENSOR-ID under systemd, "
                   "else $XDG_STATE_HOME/rill/outbox-SENSOR-ID, $XDG_STATE_HOME defaulting to "
                   "~/.local/state)")
        ->envname("RILL_OUTBOX");
    app.add_option("--fsync", o.fsync, "When the outbox syncs to disk: always, batch or never")
        ->envname("RILL_FSYNC")
        ->capture_default_str();
    app::add_size_option(
        app, "--outbox-max-bytes", o.outbox_max_bytes,
        "Outbox size bound; the oldest readings are dropped (and counted) beyond it")
        ->envname("RILL_OUTBOX_MAX_BYTES");
    app::add_duration_option(app, "--outbox-max-age", o.outbox_max_age,
                             "Outbox age bound (0: none)")
        ->envname("RILL_OUTBOX_MAX_AGE");
    app::add_size_option(app, "--outbox-segment-bytes", o.outbox_segment_bytes,
                         "Outbox segment file size")
        ->envname("RILL_OUTBOX_SEGMENT_BYTES");
    app.add_option("--count", o.count,
                   "Publish N readings, linger (--linger), then exit 0 (0: run until stopped)")
        ->envname("RILL_COUNT")
        ->capture_default_str();
    app::add_duration_option(
        app, "--linger", o.linger,
        "At the end of a finite source (a CSV file, --count): keep heartbeats and replays "
        "going until the subscribers that joined have caught up, at most this long (default "
        "30s; 0: exit at once)")
        ->envname("RILL_LINGER");
    app.add_flag("--linger-full", o.linger_full,
                 "Linger the whole --linger even when the subscribers caught up (for subscribers "
                 "that join late)")
        ->envname("RILL_LINGER_FULL");
}

std::string env_value(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

}  // namespace

std::filesystem::path default_outbox_dir(const std::string& sensor_id,
                                         const std::function<std::string(const char*)>& env) {
    const std::string name = "outbox-" + sensor_id;
    // systemd's StateDirectory= may list several directories, separated by colons.
    if (const auto state = env("STATE_DIRECTORY"); !state.empty()) {
        return std::filesystem::path(state.substr(0, state.find(':'))) / name;
    }
    // XDG: a relative $XDG_STATE_HOME is invalid and ignored.
    if (const auto xdg = env("XDG_STATE_HOME"); !xdg.empty() && xdg.front() == '/') {
        return std::filesystem::path(xdg) / "rill" / name;
    }
    if (const auto home = env("HOME"); !home.empty()) {
        return std::filesystem::path(home) / ".local" / "state" / "rill" / name;
    }
    return name;
}

void add_flags(CLI::App& app, Options& o) {
    app.add_option("--sensor-id", o.sensor_id, "The sensor's id (1-64 bytes of UTF-8)")
        ->required()
        ->envname("RILL_SENSOR_ID");
    add_source_flags(app, o);
    add_stream_flags(app, o);
    add_outbox_flags(app, o);
    app::add_common_options(app, o.common, "127.0.0.1:9101");
}

SourceOptions source_options(const Options& o) {
    SourceOptions so;
    if (o.rate > 0) {
        so.rate_hz = o.rate;
    } else if (o.rate < 0 || std::isnan(o.rate)) {
        throw app::UsageError("--rate: must be a positive number of readings per second");
    }
    if (o.interval_flag != nullptr && o.interval_flag->count() > 0) {
        if (o.rate > 0) throw app::UsageError("--interval and --rate: give one, not both");
        if (o.interval.count() <= 0) throw app::UsageError("--interval: must be positive");
        so.interval = o.interval;
    }
    so.seed = o.seed;
    so.gpio_chip = o.chip;
    so.gpio_line = o.line;
    so.gpio_pull_up = !o.no_pull_up;
    so.gpio_realtime_priority = o.realtime;
    so.sysfs_root = o.sysfs_root;
    so.csv_paced = o.csv_paced;
    try {
        (void)parse_source_spec(o.source);
    } catch (const std::invalid_argument& e) {
        throw app::UsageError(std::string("--source: ") + e.what());
    }
    return so;
}

ReliablePublisherOptions publisher_options(const Options& o) {
    using std::chrono::duration_cast;
    ReliablePublisherOptions po;
    po.outbox_dir = o.outbox.empty() ? default_outbox_dir(o.sensor_id, env_value)
                                     : std::filesystem::path(o.outbox);
    po.outbox.fsync = parse_fsync(o.fsync);
    po.outbox.max_bytes = o.outbox_max_bytes;
    po.outbox.max_age = duration_cast<std::chrono::seconds>(o.outbox_max_age);
    po.outbox.segment_bytes = o.outbox_segment_bytes;
    po.publish_endpoints = o.pub;
    po.replay_endpoints = o.replay == "none" ? "" : o.replay;
    po.announce_replay = o.announce_replay;
    po.publisher.identity =
        o.publisher_id.empty() ? hostname() + "/" + o.sensor_id : o.publisher_id;
    po.publisher.heartbeat_interval =
        duration_cast<std::chrono::milliseconds>(o.heartbeat_interval);
    po.publisher.batch.max_readings = std::max<std::size_t>(1, o.batch_max);
    po.publisher.batch.max_delay = duration_cast<std::chrono::milliseconds>(o.batch_interval);
    po.publisher.socket.send_hwm = 100'000;
    po.publisher.socket.linger = 1000ms;
    if (!o.curve_secret.empty()) {
        const auto keys = curve_server_keys(o.curve_secret);
        po.publisher.socket.curve_server = keys;
        po.replay_socket.curve_server = keys;
    }
    return po;
}

}  // namespace rill::sensor_pub
