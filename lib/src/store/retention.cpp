// Maintenance of the partitioned tables: partitions made ahead of time, retention by dropping
// whole expired partitions (raw ones retired in rill_retired in the same transaction), and the
// Maintainer that runs it on a schedule with its log lines and metrics.
//
// Locking (docs/storage.md, "Retention"): DROP TABLE of a partition takes ACCESS EXCLUSIVE on
// the parent as well as on the partition. Each drop locks the parent first, explicitly, with a
// lock_timeout: taking the partition first could deadlock with a COPY that holds the parent
// and routes a row into the partition. DETACH ... CONCURRENTLY would spare writers the wait,
// but PostgreSQL 15 refuses it on a table with a default partition (ours all have one) and it
// cannot run in the transaction that must also write rill_retired.
#include <set>
#include <string>

#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/store.hpp"
#include "rill/units.hpp"
#include "sensor_scan.hpp"

namespace rill::store {

namespace {

using Clock = std::chrono::steady_clock;

// The tables maintained, their calendar unit (as in rill_partitioning) and what the log calls
// their rows.
struct Level {
    const char* table;
    const char* unit;
    const char* what;
    std::chrono::seconds RetentionPolicy::*keep;
    int ahead;  // partitions made from the current one on: this + `ahead` units
};
constexpr Level levels[] = {
    {"readings", "day", "raw", &RetentionPolicy::raw, 7},
    {"readings_1m", "month", "1-minute rollups", &RetentionPolicy::minute, 1},
    {"readings_15m", "month", "15-minute rollups", &RetentionPolicy::fifteen_minute, 1},
    {"readings_1h", "year", "1-hour rollups", &RetentionPolicy::hour, 1},
    {"readings_6h", "year", "6-hour rollups", &RetentionPolicy::six_hour, 1},
};

// Rolls back the transaction `what` after a failure, if the connection still stands.
void roll_back(Connection& conn, std::string_view what) noexcept {
    if (!conn.connected()) return;
    try {
        (void)conn.exec("ROLLBACK", "roll back " + std::string(what));
    } catch (...) {
    }
}

// Runs `body` in a transaction whose lock waits end after `lock_timeout`, in UTC. Returns false
// when a lock was not granted in time (55P03, lock_not_available), true when committed; throws
// StoreError on other failures. Rolls back on any failure.
template <typename Body>
bool in_transaction(Connection& conn, std::chrono::milliseconds lock_timeout, std::string_view what,
                    Body&& body) {
    conn.exec("BEGIN", "begin " + std::string(what));
    try {
        conn.exec("SET LOCAL lock_timeout = " + std::to_string(lock_timeout.count()) +
                      "; SET LOCAL TimeZone = 'UTC'",
                  "set the lock timeout to " + std::string(what));
        body();
        conn.exec("COMMIT", "commit " + std::string(what));
        return true;
    } catch (const StoreError& e) {
        roll_back(conn, what);
        if (e.sqlstate() == "55P03") return false;
        throw;
    } catch (...) {
        roll_back(conn, what);
        throw;
    }
}

// Releases the session-level maintenance lock when the run ends, also by an exception.
class LockGuard {
  public:
    explicit LockGuard(Connection& conn) : conn_(conn) {}
    ~LockGuard() {
        if (!conn_.connected()) return;  // a closed session has let go of it already
        try {
            (void)conn_.exec(
                "SELECT pg_advisory_unlock(" + std::to_string(maintenance_lock_key) + ")",
                "release the maintenance lock");
        } catch (...) {
        }
    }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;

