// web-view refuses a port another web-view listens on, takes durations in the one flag syntax,
// and logs a database outage once when it starts and once when it ends.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "support/log_text.hpp"
#include "web_view_fixture.hpp"

using namespace std::chrono_literals;
using namespace rill::test;

namespace {

// The database is only reached when a request needs it: these tests never do.
const std::string nowhere_db = "host=/nonexistent dbname=rill connect_timeout=1";

}  // namespace

TEST_CASE("a second web-view on a port in use exits 1 with an error naming the address") {
    WebView first(nowhere_db);
    const std::string address = "127.0.0.1:" + std::to_string(first.port());
    TempDir dir("rill-web-listen");
    const auto log = (dir.path() / "second.log").string();
    Process second({bin("web-view"), "--db", nowhere_db, "--listen", address},
                   {.stdout_path = log, .stderr_path = log});
    const auto code = second.wait_for(30s);
    const auto text = read_file(log);
    INFO(text);
    REQUIRE(code.has_value());
    CHECK(*code == 1);
    CHECK(text.find("error web-view: cannot listen on " + address) != std::string::npos);
    CHECK(text.find("in use") != std::string::npos);
    CHECK(text.find("listening on") == std::string::npos);
    // The first one still answers alone.
    CHECK(first.process().running());
    CHECK(get(first, "/metrics")->status == 200);
}

TEST_CASE("web-view takes --stale-after and --silent-after as durations like every other flag") {
    WebView w(nowhere_db, {"--stale-after", "60s", "--silent-after", "1h30m"});
    CHECK(w.process().running());
}

TEST_CASE("web-view logs a database outage once when it starts and once when it ends") {
    TempPostgres pg;
    create_readings_table(pg);
    insert_row(pg, "garden", 1, rill::now(), 21.5, 40.0);
    // No read cache: every request below asks the database (a cached answer within the TTL
    // would be a 200, see api_test's cache test).
    WebView w(pg.conninfo(), {"--cache-ttl", "0"});
    REQUIRE(get(w, "/api/sensors")->status == 200);
    CHECK(count_of(w.log(), "database unavailable") == 0);

    pg.stop();
    for (const char* path : {"/api/sensors", "/api/readings", "/", "/api/sensors", "/healthz"}) {
        const auto res = get(w, path);
        CHECK_MESSAGE(res->status == 503, path);
    }
    const auto during = w.log();
    INFO(during);
    CHECK(count_of(during, "database unavailable") == 1);
    CHECK(count_of(during, "available again") == 0);
    // libpq's multi-line message arrives folded onto the one line.
    const auto line_start = during.find("warn web-view: database unavailable");
    REQUIRE(line_start != std::string::npos);
    const auto line = during.substr(line_start, during.find('\n', line_start) - line_start);
    CHECK(line.find("\\n") == std::string::npos);
    CHECK(line.find('\t') == std::string::npos);

    pg.start();
    // The pool waits out its connect backoff before trying again: bounded retries.
    CHECK(wait_until([&] { return get(w, "/api/sensors")->status == 200; }, 30s));
    (void)get(w, "/api/sensors");
    const auto after = w.log();
    INFO(after);
    CHECK(count_of(after, "database unavailable") == 1);
    CHECK(count_of(after, "info web-view: database available again after ") == 1);
}
