#include "db.hpp"

#include <cmath>
#include <cstdlib>

namespace rill::web {

namespace {

using namespace std::chrono_literals;

constexpr auto connect_backoff = 500ms;
constexpr auto pool_wait = 5s;

std::string trimmed(const char* msg) {
    std::string s = msg ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

std::string iso(Timestamp t) {
    return to_iso8601(t);
}

Timestamp ts_at(const PGresult* r, int row, int col) {
    return Timestamp{std::chrono::microseconds{std::strtoll(PQgetvalue(r, row, col), nullptr, 10)}};
}
double dbl(const PGresult* r, int row, int col) {
    if (PQgetisnull(r, row, col)) return std::nan("");
    return std::strtod(PQgetvalue(r, row, col), nullptr);
}
double rounded(double v) {
    return std::round(v * 1000.0) / 1000.0;
}

// Newest-first rows of each sensor in `sensors` (a CTE named s with one column, sensor).
constexpr const char* distinct_sensors =
    "WITH RECURSIVE s(sensor) AS ("
    " (SELECT sensor FROM readings ORDER BY sensor LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT r.sensor FROM readings r WHERE r.sensor > s.sensor"
    " ORDER BY r.sensor LIMIT 1) FROM s WHERE s.sensor IS NOT NULL) ";

constexpr const char* ts_us = "(extract(epoch FROM x.ts) * 1000000)::bigint";

}  // namespace

Database::Database(std::string conninfo, std::size_t max_connections)
    : conninfo_(std::move(conninfo)), max_(std::max<std::size_t>(max_connections, 1)) {}

Database::~Database() = default;

PgConn Database::acquire() {
    {
        std::unique_lock lock(mutex_);
        const bool ok =
            cv_.wait_for(lock, pool_wait, [&] { return !idle_.empty() || open_ < max_; });
        if (!ok) {
            throw DbUnavailable("all " + std::to_string(max_) + " database connections are busy");
        }
        if (!idle_.empty()) {
            PgConn c = std::move(idle_.back());
            idle_.pop_back();
            return c;
        }
        if (std::chrono::steady_clock::now() < retry_after_) {
            throw DbUnavailable("cannot connect to the database: " + last_error_);
        }
        ++open_;
    }
    // Connect outside the lock: it may take up to connect_timeout.
    const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {"3", "web-view", conninfo_.c_str(), nullptr};
    PgConn c(PQconnectdbParams(keys, values, 1));
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
        const std::string why = c ? trimmed(PQerrorMessage(c.get())) : "out of memory";
        {
            std::lock_guard lock(mutex_);
            --open_;
            last_error_ = why;
            retry_after_ = std::chrono::steady_clock::now() + connect_backoff;
        }
        cv_.notify_one();
        throw DbUnavailable("cannot connect to the database: " + why);
    }
    PgResult r(PQexec(c.get(), "SET statement_timeout = '15s'"));
    return c;
}

void Database::release(PgConn conn) {
    {
        std::lock_guard lock(mutex_);
        if (conn && PQstatus(conn.get()) == CONNECTION_OK &&
            PQtransactionStatus(conn.get()) == PQTRANS_IDLE) {
            idle_.push_back(std::move(conn));
        } else {
            --open_;
        }
    }
    cv_.notify_one();
}

PgResult Database::query(const std::string& sql,
                         const std::vector<std::optional<std::string>>& params) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params)
        values.push_back(p ? p->c_str() : nullptr);
    for (int attempt = 0;; ++attempt) {
        PgConn c = acquire();
        PgResult r(PQexecParams(c.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, 0));
        const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            release(std::move(c));
            return r;
        }
        const std::string why = trimmed(PQerrorMessage(c.get()));
        const bool broken = PQstatus(c.get()) != CONNECTION_OK;
        if (broken) {
            c.reset();
            {
                // The server went away: the other idle connections are dead as well.
                std::lock_guard lock(mutex_);
                open_ -= idle_.size();
                idle_.clear();
            }
            release(nullptr);
            if (attempt == 0) continue;  // a pooled connection died: one fresh try
            throw DbUnavailable("the database connection failed: " + why);
        }
        release(std::move(c));
        // Shutdown and "cannot connect now" errors mean unavailable, not a bad query.
        const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
        if (state && (std::string_view(state).substr(0, 2) == "57" ||
                      std::string_view(state).substr(0, 2) == "08")) {
            throw DbUnavailable("the database is unavailable: " + why);
        }
        throw std::runtime_error("query failed: " + why);
    }
}

std::optional<std::string> Database::ping() noexcept {
    try {
        (void)query("SELECT 1");
        return std::nullopt;
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
}

Statement latest_statement(std::size_t max_sensors) {
    Statement st;
    st.sql = std::string(distinct_sensors) + "SELECT x.sensor, x.seq, " + ts_us +
             ", x.temperature, x.humidity FROM s CROSS JOIN LATERAL ("
             "SELECT r.sensor, r.seq, r.ts, r.temperature, r.humidity FROM readings r"
             " WHERE r.sensor = s.sensor ORDER BY r.ts DESC, r.seq DESC LIMIT 1) x"
             " ORDER BY x.sensor LIMIT $1";
    st.params = {std::to_string(max_sensors)};
    return st;
}

std::vector<Latest> latest_per_sensor(Database& db, std::size_t max_sensors) {
    const auto st = latest_statement(max_sensors);
    const auto r = db.query(st.sql, st.params);
    std::vector<Latest> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Latest l;
        l.sensor = PQgetvalue(r.get(), i, 0);
        l.seq = std::strtoll(PQgetvalue(r.get(), i, 1), nullptr, 10);
        l.ts = ts_at(r.get(), i, 2);
        l.temperature = dbl(r.get(), i, 3);
        l.humidity = dbl(r.get(), i, 4);
        out.push_back(std::move(l));
    }
    return out;
}

