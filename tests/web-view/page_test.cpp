// The dashboard page as a browser without JavaScript sees it: server-rendered, escaped,
// paginated with links, loading only its own embedded assets.
#include <doctest/doctest.h>

#include <regex>

#include "web_view_fixture.hpp"

using namespace rill::test;
using namespace std::chrono_literals;

namespace {

std::string between(const std::string& text, const std::string& open, const std::string& close) {
    const auto a = text.find(open);
    if (a == std::string::npos) return "";
    const auto b = text.find(close, a + open.size());
    return text.substr(a + open.size(), b == std::string::npos ? b : b - a - open.size());
}

std::string html_unescape(std::string s) {
    for (const auto& [from, to] :
         {std::pair{"&amp;", "&"}, std::pair{"&quot;", "\""}, std::pair{"&#39;", "'"},
          std::pair{"&lt;", "<"}, std::pair{"&gt;", ">"}}) {
        for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + 1)) {
            s.replace(at, std::string(from).size(), to);
        }
    }
    return s;
}

}  // namespace

TEST_CASE("the page escapes a hostile sensor id in text, attributes and links") {
    TempPostgres pg;
    create_readings_table(pg);
    const std::string hostile = "<b>\"'&";
    insert_row(pg, hostile, 1, rill::now() - 5s, 21.5, 40);
    insert_row(pg, "garden", 1, rill::now() - 2s, 10, 60);
    WebView w(pg.conninfo());
    auto r = get(w, "/");
    REQUIRE(r->status == 200);
    const std::string& html = r->body;
    CHECK(r->get_header_value("Content-Type") == "text/html; charset=utf-8");
    CHECK(html.find(hostile) == std::string::npos);
    CHECK(html.find("<b>") == std::string::npos);
    CHECK(html.find("data-sensor=\"&lt;b&gt;&quot;&#39;&amp;\"") != std::string::npos);
    CHECK(html.find("<h3 class=\"sensor\" "
                    "title=\"&lt;b&gt;&quot;&#39;&amp;\">&lt;b&gt;&quot;&#39;&amp;</h3>") !=
          std::string::npos);
    CHECK(html.find("<td class=\"sensor\">&lt;b&gt;&quot;&#39;&amp;</td><td "
                    "class=\"num\">21.5 °C</td>") != std::string::npos);

    // The table filter for that sensor round-trips through the URL.
    r = get(w, "/?sensor=%3Cb%3E%22%27%26");
    REQUIRE(r->status == 200);
    CHECK(r->body.find("<option value=\"&lt;b&gt;&quot;&#39;&amp;\" selected>") !=
          std::string::npos);
    CHECK(r->body.find("href=\"api/readings.csv?sensor=%3Cb%3E%22%27%26\"") != std::string::npos);
    const std::string tbody = between(r->body, "<tbody>", "</tbody>");
    CHECK(tbody.find("garden") == std::string::npos);
    CHECK(tbody.find("21.5 °C") != std::string::npos);
}

TEST_CASE("the table pages through every row with plain links, newest first") {
    TempPostgres pg;
    create_readings_table(pg);
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT 's' || (n % 3), n, now() - n * interval '1 second', n / 10.0, 50 "
        "FROM generate_series(1, 120) n");
    WebView w(pg.conninfo());
    std::string path = "/";
    std::vector<std::string> keys;
    int pages = 0;
    while (!path.empty() && pages < 10) {
        auto r = get(w, path);
        REQUIRE(r->status == 200);
        const std::string tbody = between(r->body, "<tbody>", "</tbody>");
        const std::regex key("data-key=\"([^\"]+)\"");
        for (std::sregex_iterator it(tbody.begin(), tbody.end(), key), end; it != end; ++it) {
            keys.push_back((*it)[1]);
        }
        const std::string next = between(r->body, "<a class=\"button\" rel=\"next\" href=\"", "\"");
        path = next.empty() ? "" : "/" + html_unescape(next);  // relative to the page at /
        if (pages > 0) CHECK(r->body.find("← Newest</a>") != std::string::npos);
        ++pages;
    }
    CHECK(pages == 3);  // 50 + 50 + 20
    REQUIRE(keys.size() == 120);
    for (int i = 0; i < 120; ++i) {
        CHECK(keys[i] == "s" + std::to_string((i + 1) % 3) + "/" + std::to_string(i + 1));
    }
}

TEST_CASE("the page loads only its own embedded assets") {
    TempPostgres pg;
    create_readings_table(pg);
    WebView w(pg.conninfo());
    auto r = get(w, "/");
    REQUIRE(r->status == 200);
    CHECK(r->body.find("No readings yet") != std::string::npos);
    CHECK(r->body.find("http://") == std::string::npos);
    CHECK(r->body.find("https://") == std::string::npos);
    CHECK(r->body.find("//cdn") == std::string::npos);
    CHECK(r->get_header_value("Content-Security-Policy").find("default-src 'self'") !=
          std::string::npos);
    const std::regex ref("(?:src|href)=\"(assets/[^\"]+)\"");
    int assets = 0;
    for (std::sregex_iterator it(r->body.begin(), r->body.end(), ref), end; it != end; ++it) {
        const std::string path = "/" + (*it)[1].str();
        auto a = get(w, path);
        INFO(path);
        CHECK(a->status == 200);
        CHECK(a->body.size() > 100);
        const auto etag = a->get_header_value("ETag");
        CHECK(!etag.empty());
        CHECK(get(w, path, {{"If-None-Match", etag}})->status == 304);
        ++assets;
    }
    CHECK(assets == 5);
    CHECK(get(w, "/assets/dygraph.min.js")->body.find("Dygraph") != std::string::npos);
    CHECK(get(w, "/assets/app.js")->get_header_value("Content-Type") ==
          "text/javascript; charset=utf-8");
}

TEST_CASE("every URL in the page is relative, so that it works under a proxy's path prefix") {
    TempPostgres pg;
    create_readings_table(pg);
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT 'garden', n, now() - n * interval '1 second', 10, 50 "
        "FROM generate_series(1, 60) n");
    WebView w(pg.conninfo());
    for (const std::string path : {"/", "/?sensor=garden"}) {
        auto r = get(w, path);
        REQUIRE(r->status == 200);
        INFO(path);
        const std::regex url("(?:src|href|action)=\"([^\"]*)\"");
        int urls = 0;
        for (std::sregex_iterator it(r->body.begin(), r->body.end(), url), end; it != end; ++it) {
            const std::string u = (*it)[1];
            INFO(u);
            CHECK(!u.empty());
            CHECK(u[0] != '/');                         // not root-relative
            CHECK(u.find("://") == std::string::npos);  // not absolute
            ++urls;
        }
        CHECK(urls >= 11);  // 5 assets, 2 CSV links, the filter form, a pager link, 2 footer links
        CHECK(r->body.find("rel=\"next\" href=\"?") != std::string::npos);
    }
    // The card's sequence number is labelled and explained.
    const std::string html = get(w, "/")->body;
    CHECK(html.find(">seq 1</span>") != std::string::npos);
    CHECK(html.find("<span class=\"seq\" title=\"sequence number") != std::string::npos);
}
