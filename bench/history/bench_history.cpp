// bench-history: what years of history cost with the schema of migrations 2 to 5 (readings
// partitioned by day, exact 1-minute, 15-minute, 1-hour and 6-hour rollups, retention).
//
//   bench-history [DAYS] [SENSORS] [--raw-days N] [--points N] [--runs N] [--ingest-rows N]
//                 [--rounds N] [--hold SECONDS]
//
// Defaults: 365 days of 10 sensors at 1 reading/s, the newest 3 days raw, 1000 points per chart,
// best and median of 5 runs (--rounds N measures the series N times over, for a loaded machine;
// --hold SECONDS keeps PostgreSQL and web-view up that long after the series and prints how to
// reach them, for EXPLAIN ANALYZE and profiling on the loaded history).
// It prints:
//  1. ingest with rollups on (rill::store::BatchWriter: binary COPY + the rollup upserts in one
//     transaction) next to raw binary COPY of the same rows into the same partitioned table,
//     interleaved batch by batch in the same run, as a ratio;
//  2. the latency of web-view's /api/series for 1 d, 7 d, 30 d and 365 d ranges ending now, one
//     sensor and all sensors, with the source the server chose and the buckets it returned;
//  3. the bytes held per reading and rollup row, per sensor-day, and for a year of one sensor.
//
// How the history is loaded: the raw window (the newest --raw-days) goes through BatchWriter,
// the real write path, so its rows and rollups are exactly what store-sub would have written.
// Older history is written as rollup rows directly by SQL (generate_series): what 1 Hz readings
// of a smooth daily wave roll up to, 60 readings a minute, 3600 an hour (the 15 minutes, hours
// and 6 hours grouped from the minutes as the writer does). Loading a year of raw
// readings through the write path (315 M rows for 10 sensors) would take most of an hour and
// would then be dropped by retention anyway.
//
// It starts a throwaway PostgreSQL (fsync off, as in the tests) and web-view from this build.
#include <unistd.h>

#include <httplib.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rill/store.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using rill::Timestamp;
using rill::store::BatchWriter;
using rill::store::Connection;

struct Options {
    long days = 365;
    long sensors = 10;
    long raw_days = 3;
    int points = 1000;
    int runs = 5;
    std::size_t ingest_rows = 500'000;
    int rounds = 1;
    long hold_s = 0;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "bench-history: %s\n"
                 "usage: bench-history [DAYS] [SENSORS] [--raw-days N] [--points N] [--runs N] "
                 "[--ingest-rows N] [--rounds N] [--hold SECONDS]\n",
                 why.c_str());
    std::exit(2);
}

long number(const std::string& text) {
    try {
        std::size_t used = 0;
        const long v = std::stol(text, &used);
        if (used != text.size() || v <= 0) throw std::invalid_argument(text);
        return v;
    } catch (const std::exception&) {
        usage("not a positive number: " + text);
    }
}

Options parse(int argc, char** argv) {
    Options o;
    int positional = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage("missing value after " + a);
            return argv[++i];
        };
        if (a == "--raw-days") {
            o.raw_days = number(next());
        } else if (a == "--points") {
            o.points = static_cast<int>(number(next()));
        } else if (a == "--runs") {
            o.runs = static_cast<int>(number(next()));
        } else if (a == "--rounds") {
            o.rounds = static_cast<int>(number(next()));
        } else if (a == "--hold") {
            o.hold_s = number(next());
        } else if (a == "--ingest-rows") {
            o.ingest_rows = static_cast<std::size_t>(number(next()));
        } else if (a == "--help" || a == "-h") {
            usage("history benchmark");
        } else if (!a.starts_with("-") && positional == 0) {
            o.days = number(a);
            ++positional;
        } else if (!a.starts_with("-") && positional == 1) {
            o.sensors = number(a);
            ++positional;
        } else {
            usage("unknown argument " + a);
        }
    }
    o.raw_days = std::min(o.raw_days, o.days);
    return o;
}