  private:
    Connection& conn_;
};

// Raises rill_retired to each sensor's greatest seq in partition `part`: the sensors by a loose
// scan of the partition's primary key (sensor, seq, ts), each one's max(seq) by one probe of it.
std::string retire_sql(const std::string& part) {
    return "INSERT INTO rill_retired (sensor, seq) " + detail::distinct_sensors_cte(part) +
           "SELECT sensor, (SELECT max(p.seq) FROM " + part +
           " p WHERE p.sensor = s.sensor) FROM s WHERE sensor IS NOT NULL "
           "ON CONFLICT (sensor) DO UPDATE SET seq = greatest(rill_retired.seq, excluded.seq) "
           "RETURNING sensor";
}

// The oldest raw reading: per sensor the oldest ts by the (sensor, ts DESC) index read
// backwards; as Unix microseconds.
const std::string oldest_raw_sql =
    detail::distinct_sensors_cte("readings") +
    "SELECT (extract(epoch FROM min((SELECT r.ts FROM readings r WHERE r.sensor = s.sensor "
    "ORDER BY r.ts LIMIT 1))) * 1000000)::bigint FROM s WHERE sensor IS NOT NULL";

void make_ahead(Connection& conn, const Level& level, const std::string& now, TableMaintenance& t,
                std::chrono::milliseconds lock_timeout) {
    const std::string unit = level.unit;
    const std::string sql = "SELECT rill_ensure_partitions('" + std::string(level.table) +
                            "', date_trunc('" + unit + "', $1::timestamptz), date_trunc('" + unit +
                            "', $1::timestamptz) + interval '" + std::to_string(level.ahead + 1) +
                            " " + unit + "')";
    const std::string what = "create the partitions ahead of " + std::string(level.table);
    const bool done = in_transaction(conn, lock_timeout, what, [&] {
        const Result r = conn.exec_params(sql, {now}, what);
        t.created += std::stoi(std::string(r.value(0, 0)));
    });
    if (!done) t.busy = true;
}

void drop_expired(Connection& conn, const Level& level, const std::string& cutoff,
                  TableMaintenance& t, std::set<std::string>& retired,
                  std::chrono::milliseconds lock_timeout) {
    const std::string table = level.table;
    const Result parts = conn.exec_params(
        "SELECT part::text FROM rill_partitions('" + table + "') WHERE hi <= $1 ORDER BY lo",
        {cutoff}, "list the expired partitions of " + table);
    for (int i = 0; i < parts.rows(); ++i) {
        const std::string part(parts.value(i, 0));
        const std::string what = "drop the expired partition " + part;
        Result sensors;
        const bool done = in_transaction(conn, lock_timeout, what, [&] {
            conn.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE", "lock " + table);
            if (table == "readings") {
                sensors = conn.exec(retire_sql(part), "retire the seqs of " + part);
            }
            conn.exec("DROP TABLE " + part, what);
        });
        if (!done) {
            t.busy = true;
            return;  // the next run tries again, oldest first
        }
        t.dropped.push_back(part);
        for (int j = 0; j < sensors.rows(); ++j)
            retired.emplace(sensors.value(j, 0));
    }
}

std::string keep_text(std::chrono::seconds keep) {
    return format_duration(std::chrono::duration_cast<std::chrono::nanoseconds>(keep));
}

}  // namespace

bool MaintenanceReport::changed() const noexcept {
    for (const auto& t : tables) {
        if (t.created > 0 || !t.dropped.empty()) return true;
    }
    return false;
}

std::string MaintenanceReport::summary(const RetentionPolicy& policy) const {
    if (!changed()) return "";
    std::string dropped;
    int created = 0;
    for (const auto& t : tables) {
        created += t.created;
        for (const Level& level : levels) {
            if (t.table != level.table) continue;
            for (const auto& part : t.dropped) {
                dropped += (dropped.empty() ? "" : ", ") + part + " (" + level.what +
                           " older than " + keep_text(policy.*level.keep) + ")";
            }
        }
    }
    std::string line = "retention:";
    if (!dropped.empty()) {
        line += " dropped " + dropped;
        if (sensors_retired > 0) {
            line += ", retired seqs of " + std::to_string(sensors_retired) +
                    (sensors_retired == 1 ? " sensor" : " sensors");
        }
    }
    if (created > 0) {
        line += std::string(dropped.empty() ? " " : "; ") + "created " + std::to_string(created) +
                " partitions ahead";
    }
    return line;
}

MaintenanceReport maintain(Connection& conn, const RetentionPolicy& policy, Timestamp now,
                           std::chrono::milliseconds lock_timeout) {
    MaintenanceReport report;
    const Result got =
        conn.exec("SELECT pg_try_advisory_lock(" + std::to_string(maintenance_lock_key) + ")",
                  "take the maintenance lock");
    if (got.value(0, 0) != "t") return report;
    LockGuard guard(conn);
    report.ran = true;
    const std::string now_text = to_iso8601(now);
    std::set<std::string> retired;
    for (const Level& level : levels) {
        TableMaintenance& t = report.tables.emplace_back();
        t.table = level.table;
        make_ahead(conn, level, now_text, t, lock_timeout);
        const auto keep = policy.*level.keep;
        if (keep.count() <= 0) continue;
        const auto cutoff = to_iso8601(now - std::chrono::duration_cast<Timestamp::duration>(keep));
        drop_expired(conn, level, cutoff, t, retired, lock_timeout);
    }
    report.sensors_retired = retired.size();
    const Result oldest = conn.exec(oldest_raw_sql, "find the oldest raw reading");
    if (oldest.rows() == 1 && !oldest.is_null(0, 0)) {
        report.oldest_raw =
            Timestamp{std::chrono::microseconds{std::stoll(std::string(oldest.value(0, 0)))}};
    }
    return report;
}

struct Maintainer::Impl {
    MaintenanceOptions options;
    std::optional<Clock::time_point> next;
    Counter& runs;
    Counter& errors;
    Counter& busy;
    Gauge& oldest_raw;
    MetricsRegistry& registry;

