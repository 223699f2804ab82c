// PostgresSink: the rill::Sink over the `readings` table. One binary COPY per batch with its
// rollups in the same transaction, a staging table for batches the database partly has, the
// stored islands by a loose index scan, partitions made on demand.
#include <charconv>

#include "rill/log.hpp"
#include "rill/store.hpp"
#include "rollup.hpp"
#include "sensor_scan.hpp"

namespace rill::store {

namespace {

const std::string copy_readings_sql =
    "COPY readings (" + std::string(copy_columns) + ") FROM STDIN (FORMAT binary)";
const std::string copy_staging_sql =
    "COPY rill_staging (" + std::string(copy_columns) + ") FROM STDIN (FORMAT binary)";
// Session-private, emptied at every commit; created once per connection, outside any batch
// transaction so that a rolled-back batch doesn't take it along.
const std::string create_staging_sql =
    "CREATE TEMP TABLE IF NOT EXISTS rill_staging (LIKE readings INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS";

// The sensors that have rows, by a loose index scan on the primary key: one index probe per
// distinct sensor instead of a scan of the whole table.
const std::string sensors_sql =
    detail::distinct_sensors_cte("readings") + "SELECT sensor FROM s WHERE sensor IS NOT NULL";

// Gaps and islands of every sensor whose id starts with $1, in one statement: within an island
// seq - row_number() is constant, so grouping by (sensor, it) yields one row per island. Cost:
// one ordered index(-only) scan of those sensors' part of the primary key, i.e. O(their rows),
// roughly a second per 5-10 million rows on a small machine (docs/storage.md). One statement
// rather than one per sensor: a publisher carrying 10,000 sensors made store-sub's start wait
// for 10,000 round trips (bench/fleet).
const std::string islands_sql = R"sql(
SELECT sensor, min(seq), max(seq)
FROM (SELECT sensor, seq, seq - row_number() OVER (PARTITION BY sensor ORDER BY seq) AS island
      FROM readings WHERE starts_with(sensor, $1) AND seq > 0) t
GROUP BY sensor, island ORDER BY 1, 2)sql";

// Seqs whose raw rows retention dropped: every seq <= seq of the sensor was stored once.
const std::string retired_sql = "SELECT sensor, seq FROM rill_retired WHERE seq > 0";

std::uint64_t to_u64(std::string_view text) {
    std::uint64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

}  // namespace

struct PostgresSink::Impl {
    std::string conninfo;
    bool migrate;
    bool migrated = false;
    Connection conn;
    bool staging_ready = false;
    detail::PartitionCache partitions;
    std::string buffer;
    std::optional<Maintainer> maintainer;  // partitions ahead and retention, when enabled

    // A maintenance run when enabled and due; never throws StoreError (Maintainer::run).
    // Partitions it created or dropped are reloaded into the cache, so that rows of a dropped
    // day get a partition again instead of going to the default one.
    void maintain_if_due() {
        if (!maintainer || !maintainer->due()) return;
        if (maintainer->run(conn).changed()) partitions.load(conn);
    }

    // Runs `body` in a transaction: COMMIT after it, ROLLBACK (when still connected) and rethrow
    // when it throws.
    template <typename F>
    auto in_transaction(std::string_view what, F&& body) {
        conn.exec("BEGIN", "begin " + std::string(what));
        try {
            auto result = body();
            conn.exec("COMMIT", "commit " + std::string(what));
            return result;
        } catch (...) {
            if (conn.connected()) {
                try {
                    conn.exec("ROLLBACK", "roll back " + std::string(what));
                } catch (...) {
                }
            }
            throw;
        }
    }

    // The hot path: COPY the whole batch, then add the client-side minute aggregates of every
    // reading to the rollups (a COPY inserts all rows or none).
    std::uint64_t write_copy(std::span<const Reading> batch) {
        const auto params = detail::minute_rollup_params(batch);
        return in_transaction("a batch", [&] {
            const auto n =
                conn.copy_in(copy_readings_sql, buffer,
                             "COPY " + std::to_string(batch.size()) + " readings into readings");
            (void)conn.exec_params(
                detail::upsert_minutes_sql(), params,
                "add " + std::to_string(batch.size()) + " readings to the rollups");
            return n;
        });
    }

