#include "retention_flags.hpp"

#include <algorithm>

#include "common/app_options.hpp"

namespace rill::store_sub {

namespace {

template <typename D>
std::chrono::seconds seconds(D d) {
    return std::chrono::duration_cast<std::chrono::seconds>(d);
}

}  // namespace

RetentionFlags::RetentionFlags() {
    const store::MaintenanceOptions defaults;
    keep_raw = defaults.keep.raw;
    keep_1m = defaults.keep.minute;
    keep_15m = defaults.keep.fifteen_minute;
    keep_1h = defaults.keep.hour;
    keep_6h = defaults.keep.six_hour;
    interval = defaults.interval;
}

std::optional<store::MaintenanceOptions> RetentionFlags::maintenance() const {
    if (interval.count() == 0) return std::nullopt;
    store::MaintenanceOptions o;
    o.keep = {.raw = seconds(keep_raw),
              .minute = seconds(keep_1m),
              .fifteen_minute = seconds(keep_15m),
              .hour = seconds(keep_1h),
              .six_hour = seconds(keep_6h)};
    o.interval = std::max(seconds(interval), std::chrono::seconds{1});
    return o;
}

void add_retention_flags(CLI::App& app, RetentionFlags& f) {
    app::add_duration_option(app, "--keep-raw", f.keep_raw,
                             "Keep raw readings this long (whole days are dropped; 0 = forever)")
        ->envname("RILL_KEEP_RAW");
    app::add_duration_option(app, "--keep-1m", f.keep_1m,
                             "Keep 1-minute rollups this long (whole months; 0 = forever)")
        ->envname("RILL_KEEP_1M");
    app::add_duration_option(app, "--keep-15m", f.keep_15m,
                             "Keep 15-minute rollups this long (whole months; 0 = forever)")
        ->envname("RILL_KEEP_15M");
    app::add_duration_option(app, "--keep-1h", f.keep_1h,
                             "Keep 1-hour rollups this long (whole years; 0 = forever)")
        ->envname("RILL_KEEP_1H");
    app::add_duration_option(app, "--keep-6h", f.keep_6h,
                             "Keep 6-hour rollups this long (whole years; 0 = forever)")
        ->envname("RILL_KEEP_6H");
    app::add_duration_option(app, "--maintenance-interval", f.interval,
                             "Create partitions ahead and drop expired ones at start and then "
                             "this often (0 = never: another tool does it)")
        ->envname("RILL_MAINTENANCE_INTERVAL");
}

}  // namespace rill::store_sub
