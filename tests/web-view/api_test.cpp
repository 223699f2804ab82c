// The HTTP routes of a web-view process over a throwaway PostgreSQL: data, errors, paging,
// CSV, downsampling, the database going away and the read-only role.
#include <doctest/doctest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "server.hpp"
#include "text.hpp"
#include "web_view_fixture.hpp"

using namespace rill::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

json get_json(const WebView& w, const std::string& path, int expect_status = 200) {
    auto r = get(w, path);
    INFO(path << " -> " << r->status << " " << r->body);
    CHECK(r->status == expect_status);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    return json::parse(r->body);
}

std::string error_parameter(const WebView& w, const std::string& path) {
    const auto j = get_json(w, path, 400);
    CHECK(j.contains("error"));
    return j.value("parameter", "");
}

// Two sensors: garden fresh (5 rows, the newest 10 s old), cellar silent (3 rows, 2 h old).
void seed(const TempPostgres& pg, rill::Timestamp now) {
    create_readings_table(pg);
    for (int i = 1; i <= 5; ++i) {
        insert_row(pg, "garden", i, now - std::chrono::seconds(60 - 10 * i), 20.0 + i, 50.0 + i);
    }
    for (int i = 1; i <= 3; ++i) {
        insert_row(pg, "cellar", i, now - 2h - std::chrono::minutes(10 - i), 12.5, 80.25);
    }
}

}  // namespace

TEST_CASE("the JSON API serves sensors, readings, health and metrics from the table") {
    TempPostgres pg;
    const auto now = rill::now();
    seed(pg, now);
    WebView w(pg.conninfo());

    auto sensors = get_json(w, "/api/sensors")["sensors"];
    REQUIRE(sensors.size() == 2);
    CHECK(sensors[0]["sensor"] == "cellar");
    CHECK(sensors[0]["status"] == "silent");
    CHECK(sensors[0]["seq"] == 3);
    CHECK(sensors[0]["temperature"].get<double>() == doctest::Approx(12.5));
    CHECK(sensors[0]["humidity"].get<double>() == doctest::Approx(80.25));
    CHECK(sensors[1]["sensor"] == "garden");
    CHECK(sensors[1]["status"] == "fresh");
    CHECK(sensors[1]["seq"] == 5);
    CHECK(sensors[1]["temperature"].get<double>() == doctest::Approx(25));
    CHECK(sensors[1]["ts"] == rill::to_iso8601(now - 10s));

    auto page = get_json(w, "/api/readings?limit=3");
    REQUIRE(page["readings"].size() == 3);
    CHECK(page["readings"][0]["sensor"] == "garden");
    CHECK(page["readings"][0]["seq"] == 5);
    CHECK(page["readings"][2]["seq"] == 3);
    CHECK(page["readings"][0]["extra"].is_null());
    REQUIRE(page["next_cursor"].is_string());
    page = get_json(w, "/api/readings?limit=3&cursor=" + page["next_cursor"].get<std::string>());
    REQUIRE(page["readings"].size() == 3);
    CHECK(page["readings"][0]["seq"] == 2);
    CHECK(page["readings"][2]["sensor"] == "cellar");
    CHECK(page["readings"][2]["seq"] == 3);

    page = get_json(w, "/api/readings?sensor=cellar");
    CHECK(page["readings"].size() == 3);
    CHECK(page["next_cursor"].is_null());
    page = get_json(
        w, "/api/readings?from=" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                      (now - 35s).time_since_epoch())
                                                      .count()));
    CHECK(page["readings"].size() == 3);  // garden 3, 4, 5
    page = get_json(w, "/api/readings?sensor=nobody");
    CHECK(page["readings"].empty());

    const auto health = get_json(w, "/healthz");
    CHECK(health["status"] == "ok");
    CHECK(health["sensors"] == 2);

    // The server counts a request just after answering it: allow it a moment.
    std::string metrics;
    CHECK(wait_until(
        [&] {
            auto r = get(w, "/metrics");
            metrics = r->body;
            return r->status == 200 &&
                   metrics.find(
                       "rill_http_request_duration_seconds_count{route=\"/api/readings\"} 5") !=
                       std::string::npos;
        },
        5s));
    INFO(metrics);
    CHECK(metrics.find("rill_http_requests_total{route=\"/api/sensors\",status=\"200\"} 1") !=
          std::string::npos);
    CHECK(metrics.find("# TYPE rill_http_request_duration_seconds histogram") != std::string::npos);
    CHECK(metrics.find("rill_sse_clients 0") != std::string::npos);
    CHECK(metrics.find("rill_web_database_errors_total 0") != std::string::npos);
    CHECK(metrics.find("webview_") == std::string::npos);
}

