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

void add_run_flags(CLI::App& app, Options& o) {
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

}  // namespace

std::filesystem::path default_outbox_dir(const std::string& sensor_id,
                                         const std::function<std::string(const char*)>& env) {
    return app::default_outbox_dir("outbox-" + sensor_id, env);
}

void add_flags(CLI::App& app, Options& o) {
    app.add_option("--sensor-id", o.sensor_id, "The sensor's id (1-64 bytes of UTF-8)")
        ->required()
        ->envname("RILL_SENSOR_ID");
    add_source_flags(app, o);
    app::add_stream_flags(app, o, "HOSTNAME/SENSOR-ID");
    app::add_outbox_flags(app, o, "outbox-SENSOR-ID");
    add_run_flags(app, o);
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
    return app::publisher_options(o, "outbox-" + o.sensor_id, app::host_name() + "/" + o.sensor_id);
}

}  // namespace rill::sensor_pub
