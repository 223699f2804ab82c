// A throwaway PostgreSQL server for tests: initdb in a temporary directory, run as the
// `postgres` user when the tests run as root (PostgreSQL refuses root), reachable on a Unix
// socket in that directory and, when asked, on a free loopback TCP port. Stopped and deleted
// by the destructor, also when a test fails.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace rill::test {

class TempPostgres {
  public:
    struct Options {
        bool tcp = false;    ///< also listen on 127.0.0.1 on a free port
        bool fsync = false;  ///< off by default: tests want speed, not durability
        std::string listen;  ///< listen_addresses override (for network namespaces); when
                             ///< set, pg_hba.conf also trusts TCP clients from anywhere
        std::string netns;   ///< run the server inside this network namespace (`ip netns`)
    };

    TempPostgres();
    explicit TempPostgres(Options options);
    ~TempPostgres();
    TempPostgres(const TempPostgres&) = delete;
    TempPostgres& operator=(const TempPostgres&) = delete;

    /// A libpq connection string for database `db` (default: "rill", created at start).
    [[nodiscard]] std::string conninfo(const std::string& db = "rill") const;
    /// A libpq connection string over TCP to `host` (e.g. the address of the namespace the
    /// server runs in) on port(); needs Options::tcp or Options::listen.
    [[nodiscard]] std::string tcp_conninfo(const std::string& host,
                                           const std::string& db = "rill") const;
    /// The same as a postgresql:// URL, for DATABASE_URL.
    [[nodiscard]] std::string url(const std::string& db = "rill") const;
    [[nodiscard]] int port() const noexcept { return port_; }
    [[nodiscard]] const std::string& socket_dir() const noexcept { return dir_; }

    void start();
    /// Stops the server; `immediate` is a crash-like stop (no checkpoint).
    void stop(bool immediate = false);
    [[nodiscard]] bool running() const noexcept { return running_; }

    /// Runs SQL through libpq on database `db`; throws with the server's message on error.
    void execute(const std::string& sql, const std::string& db = "rill") const;
    /// Runs a query and returns the first column of every row as text ("" for NULL).
    [[nodiscard]] std::vector<std::string> column(const std::string& sql,
                                                  const std::string& db = "rill") const;
    /// Runs a query returning one value.
    [[nodiscard]] std::string value(const std::string& sql, const std::string& db = "rill") const;

  private:
    void as_owner(const std::vector<std::string>& argv, const std::string& what) const;

    Options options_;
    std::string dir_;
    std::string data_;
    int port_ = 5432;
    bool running_ = false;
};

/// Recomputes the 1-minute, 15-minute, 1-hour and 6-hour rollups of every raw row of `readings`
/// (what the writer keeps, and what migrations 2 and 3 compute for an upgraded table), for tests
/// that insert raw rows by SQL.
void roll_up(const TempPostgres& pg);

}  // namespace rill::test