TEST_CASE("invalid parameters get 400 naming the parameter and unknown paths 404") {
    TempPostgres pg;
    seed(pg, rill::now());
    WebView w(pg.conninfo());
    CHECK(error_parameter(w, "/api/readings?limit=5000") == "limit");
    CHECK(error_parameter(w, "/api/readings?limit=-1") == "limit");
    CHECK(error_parameter(w, "/api/readings?sensor=" + std::string(65, 'x')) == "sensor");
    CHECK(error_parameter(w, "/api/readings?sensor=a%01b") == "sensor");
    CHECK(error_parameter(w, "/api/readings?from=last+tuesday") == "from");
    CHECK(error_parameter(w, "/api/readings?from=2000&to=1000") == "to");
    CHECK(error_parameter(w, "/api/readings?cursor=bogus") == "cursor");
    CHECK(error_parameter(w, "/api/readings?limit=1&limit=2") == "limit");
    CHECK(error_parameter(w, "/api/readings.csv?to=x") == "to");
    CHECK(error_parameter(w, "/api/readings.csv?limit=2000000") == "limit");
    CHECK(error_parameter(w, "/api/series?points=0") == "points");
    CHECK(error_parameter(w, "/api/series?points=5001") == "points");
    CHECK(error_parameter(w, "/api/series?from=0&to=100000000") == "to");
    CHECK(error_parameter(w, "/?cursor=bogus") == "cursor");

    auto j = get_json(w, "/no/such/page", 404);
    CHECK(j["error"].get<std::string>().find("/no/such/page") != std::string::npos);
    CHECK(get(w, "/assets/nothing.js")->status == 404);
    CHECK(get(w, "/api/readings")->status == 200);  // still serving after all that
}

TEST_CASE("data routes answer 503 while the database is down and recover when it is back") {
    TempPostgres pg;
    seed(pg, rill::now());
    WebView w(pg.conninfo(), {"--cache-ttl", "0"});
    CHECK(get(w, "/api/readings")->status == 200);  // a pooled connection now exists
    pg.stop();
    for (const char* path :
         {"/api/readings", "/api/sensors", "/api/series", "/api/readings.csv", "/api/series.csv"}) {
        auto r = get(w, path);
        INFO(path << ": " << r->body);
        CHECK(r->status == 503);
        CHECK(json::parse(r->body).contains("error"));
    }
    auto page = get(w, "/");
    CHECK(page->status == 503);
    CHECK(page->body.find("database is unavailable") != std::string::npos);
    auto health = get(w, "/healthz");
    CHECK(health->status == 503);
    CHECK(json::parse(health->body)["reason"].get<std::string>().find("database") !=
          std::string::npos);
    CHECK(get(w, "/metrics")->status == 200);

    pg.start();
    CHECK(wait_until([&] { return get(w, "/api/readings")->status == 200; }, 20s));
    CHECK(get(w, "/healthz")->status == 200);
    CHECK(get(w, "/")->status == 200);
}