Statement readings_statement(const ReadingsQuery& q, long long fetch) {
    Statement st;
    auto param = [&](std::optional<std::string> v) {
        st.params.push_back(std::move(v));
        return "$" + std::to_string(st.params.size());
    };
    std::string where = "r.sensor = s.sensor";
    if (q.from) where += " AND r.ts >= " + param(iso(*q.from)) + "::timestamptz";
    if (q.to) where += " AND r.ts < " + param(iso(*q.to)) + "::timestamptz";
    if (q.cursor) {
        const auto cts = param(iso(q.cursor->ts));
        const auto cs = param(q.cursor->sensor);
        const auto cseq = param(std::to_string(q.cursor->seq));
        // The first condition lets the (sensor, ts desc) index start at the cursor.
        where += " AND r.ts <= " + cts + "::timestamptz AND (r.ts, r.sensor, r.seq) < (" + cts +
                 "::timestamptz, " + cs + "::text, " + cseq + "::bigint)";
    }
    const auto n = param(std::to_string(fetch));
    std::string sensors;
    if (q.sensor) {
        sensors = "WITH s(sensor) AS (SELECT " + param(*q.sensor) + "::text) ";
    } else {
        sensors = distinct_sensors;
    }
    st.sql = sensors + "SELECT x.sensor, x.seq, " + ts_us +
             ", x.temperature, x.humidity, x.extra::text FROM s CROSS JOIN LATERAL ("
             "SELECT r.sensor, r.seq, r.ts, r.temperature, r.humidity, r.extra FROM readings r"
             " WHERE " +
             where + " ORDER BY r.ts DESC, r.seq DESC LIMIT " + n +
             "::bigint) x"
             " ORDER BY x.ts DESC, x.sensor DESC, x.seq DESC LIMIT " +
             n + "::bigint";
    return st;
}

Page readings_page(Database& db, const ReadingsQuery& q) {
    const auto st = readings_statement(q, q.limit + 1);
    const auto r = db.query(st.sql, st.params);
    Page page;
    const int n = PQntuples(r.get());
    for (int i = 0; i < n && i < q.limit; ++i) {
        Row row;
        row.sensor = PQgetvalue(r.get(), i, 0);
        row.seq = std::strtoll(PQgetvalue(r.get(), i, 1), nullptr, 10);
        row.ts = ts_at(r.get(), i, 2);
        row.temperature = dbl(r.get(), i, 3);
        row.humidity = dbl(r.get(), i, 4);
        if (!PQgetisnull(r.get(), i, 5)) row.extra = PQgetvalue(r.get(), i, 5);
        page.rows.push_back(std::move(row));
    }
    if (n > q.limit && !page.rows.empty()) {
        const auto& last = page.rows.back();
        page.next = Cursor{last.ts, last.sensor, last.seq};
    }
    return page;
}

Statement series_statement(const SeriesQuery& q) {
    Statement st;
    st.params = {std::to_string(q.bucket().count()) + " microseconds", iso(q.from), iso(q.to)};
    std::string where = "ts >= $2::timestamptz AND ts < $3::timestamptz";
    if (q.sensor) {
        st.params.push_back(*q.sensor);
        where = "sensor = $4::text AND " + where;
    }
    st.sql =
        "SELECT sensor, (extract(epoch FROM b) * 1000000)::bigint, t_avg, t_min, t_max, h_avg, "
        "h_min, h_max, n FROM (SELECT sensor, date_bin($1::interval, ts, $2::timestamptz) AS b,"
        " avg(temperature) AS t_avg, min(temperature) AS t_min, max(temperature) AS t_max,"
        " avg(humidity) AS h_avg, min(humidity) AS h_min, max(humidity) AS h_max, count(*) AS n"
        " FROM readings WHERE " +
        where + " GROUP BY 1, 2) g ORDER BY 1, 2";
    return st;
}

std::vector<Bucket> series(Database& db, const SeriesQuery& q) {
    const auto st = series_statement(q);
    const auto r = db.query(st.sql, st.params);
    std::vector<Bucket> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        Bucket b;
        b.sensor = PQgetvalue(r.get(), i, 0);
        b.ts = ts_at(r.get(), i, 1);
        b.t_avg = rounded(dbl(r.get(), i, 2));
        b.t_min = dbl(r.get(), i, 3);
        b.t_max = dbl(r.get(), i, 4);
        b.h_avg = rounded(dbl(r.get(), i, 5));
        b.h_min = dbl(r.get(), i, 6);
        b.h_max = dbl(r.get(), i, 7);
        b.count = std::strtoll(PQgetvalue(r.get(), i, 8), nullptr, 10);
        out.push_back(std::move(b));
    }
    return out;
}

}  // namespace rill::web
