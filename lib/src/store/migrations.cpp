// Numbered schema migrations, applied under an advisory lock.
#include <array>
#include <set>
#include <string>

#include "rill/store.hpp"

namespace rill::store {

namespace {

// Key of the transaction-scoped advisory lock that serialises migrate() across processes:
// the bytes of "rillmigr" read as a big-endian int64.
constexpr long long migration_lock_key = 0x72696c6c6d696772LL;

// Migrations are append-only: a released version is never edited, a change is a new version.
// Each one is written to be harmless if its objects already exist (IF NOT EXISTS), so that a
// table created by hand or by an older tool is adopted instead of failing; none drops data.
//
// Indexes of version 1:
//  - the primary key (sensor, seq) is the exactly-once truth and serves replay-range queries;
//  - (sensor, ts DESC) answers "latest reading per sensor" with one index probe per sensor and
//    "sensor S between t1 and t2" with one range scan;
//  - a BRIN index on ts, not a btree, for "all sensors between t1 and t2": readings are appended
//    roughly in time order (replays of old data are a small, bounded share), so the heap is
//    strongly correlated with ts and a BRIN summary of 128-page ranges prunes nearly as well
//    as a btree while being thousands of times smaller and almost free on insert. A btree on
//    ts would be a third full-size index maintained by every COPY, and COPY speed is what the
//    store is measured on. If readings ever arrive badly out of order (huge backfills), add a
//    btree in a later migration.
constexpr std::array<Migration, 1> all_migrations = {{
    {1, "readings table",
     R"sql(
CREATE TABLE IF NOT EXISTS readings (
    sensor      text        NOT NULL,
    seq         bigint      NOT NULL,
    ts          timestamptz NOT NULL,
    temperature real,
    humidity    real,
    extra       jsonb       NULL,
    PRIMARY KEY (sensor, seq)
);
CREATE INDEX IF NOT EXISTS readings_sensor_ts_idx ON readings (sensor, ts DESC);
CREATE INDEX IF NOT EXISTS readings_ts_brin_idx ON readings USING brin (ts);
)sql"},
}};

}  // namespace

std::span<const Migration> migrations() noexcept {
    return all_migrations;
}

std::vector<int> migrate(Connection& conn) {
    std::vector<int> applied;
    conn.exec("BEGIN", "begin the schema migration");
    try {
        conn.exec("SELECT pg_advisory_xact_lock(" + std::to_string(migration_lock_key) + ")",
                  "take the schema migration lock");
        conn.exec(R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
))sql",
                  "create schema_migrations");
        const Result done =
            conn.exec("SELECT version FROM schema_migrations", "read schema_migrations");
        std::set<int> have;
        for (int i = 0; i < done.rows(); ++i)
            have.insert(std::stoi(std::string(done.value(i, 0))));
        for (const auto& m : all_migrations) {
            if (have.contains(m.version)) continue;
            const std::string what =
                "apply migration " + std::to_string(m.version) + " (" + std::string(m.name) + ")";
            conn.exec(std::string(m.sql), what);
            conn.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                             {std::to_string(m.version), std::string(m.name)}, what);
            applied.push_back(m.version);
        }
        conn.exec("COMMIT", "commit the schema migration");
    } catch (...) {
        if (conn.connected()) {
            try {
                conn.exec("ROLLBACK", "roll back the schema migration");
            } catch (...) {
            }
        }
        throw;
    }
    return applied;
}

}  // namespace rill::store