TEST_CASE("walking every page with the cursor while rows arrive returns each row once") {
    TempPostgres pg;
    create_readings_table(pg);
    // 3 sensors x 120 rows; pairs of rows share a timestamp, and sensors share timestamps, so
    // ordering must break ties on sensor and seq.
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT s, n, timestamptz '2026-11-20 00:00:00Z' + (n / 2) * interval '1 second', n, 50 "
        "FROM unnest(array['a', 'b', 'c']) s, generate_series(1, 120) n");
    std::set<std::string> present;
    for (const auto& k : pg.column("SELECT sensor || '/' || seq FROM readings"))
        present.insert(k);
    REQUIRE(present.size() == 360);
    WebView w(pg.conninfo());

    std::set<std::string> seen;
    std::vector<std::tuple<std::string, std::string, long long>> order;
    std::string cursor;
    int pages = 0;
    long long next_seq = 1000;
    while (true) {
        auto j =
            get_json(w, "/api/readings?limit=37" + (cursor.empty() ? "" : "&cursor=" + cursor));
        for (const auto& r : j["readings"]) {
            const std::string key =
                r["sensor"].get<std::string>() + "/" + std::to_string(r["seq"].get<long long>());
            CHECK_MESSAGE(seen.insert(key).second, "row seen twice: " << key);
            order.emplace_back(r["ts"].get<std::string>(), r["sensor"].get<std::string>(),
                               r["seq"].get<long long>());
        }
        ++pages;
        // New rows arrive between pages, newer and older than the walk's position.
        insert_row(pg, "b", next_seq++, rill::now(), 1, 1);
        insert_row(pg, "d", next_seq++,
                   *rill::parse_time("2026-11-19T00:00:00Z") + std::chrono::seconds(next_seq), 1,
                   1);
        if (j["next_cursor"].is_null()) break;
        cursor = j["next_cursor"].get<std::string>();
        REQUIRE(pages < 40);
    }
    for (const auto& k : present)
        CHECK_MESSAGE(seen.count(k) == 1, "missing " << k);
    for (std::size_t i = 1; i < order.size(); ++i) {
        CHECK(order[i - 1] > order[i]);  // strictly newest first: (ts, sensor, seq) desc
    }
}

TEST_CASE("the CSV export streams every matching row with formulas defused") {
    TempPostgres pg;
    create_readings_table(pg);
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT 'bulk', n, timestamptz '2026-11-20 00:00:00Z' + n * interval '1 second', "
        "-5.5, 40 FROM generate_series(1, 2500) n");
    insert_row(pg, "=HYPERLINK(\"http://x\")", 1, *rill::parse_time("2026-11-21T00:00:00Z"), 1.25,
               2);
    insert_row(pg, "-cmd", 1, *rill::parse_time("2026-11-21T00:00:01Z"), 3, 4);
    insert_row(pg, "a,b", 1, *rill::parse_time("2026-11-21T00:00:02Z"), 5, 6);
    WebView w(pg.conninfo());

    auto r = get(w, "/api/readings.csv");
    REQUIRE(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "text/csv; charset=utf-8");
    CHECK(r->get_header_value("Transfer-Encoding") == "chunked");
    const std::string& csv = r->body;
    std::vector<std::string> lines;
    for (std::size_t at = 0; at < csv.size();) {
        const auto end = csv.find("\r\n", at);
        REQUIRE(end != std::string::npos);
        lines.push_back(csv.substr(at, end - at));
        at = end + 2;
    }
    REQUIRE(lines.size() == 1 + 2503);
    CHECK(lines[0] == "time,sensor,seq,temperature,humidity");
    CHECK(lines[1] == "2026-11-21T00:00:02.000000Z,\"a,b\",1,5,6");
    CHECK(lines[2] == "2026-11-21T00:00:01.000000Z,\"'-cmd\",1,3,4");
    CHECK(lines[3] == "2026-11-21T00:00:00.000000Z,\"'=HYPERLINK(\"\"http://x\"\")\",1,1.25,2");
    CHECK(lines[4] == "2026-11-20T00:41:40.000000Z,bulk,2500,-5.5,40");  // numbers stay numbers
    CHECK(lines.back() == "2026-11-20T00:00:01.000000Z,bulk,1,-5.5,40");

    r = get(w, "/api/readings.csv?sensor=bulk&limit=1500&from=2026-11-20T00:00:02Z");
    REQUIRE(r->status == 200);
    CHECK(std::count(r->body.begin(), r->body.end(), '\n') == 1 + 1500);
}

