// PostgreSQL storage of readings dated past 2038 and 2106, written by rill::store::PostgresSink
// and read back through rill::store::Reader (docs/raspberry-pi.md "32-bit time on armhf").
#include <doctest/doctest.h>

#include "rill/store.hpp"
#include "rill/store_reader.hpp"
#include "support/postgres.hpp"

using namespace std::chrono_literals;

TEST_CASE("readings dated 2040 and 2106 are stored and read back to the microsecond") {
    const rill::Timestamp y2040{std::chrono::seconds{2'208'988'800}};
    const rill::Timestamp y2106{std::chrono::seconds{4'294'967'296}};
    rill::test::TempPostgres pg;
    rill::store::PostgresSink sink(pg.conninfo());
    sink.open();
    std::vector<rill::Reading> batch;
    std::uint64_t seq = 1;
    for (const rill::Timestamp ts : {y2040 + 1us, y2040 + 1h, y2106 + 1us, y2106 + 24h}) {
        rill::Reading r;
        r.sensor = "future";
        r.seq = seq++;
        r.ts = ts;
        r.temperature = 21.5f;
        r.humidity = 40;
        batch.push_back(std::move(r));
    }
    CHECK(sink.write(batch) == batch.size());
    CHECK(pg.value("SELECT (extract(epoch FROM max(ts)) * 1000000)::bigint FROM readings") ==
          "4295053696000000");

    rill::store::ConnectionPool pool(
        {.conninfo = pg.conninfo(), .max_connections = 1, .acquire_timeout = 2s});
    rill::store::Reader reader(pool);
    // The range goes to the server as RFC 3339 text (to_iso8601).
    const auto page =
        reader.page({.sensor = "future", .from = y2040 + 1us, .to = y2106 + 24h, .limit = 10});
    REQUIRE(page.rows.size() == 3);  // newest first, `to` exclusive
    CHECK(page.rows[0].ts == y2106 + 1us);
    CHECK(page.rows[1].ts == y2040 + 1h);
    CHECK(page.rows[2].ts == y2040 + 1us);
    CHECK(page.rows[2].seq == 1);
    const auto latest = reader.latest();
    REQUIRE(latest.size() == 1);
    CHECK(latest[0].ts == y2106 + 24h);
}
