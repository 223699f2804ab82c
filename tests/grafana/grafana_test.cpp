// The Grafana dashboard (deploy/grafana) against a real PostgreSQL: rill's migrations make the
// schema, rill::store writes three sensors' readings over three days (so the rollups are filled
// the real way), deploy/grafana/grafana-role.sql makes the read-only role, and
// tests/grafana/grafana_check.py checks the dashboard and runs every panel's SQL as Grafana
// would (see its docstring).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "rill/store.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using rill::Reading;
using rill::Timestamp;
using rill::test::read_file;
using rill::test::run_command;
using rill::test::TempPostgres;

namespace {

// `sensor` every `step` over the `span` that ends at `last`, values varying smoothly with time
// (and by sensor, through `offset`). With `sparse_humidity`, every other reading measures no
// humidity (rill::not_measured), so a bucket's humidity count differs from its row count.
std::vector<Reading> history(const std::string& sensor, Timestamp last, std::chrono::seconds span,
                             std::chrono::seconds step, float offset,
                             bool sparse_humidity = false) {
    std::vector<Reading> out;
    std::uint64_t seq = 1;
    for (auto ts = last - span; ts <= last; ts += step) {
        const double x = static_cast<double>(ts.time_since_epoch().count()) / 3.6e9;  // hours
        Reading r;
        r.sensor = sensor;
        r.seq = seq++;
        r.ts = ts;
        r.temperature = offset + static_cast<float>(5.0 * std::sin(x / 3.0));
        r.humidity = sparse_humidity && r.seq % 2 == 0
                         ? rill::not_measured
                         : 50.0f + static_cast<float>(20.0 * std::cos(x / 5.0));
        out.push_back(std::move(r));
    }
    return out;
}

void store(rill::store::PostgresSink& sink, const std::vector<Reading>& readings) {
    constexpr std::size_t batch = 5000;
    for (std::size_t i = 0; i < readings.size(); i += batch) {
        const auto n = std::min(batch, readings.size() - i);
        REQUIRE(sink.write(std::span(readings).subspan(i, n)) == n);
    }
}

}  // namespace

TEST_CASE(
    "every panel of the Grafana dashboard runs on rill's schema and matches the raw "
    "readings") {
    TempPostgres pg;
    // Whole minutes: readings fall on the ends of every range and bucket, where an off-by-one
    // in a bound shows.
    const auto now = Timestamp{std::chrono::floor<std::chrono::minutes>(rill::now())};
    const auto last = now;
    {
        rill::store::PostgresSink sink(pg.conninfo());
        sink.open();
        store(sink, history("garden", last, 72h, 20s, 15.0f));
        // A quote in a sensor id: Grafana's quoting of a selected value must hold.
        store(sink, history("shed's", last, 72h, 20s, 10.0f));
        // Silent for the last 2 hours: its newest reading is older than the others'. Half its
        // readings measure no humidity: averages must divide by the values measured (t_n, h_n).
        store(sink, history("cellar", Timestamp{last - 2h}, 70h, 60s, 12.0f, true));
    }
    // A database that has run for over a year: the rollups' partitions reach back that far
    // (store-sub's maintenance makes them ahead of time; these hold no rows).
    pg.execute(
        "SELECT rill_ensure_partitions(t::regclass, now() - interval '400 days', now()) "
        "FROM unnest(array['readings_1m', 'readings_15m', 'readings_1h', 'readings_6h']) t");
    std::string role = read_file(RILL_SOURCE_DIR "/deploy/grafana/grafana-role.sql");
    REQUIRE(!role.empty());
    pg.execute(role);

    std::string output;
    const int status = run_command(
        {"/usr/bin/python3", RILL_SOURCE_DIR "/tests/grafana/grafana_check.py", "--dsn",
         pg.conninfo() + " user=rill_grafana", "--owner-dsn", pg.conninfo(), "--now-ms",
         std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()),
         "--sensor", "garden", "--sensor", "shed's", "--sensor", "cellar"},
        240s, &output);
    INFO(output);
    CHECK(status == 0);
    CHECK(output.find("all Grafana checks passed") != std::string::npos);
}