TEST_CASE("series buckets from the rollups match a direct computation over the raw rows") {
    TempPostgres pg;
    create_readings_table(pg);
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT s, n, timestamptz '2026-11-20 00:00:00Z' + n * interval '1 minute', "
        "20 + 5 * sin(n / 30.0) + length(s), 50 + 20 * cos(n / 45.0) "
        "FROM unnest(array['a', 'bb']) s, generate_series(0, 1439) n");
    // Some values not measured: an average divides by the values measured, not by the rows.
    pg.execute(
        "UPDATE readings SET humidity = NULL WHERE seq % 7 = 0;"
        "UPDATE readings SET temperature = NULL WHERE seq % 11 = 0");
    roll_up(pg);
    WebView w(pg.conninfo());
    // 1 day in 50 points: 28.8 min, so 30 min buckets of the 15-minute rollups.
    const auto j = get_json(
        w, "/api/series?sensor=a&from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z&points=50");
    CHECK(j["bucket_seconds"] == 1800);
    CHECK(j["source"] == "15m");
    CHECK(j["from"] == "2026-11-20T00:00:00.000000Z");
    REQUIRE(j["series"].size() == 1);
    CHECK(j["series"][0]["sensor"] == "a");
    const auto& buckets = j["series"][0]["buckets"];
    const auto expected = pg.column(
        "SELECT concat_ws(',', (extract(epoch FROM b) * 1000)::bigint, avg(temperature), "
        "min(temperature), max(temperature), avg(humidity), min(humidity), max(humidity), "
        "count(*)) "
        "FROM (SELECT date_bin('1800 seconds', ts, timestamptz '2026-11-20 00:00:00Z') b, * "
        "FROM readings WHERE sensor = 'a') x GROUP BY b ORDER BY b");
    REQUIRE(buckets.size() == expected.size());
    CHECK(buckets.size() == 48);
    long long total = 0;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        std::vector<double> want;
        std::stringstream ss(expected[i]);
        for (std::string cell; std::getline(ss, cell, ',');)
            want.push_back(std::stod(cell));
        REQUIRE(want.size() == 8);
        CHECK(buckets[i][0].is_number_integer());
        for (std::size_t k = 0; k < 8; ++k) {
            INFO("bucket " << i << " column " << k);
            CHECK(buckets[i][k].get<double>() == doctest::Approx(want[k]).epsilon(1e-6));
        }
        total += buckets[i][7].get<long long>();
    }
    CHECK(total == 1440);

    // A short range: 10 s buckets of the raw rows, every sensor.
    const auto all =
        get_json(w, "/api/series?from=2026-11-20T00:00:00Z&to=2026-11-20T01:00:00Z&points=360");
    CHECK(all["source"] == "raw");
    CHECK(all["bucket_seconds"] == 10);
    REQUIRE(all["series"].size() == 2);
    CHECK(all["series"][1]["sensor"] == "bb");
    CHECK(all["series"][1]["buckets"].size() == 60);
    CHECK(all["series"][1]["buckets"][0][7] == 1);
}

