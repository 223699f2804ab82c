#include <doctest/doctest.h>

#include "support/postgres.hpp"

using rill::test::TempPostgres;

TEST_CASE("the test harness starts a throwaway PostgreSQL that answers queries") {
    TempPostgres pg;
    pg.execute("CREATE TABLE t (x int)");
    pg.execute("INSERT INTO t VALUES (1), (2)");
    CHECK(pg.value("SELECT sum(x) FROM t") == "3");
    CHECK(pg.column("SELECT x FROM t ORDER BY x") == std::vector<std::string>{"1", "2"});
}

TEST_CASE("the throwaway PostgreSQL keeps its data across a restart and can listen on TCP") {
    TempPostgres pg(TempPostgres::Options{.tcp = true});
    CHECK(pg.port() != 5432);
    pg.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    pg.stop();
    CHECK_THROWS(pg.execute("SELECT 1"));
    pg.start();
    CHECK(pg.value("SELECT x FROM t") == "7");
    const std::string tcp =
        "host=127.0.0.1 port=" + std::to_string(pg.port()) + " user=rill dbname=rill";
    std::string out;
    CHECK(rill::test::run_command({"psql", tcp, "-Atc", "SELECT x FROM t"},
                                  std::chrono::seconds(30), &out) == 0);
    CHECK(out == "7\n");
}
