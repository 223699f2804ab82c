// The web-view core units in-process: parameters, cursors, escaping, SSE framing, the ring.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

#include "events.hpp"
#include "page.hpp"
#include "params.hpp"
#include "read_cache.hpp"
#include "text.hpp"

using namespace rill::web;
using namespace std::chrono_literals;

namespace {
std::string param_of(const Params& p, bool series = false) {
    try {
        if (series) {
            (void)parse_series_query(p, rill::now());
        } else {
            (void)parse_readings_query(p);
        }
    } catch (const ParamError& e) {
        return e.param();
    }
    return "";
}
}  // namespace

TEST_CASE("a cursor survives encoding and rejects tampering") {
    const Cursor c{rill::Timestamp{1'700'000'000'123'456us}, "<b>\"'&,:x", 42};
    const auto token = encode_cursor(c);
    CHECK(token.find_first_not_of(
              "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
    CHECK(decode_cursor(token) == c);
    CHECK_FALSE(decode_cursor(""));
    CHECK_FALSE(decode_cursor("not a cursor!"));
    CHECK_FALSE(decode_cursor(token.substr(0, token.size() - 1) + "*"));
    CHECK_FALSE(decode_cursor("MjoxOjE6eA"));  // "2:1:1:x": unknown version
}

TEST_CASE("invalid readings parameters name the parameter") {
    CHECK(param_of({{"sensor", std::string(65, 'a')}}) == "sensor");
    CHECK(param_of({{"sensor", "a\x01"}}) == "sensor");
    CHECK(param_of({{"from", "yesterday"}}) == "from");
    CHECK(param_of({{"to", "2026-13-01T00:00:00Z"}}) == "to");
    CHECK(param_of({{"from", "2000"}, {"to", "1000"}}) == "to");
    CHECK(param_of({{"from", "0"}, {"to", "100000000"}}) == "to");  // over 366 days
    CHECK(param_of({{"limit", "0"}}) == "limit");
    CHECK(param_of({{"limit", "1001"}}) == "limit");
    CHECK(param_of({{"limit", "ten"}}) == "limit");
    CHECK(param_of({{"cursor", "xyz"}}) == "cursor");
    CHECK(param_of({{"limit", "5"}, {"limit", "6"}}) == "limit");
    CHECK(param_of({{"sensor", std::string(600, 'a')}}) == "sensor");
    CHECK(param_of({{"points", "0"}}, true) == "points");
    CHECK(param_of({{"points", "5001"}}, true) == "points");
    CHECK(param_of({{"from", "x"}}, true) == "from");

    const auto q = parse_readings_query({{"sensor", "garden"},
                                         {"from", "1763726400"},
                                         {"to", "2026-11-21T10:00:00Z"},
                                         {"limit", "1000"},
                                         {"unknown", "ignored"}});
    CHECK(q.sensor == "garden");
    CHECK(q.limit == 1000);
    CHECK(rill::to_iso8601(*q.from) == "2025-11-21T12:00:00.000000Z");
    CHECK(rill::to_iso8601(*q.to) == "2026-11-21T10:00:00.000000Z");
    CHECK(parse_readings_query({{"sensor", ""}}).sensor == std::nullopt);
}

TEST_CASE("series parameters give the range and the points, with defaults") {
    const auto now = rill::Timestamp{1'800'000'000'000'000us};
    auto q = parse_series_query({{"points", "100"}, {"from", "0"}, {"to", "86400"}}, now);
    CHECK(q.points == 100);
    CHECK(q.from == rill::Timestamp{});
    CHECK(q.to == rill::Timestamp{24h});
    q = parse_series_query({}, now);
    CHECK(q.to == now);
    CHECK(q.to - q.from == 24h);
    CHECK(q.points == 1000);
}

TEST_CASE("CSV cells are quoted when needed and formulas are defused") {
    auto cell = [](std::string_view s) {
        std::string out;
        append_csv_cell(out, s);
        return out;
    };
    CHECK(cell("garden") == "garden");
    CHECK(cell("a,b") == "\"a,b\"");
    CHECK(cell("say \"hi\"") == "\"say \"\"hi\"\"\"");
    CHECK(cell("=1+1") == "\"'=1+1\"");
    CHECK(cell("+1") == "\"'+1\"");
    CHECK(cell("-1") == "\"'-1\"");
    CHECK(cell("@SUM(A1)") == "\"'@SUM(A1)\"");
    CHECK(cell("\tx") == "\"'\tx\"");
    CHECK(cell("\rx") == "\"'\rx\"");
    CHECK(cell("=HYPERLINK(\"x\")") == "\"'=HYPERLINK(\"\"x\"\")\"");
    CHECK(cell("a=b") == "a=b");
}

TEST_CASE("an Accept-Encoding list loses one coding whatever its case and parameters") {
    CHECK(without_coding("gzip, deflate, br", "br") == "gzip, deflate");
    CHECK(without_coding("br;q=1.0, gzip;q=0.8", "br") == "gzip;q=0.8");
    CHECK(without_coding(" BR ,gzip", "br") == "gzip");
    CHECK(without_coding("br", "br").empty());
    CHECK(without_coding("gzip, zstd, brotli-ish", "br") == "gzip, zstd, brotli-ish");
    CHECK(without_coding(",, gzip ,", "br") == "gzip");
    CHECK(without_coding("", "br").empty());
}

TEST_CASE("HTML and URL escaping cover every special character") {
    CHECK(html_escape("<b>\"'&") == "&lt;b&gt;&quot;&#39;&amp;");
    CHECK(html_escape("plain") == "plain");
    CHECK(url_encode("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9");
}

TEST_CASE("a value is written as the shortest text of its float32, the same everywhere") {
    CHECK(format_value(21.5) == "21.5");
    CHECK(format_value(21.0) == "21");
    CHECK(format_value(-0.001) == "-0.001");
    CHECK(format_value(-0.0) == "0");
    // The float32 64.278 widened to float64 is 64.27800750732422: written as the float32.
    CHECK(format_value(static_cast<double>(64.278f)) == "64.278");
    CHECK(format_value(static_cast<double>(21.903713f)) == "21.903713");
    // A float64 (an average) is rounded to the nearest float32 first.
    CHECK(format_value(16.38333333333333) == "16.383333");
    CHECK(format_value(std::nan("")).empty());
    std::string json;
    append_json_value(json, std::nan(""));
    json += ',';
    append_json_value(json, 0.1f);
    CHECK(json == "null,0.1");
    CHECK(unix_ms(rill::Timestamp{std::chrono::microseconds{1'796'393'504'173'356}}) ==
          1'796'393'504'173);
}

TEST_CASE("the read cache answers from one query within its TTL and overlays live readings") {
    std::uint64_t event = 7;
    ReadCache cache(std::chrono::hours{1}, [&] { return event; });
    int queries = 0;
    auto load = [&] {
        ++queries;
        return ReadCache::Latest{{.sensor = "a",
                                  .seq = 1,
                                  .ts = rill::Timestamp{},
                                  .temperature = 1,
                                  .humidity = 2,
                                  .extra = {}}};
    };
    auto first = cache.latest(load);
    CHECK(first.event_id == 7);
    event = 9;
    auto second = cache.latest(load);
    CHECK(queries == 1);
    CHECK(cache.loads() == 1);
    CHECK(second.event_id == 7);  // the id of the answer, not of now
    // A newer live reading replaces the cached one; an older one does not.
    rill::Reading r{.sensor = "a",
                    .seq = 2,
                    .ts = rill::Timestamp{std::chrono::seconds{5}},
                    .temperature = 3.5f,
                    .humidity = 4,
                    .extras = {}};
    cache.observe(r);
    auto third = cache.latest(load);
    REQUIRE(third.value.size() == 1);
    CHECK(third.value[0].seq == 2);
    CHECK(third.value[0].temperature == 3.5);
    r.seq = 1;
    r.ts = rill::Timestamp{};
    cache.observe(r);
    CHECK(cache.latest(load).value[0].seq == 2);
    CHECK(queries == 1);

    // First pages are kept by their filters; later pages are always read.
    int pages = 0;
    auto page = [&] {
        ++pages;
        return ReadCache::Page{};
    };
    (void)cache.page({.limit = 5}, page);
    (void)cache.page({.limit = 5}, page);
    (void)cache.page({.sensor = "a", .limit = 5}, page);
    (void)cache.page({.limit = 5, .cursor = rill::store::ReadingsCursor{}}, page);
    (void)cache.page({.limit = 5, .cursor = rill::store::ReadingsCursor{}}, page);
    CHECK(pages == 4);

    // A failed query is not kept.
    ReadCache off(std::chrono::milliseconds{0}, {});
    (void)off.latest(load);
    (void)off.latest(load);
    CHECK(queries == 3);
    ReadCache failing(std::chrono::hours{1}, {});
    CHECK_THROWS(failing.latest([]() -> ReadCache::Latest { throw std::runtime_error("down"); }));
    (void)failing.latest(load);
    CHECK(queries == 4);
}

TEST_CASE("SSE frames carry the id and split multi-line data") {
    CHECK(format_sse(7, "", "{\"a\":1}") == "id: 7\ndata: {\"a\":1}\n\n");
    CHECK(format_sse(8, "resync", "x\ny\r\nz") ==
          "id: 8\nevent: resync\ndata: x\ndata: y\ndata: z\n\n");
    CHECK(parse_last_event_id("123") == 123u);
    CHECK_FALSE(parse_last_event_id("12a"));
    CHECK_FALSE(parse_last_event_id(""));
}

TEST_CASE("the event ring resumes after a last id and reports what it lost") {
    EventRing ring(3, 100);
    CHECK(ring.last_id() == 100);
    CHECK(ring.wait_after(100, 10ms).events.empty());
    CHECK(ring.publish("a") == 101);
    CHECK(ring.publish("b") == 102);
    auto b = ring.wait_after(101, 10ms);
    REQUIRE(b.events.size() == 1);
    CHECK(b.events[0].id == 102);
    CHECK(b.events[0].data == "b");
    CHECK_FALSE(b.gap);
    ring.publish("c");
    ring.publish("d");  // drops "a"
    b = ring.wait_after(100, 10ms);
    CHECK(b.gap);
    CHECK(b.events.size() == 3);
    CHECK(b.events.front().id == 102);
    b = ring.wait_after(101, 10ms);
    CHECK_FALSE(b.gap);
    CHECK(b.events.size() == 3);
    ring.close();
    CHECK(ring.wait_after(104, 5s).events.empty());  // returns at once when closed
}

TEST_CASE("sensor freshness and ages read as a person would say them") {
    CHECK(freshness(10s, 60s, 600s) == Freshness::fresh);
    CHECK(freshness(61s, 60s, 600s) == Freshness::stale);
    CHECK(freshness(601s, 60s, 600s) == Freshness::silent);
    CHECK(format_ago(500ms) == "just now");
    CHECK(format_ago(42s) == "42 s ago");
    CHECK(format_ago(5min) == "5 min ago");
    CHECK(format_ago(3h) == "3 h ago");
    CHECK(format_ago(72h) == "3 d ago");
}

TEST_CASE("the page's one decimal is what the browser's toFixed(1) shows for the JSON value") {
    using rill::web::format_fixed1;
    // Expected texts are node's Number(json_text).toFixed(1) for the float32 of each value
    // ("-0.0" shown as "0.0"): the server-rendered card and the live-updated one agree.
    CHECK(format_fixed1(21.05f) == "21.1");
    CHECK(format_fixed1(0.15f) == "0.1");
    CHECK(format_fixed1(21.25f) == "21.3");
    CHECK(format_fixed1(-21.25f) == "-21.3");
    CHECK(format_fixed1(-0.04f) == "0.0");
    CHECK(format_fixed1(1.45f) == "1.4");
    CHECK(format_fixed1(-0.05f) == "-0.1");
    CHECK(format_fixed1(99.95f) == "100.0");
    CHECK(format_fixed1(21.15f) == "21.1");
    CHECK(format_fixed1(std::nan("")) == "—");
}