TEST_CASE("the series CSV holds exactly the numbers of the series JSON") {
    TempPostgres pg;
    create_readings_table(pg);
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT s, n, timestamptz '2026-11-20 00:00:00Z' + n * interval '7 seconds', "
        "(20 + 5 * sin(n / 30.0))::real, (50 + 20 * cos(n / 45.0))::real "
        "FROM unnest(array['a', '=b']) s, generate_series(0, 20000) n");
    roll_up(pg);
    WebView w(pg.conninfo());
    for (const std::string query : {"from=2026-11-20T00:00:00Z&to=2026-11-20T01:00:00Z",
                                    "from=2026-11-20T00:00:00Z&to=2026-11-21T12:00:00Z&points=300",
                                    "sensor=a&from=1795132800&to=1795219200&points=7"}) {
        INFO(query);
        const auto r = get(w, "/api/series?" + query);
        const auto csv = get(w, "/api/series.csv?" + query);
        REQUIRE(r->status == 200);
        REQUIRE(csv->status == 200);
        CHECK(csv->get_header_value("Content-Type") == "text/csv; charset=utf-8");
        // Each CSV row is one bucket of the JSON, its cells the very texts of the JSON's
        // numbers, in the same order.
        const auto j = json::parse(r->body);
        std::vector<std::string> want = {
            "time,sensor,ts_ms,t_avg,t_min,t_max,h_avg,h_min,h_max,count"};
        for (const auto& s : j["series"]) {
            const auto sensor = s["sensor"].get<std::string>();
            for (const auto& b : s["buckets"]) {
                const rill::Timestamp ts{std::chrono::milliseconds{b[0].get<long long>()}};
                want.push_back(rill::to_iso8601(ts) + "," +
                               (sensor == "=b" ? std::string("\"'=b\"") : sensor) + ",");
            }
        }
        std::vector<std::string> lines;
        for (std::size_t at = 0; at < csv->body.size();) {
            const auto end = csv->body.find("\r\n", at);
            REQUIRE(end != std::string::npos);
            lines.push_back(csv->body.substr(at, end - at));
            at = end + 2;
        }
        REQUIRE(lines.size() == want.size());
        CHECK(lines.size() > 1);
        CHECK(lines[0] == want[0]);
        std::size_t from = 0;
        for (std::size_t i = 1; i < lines.size(); ++i) {
            INFO(lines[i]);
            REQUIRE(lines[i].starts_with(want[i]));
            const auto cells = lines[i].substr(want[i].size());
            // The JSON holds this bucket as [cells], after the previous one.
            const auto at = r->body.find("[" + cells + "]", from);
            CHECK(at != std::string::npos);
            from = at == std::string::npos ? from : at;
            // Every value is the shortest text of its float32: no float64 noise, nothing cut.
            std::stringstream ss(cells);
            std::string cell;
            std::getline(ss, cell, ',');  // ts_ms
            for (int k = 0; k < 6 && std::getline(ss, cell, ','); ++k)
                CHECK(rill::web::format_value(std::stod(cell)) == cell);
        }
    }
    CHECK(error_parameter(w, "/api/series.csv?points=0") == "points");
}

TEST_CASE("a reading shows the same number text in JSON, CSV, the page data and /events") {
    TempPostgres pg;
    create_readings_table(pg);
    const auto now = rill::now();
    const auto ts = rill::Timestamp{std::chrono::floor<std::chrono::seconds>(now - 5s)} + 123457us;
    insert_row(pg, "garden", 1, ts, 64.278, 21.903713);
    WebView w(pg.conninfo());
    const std::string temperature = "\"temperature\":64.278";
    const std::string humidity = "\"humidity\":21.903713";
    const std::string ts_ms =
        "\"ts_ms\":" +
        std::to_string(
            std::chrono::floor<std::chrono::milliseconds>(ts).time_since_epoch().count());
    for (const char* path : {"/api/sensors", "/api/readings"}) {
        const auto r = get(w, path);
        INFO(path << ": " << r->body);
        CHECK(r->body.find(temperature) != std::string::npos);
        CHECK(r->body.find(humidity) != std::string::npos);
        CHECK(r->body.find(ts_ms) != std::string::npos);  // whole milliseconds
    }
    const auto csv = get(w, "/api/readings.csv")->body;
    CHECK(csv.find(",garden,1,64.278,21.903713\r\n") != std::string::npos);
    // The same reading as the live feed hands it over (float32 values).
    rill::Reading live{.sensor = "garden",
                       .seq = 1,
                       .ts = ts,
                       .temperature = 64.278f,
                       .humidity = 21.903713f,
                       .extras = {}};
    const auto event = rill::web::reading_event_json(live);
    CHECK(event.find(temperature) != std::string::npos);
    CHECK(event.find(humidity) != std::string::npos);
    CHECK(event.find(ts_ms + ",") != std::string::npos);
    CHECK(rill::web::format_value(64.278f) == "64.278");
    CHECK(rill::web::format_value(static_cast<double>(64.278f)) == "64.278");
}