    // The slow path for a batch the database partly knows: stage it, then insert what is new
    // and roll up only that, in one statement. Returns the number of rows inserted.
    std::uint64_t write_through_staging(std::size_t n) {
        if (!staging_ready) {
            conn.exec(create_staging_sql, "create the staging table");
            staging_ready = true;
        }
        return in_transaction("a staged batch", [&] {
            conn.copy_in(copy_staging_sql, buffer,
                         "COPY " + std::to_string(n) + " readings into rill_staging");
            const Result r = conn.exec(detail::insert_staged_sql(),
                                       "insert " + std::to_string(n) + " staged readings");
            std::uint64_t inserted = 0;
            const auto text = r.value(0, 0);
            std::from_chars(text.data(), text.data() + text.size(), inserted);
            return inserted;
        });
    }
};

PostgresSink::PostgresSink(std::string conninfo, bool migrate)
    : impl_(std::make_unique<Impl>(Impl{std::move(conninfo), migrate})) {}

PostgresSink::~PostgresSink() = default;

void PostgresSink::open() {
    Impl& s = *impl_;
    s.staging_ready = false;
    s.conn = Connection::open(s.conninfo);
    if (s.migrate && !s.migrated) {
        for (const int v : store::migrate(s.conn)) {
            log_info("store", "applied schema migration " + std::to_string(v));
        }
        s.migrated = true;
    }
    s.partitions.load(s.conn);
    s.maintain_if_due();
}

bool PostgresSink::is_open() const noexcept {
    return impl_->conn.connected();
}

void PostgresSink::close() noexcept {
    impl_->conn.close();
    impl_->staging_ready = false;
    impl_->partitions.clear();
}

std::map<std::string, SeqRanges> PostgresSink::stored(std::string_view prefix) {
    Connection& conn = impl_->conn;
    Result names;
    try {
        names = conn.exec(sensors_sql, "list the sensors in readings");
    } catch (const StoreError& e) {
        // Citus does not run recursive CTEs over distributed tables (0A000); there a plain
        // DISTINCT is pushed down to the shards in parallel anyway.
        if (e.sqlstate() != "0A000") throw;
        names = conn.exec("SELECT DISTINCT sensor FROM readings ORDER BY 1",
                          "list the sensors in readings");
    }
    std::map<std::string, SeqRanges> out;
    for (int i = 0; i < names.rows(); ++i) {
        std::string name(names.value(i, 0));
        if (name.starts_with(prefix)) out[std::move(name)];
    }
    const Result islands = conn.exec_params(islands_sql, {std::string(prefix)},
                                            "load the stored ranges of the sensors");
    for (int j = 0; j < islands.rows(); ++j) {
        out[std::string(islands.value(j, 0))].insert(
            SeqRange{to_u64(islands.value(j, 1)), to_u64(islands.value(j, 2))});
    }
    // What retention dropped was stored once: the subscriber must never ask for it again.
    const Result retired = conn.exec(retired_sql, "load the retired seqs");
    for (int i = 0; i < retired.rows(); ++i) {
        std::string name(retired.value(i, 0));
        if (!name.starts_with(prefix)) continue;
        out[name].insert(SeqRange{1, to_u64(retired.value(i, 1))});
    }
    return out;
}

std::uint64_t PostgresSink::write(std::span<const Reading> batch) {
    Impl& s = *impl_;
    s.maintain_if_due();  // a writer under steady load may never be idle for probe()
    // Outside the batch's transaction: partition DDL commits on its own and is rare.
    (void)s.partitions.ensure(s.conn, batch, rill::now());
    s.buffer.clear();
    encode_copy_binary(batch, s.buffer);
    try {
        return s.write_copy(batch);
    } catch (const StoreError& e) {
        if (e.sqlstate() != "23505") throw;
    }
    return s.write_through_staging(batch.size());
}

void PostgresSink::probe() {
    (void)impl_->conn.exec("SELECT 1", "probe the database");
    impl_->maintain_if_due();
}

void PostgresSink::enable_maintenance(const MaintenanceOptions& options) {
    impl_->maintainer.emplace(options);
}

std::string PostgresSink::name() const {
    return "PostgreSQL";
}

}  // namespace rill::store
