#include <doctest/doctest.h>

#include <libpq-fe.h>

#include "rill/store.hpp"
#include "support/postgres.hpp"

using rill::store::Connection;
using rill::store::ErrorKind;
using rill::store::StoreError;
using rill::test::TempPostgres;

TEST_CASE("sqlstates are classified as transient or permanent") {
    using rill::store::classify_sqlstate;
    CHECK(classify_sqlstate("") == ErrorKind::transient);
    CHECK(classify_sqlstate("08006") == ErrorKind::transient);  // connection failure
    CHECK(classify_sqlstate("57P01") == ErrorKind::transient);  // admin shutdown
    CHECK(classify_sqlstate("57P03") == ErrorKind::transient);  // cannot connect now
    CHECK(classify_sqlstate("53300") == ErrorKind::transient);  // too many connections
    CHECK(classify_sqlstate("40001") == ErrorKind::transient);  // serialization failure
    CHECK(classify_sqlstate("42601") == ErrorKind::permanent);  // syntax error
    CHECK(classify_sqlstate("42501") == ErrorKind::permanent);  // permission denied
    CHECK(classify_sqlstate("23505") == ErrorKind::permanent);  // unique violation
}

TEST_CASE("backoff grows exponentially up to its maximum and starts over after a reset") {
    using namespace std::chrono_literals;
    rill::store::Backoff b({.initial = 100ms, .max = 1000ms, .multiplier = 2.0});
    CHECK(b.next_delay() == 100ms);
    CHECK(b.next_delay() == 200ms);
    CHECK(b.next_delay() == 400ms);
    CHECK(b.next_delay() == 800ms);
    CHECK(b.next_delay() == 1000ms);
    CHECK(b.next_delay() == 1000ms);
    CHECK(b.failures() == 6);
    b.reset();
    CHECK(b.next_delay() == 100ms);
}

TEST_CASE("connecting to a server that is not running fails with a transient StoreError") {
    rill::test::TempDir dir("rill-nopg");
    try {
        (void)Connection::open("host=" + dir.path().string() + " port=5999 user=rill dbname=x");
        FAIL("connected to nothing");
    } catch (const StoreError& e) {
        CHECK(e.transient());
        CHECK(std::string(e.what()).find("cannot connect to PostgreSQL") != std::string::npos);
    }
}

TEST_CASE("bad SQL is a permanent StoreError naming the attempt, a lost session a transient one") {
    TempPostgres pg;
    auto conn = Connection::open(pg.conninfo());
    CHECK(conn.connected());
    CHECK(conn.exec("SELECT 40 + 2", "add").value(0, 0) == "42");
    try {
        (void)conn.exec("SELEC 1", "run the misspelt query");
        FAIL("bad SQL succeeded");
    } catch (const StoreError& e) {
        CHECK(e.kind() == ErrorKind::permanent);
        CHECK(e.sqlstate() == "42601");
        CHECK(std::string(e.what()).find("cannot run the misspelt query") == 0);
    }
    try {
        (void)Connection::open(pg.conninfo("no_such_db"));
        FAIL("connected to a missing database");
    } catch (const StoreError& e) {
        CHECK(e.kind() == ErrorKind::permanent);
    }
    // An administrator ends the session: the next statement fails, and retrying can help.
    const auto pid = std::to_string(PQbackendPID(conn.native()));
    pg.execute("SELECT pg_terminate_backend(" + pid + ")");
    try {
        (void)conn.exec("SELECT 1", "query after termination");
        FAIL("a terminated session answered");
    } catch (const StoreError& e) {
        CHECK(e.transient());
    }
    CHECK_FALSE(conn.connected());
    conn.close();
    CHECK(conn.native() == nullptr);
}

TEST_CASE("a binary result carries the fields in PostgreSQL's send format, a text one as text") {
    TempPostgres pg;
    auto conn = Connection::open(pg.conninfo());
    const std::string sql = "SELECT $1::bigint, 'ab'::text";
    const auto text = conn.exec_params(sql, {"258"}, "read as text");
    CHECK(text.value(0, 0) == "258");
    const auto binary =
        conn.exec_params(sql, {"258"}, "read as binary", rill::store::ResultFormat::binary);
    CHECK(binary.value(0, 0) == std::string_view("\0\0\0\0\0\0\1\2", 8));  // big-endian int8
    CHECK(binary.value(0, 1) == "ab");
}