TEST_CASE("a sensor without humidity shows null in JSON, an empty CSV field and a dash") {
    TempPostgres pg;
    create_readings_table(pg);
    // Half past the last whole hour but one: both rows in one hour whenever the test runs.
    const auto now = std::chrono::floor<std::chrono::hours>(rill::now()) - 30min;
    insert_row(pg, "garden", 1, now - 3s, 21.5, 40);
    // A DS18B20: temperature only.
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) VALUES ('pond', 1, '" +
        rill::to_iso8601(now - 2s) + "', 14.5, NULL), ('pond', 2, '" + rill::to_iso8601(now - 1s) +
        "', 14.25, NULL)");
    roll_up(pg);
    WebView w(pg.conninfo());

    const auto sensors = get_json(w, "/api/sensors")["sensors"];
    REQUIRE(sensors.size() == 2);
    CHECK(sensors[1]["sensor"] == "pond");
    CHECK(sensors[1]["temperature"].get<double>() == 14.25);
    CHECK(sensors[1]["humidity"].is_null());
    const auto page = get_json(w, "/api/readings?sensor=pond");
    REQUIRE(page["readings"].size() == 2);
    CHECK(page["readings"][0]["humidity"].is_null());
    CHECK(page["readings"][0]["temperature"].get<double>() == 14.25);
    const auto csv = get(w, "/api/readings.csv?sensor=pond")->body;
    CHECK(csv.find(",pond,2,14.25,\r\n") != std::string::npos);
    CHECK(csv.find(",pond,1,14.5,\r\n") != std::string::npos);

    // The series from the raw rows and from the 1-minute rollups: humidity null, count 2.
    const auto from = rill::to_iso8601(now - 1h);
    const auto to = rill::to_iso8601(now + 1h);
    for (const char* points : {"720", "2"}) {
        const auto j =
            get_json(w, "/api/series?sensor=pond&from=" + from + "&to=" + to + "&points=" + points);
        INFO(j.dump());
        CHECK((j["source"] == "raw") == (std::string(points) == "720"));
        REQUIRE(j["series"].size() == 1);
        long long rows = 0;
        for (const auto& b : j["series"][0]["buckets"]) {
            CHECK(b[1].is_number());  // t_avg
            CHECK(b[4].is_null());    // h_avg
            CHECK(b[5].is_null());    // h_min
            CHECK(b[6].is_null());    // h_max
            rows += b[7].get<long long>();
        }
        CHECK(rows == 2);
    }
    const auto series_csv =
        get(w, "/api/series.csv?sensor=pond&from=" + from + "&to=" + to + "&points=2")->body;
    CHECK(series_csv.find(",14.375,14.25,14.5,,,,2\r\n") != std::string::npos);

    // The page: a dash on the card and in the table, where the unit is left out.
    const auto html = get(w, "/")->body;
    const auto card = html.find("<article class=\"card\" data-sensor=\"pond\"");
    REQUIRE(card != std::string::npos);
    const auto card_end = html.find("</article>", card);
    const auto pond_card = html.substr(card, card_end - card);
    CHECK(pond_card.find("<div class=\"value hum\"><span class=\"num\">—</span>") !=
          std::string::npos);
    CHECK(pond_card.find("<span class=\"num\">14.3</span>") != std::string::npos);
    CHECK(html.find("<td class=\"sensor\">pond</td><td class=\"num\">14.3 °C</td><td "
                    "class=\"num\">—</td>") != std::string::npos);

    // A live reading without humidity, as /events sends it.
    rill::Reading live{.sensor = "pond",
                       .seq = 3,
                       .ts = now,
                       .temperature = 14.0f,
                       .humidity = rill::not_measured,
                       .extras = {}};
    const auto event = json::parse(rill::web::reading_event_json(live));
    CHECK(event["humidity"].is_null());
    CHECK(event["temperature"] == 14.0);
}

