// Reader: the read-only statements over `readings` (the schema is in migrations.cpp).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "rill/store_reader.hpp"

namespace rill::store {

namespace {

// The distinct sensors as a CTE named s with one column, sensor: a loose index scan ("skip
// scan") over the (sensor, ts desc) index, one probe per sensor, where SELECT DISTINCT would
// read every row.
constexpr const char* distinct_sensors =
    "WITH RECURSIVE s(sensor) AS ("
    " (SELECT sensor FROM readings ORDER BY sensor LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT r.sensor FROM readings r WHERE r.sensor > s.sensor"
    " ORDER BY r.sensor LIMIT 1) FROM s WHERE s.sensor IS NOT NULL) ";

// x.ts as integer microseconds since the Unix epoch (exact, and no text time zone to parse).
constexpr const char* ts_us = "(extract(epoch FROM x.ts) * 1000000)::bigint";

std::int64_t int_at(const Result& r, int row, int col) {
    const auto v = r.value(row, col);
    std::int64_t out = 0;
    std::from_chars(v.data(), v.data() + v.size(), out);
    return out;
}

Timestamp ts_at(const Result& r, int row, int col) {
    return Timestamp{std::chrono::microseconds{int_at(r, row, col)}};
}

double double_at(const Result& r, int row, int col) {
    if (r.is_null(row, col)) return std::nan("");
    // value() points into the PGresult, which NUL-terminates every field.
    return std::strtod(r.value(row, col).data(), nullptr);
}

// Appends a parameter and returns its placeholder ("$3").
std::string param(std::vector<std::string>& params, std::string value) {
    params.push_back(std::move(value));
    return "$" + std::to_string(params.size());
}

}  // namespace

std::vector<StoredReading> Reader::latest(std::size_t max_sensors) {
    const std::string sql = std::string(distinct_sensors) + "SELECT x.sensor, x.seq, " + ts_us +
                            ", x.temperature, x.humidity FROM s CROSS JOIN LATERAL ("
                            "SELECT r.sensor, r.seq, r.ts, r.temperature, r.humidity FROM "
                            "readings r WHERE r.sensor = s.sensor ORDER BY r.ts DESC, r.seq DESC "
                            "LIMIT 1) x ORDER BY x.sensor LIMIT $1";
    const Result r =
        pool_->query(sql, {std::to_string(max_sensors)}, "read the newest reading of each sensor");
    std::vector<StoredReading> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
        out.push_back({.sensor = std::string(r.value(i, 0)),
                       .seq = int_at(r, i, 1),
                       .ts = ts_at(r, i, 2),
                       .temperature = double_at(r, i, 3),
                       .humidity = double_at(r, i, 4),
                       .extra = {}});
    }
    return out;
}

ReadingsPage Reader::page(const ReadingsQuery& q) {
    const long long limit = std::max(q.limit, 1LL);
    std::vector<std::string> params;
    std::string where = "r.sensor = s.sensor";
    if (q.from) where += " AND r.ts >= " + param(params, to_iso8601(*q.from)) + "::timestamptz";
    if (q.to) where += " AND r.ts < " + param(params, to_iso8601(*q.to)) + "::timestamptz";
    if (q.cursor) {
        const auto cts = param(params, to_iso8601(q.cursor->ts));
        const auto cs = param(params, q.cursor->sensor);
        const auto cseq = param(params, std::to_string(q.cursor->seq));
        // The first condition lets the (sensor, ts desc) index start at the cursor.
        where += " AND r.ts <= " + cts + "::timestamptz AND (r.ts, r.sensor, r.seq) < (" + cts +
                 "::timestamptz, " + cs + "::text, " + cseq + "::bigint)";
    }
    // One row more than the page tells whether another page follows.
    const auto n = param(params, std::to_string(limit + 1));
    const std::string sensors =
        q.sensor ? "WITH s(sensor) AS (SELECT " + param(params, *q.sensor) + "::text) "
                 : std::string(distinct_sensors);
    // Per sensor its newest n rows after the cursor (an index range each), then merged.
    const std::string sql =
        sensors + "SELECT x.sensor, x.seq, " + ts_us +
        ", x.temperature, x.humidity, x.extra::text FROM s CROSS JOIN LATERAL ("
        "SELECT r.sensor, r.seq, r.ts, r.temperature, r.humidity, r.extra FROM readings r"
        " WHERE " +
        where + " ORDER BY r.ts DESC, r.seq DESC LIMIT " + n +
        "::bigint) x ORDER BY x.ts DESC, x.sensor DESC, x.seq DESC LIMIT " + n + "::bigint";
    const Result r = pool_->query(sql, params, "read a page of readings");
    ReadingsPage page;
    const int rows = r.rows();
    for (int i = 0; i < rows && i < limit; ++i) {
        StoredReading row{.sensor = std::string(r.value(i, 0)),
                          .seq = int_at(r, i, 1),
                          .ts = ts_at(r, i, 2),
                          .temperature = double_at(r, i, 3),
                          .humidity = double_at(r, i, 4),
                          .extra = {}};
        if (!r.is_null(i, 5)) row.extra = std::string(r.value(i, 5));
        page.rows.push_back(std::move(row));
    }
    if (rows > limit && !page.rows.empty()) {
        const auto& last = page.rows.back();
        page.next = ReadingsCursor{last.ts, last.sensor, last.seq};
    }
    return page;
}

std::vector<SeriesBucket> Reader::series(const SeriesQuery& q) {
    std::vector<std::string> params = {std::to_string(q.bucket.count()) + " microseconds",
                                       to_iso8601(q.from), to_iso8601(q.to)};
    std::string where = "ts >= $2::timestamptz AND ts < $3::timestamptz";
    if (q.sensor) where = "sensor = " + param(params, *q.sensor) + "::text AND " + where;
    const std::string sql =
        "SELECT sensor, (extract(epoch FROM b) * 1000000)::bigint, t_avg, t_min, t_max, h_avg, "
        "h_min, h_max, n FROM (SELECT sensor, date_bin($1::interval, ts, $2::timestamptz) AS b,"
        " avg(temperature) AS t_avg, min(temperature) AS t_min, max(temperature) AS t_max,"
        " avg(humidity) AS h_avg, min(humidity) AS h_min, max(humidity) AS h_max, count(*) AS n"
        " FROM readings WHERE " +
        where + " GROUP BY 1, 2) g ORDER BY 1, 2";
    const Result r = pool_->query(sql, params, "read a series of readings");
    std::vector<SeriesBucket> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
        out.push_back({.sensor = std::string(r.value(i, 0)),
                       .ts = ts_at(r, i, 1),
                       .t_avg = double_at(r, i, 2),
                       .t_min = double_at(r, i, 3),
                       .t_max = double_at(r, i, 4),
                       .h_avg = double_at(r, i, 5),
                       .h_min = double_at(r, i, 6),
                       .h_max = double_at(r, i, 7),
                       .count = int_at(r, i, 8)});
    }
    return out;
}

}  // namespace rill::store
