// The 1-minute, 15-minute, 1-hour and 6-hour rollups: the aggregate math and upsert SQL both write
// paths share, the partitions made on demand, and check_rollups(), the proof that rollups equal the
// raw rows.
#include "rollup.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

namespace rill::store {

namespace detail {

namespace {

constexpr std::int64_t minute_us = 60'000'000;
constexpr std::int64_t day_us = 86'400'000'000;

// The rollup columns, in table order (t_n and h_n, the counts of measured values, came with
// migration 4).
constexpr std::string_view rollup_columns =
    "sensor, bucket, n, t_sum, t_min, t_max, h_sum, h_min, h_max, t_n, h_n";

// How an existing rollup row absorbs new readings: counts and sums add, extremes widen (least
// and greatest skip NULL, the extreme of a bucket with nothing measured).
std::string upsert_tail(std::string_view table) {
    std::string t(table);
    return "ON CONFLICT (sensor, bucket) DO UPDATE SET n = " + t + ".n + EXCLUDED.n, t_n = " + t +
           ".t_n + EXCLUDED.t_n, h_n = " + t + ".h_n + EXCLUDED.h_n, t_sum = " + t +
           ".t_sum + EXCLUDED.t_sum, t_min = least(" + t +
           ".t_min, EXCLUDED.t_min), t_max = greatest(" + t +
           ".t_max, EXCLUDED.t_max), h_sum = " + t + ".h_sum + EXCLUDED.h_sum, h_min = least(" + t +
           ".h_min, EXCLUDED.h_min), h_max = greatest(" + t + ".h_max, EXCLUDED.h_max)";
}

// Floor division: the bucket a time falls in, also for times before the epoch.
std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
    const std::int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// One quantity's aggregate within a minute: the count, sum, min and max of its measured values.
struct Quantity {
    std::uint64_t n = 0;
    double sum = 0;
    float min = 0, max = 0;
    void add(float v) noexcept {
        if (!is_measured(v)) return;
        min = n == 0 ? v : std::min(min, v);
        max = n == 0 ? v : std::max(max, v);
        sum += static_cast<double>(v);
        ++n;
    }
};

struct Minute {
    std::string_view sensor;
    std::int64_t bucket_s = 0;  // Unix seconds of the minute's start
    std::uint64_t n = 0;
    Quantity t, h;
};

struct MinuteKey {
    std::string_view sensor;
    std::int64_t minute;
    bool operator==(const MinuteKey&) const = default;
};

struct MinuteKeyHash {
    std::size_t operator()(const MinuteKey& k) const noexcept {
        // The product is 64-bit; a 32-bit size_t keeps its low half (a hash may).
        return std::hash<std::string_view>{}(k.sensor) ^
               static_cast<std::size_t>(std::hash<std::int64_t>{}(k.minute) *
                                        0x9E3779B97F4A7C15ULL);
    }
};

// Appends a number in the shortest form that reads back as the same value (float4 / float8
// input in PostgreSQL is correctly rounded).
template <typename T>
void append_number(std::string& out, T v) {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
}

// An extreme of `q` as an array element: NULL when nothing was measured.
void append_extreme(std::string& out, const Quantity& q, float v) {
    if (q.n == 0) {
        out += "NULL";
    } else {
        append_number(out, v);
    }
}

void append_array_text(std::string& out, std::string_view s) {
    out += '"';
    for (const char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += '"';
}

}  // namespace

std::string bucket_sql(std::string_view width, std::string_view column) {
    const std::string c(column);
    if (width == "1 minute") return "date_trunc('minute', " + c + ", 'UTC')";
    if (width == "1 hour") return "date_trunc('hour', " + c + ", 'UTC')";
    return "date_bin('" + std::string(width) + "', " + c +
           ", timestamptz '1970-01-01 00:00:00+00')";
}

std::string aggregate_raw(std::string_view width) {
    return "SELECT sensor, " + bucket_sql(width, "ts") +
           " AS bucket, count(*) AS n, coalesce(sum(temperature::float8), 0) AS "
           "t_sum, min(temperature) AS t_min, max(temperature) AS t_max, "
           "coalesce(sum(humidity::float8), 0) AS h_sum, min(humidity) AS h_min, max(humidity) "
           "AS h_max, count(temperature) AS t_n, count(humidity) AS h_n";
}

std::string rollup_statement(std::string_view ctes, std::string_view mins_select,
                             std::string_view final_select) {
    const std::string cols(rollup_columns);
    std::string sql = "WITH ";
    if (!ctes.empty()) sql += std::string(ctes) + ",\n";
    sql += "mins AS (" + std::string(mins_select) + "),\n";
    sql += "m AS (INSERT INTO readings_1m AS readings_1m (" + cols + ") SELECT " + cols +
           " FROM mins ORDER BY sensor, bucket " + upsert_tail("readings_1m") + "),\n";
    // The coarser levels, each grouped from the minutes: CTE name, table, bucket width.
    constexpr std::array<std::array<std::string_view, 3>, 3> coarser{{
        {"f", "readings_15m", "15 minutes"},
        {"h", "readings_1h", "1 hour"},
        {"q", "readings_6h", "6 hours"},
    }};
    for (std::size_t i = 0; i < coarser.size(); ++i) {
        const auto& [cte, table, width] = coarser[i];
        const std::string t(table);
        sql += std::string(cte) + " AS (INSERT INTO " + t + " AS " + t + " (" + cols +
               ") SELECT sensor, " + bucket_sql(width, "bucket") +
               ", sum(n), sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max), "
               "sum(t_n), sum(h_n) FROM mins GROUP BY 1, 2 ORDER BY 1, 2 " +
               upsert_tail(t) + (i + 1 < coarser.size() ? "),\n" : ")\n");
    }
    sql += final_select;
    return sql;
}

const std::string& upsert_minutes_sql() {
    static const std::string sql = rollup_statement(
        "",
        "SELECT u.sensor, to_timestamp(u.b) AS bucket, u.n, u.t_sum, u.t_min, u.t_max, u.h_sum, "
        "u.h_min, u.h_max, u.t_n, u.h_n FROM unnest($1::text[], $2::bigint[], $3::bigint[], "
        "$4::float8[], $5::real[], $6::real[], $7::float8[], $8::real[], $9::real[], "
        "$10::bigint[], $11::bigint[]) AS u(sensor, b, n, t_sum, t_min, t_max, h_sum, h_min, "
        "h_max, t_n, h_n)",
        "SELECT count(*) FROM mins");
    return sql;
}

const std::string& insert_staged_sql() {
    static const std::string sql = rollup_statement(
        "ins AS (INSERT INTO readings (" + std::string(copy_columns) + ") SELECT " +
            std::string(copy_columns) +
            " FROM rill_staging ON CONFLICT DO NOTHING RETURNING sensor, ts, temperature, "
            "humidity)",
        aggregate_raw("1 minute") + " FROM ins GROUP BY 1, 2", "SELECT count(*) FROM ins");
    return sql;
}

std::vector<std::string> minute_rollup_params(std::span<const Reading> batch) {
    std::vector<Minute> mins;
    std::unordered_map<MinuteKey, std::size_t, MinuteKeyHash> index;
    index.reserve(batch.size() / 8 + 16);
    for (const Reading& r : batch) {
        const std::int64_t minute = floor_div(r.ts.time_since_epoch().count(), minute_us);
        const auto [it, fresh] = index.try_emplace(MinuteKey{r.sensor, minute}, mins.size());
        if (fresh) mins.push_back(Minute{r.sensor, minute * 60, 0, {}, {}});
        Minute& m = mins[it->second];
        ++m.n;
        m.t.add(r.temperature);
        m.h.add(r.humidity);
    }
    std::sort(mins.begin(), mins.end(), [](const Minute& a, const Minute& b) {
        return a.sensor != b.sensor ? a.sensor < b.sensor : a.bucket_s < b.bucket_s;
    });
    std::vector<std::string> params(11, "{");
    for (std::size_t i = 0; i < mins.size(); ++i) {
        const Minute& m = mins[i];
        if (i > 0) {
            for (auto& p : params)
                p += ',';
        }
        append_array_text(params[0], m.sensor);
        append_number(params[1], m.bucket_s);
        append_number(params[2], m.n);
        append_number(params[3], m.t.sum);
        append_extreme(params[4], m.t, m.t.min);
        append_extreme(params[5], m.t, m.t.max);
        append_number(params[6], m.h.sum);
        append_extreme(params[7], m.h, m.h.min);
        append_extreme(params[8], m.h, m.h.max);
        append_number(params[9], m.t.n);
        append_number(params[10], m.h.n);
    }
    for (auto& p : params)
        p += '}';
    return params;
}

// --- partitions --------------------------------------------------------------------------------

namespace {

constexpr const char* partitions_sql = R"sql(
SELECT t,
       CASE WHEN p.lo = '-infinity' THEN NULL ELSE (extract(epoch FROM p.lo) * 1000000)::bigint END,
       CASE WHEN p.hi = 'infinity' THEN NULL ELSE (extract(epoch FROM p.hi) * 1000000)::bigint END
FROM unnest(ARRAY['readings', 'readings_1m', 'readings_15m', 'readings_1h', 'readings_6h']) AS t,
     LATERAL rill_partitions(t::regclass) AS p)sql";

std::int64_t int_or(const Result& r, int row, int col, std::int64_t fallback) {
    if (r.is_null(row, col)) return fallback;
    const auto text = r.value(row, col);
    std::int64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

Timestamp at_us(std::int64_t us) {
    return Timestamp{std::chrono::microseconds{us}};
}

// [start, end) of the calendar month / year holding UTC day `day` (days since the epoch), in
// Unix microseconds.
std::pair<std::int64_t, std::int64_t> month_of(std::int64_t day) {
    using namespace std::chrono;
    const year_month_day ymd{sys_days{days{day}}};
    const auto first = sys_days{ymd.year() / ymd.month() / 1};
    const auto next = sys_days{(ymd.year() / ymd.month() + months{1}) / 1};
    return {first.time_since_epoch().count() * day_us, next.time_since_epoch().count() * day_us};
}

std::pair<std::int64_t, std::int64_t> year_of(std::int64_t day) {
    using namespace std::chrono;
    const year_month_day ymd{sys_days{days{day}}};
    const auto first = sys_days{ymd.year() / January / 1};
    const auto next = sys_days{(ymd.year() + years{1}) / January / 1};
    return {first.time_since_epoch().count() * day_us, next.time_since_epoch().count() * day_us};
}

void ensure_range(Connection& conn, const char* table, std::int64_t lo, std::int64_t hi) {
    (void)conn.exec_params("SELECT rill_ensure_partitions($1::regclass, $2, $3)",
                           {table, to_iso8601(at_us(lo)), to_iso8601(at_us(hi))},
                           std::string("create the partitions of ") + table + " for " +
                               to_iso8601(at_us(lo)) + " .. " + to_iso8601(at_us(hi)));
}

}  // namespace

bool PartitionCache::covers(const std::vector<Range>& ranges, std::int64_t lo,
                            std::int64_t hi) noexcept {
    // As rill_ensure_partitions: a range that overlaps a partition counts as covered.
    return std::any_of(ranges.begin(), ranges.end(),
                       [&](const Range& r) { return r.first < hi && r.second > lo; });
}

void PartitionCache::clear() noexcept {
    loaded_ = false;
    partitioned_ = false;
    readings_.clear();
    minutes_.clear();
    quarters_.clear();
    hours_.clear();
    six_hours_.clear();
}

void PartitionCache::load(Connection& conn) {
    clear();
    const Result kind = conn.exec(
        "SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('readings')), "
        "false)",
        "check how readings is partitioned");
    partitioned_ = kind.rows() == 1 && kind.value(0, 0) == "t";
    if (partitioned_) {
        const Result r = conn.exec(partitions_sql, "list the partitions of readings");
        for (int i = 0; i < r.rows(); ++i) {
            const Range range{int_or(r, i, 1, INT64_MIN), int_or(r, i, 2, INT64_MAX)};
            const auto t = r.value(i, 0);
            auto& ranges = t == "readings"       ? readings_
                           : t == "readings_1m"  ? minutes_
                           : t == "readings_15m" ? quarters_
                           : t == "readings_1h"  ? hours_
                                                 : six_hours_;
            ranges.push_back(range);
        }
    }
    loaded_day_ = floor_div(rill::now().time_since_epoch().count(), day_us);
    loaded_ = true;
}

int PartitionCache::ensure(Connection& conn, std::span<const Reading> batch, Timestamp now) {
    const std::int64_t today = floor_div(now.time_since_epoch().count(), day_us);
    if (!loaded_ || today != loaded_day_) load(conn);  // a new day: retention may have run
    if (!partitioned_) return 0;
    std::set<std::int64_t> days{today + 1};  // tomorrow's partition before its first reading
    std::int64_t last = INT64_MIN;
    for (const Reading& r : batch) {
        const std::int64_t day = floor_div(r.ts.time_since_epoch().count(), day_us);
        if (day == last) continue;
        last = day;
        if (day <= today + partition_ahead_days) days.insert(day);
    }
    std::vector<Range> missing_days;
    std::set<std::int64_t> missing_months, missing_years;  // keyed by their start
    std::map<std::int64_t, std::int64_t> month_end, month15_end, year_end, year6_end;
    for (const std::int64_t d : days) {
        if (!covers(readings_, d * day_us, (d + 1) * day_us)) {
            if (!missing_days.empty() && missing_days.back().second == d * day_us) {
                missing_days.back().second = (d + 1) * day_us;
            } else {
                missing_days.emplace_back(d * day_us, (d + 1) * day_us);
            }
        }
        const auto m = month_of(d);
        if (!covers(minutes_, m.first, m.second)) month_end[m.first] = m.second;
        if (!covers(quarters_, m.first, m.second)) month15_end[m.first] = m.second;
        const auto y = year_of(d);
        if (!covers(hours_, y.first, y.second)) year_end[y.first] = y.second;
        if (!covers(six_hours_, y.first, y.second)) year6_end[y.first] = y.second;
    }
    if (missing_days.empty() && month_end.empty() && month15_end.empty() && year_end.empty() &&
        year6_end.empty()) {
        return 0;
    }
    for (const auto& [lo, hi] : missing_days)
        ensure_range(conn, "readings", lo, hi);
    for (const auto& [lo, hi] : month_end)
        ensure_range(conn, "readings_1m", lo, hi);
    for (const auto& [lo, hi] : month15_end)
        ensure_range(conn, "readings_15m", lo, hi);
    for (const auto& [lo, hi] : year_end)
        ensure_range(conn, "readings_1h", lo, hi);
    for (const auto& [lo, hi] : year6_end)
        ensure_range(conn, "readings_6h", lo, hi);
    const auto count = [this] {
        return readings_.size() + minutes_.size() + quarters_.size() + hours_.size() +
               six_hours_.size();
    };
    const std::size_t before = count();
    load(conn);
    return static_cast<int>(count() - before);
}

}  // namespace detail

// --- check_rollups -----------------------------------------------------------------------------

namespace {

// Per sensor and bucket of `width` ("1 minute", "15 minutes", "1 hour", "6 hours"): the rollup row
// of `table` next to an aggregate of the raw rows, within [$1, $2) widened to whole buckets of
// `wide` (a multiple of `width`); one row per bucket where they differ, naming what differs. A
// rollup bucket whose day no partition of readings covers any more (retention dropped the raw rows)
// is not checked (every width divides a day, so a bucket lies in one day).
std::string check_sql(std::string_view table, std::string_view width, std::string_view wide) {
    const std::string t(table);
    const std::string w(width);
    const std::string wd(wide);
    auto sum_differs = [](const std::string& c) {
        return "CASE WHEN abs(raw." + c + " - roll." + c + ") > 1e-6 * greatest(abs(raw." + c +
               "), abs(roll." + c + "), 1) THEN format('" + c + " raw %s rollup %s', raw." + c +
               ", roll." + c + ") END";
    };
    auto count_differs = [](const std::string& c) {
        return "CASE WHEN coalesce(raw." + c + ", 0) <> coalesce(roll." + c + ", 0) THEN format('" +
               c + " raw %s rollup %s', coalesce(raw." + c + ", 0), coalesce(roll." + c +
               ", 0)) END";
    };
    auto differs = [](const std::string& c) {
        return "CASE WHEN raw." + c + " IS DISTINCT FROM roll." + c + " THEN format('" + c +
               " raw %s rollup %s', raw." + c + ", roll." + c + ") END";
    };
    return R"sql(
WITH bounds AS (
    SELECT )sql" +
           detail::bucket_sql(wd, "$1::timestamptz") +
           R"sql( AS lo,
           )sql" +
           detail::bucket_sql(wd, "($2::timestamptz - interval '1 microsecond')") +
           " + interval '" + wd + R"sql(' AS hi),
raw AS (
    )sql" + detail::aggregate_raw(w) +
           R"sql(
    FROM readings, bounds WHERE ts >= bounds.lo AND ts < bounds.hi GROUP BY 1, 2),
roll AS (
    SELECT r.* FROM )sql" +
           t + R"sql( r, bounds WHERE r.bucket >= bounds.lo AND r.bucket < bounds.hi),
held AS (SELECT lo, hi FROM rill_partitions('readings')),
cmp AS (
    SELECT coalesce(raw.sensor, roll.sensor) AS sensor,
           coalesce(raw.bucket, roll.bucket) AS bucket,
           coalesce(raw.n, 0) AS raw_n, coalesce(roll.n, 0) AS roll_n,
           concat_ws('; ',
               CASE WHEN coalesce(raw.n, 0) <> coalesce(roll.n, 0)
                    THEN format('n raw %s rollup %s', coalesce(raw.n, 0), coalesce(roll.n, 0))
               END, )sql" +
           sum_differs("t_sum") + ", " + differs("t_min") + ", " + differs("t_max") + ", " +
           sum_differs("h_sum") + ", " + differs("h_min") + ", " + differs("h_max") + ", " +
           count_differs("t_n") + ", " + count_differs("h_n") + R"sql(
           ) AS detail
    FROM raw FULL JOIN roll ON raw.sensor = roll.sensor AND raw.bucket = roll.bucket
    WHERE raw.sensor IS NOT NULL
       OR EXISTS (SELECT 1 FROM held WHERE held.lo <= roll.bucket AND roll.bucket < held.hi))
SELECT sensor, (extract(epoch FROM bucket) * 1000000)::bigint, raw_n, roll_n, detail
FROM cmp WHERE detail <> '' ORDER BY 1, 2)sql";
}