TEST_CASE("within the cache TTL the latest-value views answer without the database") {
    TempPostgres pg;
    seed(pg, rill::now());
    WebView w(pg.conninfo(), {"--cache-ttl", "1m"});
    const auto sensors = get(w, "/api/sensors");
    const auto first_page = get(w, "/api/readings?limit=3");
    const auto page = get(w, "/");
    REQUIRE(sensors->status == 200);
    REQUIRE(first_page->status == 200);
    REQUIRE(page->status == 200);
    pg.stop();
    // Answered from the cache: the database is not asked again.
    const auto again = get(w, "/api/sensors");
    CHECK(again->status == 200);
    auto without_age = [](const std::string& body) {
        auto list = json::parse(body)["sensors"];
        for (auto& s : list)
            s.erase("age_seconds");  // computed per request
        return list;
    };
    CHECK(without_age(again->body) == without_age(sensors->body));
    CHECK(get(w, "/api/readings?limit=3")->body == first_page->body);
    CHECK(get(w, "/")->status == 200);
    // What the cache does not hold still needs the database.
    CHECK(get(w, "/api/readings?limit=4")->status == 503);
    CHECK(get(w, "/api/series")->status == 503);
    CHECK(get(w, "/healthz")->status == 503);
}

TEST_CASE("with the cache off every request asks the database") {
    TempPostgres pg;
    seed(pg, rill::now());
    WebView w(pg.conninfo(), {"--cache-ttl", "0"});
    REQUIRE(get(w, "/api/sensors")->status == 200);
    insert_row(pg, "attic", 1, rill::now(), 1, 2);
    const auto j = get_json(w, "/api/sensors");
    CHECK(j["sensors"].size() == 3);  // seen at once
}

TEST_CASE("web-view serves every route with the read-only rill_reader role") {
    TempPostgres pg;
    seed(pg, rill::now());
    // The role docs/web-view.md documents.
    pg.execute(
        "CREATE ROLE rill_reader LOGIN; GRANT CONNECT ON DATABASE rill TO rill_reader; "
        "GRANT USAGE ON SCHEMA public TO rill_reader; "
        "GRANT SELECT ON readings, readings_1m, readings_15m, readings_1h, readings_6h TO "
        "rill_reader;");
    std::string conninfo = pg.conninfo();
    conninfo.replace(conninfo.find("user=rill"), 9, "user=rill_reader");
    WebView w(conninfo);
    for (const char* path :
         {"/", "/api/sensors", "/api/readings", "/api/readings.csv", "/api/series",
          "/api/series.csv", "/api/series?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z",
          "/api/series?from=2026-01-01T00:00:00Z&to=2026-01-08T00:00:00Z",  // readings_15m
          "/api/series?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "/healthz"}) {
        auto r = get(w, path);
        INFO(path << ": " << r->body.substr(0, 300));
        CHECK(r->status == 200);
    }
    CHECK(get_json(w, "/api/readings")["readings"].size() == 8);
    std::string out;
    CHECK(run_command({"psql", conninfo, "-Atc", "DELETE FROM readings"}, 30s, &out) != 0);
    CHECK(out.find("permission denied") != std::string::npos);
}

TEST_CASE(
    "web-view answers a client that offers brotli with gzip, or plainly when brotli was all") {
    TempPostgres pg;
    seed(pg, rill::now());
    WebView w(pg.conninfo());
    // cpp-httplib 0.11 would pick brotli at quality 11 for these (about 1.7 s for a large series
    // answer): web-view takes "br" out of what the client offers.
    for (const auto* path : {"/api/series", "/api/sensors", "/"}) {
        INFO(path);
        auto r = get(w, path, {{"Accept-Encoding", "br, gzip, deflate"}});
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->get_header_value("Content-Encoding") == "gzip");
        CHECK(!r->body.empty());  // decompressed by the client

        r = get(w, path, {{"Accept-Encoding", "BR;q=1.0"}});
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->get_header_value("Content-Encoding").empty());
    }
    const auto series =
        get(w, "/api/series", {{"Accept-Encoding", "br"}, {"Accept-Encoding", "gzip"}});
    REQUIRE(series);
    CHECK(series->get_header_value("Content-Encoding") == "gzip");
    CHECK(nlohmann::json::parse(series->body).contains("series"));
}
