// bench-ingest: readings/s stored by rill::store::BatchWriter into `readings` (partitioned by
// day, with its 1-minute and 1-hour rollups written in each batch's transaction), next to raw
// binary COPY of the same rows into an identical table partitioned the same way (same columns,
// primary key, indexes and day partitions; no rollups), in the same run and interleaved batch
// by batch so both see the same server state.
//
//   bench-ingest [--quick] [--rows N] [--batch N] [--sensors N] [--pk-only] [--db CONNINFO]
//
// --pk-only drops the secondary indexes (sensor, ts DESC) and BRIN (ts) from both tables, to
// measure against a table with only the primary key.
// Without --db a throwaway PostgreSQL is started (fsync off, as in the tests). With --db the
// benchmark creates a database rill_bench_<pid> on that server (needs CREATEDB), works there
// and drops it at the end; it never touches other databases.
#include <libpq-fe.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "rill/store.hpp"

#ifdef RILL_HAVE_TEMP_POSTGRES
#include "support/postgres.hpp"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using rill::store::BatchWriter;
using rill::store::Connection;

struct Options {
    std::size_t rows = 1'000'000;
    std::size_t batch = 10'000;
    std::size_t sensors = 100;
    bool pk_only = false;
    std::string db;
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr,
                 "bench-ingest: %s\n"
                 "usage: bench-ingest [--quick] [--rows N] [--batch N] [--sensors N] "
                 "[--pk-only] [--db CONNINFO]\n",
                 why);
    std::exit(2);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage(("missing value after " + a).c_str());
            return argv[++i];
        };
        auto number = [&]() -> std::size_t {
            const auto v = next();
            try {
                return std::stoul(v);
            } catch (const std::exception&) {
                usage(("not a number: " + v).c_str());
            }
        };
        if (a == "--quick") {
            o.rows = 100'000;
        } else if (a == "--rows") {
            o.rows = number();
        } else if (a == "--batch") {
            o.batch = number();
        } else if (a == "--sensors") {
            o.sensors = number();
        } else if (a == "--pk-only") {
            o.pk_only = true;
        } else if (a == "--db") {
            o.db = next();
        } else if (a == "--help" || a == "-h") {
            usage("ingest benchmark");
        } else {
            usage(("unknown option " + a).c_str());
        }
    }
    if (o.rows == 0 || o.batch == 0 || o.sensors == 0) usage("counts must be positive");
    return o;
}

// Reading i of the run: sensors round-robin, each sensor's seq counting from 1, one reading
// per sensor per second, an extra on every 100th.
rill::Reading make_reading(std::size_t i, std::size_t sensors) {
    rill::Reading r;
    char name[32];
    std::snprintf(name, sizeof name, "sensor-%04zu", i % sensors);
    r.sensor = name;
    r.seq = i / sensors + 1;
    r.ts = rill::Timestamp{std::chrono::microseconds{1'795'255'200'000'000LL +
                                                     static_cast<long long>(r.seq) * 1'000'000}};
    r.temperature = 15.0f + static_cast<float>(i % 200) * 0.05f;
    r.humidity = 30.0f + static_cast<float>(i % 500) * 0.1f;
    if (i % 100 == 0) r.extras = {{"battery", 3.3 - static_cast<double>(i % 7) * 0.01}};
    return r;
}