double seconds(Clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

std::string sensor_name(const char* prefix, long k) {
    char name[48];
    std::snprintf(name, sizeof name, "%s%03ld", prefix, k);
    return name;
}

// The synthetic wave every sensor follows: a daily sine around 20 °C (each sensor a little
// warmer than the one before), humidity the other way round.
float temperature_at(std::int64_t epoch_s, long k) {
    return 20.0f + static_cast<float>(k) * 0.1f +
           5.0f * static_cast<float>(std::sin(2 * M_PI * static_cast<double>(epoch_s) / 86400.0));
}
float humidity_at(std::int64_t epoch_s) {
    return 50.0f -
           10.0f * static_cast<float>(std::sin(2 * M_PI * static_cast<double>(epoch_s) / 86400.0));
}

std::int64_t epoch_s(Timestamp t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

Timestamp floor_to(Timestamp t, std::chrono::seconds unit) {
    const auto s = epoch_s(t);
    return Timestamp{std::chrono::seconds{s - s % unit.count()}};
}

std::string quoted(Timestamp t) {
    return "'" + rill::to_iso8601(t) + "'::timestamptz";
}

std::string text_of(Connection& conn, const std::string& sql) {
    return std::string(conn.exec(sql, sql.substr(0, 40)).value(0, 0));
}

void ensure_partitions(Connection& conn, Timestamp lo, Timestamp hi,
                       std::initializer_list<const char*> tables = {"readings", "readings_1m",
                                                                    "readings_15m", "readings_1h",
                                                                    "readings_6h"}) {
    for (const char* table : tables) {
        (void)conn.exec(std::string("SELECT rill_ensure_partitions('") + table + "', " +
                            quoted(lo) + ", " + quoted(hi) + ")",
                        "ensure partitions");
    }
}

// 1. BatchWriter (rollups on) against raw binary COPY into the same partitioned table.
void bench_ingest(const std::string& conninfo, const Options& o, Timestamp day0) {
    auto conn = Connection::open(conninfo);
    const std::size_t batch_rows = 10'000;
    const long sensors = o.sensors;
    const auto span = std::chrono::seconds(static_cast<long>(o.ingest_rows) / sensors + 2);
    ensure_partitions(conn, day0, day0 + span);
    (void)conn.exec("CHECKPOINT", "checkpoint");
    rill::store::WriterOptions wo;
    wo.conninfo = conninfo;
    wo.batch_max = batch_rows;
    wo.flush_interval = 1s;
    wo.pending_max = batch_rows * 2;
    BatchWriter writer(wo);
    const std::string copy_sql =
        "COPY readings (" + std::string(rill::store::copy_columns) + ") FROM STDIN (FORMAT binary)";
    auto make = [&](const char* prefix, std::size_t i) {
        rill::Reading r;
        const long k = static_cast<long>(i) % sensors;
        r.sensor = sensor_name(prefix, k);
        r.seq = i / static_cast<std::size_t>(sensors) + 1;
        r.ts = day0 + std::chrono::seconds(static_cast<long>(r.seq));
        r.temperature = temperature_at(epoch_s(r.ts), k);
        r.humidity = humidity_at(epoch_s(r.ts));
        return r;
    };
    Clock::duration writer_time{};
    Clock::duration copy_time{};
    std::vector<rill::Reading> batch;
    std::string payload;
    for (std::size_t first = 0; first < o.ingest_rows; first += batch_rows) {
        const std::size_t n = std::min(batch_rows, o.ingest_rows - first);
        batch.clear();
        for (std::size_t i = first; i < first + n; ++i)
            batch.push_back(make("ingest-w-", i));
        auto t0 = Clock::now();
        (void)writer.add(batch);
        (void)writer.flush();
        writer_time += Clock::now() - t0;

        batch.clear();
        for (std::size_t i = first; i < first + n; ++i)
            batch.push_back(make("ingest-c-", i));
        payload.clear();
        rill::store::encode_copy_binary(batch, payload);  // encoded untimed
        t0 = Clock::now();
        (void)conn.copy_in(copy_sql, payload, "COPY into readings");
        copy_time += Clock::now() - t0;
    }
    if (writer.pending() != 0) throw std::runtime_error("the writer kept readings pending");
    const double rows = static_cast<double>(o.ingest_rows);
    std::printf("ingest, %zu rows per side, %ld sensors, batches of %zu:\n", o.ingest_rows, sensors,
                batch_rows);
    std::printf("  raw binary COPY        %8.3f s %10.0f rows/s\n", seconds(copy_time),
                rows / seconds(copy_time));
    std::printf("  BatchWriter + rollups  %8.3f s %10.0f rows/s   ratio %.2f\n",
                seconds(writer_time), rows / seconds(writer_time),
                seconds(copy_time) / seconds(writer_time));
    // The ingest rows leave again: their day partitions and their rollup rows.
    const auto parts =
        conn.exec("SELECT part::text FROM rill_partitions('readings') WHERE lo >= " + quoted(day0) +
                      " AND hi <= " + quoted(day0 + span + 24h),
                  "list the ingest partitions");
    for (int i = 0; i < parts.rows(); ++i) {
        (void)conn.exec("DROP TABLE " + std::string(parts.value(i, 0)), "drop");
    }
    (void)conn.exec(
        "DELETE FROM readings WHERE sensor LIKE 'ingest-%';"
        "DELETE FROM readings_1m WHERE sensor LIKE 'ingest-%';"
        "DELETE FROM readings_15m WHERE sensor LIKE 'ingest-%';"
        "DELETE FROM readings_1h WHERE sensor LIKE 'ingest-%';"
        "DELETE FROM readings_6h WHERE sensor LIKE 'ingest-%'",
        "remove the ingest rows");
}

// 2. History: rollups by SQL before the raw window, the raw window through BatchWriter.
void load_history(const std::string& conninfo, const Options& o, Timestamp end) {
    auto conn = Connection::open(conninfo);
    const Timestamp hist_lo = end - std::chrono::days(o.days);
    const Timestamp raw_lo = end - std::chrono::days(o.raw_days);
    // Raw partitions only for the raw window, as retention leaves them.
    ensure_partitions(conn, hist_lo, end + 1h,
                      {"readings_1m", "readings_15m", "readings_1h", "readings_6h"});
    ensure_partitions(conn, raw_lo, end + 1h, {"readings"});
    auto t0 = Clock::now();
    if (hist_lo < raw_lo) {
        // One row per sensor and minute: 60 readings of the wave, min/max half a degree apart.
        (void)conn.exec(
            "INSERT INTO readings_1m SELECT 'bench-' || lpad(k::text, 3, '0'), b, 60, "
            "60 * t, t - 0.25, t + 0.25, 60 * h, h - 0.5, h + 0.5, 60, 60 "
            "FROM generate_series(0, " +
                std::to_string(o.sensors - 1) + ") k CROSS JOIN generate_series(" +
                quoted(hist_lo) + ", " + quoted(raw_lo) +
                " - interval '1 minute', interval '1 minute') b CROSS JOIN LATERAL (SELECT "
                "(20 + k * 0.1 + 5 * sin(2 * pi() * extract(epoch FROM b) / 86400))::real AS t,"
                " (50 - 10 * sin(2 * pi() * extract(epoch FROM b) / 86400))::real AS h) w",
            "load the 1-minute rollups");
        // raw_lo is on a whole hour: the 15-minute buckets before it are whole.
        (void)conn.exec(
            "INSERT INTO readings_15m SELECT sensor, date_bin('15 minutes', bucket, timestamptz "
            "'1970-01-01Z'), sum(n), sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), "
            "max(h_max), sum(t_n), sum(h_n) FROM readings_1m WHERE bucket < " +
                quoted(raw_lo) + " GROUP BY 1, 2",
            "load the 15-minute rollups");
        (void)conn.exec(
            "INSERT INTO readings_1h SELECT sensor, date_trunc('hour', bucket, 'UTC'), sum(n), "
            "sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max), sum(t_n), "
            "sum(h_n) FROM readings_1m WHERE bucket < " +
                quoted(raw_lo) + " GROUP BY 1, 2",
            "load the 1-hour rollups");
        // The 6-hour bucket that holds raw_lo gets the rest of its hours from the writer below,
        // which adds to it.
        (void)conn.exec(
            "INSERT INTO readings_6h SELECT sensor, date_bin('6 hours', bucket, timestamptz "
            "'1970-01-01Z'), sum(n), sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), "
            "max(h_max), sum(t_n), sum(h_n) FROM readings_1h GROUP BY 1, 2",
            "load the 6-hour rollups");
    }
    const double sql_s = seconds(Clock::now() - t0);

    rill::store::WriterOptions wo;
    wo.conninfo = conninfo;
    wo.batch_max = 10'000;
    wo.flush_interval = 1s;
    wo.pending_max = 20'000;
    BatchWriter writer(wo);
    std::vector<rill::Reading> batch;
    std::uint64_t raw_rows = 0;
    t0 = Clock::now();
    std::uint64_t seq = 0;
    for (Timestamp t = raw_lo; t < end; t += 1s) {
        ++seq;
        for (long k = 0; k < o.sensors; ++k) {
            rill::Reading r;
            r.sensor = sensor_name("bench-", k);
            r.seq = seq;
            r.ts = t;
            r.temperature = temperature_at(epoch_s(t), k);
            r.humidity = humidity_at(epoch_s(t));
            batch.push_back(std::move(r));
        }
        if (batch.size() >= 10'000) {
            (void)writer.add(batch);
            (void)writer.flush();
            raw_rows += batch.size();
            batch.clear();
        }
    }
    (void)writer.add(batch);
    (void)writer.flush();
    raw_rows += batch.size();
    const double raw_s = seconds(Clock::now() - t0);
    (void)conn.exec("VACUUM ANALYZE", "vacuum analyze");
    std::printf(
        "history: %ld sensors x %ld days; rollups before the raw window by SQL in %.1f s; "
        "%llu raw readings (%ld days) through BatchWriter in %.1f s (%.0f rows/s)\n",
        o.sensors, o.days, sql_s, static_cast<unsigned long long>(raw_rows), o.raw_days, raw_s,
        static_cast<double>(raw_rows) / raw_s);
}

// 3. /api/series through web-view.
struct Figure {
    double best_ms = 0;
    double median_ms = 0;
    std::string source;
    std::size_t buckets = 0;
};

Figure time_series(httplib::Client& http, const std::string& target, int runs) {
    std::vector<double> ms;
    Figure f;
    for (int i = 0; i < runs; ++i) {
        const auto t0 = Clock::now();
        const auto res = http.Get(target);
        ms.push_back(seconds(Clock::now() - t0) * 1000.0);
        if (!res || res->status != 200) {
            throw std::runtime_error("GET " + target + " failed: " +
                                     (res ? std::to_string(res->status) + " " + res->body
                                          : httplib::to_string(res.error())));
        }
        if (i == 0) {
            const auto j = nlohmann::json::parse(res->body);
            f.source = j.value("source", std::string("?"));
            for (const auto& s : j.at("series"))
                f.buckets += s.at("buckets").size();
        }
    }
    std::sort(ms.begin(), ms.end());
    f.best_ms = ms.front();
    f.median_ms = ms[ms.size() / 2];
    return f;
}

// One measurement of every range, one sensor and all of them.
void series_round(httplib::Client& http, const Options& o, Timestamp end) {
    std::printf("  %-7s %-12s %9s %9s %7s %8s\n", "range", "sensors", "best", "median", "source",
                "buckets");
    std::optional<double> one_day_all;
    for (const long days : {1L, 7L, 30L, 365L}) {
        if (days > o.days) continue;
        const Timestamp from = end - std::chrono::days(days);
        for (const bool all : {false, true}) {
            std::string target = "/api/series?from=" + rill::to_iso8601(from) +
                                 "&to=" + rill::to_iso8601(end) +
                                 "&points=" + std::to_string(o.points);
            if (!all) target += "&sensor=" + sensor_name("bench-", 0);
            (void)time_series(http, target, 1);  // warm the caches once
            const Figure f = time_series(http, target, o.runs);
            std::printf("  %-7s %-12s %9.1f %9.1f %7s %8zu\n",
                        (std::to_string(days) + " d").c_str(),
                        all ? ("all " + std::to_string(o.sensors)).c_str() : "one", f.best_ms,
                        f.median_ms, f.source.c_str(), f.buckets);
            if (all && days == 1) one_day_all = f.median_ms;
            if (all && days == 365 && one_day_all) {
                std::printf("  365 d / 1 d (all sensors, median): %.2f\n",
                            f.median_ms / *one_day_all);
            }
        }
    }
}

void bench_series(const std::string& conninfo, const Options& o, Timestamp end) {
    rill::test::TempDir dir("bench-history");
    const auto log = dir.path() / "web-view.log";
    rill::test::Process web(
        {rill::test::bin("web-view"), "--db", conninfo, "--listen", "127.0.0.1:0"},
        {.stderr_path = log.string()});
    std::smatch m;
    std::string text;
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)/");
    if (!rill::test::wait_until(
            [&] {
                text = rill::test::read_file(log);
                return std::regex_search(text, m, listening);
            },
            30s)) {
        throw std::runtime_error("web-view did not start: " + text);
    }
    httplib::Client http("127.0.0.1", std::stoi(m[1].str()));
    http.set_read_timeout(60s);
    for (int round = 1; round <= o.rounds; ++round) {
        std::printf("/api/series, %d points, ranges ending now, best and median of %d (ms)%s:\n",
                    o.points, o.runs,
                    o.rounds > 1 ? (", round " + std::to_string(round)).c_str() : "");
        series_round(http, o, end);
    }
    if (o.hold_s > 0) {
        std::printf("holding for %ld s: psql \"%s\", web-view http://127.0.0.1:%s/\n", o.hold_s,
                    conninfo.c_str(), m[1].str().c_str());
        std::fflush(stdout);
        std::this_thread::sleep_for(std::chrono::seconds(o.hold_s));
    }
    web.signal(SIGTERM);
    (void)web.wait_for(10s);
}

// 4. What is held on disk.
void bench_sizes(Connection& conn, const Options& o) {
    auto size_of = [&](const char* table) {
        return std::stod(text_of(conn, std::string("SELECT coalesce(sum(pg_total_relation_size("
                                                   "inhrelid)), 0) FROM pg_inherits WHERE "
                                                   "inhparent = '") +
                                           table + "'::regclass"));
    };
    auto rows_of = [&](const char* table) {
        return std::stod(text_of(conn, std::string("SELECT count(*) FROM ") + table));
    };
    const double raw_b = size_of("readings"), raw_n = rows_of("readings");
    const double m_b = size_of("readings_1m"), m_n = rows_of("readings_1m");
    const double f_b = size_of("readings_15m"), f_n = rows_of("readings_15m");
    const double h_b = size_of("readings_1h"), h_n = rows_of("readings_1h");
    const double q_b = size_of("readings_6h"), q_n = rows_of("readings_6h");
    std::printf("held on disk (tables and indexes):\n");
    std::printf("  raw         %10.1f MB %12.0f rows %6.1f bytes/row\n", raw_b / 1e6, raw_n,
                raw_b / std::max(raw_n, 1.0));
    std::printf("  1-minute    %10.1f MB %12.0f rows %6.1f bytes/row\n", m_b / 1e6, m_n,
                m_b / std::max(m_n, 1.0));
    std::printf("  15-minute   %10.1f MB %12.0f rows %6.1f bytes/row\n", f_b / 1e6, f_n,
                f_b / std::max(f_n, 1.0));
    std::printf("  1-hour      %10.1f MB %12.0f rows %6.1f bytes/row\n", h_b / 1e6, h_n,
                h_b / std::max(h_n, 1.0));
    std::printf("  6-hour      %10.1f MB %12.0f rows %6.1f bytes/row\n", q_b / 1e6, q_n,
                q_b / std::max(q_n, 1.0));
    const double sensor_days = static_cast<double>(o.sensors * o.days);
    std::printf(
        "  in all      %10.1f MB = %.0f bytes per sensor-day (%ld raw days, 1-minute, 15-minute, "
        "1-hour and 6-hour rollups for %ld days)\n",
        (raw_b + m_b + f_b + h_b + q_b) / 1e6, (raw_b + m_b + f_b + h_b + q_b) / sensor_days,
        o.raw_days, o.days);
    const double raw_day = raw_b / std::max(raw_n, 1.0) * 86400;
    const double m_day = m_b / std::max(m_n, 1.0) * 1440;
    const double f_day = f_b / std::max(f_n, 1.0) * 96;
    const double h_day = h_b / std::max(h_n, 1.0) * 24;
    const double q_day = q_b / std::max(q_n, 1.0) * 4;
    std::printf(
        "  per sensor-day at 1 Hz: raw %.1f MB, 1-minute %.0f kB, 15-minute %.1f kB, 1-hour %.1f "
        "kB, 6-hour %.2f kB\n",
        raw_day / 1e6, m_day / 1e3, f_day / 1e3, h_day / 1e3, q_day / 1e3);
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        std::fprintf(stderr, "starting a throwaway PostgreSQL (fsync off)...\n");
        rill::test::TempPostgres pg;
        const std::string conninfo = pg.conninfo();
        auto conn = Connection::open(conninfo);
        (void)rill::store::migrate(conn);
        const Timestamp end = floor_to(rill::now(), std::chrono::hours(1));
        bench_ingest(conninfo, o, floor_to(end - std::chrono::days(o.days + 30), 24h));
        load_history(conninfo, o, end);
        bench_series(conninfo, o, end);
        bench_sizes(conn, o);
        const rill::store::RetentionPolicy keep{};
        const auto report = rill::store::maintain(conn, keep, rill::now());
        (void)conn.exec("VACUUM", "vacuum");
        std::printf("after the default retention (%s):\n", report.summary(keep).c_str());
        bench_sizes(conn, o);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench-history: %s\n", e.what());
        return 1;
    }
}