std::uint64_t u64_at(const Result& r, int row, int col) {
    const auto text = r.value(row, col);
    std::uint64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

}  // namespace

std::vector<RollupMismatch> check_rollups(Connection& conn, std::optional<Timestamp> from,
                                          std::optional<Timestamp> to) {
    // An open bound is PostgreSQL's -infinity / infinity.
    const std::vector<std::string> bounds = {from ? to_iso8601(*from) : "-infinity",
                                             to ? to_iso8601(*to) : "infinity"};
    std::vector<RollupMismatch> out;
    struct Level {
        const char* table;
        const char* width;
        const char* wide;  // the range is widened to whole buckets of this
    };
    for (const auto& [table, width, wide] :
         {Level{"readings_1m", "1 minute", "1 hour"}, Level{"readings_15m", "15 minutes", "1 hour"},
          Level{"readings_1h", "1 hour", "1 hour"}, Level{"readings_6h", "6 hours", "6 hours"}}) {
        const Result r =
            conn.exec_params(check_sql(table, width, wide), bounds,
                             std::string("compare ") + table + " with the raw readings");
        for (int i = 0; i < r.rows(); ++i) {
            RollupMismatch m;
            m.table = table;
            m.sensor = std::string(r.value(i, 0));
            m.bucket = Timestamp{std::chrono::microseconds{detail::int_or(r, i, 1, 0)}};
            m.raw_n = u64_at(r, i, 2);
            m.rollup_n = u64_at(r, i, 3);
            m.detail = std::string(r.value(i, 4));
            out.push_back(std::move(m));
        }
    }
    return out;
}

std::string to_string(const RollupMismatch& m) {
    return m.table + " " + m.sensor + " " + to_iso8601(m.bucket) + ": " + m.detail;
}

}  // namespace rill::store