    Impl(MaintenanceOptions o, MetricsRegistry& r)
        : options(o),
          runs(r.counter("rill_store_maintenance_runs_total",
                         "Maintenance runs done (partitions ahead, retention)")),
          errors(r.counter("rill_store_maintenance_errors_total", "Maintenance runs that failed")),
          busy(r.counter("rill_store_maintenance_busy_total",
                         "Tables left to the next maintenance run: their lock was busy")),
          oldest_raw(r.gauge("rill_store_oldest_raw_timestamp_seconds",
                             "Unix time of the oldest raw reading held (0 when none)")),
          registry(r) {
        for (const Level& level : levels) {
            (void)created(level.table);
            (void)dropped(level.table);
        }
    }
    Counter& created(const std::string& table) {
        return registry.counter("rill_store_partitions_created_total",
                                "Partitions created ahead of time by maintenance",
                                {{"table", table}});
    }
    Counter& dropped(const std::string& table) {
        return registry.counter("rill_store_partitions_dropped_total",
                                "Expired partitions dropped by retention", {{"table", table}});
    }
};

Maintainer::Maintainer(MaintenanceOptions options)
    : impl_(std::make_unique<Impl>(options,
                                   options.registry ? *options.registry : default_registry())) {}

Maintainer::~Maintainer() = default;
Maintainer::Maintainer(Maintainer&&) noexcept = default;
Maintainer& Maintainer::operator=(Maintainer&&) noexcept = default;

bool Maintainer::due() const noexcept {
    return !impl_->next || Clock::now() >= *impl_->next;
}

const MaintenanceOptions& Maintainer::options() const noexcept {
    return impl_->options;
}

MaintenanceReport Maintainer::run(Connection& conn) {
    Impl& m = *impl_;
    m.next = Clock::now() + m.options.interval;
    MaintenanceReport report;
    try {
        report = maintain(conn, m.options.keep, rill::now(), m.options.lock_timeout);
    } catch (const StoreError& e) {
        m.errors.inc();
        log_warn("store", std::string("maintenance failed: ") + e.what());
        return {};
    }
    if (!report.ran) {
        log_debug("store", "maintenance skipped: another session is running it");
        return report;
    }
    m.runs.inc();
    for (const auto& t : report.tables) {
        m.created(t.table).inc(static_cast<std::uint64_t>(t.created));
        m.dropped(t.table).inc(t.dropped.size());
        if (t.busy) {
            m.busy.inc();
            log_warn("store", "maintenance: " + t.table + " was busy for " +
                                  std::to_string(m.options.lock_timeout.count()) +
                                  " ms; left to the next run");
        }
    }
    m.oldest_raw.set(report.oldest_raw
                         ? static_cast<double>(report.oldest_raw->time_since_epoch().count()) / 1e6
                         : 0.0);
    if (report.changed()) log_info("store", report.summary(m.options.keep));
    return report;
}

}  // namespace rill::store
