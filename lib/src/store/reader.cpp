// Reader: the read-only statements over `readings` (the schema is in migrations.cpp).
#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <tuple>

#include "pg_epoch.hpp"
#include "rill/store_reader.hpp"
#include "sensor_scan.hpp"

namespace rill::store {

namespace {

// The distinct sensors of readings as a CTE named s with one column, sensor: a loose index scan
// over the (sensor, ts desc) index, one probe per sensor, where SELECT DISTINCT would read every
// row. Its last row is NULL: the joins on r.sensor = s.sensor drop it.
const std::string distinct_sensors = detail::distinct_sensors_cte("readings");

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
    const std::string sql = distinct_sensors + "SELECT x.sensor, x.seq, " + ts_us +
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
                 : distinct_sensors;
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

namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr std::int64_t minus_infinity = std::numeric_limits<std::int64_t>::min();

// Per source (in the order of `sources`), since when it holds its rows.
using SourceStarts = std::array<std::int64_t, 5>;

// The bucket widths series() uses: round numbers of the clock, each a multiple of the one
// before it from one minute on, so a width of whole minutes (15 minutes, hours, 6 hours) is a
// whole number of the rollups' minutes (15 minutes, hours, 6 hours).
constexpr std::array<microseconds, 26> ladder = {
    seconds{1}, seconds{2},  seconds{5},  seconds{10}, seconds{15}, seconds{30}, minutes{1},
    minutes{2}, minutes{5},  minutes{10}, minutes{15}, minutes{30}, hours{1},    hours{2},
    hours{3},   hours{6},    hours{12},   hours{24},   hours{48},   hours{168},  hours{336},
    hours{672}, hours{1344}, hours{2688}, hours{5376}, hours{10752}};

// Finest first; the index of each is its value.
constexpr std::array<SeriesSource, 5> sources = {SeriesSource::raw, SeriesSource::minute,
                                                 SeriesSource::fifteen_minutes, SeriesSource::hour,
                                                 SeriesSource::six_hours};

const char* table_of(SeriesSource s) {
    switch (s) {
        case SeriesSource::minute:
            return "readings_1m";
        case SeriesSource::fifteen_minutes:
            return "readings_15m";
        case SeriesSource::hour:
            return "readings_1h";
        case SeriesSource::six_hours:
            return "readings_6h";
        case SeriesSource::raw:
            break;
    }
    return "readings";
}

// Floor and ceiling of `t` to a multiple of `w` since the epoch.
std::int64_t align_down(std::int64_t t, std::int64_t w) {
    const auto q = t / w;
    return (q * w > t ? q - 1 : q) * w;
}
std::int64_t align_up(std::int64_t t, std::int64_t w) {
    const auto d = align_down(t, w);
    return d == t ? d : d + w;
}

// `w` rounded up to a whole number of `s`'s granularity.
microseconds width_for(SeriesSource s, microseconds w) {
    const auto g = granularity(s).count();
    if (g == 0) return w;
    return microseconds{align_up(std::max<std::int64_t>(w.count(), 1), g)};
}

// Since when each source holds its rows, in microseconds since the epoch: the lower bound of
// the oldest partition in the unbroken run that ends with its newest one (retention drops the
// oldest partitions; a partition made later for one old day does not bridge the hole).
// minus_infinity when the table has no partition yet (everything is in its default partition:
// nothing was ever dropped) or its run starts at MINVALUE.
SourceStarts read_held_from(ConnectionPool& pool) {
    const Result r = pool.query(
        "SELECT p.i, CASE WHEN isfinite(x.lo) THEN (extract(epoch FROM x.lo) * 1000000)::bigint "
        "END, CASE WHEN isfinite(x.hi) THEN (extract(epoch FROM x.hi) * 1000000)::bigint END "
        "FROM unnest(array['readings', 'readings_1m', 'readings_15m', 'readings_1h', "
        "'readings_6h']) WITH ORDINALITY p(parent, i) CROSS JOIN LATERAL "
        "rill_partitions(p.parent::regclass) x "
        "ORDER BY 1, 2",
        {}, "read the partitions of readings and its rollups");
    SourceStarts out;
    out.fill(minus_infinity);
    SourceStarts run_lo{};
    std::array<bool, std::tuple_size_v<SourceStarts>> seen{};
    for (int row = 0; row < r.rows(); ++row) {
        const auto i = static_cast<std::size_t>(int_at(r, row, 0) - 1);
        if (i >= out.size()) continue;
        const auto lo = r.is_null(row, 1) ? minus_infinity : int_at(r, row, 1);
        // Rows come oldest first: a partition that does not start where the run ended starts
        // a new run.
        if (!seen[i] || lo != run_lo[i]) out[i] = lo;
        seen[i] = true;
        run_lo[i] =
            r.is_null(row, 2) ? std::numeric_limits<std::int64_t>::max() : int_at(r, row, 2);
    }
    return out;
}

// The fields of a binary result (PostgreSQL's send format, big-endian).
std::uint64_t be_bits(const Result& r, int row, int col, std::size_t size) {
    const auto v = r.value(row, col);
    if (v.size() != size) {
        throw StoreError(ErrorKind::permanent, "",
                         "read a series of readings: column " + std::to_string(col + 1) + " has " +
                             std::to_string(v.size()) + " bytes, not " + std::to_string(size));
    }
    std::uint64_t bits = 0;
    for (const char c : v)
        bits = bits << 8 | static_cast<unsigned char>(c);
    return bits;
}

std::int64_t bin_int8(const Result& r, int row, int col) {
    return std::bit_cast<std::int64_t>(be_bits(r, row, col, 8));
}

double bin_float8(const Result& r, int row, int col) {
    if (r.is_null(row, col)) return std::nan("");
    return std::bit_cast<double>(be_bits(r, row, col, 8));
}

// A real as the double its text form reads back as (what a text result gave, and what every
// other reader returns): the shortest decimal that round-trips the float32, as PostgreSQL
// prints it, parsed as a double. Not the float32 widened, which differs in the low bits.
double bin_float4(const Result& r, int row, int col) {
    if (r.is_null(row, col)) return std::nan("");
    const auto f = std::bit_cast<float>(static_cast<std::uint32_t>(be_bits(r, row, col, 4)));
    if (!std::isfinite(f)) return f;
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
    double d = 0;
    std::from_chars(buf, end, d);
    return d;
}

// timestamptz: microseconds since PostgreSQL's epoch.
Timestamp bin_timestamptz(const Result& r, int row, int col) {
    const auto v = bin_int8(r, row, col);
    if (v > std::numeric_limits<std::int64_t>::max() - detail::pg_epoch_offset_us) {  // +infinity
        throw StoreError(ErrorKind::permanent, "",
                         "read a series of readings: a bucket at infinity");
    }
    return Timestamp{microseconds{v + detail::pg_epoch_offset_us}};
}

// The rows of a series statement in binary: sensor text, bucket timestamptz, t_avg float8,
// t_min and t_max real, h_avg float8, h_min and h_max real, count int8. They come by sensor
// (the statement's order of sensors), then time; the rollup statement has that order from its
// plan (a nested loop over the sensors in order, each sensor's buckets sorted) and not from
// an ORDER BY, which would sort every bucket again by the sensor's collation. Should a plan
// ever break it (a sensor seen again after another one, or time going back within a
// sensor), the buckets are sorted here, by sensor bytes, then time.
std::vector<SeriesBucket> series_rows(const Result& r) {
    std::vector<SeriesBucket> out;
    const int rows = r.rows();
    out.reserve(static_cast<std::size_t>(rows));
    bool ordered = true;
    std::vector<std::string_view> done;
    for (int i = 0; i < rows; ++i) {
        SeriesBucket b{.sensor = std::string(r.value(i, 0)),
                       .ts = bin_timestamptz(r, i, 1),
                       .t_avg = bin_float8(r, i, 2),
                       .t_min = bin_float4(r, i, 3),
                       .t_max = bin_float4(r, i, 4),
                       .h_avg = bin_float8(r, i, 5),
                       .h_min = bin_float4(r, i, 6),
                       .h_max = bin_float4(r, i, 7),
                       .count = bin_int8(r, i, 8)};
        if (!out.empty() && ordered) {
            const auto& prev = out.back();
            if (prev.sensor == b.sensor) {
                ordered = prev.ts < b.ts;
            } else {
                done.push_back(r.value(i - 1, 0));
                ordered = std::find(done.begin(), done.end(), r.value(i, 0)) == done.end();
            }
        }
        out.push_back(std::move(b));
    }
    if (!ordered) {
        std::sort(out.begin(), out.end(), [](const SeriesBucket& a, const SeriesBucket& b) {
            return std::tie(a.sensor, a.ts) < std::tie(b.sensor, b.ts);
        });
    }
    return out;
}

}  // namespace

std::string_view to_string(SeriesSource s) noexcept {
    switch (s) {
        case SeriesSource::minute:
            return "1m";
        case SeriesSource::fifteen_minutes:
            return "15m";
        case SeriesSource::hour:
            return "1h";
        case SeriesSource::six_hours:
            return "6h";
        case SeriesSource::raw:
            break;
    }
    return "raw";
}

std::chrono::microseconds granularity(SeriesSource s) noexcept {
    switch (s) {
        case SeriesSource::minute:
            return minutes{1};
        case SeriesSource::fifteen_minutes:
            return minutes{15};
        case SeriesSource::hour:
            return hours{1};
        case SeriesSource::six_hours:
            return hours{6};
        case SeriesSource::raw:
            break;
    }
    return microseconds{0};
}

std::chrono::microseconds series_bucket_width(std::chrono::microseconds range,
                                              std::size_t points) noexcept {
    const auto n = static_cast<std::int64_t>(std::max<std::size_t>(points, 1));
    const auto wanted = (std::max<std::int64_t>(range.count(), 0) + n - 1) / n;
    for (const auto w : ladder) {
        if (w.count() >= wanted) return w;
    }
    return ladder.back();
}

std::array<std::int64_t, 5> Reader::held_from() {
    const std::lock_guard lock(held_mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (!held_at_ || now - *held_at_ >= partitions_ttl_) {
        held_ = read_held_from(*pool_);
        held_at_ = now;
    }
    return held_;
}

Series Reader::series(const SeriesQuery& q) {
    const auto range = std::chrono::duration_cast<microseconds>(q.to - q.from);
    const auto wanted = series_bucket_width(range, q.points);
    Series out;
    if (q.source) {
        out.source = *q.source;
    } else {
        // The coarsest source whose granularity divides the width, then coarser ones while
        // the chosen one no longer holds the range's start.
        out.source = SeriesSource::raw;
        for (const auto s : sources) {
            const auto g = granularity(s);
            if (g.count() > 0 && wanted % g == microseconds{0}) out.source = s;
        }
        if (out.source != sources.back()) {
            const auto held = held_from();
            for (auto i = static_cast<std::size_t>(out.source); i < sources.size(); ++i) {
                out.source = sources[i];
                const auto w = width_for(out.source, wanted).count();
                if (held[i] <= align_down(q.from.time_since_epoch().count(), w)) break;
            }
        }
    }
    out.bucket = width_for(out.source, wanted);
    const auto w = out.bucket.count();
    out.from = Timestamp{microseconds{align_down(q.from.time_since_epoch().count(), w)}};
    out.to = Timestamp{microseconds{align_up(q.to.time_since_epoch().count(), w)}};

    std::vector<std::string> params = {std::to_string(w) + " microseconds", to_iso8601(out.from),
                                       to_iso8601(out.to)};
    std::string sql;
    if (out.source == SeriesSource::raw) {
        std::string where = "ts >= $2::timestamptz AND ts < $3::timestamptz";
        if (q.sensor) where = "sensor = " + param(params, *q.sensor) + "::text AND " + where;
        sql =
            "SELECT sensor, b, t_avg, t_min, t_max, h_avg, h_min, h_max, n FROM (SELECT "
            "sensor, date_bin($1::interval, ts, "
            "$2::timestamptz) AS b, avg(temperature::float8) AS t_avg, min(temperature) AS "
            "t_min, max(temperature) AS t_max, avg(humidity::float8) AS h_avg, min(humidity) AS "
            "h_min, max(humidity) AS h_max, count(*) AS n FROM readings WHERE " +
            where + " GROUP BY 1, 2) g ORDER BY 1, 2";
    } else {
        // Per sensor one range scan of the rollup's (sensor, bucket) key in the partitions of
        // the range. The sensors come from a loose index scan of readings_6h (few partitions,
        // kept longest; every sensor with rollups has a row there), in order; each sensor's
        // buckets are sorted in its lateral subquery, so the answer comes by sensor, then time,
        // without a sort of the whole answer (series_rows checks it). The counts are summed as
        // float8 for the averages (exact below 2^53; a bigint sum would be numeric, which the
        // division turns into float8 through its text), n as bigint.
        static const std::string all_sensors = detail::distinct_sensors_cte("readings_6h");
        const std::string sensors =
            q.sensor ? "WITH s(sensor) AS (SELECT " + param(params, *q.sensor) + "::text) "
                     : all_sensors;
        sql = sensors +
              "SELECT s.sensor, g.b, g.t_sum / nullif(g.t_n, 0), g.t_min, g.t_max, g.h_sum / "
              "nullif(g.h_n, 0), g.h_min, g.h_max, g.n FROM s CROSS JOIN LATERAL (SELECT "
              "date_bin($1::interval, r.bucket, $2::timestamptz) AS b, sum(r.n)::bigint AS n, "
              "sum(r.t_sum) AS t_sum, sum(r.t_n::float8) AS t_n, min(r.t_min) AS t_min, "
              "max(r.t_max) AS t_max, sum(r.h_sum) AS h_sum, sum(r.h_n::float8) AS h_n, "
              "min(r.h_min) AS h_min, max(r.h_max) AS h_max FROM " +
              table_of(out.source) +
              " r WHERE r.sensor = s.sensor AND r.bucket >= $2::timestamptz AND r.bucket < "
              "$3::timestamptz GROUP BY 1 ORDER BY 1) g WHERE s.sensor IS NOT NULL AND g.n > 0";
    }
    out.buckets =
        series_rows(pool_->query(sql, params, "read a series of readings", ResultFormat::binary));
    return out;
}

}  // namespace rill::store
