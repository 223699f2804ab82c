// Owning libpq wrappers, error classification and reconnect backoff.
#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

#include "rill/log.hpp"
#include "rill/store.hpp"

namespace rill::store {

namespace {

// The SQLSTATE of a failed result, "" when the failure had none (e.g. a lost connection).
std::string sqlstate_of(const PGresult* r) {
    const char* s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    return s ? s : "";
}

// Builds the StoreError for a failed operation on `c` (with `r` its result, if any).
[[noreturn]] void fail(PGconn* c, const PGresult* r, std::string_view what) {
    std::string state = sqlstate_of(r);
    std::string msg = r ? PQresultErrorMessage(r) : "";
    if (msg.empty()) msg = c ? PQerrorMessage(c) : "no connection";
    // Whatever the code, a connection that libpq now considers broken can only be retried.
    const bool broken = c == nullptr || PQstatus(c) != CONNECTION_OK;
    const ErrorKind kind = broken ? ErrorKind::transient : classify_sqlstate(state);
    // libpq's messages span lines ("...\n\tIs the server running...?\n"): fold them.
    std::string text = "cannot " + std::string(what) + ": " + one_line(msg);
    if (!state.empty()) text += " (SQLSTATE " + state + ")";
    throw StoreError(kind, std::move(state), text);
}

// Connection-time failures carry no SQLSTATE; these messages mean retrying cannot help.
bool permanent_connect_failure(std::string_view msg) {
    constexpr std::array<std::string_view, 6> patterns = {
        "authentication failed", "does not exist",   "no pg_hba.conf entry", "invalid",
        "not permitted",         "permission denied"};
    return std::any_of(patterns.begin(), patterns.end(),
                       [&](std::string_view p) { return msg.find(p) != std::string_view::npos; });
}

// Server notices ("relation already exists, skipping") go to the debug log, not raw stderr.
void on_notice(void*, const char* message) {
    log_debug("store", message ? message : "");
}

}  // namespace

StoreError::StoreError(ErrorKind kind, std::string sqlstate, const std::string& message)
    : rill::SinkError(message, kind == ErrorKind::transient),
      kind_(kind),
      sqlstate_(std::move(sqlstate)) {}

ErrorKind classify_sqlstate(std::string_view s) noexcept {
    if (s.empty()) return ErrorKind::transient;            // no answer from the server
    if (s.starts_with("08")) return ErrorKind::transient;  // connection exception
    if (s.starts_with("53")) return ErrorKind::transient;  // insufficient resources
    if (s == "57P01" || s == "57P02" || s == "57P03" || s == "57P04") {
        return ErrorKind::transient;  // admin shutdown, crash shutdown, cannot connect now
    }
    if (s == "40001" || s == "40P01") return ErrorKind::transient;  // serialization, deadlock
    return ErrorKind::permanent;
}

void detail::ConnDeleter::operator()(pg_conn* c) const noexcept {
    PQfinish(c);
}
void detail::ResultDeleter::operator()(pg_result* r) const noexcept {
    PQclear(r);
}

int Result::rows() const noexcept {
    return r_ ? PQntuples(r_.get()) : 0;
}
int Result::columns() const noexcept {
    return r_ ? PQnfields(r_.get()) : 0;
}
bool Result::is_null(int row, int col) const noexcept {
    return PQgetisnull(r_.get(), row, col) != 0;
}
std::string_view Result::value(int row, int col) const noexcept {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
}
std::uint64_t Result::affected() const noexcept {
    const char* n = r_ ? PQcmdTuples(r_.get()) : nullptr;
    std::uint64_t v = 0;
    if (n && *n) std::from_chars(n, n + std::char_traits<char>::length(n), v);
    return v;
}

Connection Connection::open(const std::string& conninfo) {
    // Defaults first: the expanded conninfo / URL that follows overrides any of them.
    const std::array<const char*, 5> keys = {"client_encoding", "connect_timeout",
                                             "fallback_application_name", "dbname", nullptr};
    const std::array<const char*, 5> values = {"UTF8", "10", "rill", conninfo.c_str(), nullptr};
    Connection conn;
    conn.c_.reset(PQconnectdbParams(keys.data(), values.data(), 1));
    if (!conn.c_) throw StoreError(ErrorKind::transient, "", "cannot connect: out of memory");
    if (PQstatus(conn.c_.get()) != CONNECTION_OK) {
        const std::string msg = one_line(PQerrorMessage(conn.c_.get()));
        throw StoreError(
            permanent_connect_failure(msg) ? ErrorKind::permanent : ErrorKind::transient, "",
            "cannot connect to PostgreSQL: " + msg);
    }
    PQsetNoticeProcessor(conn.c_.get(), on_notice, nullptr);
    return conn;
}

bool Connection::connected() const noexcept {
    return c_ && PQstatus(c_.get()) == CONNECTION_OK;
}

Result Connection::exec(const std::string& sql, std::string_view what) {
    if (!c_)
        throw StoreError(ErrorKind::transient, "",
                         "cannot " + std::string(what) + ": not connected");
    Result r(PQexec(c_.get(), sql.c_str()));
    const auto st = PQresultStatus(r.native());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c_.get(), r.native(), what);
    return r;
}

Result Connection::exec_params(const std::string& sql, const std::vector<std::string>& params,
                               std::string_view what, ResultFormat format) {
    if (!c_)
        throw StoreError(ErrorKind::transient, "",
                         "cannot " + std::string(what) + ": not connected");
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params)
        values.push_back(p.c_str());
    Result r(PQexecParams(c_.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, format == ResultFormat::binary ? 1 : 0));
    const auto st = PQresultStatus(r.native());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(c_.get(), r.native(), what);
    return r;
}

std::uint64_t Connection::copy_in(const std::string& copy_sql, std::string_view data,
                                  std::string_view what) {
    if (!c_)
        throw StoreError(ErrorKind::transient, "",
                         "cannot " + std::string(what) + ": not connected");
    PGconn* c = c_.get();
    {
        Result start(PQexec(c, copy_sql.c_str()));
        if (PQresultStatus(start.native()) != PGRES_COPY_IN) fail(c, start.native(), what);
    }
    // Hand the payload to libpq in slices so its output buffer stays small.
    constexpr std::size_t slice = 256 * 1024;
    bool sent = true;
    for (std::size_t off = 0; off < data.size() && sent; off += slice) {
        const std::size_t n = std::min(slice, data.size() - off);
        sent = PQputCopyData(c, data.data() + off, static_cast<int>(n)) == 1;
    }
    if (sent) sent = PQputCopyEnd(c, nullptr) == 1;
    // Collect every result so the connection is idle again (or known broken) before returning.
    Result outcome;
    while (PGresult* r = PQgetResult(c)) {
        Result next(r);
        if (PQresultStatus(next.native()) == PGRES_COPY_IN) {  // the input was never ended
            outcome = std::move(next);
            break;
        }
        if (!outcome.native() || PQresultStatus(next.native()) != PGRES_COMMAND_OK) {
            outcome = std::move(next);
        }
        if (PQstatus(c) == CONNECTION_BAD) break;
    }
    if (!sent || !outcome.native() || PQresultStatus(outcome.native()) != PGRES_COMMAND_OK) {
        fail(c, outcome.native(), what);
    }
    return outcome.affected();
}

}  // namespace rill::store
