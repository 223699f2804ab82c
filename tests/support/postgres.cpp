#include "support/postgres.hpp"

#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace rill::test {

namespace {

constexpr const char* pg_bin = "/usr/lib/postgresql/15/bin/";

// A loopback TCP port that was free a moment ago.
int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
    }
    const int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

struct ConnDeleter {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct ResultDeleter {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
using Result = std::unique_ptr<PGresult, ResultDeleter>;

Conn connect(const std::string& conninfo) {
    Conn c(PQconnectdb(conninfo.c_str()));
    if (PQstatus(c.get()) != CONNECTION_OK) {
        throw std::runtime_error("cannot connect to test PostgreSQL (" + conninfo +
                                 "): " + PQerrorMessage(c.get()));
    }
    return c;
}

Result exec(const std::string& conninfo, const std::string& sql) {
    auto c = connect(conninfo);
    Result r(PQexec(c.get(), sql.c_str()));
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        throw std::runtime_error("test SQL failed: " + sql + ": " + PQerrorMessage(c.get()));
    }
    return r;
}

bool is_root() {
    return geteuid() == 0;
}

}  // namespace

TempPostgres::TempPostgres() : TempPostgres(Options{}) {}

TempPostgres::TempPostgres(Options options) : options_(std::move(options)) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/rill-pg-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("cannot create a directory for PostgreSQL: " +
                                 std::string(std::strerror(errno)));
    }
    dir_ = pattern;
    data_ = dir_ + "/data";
    if (is_root()) {
        const passwd* pw = getpwnam("postgres");
        if (pw == nullptr) throw std::runtime_error("there is no 'postgres' user to run as");
        if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
            throw std::runtime_error("cannot give " + dir_ +
                                     " to postgres: " + std::strerror(errno));
        }
    }
    port_ = options_.tcp || !options_.listen.empty() ? free_port() : 5432;
    try {
        as_owner({std::string(pg_bin) + "initdb", "-D", data_, "-U", "rill", "--auth=trust", "-E",
                  "UTF8", "--no-sync"},
                 "initdb");
        if (!options_.listen.empty()) {
            // Clients in other network namespaces come from their own addresses.
            as_owner(
                {"sh", "-c", "echo 'host all all 0.0.0.0/0 trust' >> " + data_ + "/pg_hba.conf"},
                "pg_hba.conf update");
        }
        start();
        execute("CREATE DATABASE rill", "postgres");
    } catch (...) {
        stop(true);
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        throw;
    }
}

TempPostgres::~TempPostgres() {
    try {
        stop(true);
    } catch (...) {
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void TempPostgres::as_owner(const std::vector<std::string>& argv, const std::string& what) const {
    std::vector<std::string> cmd;
    if (!options_.netns.empty()) cmd = {"ip", "netns", "exec", options_.netns};
    if (is_root()) cmd.insert(cmd.end(), {"runuser", "-u", "postgres", "--"});
    cmd.insert(cmd.end(), argv.begin(), argv.end());
    std::string out;
    const int code = run_command(cmd, std::chrono::seconds(120), &out);
    if (code != 0) {
        throw std::runtime_error("PostgreSQL " + what + " failed (exit " + std::to_string(code) +
                                 "): " + out);
    }
}

void TempPostgres::start() {
    if (running_) return;
    std::string listen = options_.listen;
    if (listen.empty()) listen = options_.tcp ? "127.0.0.1" : "";
    const std::string opts = "-k " + dir_ + " -p " + std::to_string(port_) +
                             " -c listen_addresses='" + listen +
                             "' -c fsync=" + (options_.fsync ? "on" : "off") +
                             " -c full_page_writes=off -c max_connections=100";
    as_owner({std::string(pg_bin) + "pg_ctl", "-D", data_, "-l", dir_ + "/postgres.log", "-w", "-t",
              "60", "-o", opts, "start"},
             "start");
    running_ = true;
}

void TempPostgres::stop(bool immediate) {
    if (!running_) return;
    running_ = false;
    as_owner({std::string(pg_bin) + "pg_ctl", "-D", data_, "-w", "-t", "60", "-m",
              immediate ? "immediate" : "fast", "stop"},
             "stop");
}

std::string TempPostgres::conninfo(const std::string& db) const {
    return "host=" + dir_ + " port=" + std::to_string(port_) + " user=rill dbname=" + db;
}

std::string TempPostgres::tcp_conninfo(const std::string& host, const std::string& db) const {
    return "host=" + host + " port=" + std::to_string(port_) + " user=rill dbname=" + db;
}

std::string TempPostgres::url(const std::string& db) const {
    return "postgresql:///" + db + "?host=" + dir_ + "&port=" + std::to_string(port_) +
           "&user=rill";
}

void TempPostgres::execute(const std::string& sql, const std::string& db) const {
    (void)exec(conninfo(db), sql);
}

std::vector<std::string> TempPostgres::column(const std::string& sql, const std::string& db) const {
    const auto r = exec(conninfo(db), sql);
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
        out.emplace_back(PQgetisnull(r.get(), i, 0) ? "" : PQgetvalue(r.get(), i, 0));
    }
    return out;
}

std::string TempPostgres::value(const std::string& sql, const std::string& db) const {
    const auto rows = column(sql, db);
    if (rows.size() != 1) {
        throw std::runtime_error("expected one row from: " + sql + ", got " +
                                 std::to_string(rows.size()));
    }
    return rows.front();
}

void roll_up(const TempPostgres& pg) {
    pg.execute(
        "TRUNCATE readings_1m, readings_15m, readings_1h, readings_6h; "
        "INSERT INTO readings_1m SELECT sensor, date_trunc('minute', ts, 'UTC'), count(*), "
        "coalesce(sum(temperature::float8), 0), min(temperature), max(temperature), "
        "coalesce(sum(humidity::float8), 0), min(humidity), max(humidity), count(temperature), "
        "count(humidity) FROM readings GROUP BY 1, 2; "
        "INSERT INTO readings_15m SELECT sensor, date_bin('15 minutes', bucket, timestamptz "
        "'1970-01-01 00:00:00+00'), sum(n), sum(t_sum), min(t_min), max(t_max), sum(h_sum), "
        "min(h_min), max(h_max), sum(t_n), sum(h_n) FROM readings_1m GROUP BY 1, 2; "
        "INSERT INTO readings_1h SELECT sensor, date_trunc('hour', bucket, 'UTC'), sum(n), "
        "sum(t_sum), min(t_min), max(t_max), sum(h_sum), min(h_min), max(h_max), sum(t_n), "
        "sum(h_n) FROM readings_1m GROUP BY 1, 2; "
        "INSERT INTO readings_6h SELECT sensor, date_bin('6 hours', bucket, timestamptz "
        "'1970-01-01 00:00:00+00'), sum(n), sum(t_sum), min(t_min), max(t_max), sum(h_sum), "
        "min(h_min), max(h_max), sum(t_n), sum(h_n) FROM readings_1h GROUP BY 1, 2");
}

}  // namespace rill::test