// A key=value connection string equal to `conn`'s settings but for database `db`.
std::string conninfo_for(const Connection& conn, const std::string& db) {
    std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(PQconninfo(conn.native()),
                                                                      &PQconninfoFree);
    std::string out;
    for (auto* o = opts.get(); o && o->keyword; ++o) {
        const std::string key = o->keyword;
        std::string value = key == "dbname" ? db : (o->val ? o->val : "");
        if (value.empty()) continue;
        std::string quoted;
        for (const char c : value) {
            if (c == '\\' || c == '\'') quoted += '\\';
            quoted += c;
        }
        out += key + "='" + quoted + "' ";
    }
    return out;
}

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
    const Options opt = parse(argc, argv);
    try {
#ifdef RILL_HAVE_TEMP_POSTGRES
        std::optional<rill::test::TempPostgres> temp;
#endif
        std::string conninfo;
        std::optional<std::pair<std::string, std::string>> drop;  // admin conninfo, db
        if (opt.db.empty()) {
#ifdef RILL_HAVE_TEMP_POSTGRES
            std::fprintf(stderr, "starting a throwaway PostgreSQL (fsync off)...\n");
            temp.emplace();
            conninfo = temp->conninfo();
#else
            usage("built without the test helpers: pass --db CONNINFO");
#endif
        } else {
            auto admin = Connection::open(opt.db);
            const std::string db = "rill_bench_" + std::to_string(getpid());
            (void)admin.exec("CREATE DATABASE " + db, "create database " + db);
            conninfo = conninfo_for(admin, db);
            drop.emplace(opt.db, db);
        }

        rill::store::WriterOptions wo;
        wo.conninfo = conninfo;
        wo.batch_max = opt.batch;
        wo.flush_interval = std::chrono::seconds(1);
        wo.pending_max = opt.batch * 2;
        BatchWriter writer(wo);
        auto raw = Connection::open(conninfo);
        if (opt.pk_only) {
            (void)raw.exec("DROP INDEX readings_sensor_ts_idx, readings_ts_brin_idx",
                           "drop the secondary indexes");
        }
        // The same day partitions as the writer makes for the run (and a default partition).
        const auto first_ts = make_reading(0, opt.sensors).ts;
        const auto last_ts = make_reading(opt.rows - 1, opt.sensors).ts;
        (void)raw.exec(
            "CREATE TABLE readings_raw (LIKE readings INCLUDING ALL) PARTITION BY RANGE (ts);"
            "CREATE TABLE readings_raw_default PARTITION OF readings_raw DEFAULT;"
            "DO $$ DECLARE d timestamptz; BEGIN FOR d IN SELECT generate_series("
            "date_trunc('day', '" +
                rill::to_iso8601(first_ts) + "'::timestamptz, 'UTC'), '" +
                rill::to_iso8601(last_ts) +
                "'::timestamptz, interval '1 day') LOOP EXECUTE format('CREATE TABLE %I "
                "PARTITION OF readings_raw FOR VALUES FROM (%L) TO (%L)', 'readings_raw_' || "
                "to_char(d AT TIME ZONE 'UTC', 'YYYYMMDD'), d, d + interval '1 day'); END LOOP; "
                "END $$",
            "create readings_raw");
        (void)raw.exec("CHECKPOINT", "checkpoint");
        const std::string copy_raw = "COPY readings_raw (" +
                                     std::string(rill::store::copy_columns) +
                                     ") FROM STDIN (FORMAT binary)";

        std::printf(
            "bench-ingest: %zu rows per side, batches of %zu, %zu sensors, day partitions, %s\n",
            opt.rows, opt.batch, opt.sensors,
            opt.pk_only ? "primary key only" : "primary key + (sensor, ts DESC) + BRIN (ts)");
        Clock::duration writer_time{};
        Clock::duration raw_time{};
        std::string payload;
        std::vector<rill::Reading> batch;
        // Interleaved: batch k goes through the writer, then the same rows by raw COPY.
        for (std::size_t first = 0; first < opt.rows; first += opt.batch) {
            const std::size_t n = std::min(opt.batch, opt.rows - first);
            batch.clear();
            for (std::size_t i = first; i < first + n; ++i) {
                batch.push_back(make_reading(i, opt.sensors));
            }
            payload.clear();
            rill::store::encode_copy_binary(batch, payload);  // raw side: encoded untimed

            auto t0 = Clock::now();
            for (auto& r : batch) {
                while (writer.add(std::move(r)) == BatchWriter::AddResult::full) {
                    (void)writer.flush();
                }
                if (writer.due()) (void)writer.flush();
            }
            auto t1 = Clock::now();
            writer_time += t1 - t0;

            t0 = Clock::now();
            (void)raw.copy_in(copy_raw, payload, "COPY into readings_raw");
            raw_time += Clock::now() - t0;
        }
        const auto t0 = Clock::now();
        (void)writer.flush();
        writer_time += Clock::now() - t0;
        if (writer.pending() != 0) throw std::runtime_error("the writer kept readings pending");

        const auto stored = std::string(raw.exec("SELECT (SELECT count(*) FROM readings) || ' ' || "
                                                 "(SELECT count(*) FROM readings_raw) || ' ' || "
                                                 "(SELECT sum(n) FROM readings_1m)",
                                                 "count rows")
                                            .value(0, 0));
        const auto st = writer.stats();
        const double writer_rate = static_cast<double>(opt.rows) / seconds(writer_time);
        const double raw_rate = static_cast<double>(opt.rows) / seconds(raw_time);
        std::printf("rows stored (writer raw, rolled up): %s\n", stored.c_str());
        std::printf("raw binary COPY : %8.3f s  %10.0f rows/s\n", seconds(raw_time), raw_rate);
        std::printf(
            "BatchWriter     : %8.3f s  %10.0f rows/s  (%llu batches, mean %.1f ms, "
            "max %.1f ms, fallbacks %llu)\n",
            seconds(writer_time), writer_rate, static_cast<unsigned long long>(st.batches),
            st.batches ? static_cast<double>(st.total_batch_latency.count()) /
                             static_cast<double>(st.batches) / 1000.0
                       : 0.0,
            static_cast<double>(st.max_batch_latency.count()) / 1000.0,
            static_cast<unsigned long long>(st.fallback_batches));
        std::printf("ratio writer (with rollups)/raw: %.2f\n", writer_rate / raw_rate);

        raw.close();
        if (drop) {
            auto admin = Connection::open(drop->first);
            // The writer's connection must be gone before the database can be dropped.
            (void)admin.exec("DROP DATABASE IF EXISTS " + drop->second + " WITH (FORCE)",
                             "drop database " + drop->second);
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench-ingest: %s\n", e.what());
        return 1;
    }
}
