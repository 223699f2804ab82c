// A real headless Chromium against web-view: the page shows the known readings, applies live
// readings without a reload, works behind nginx under a path prefix, keeps its chart range in
// the URL, fits a phone, and looks right (screenshots saved as test artifacts under
// build/tests/web-view/artifacts/).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "chromium.hpp"
#include "rill/codec.hpp"
#include "rill/socket.hpp"
#include "support/readings.hpp"
#include "web_view_fixture.hpp"

using namespace rill::test;
using namespace std::chrono_literals;

namespace {

void publish(rill::Socket& pub, const rill::Reading& r) {
    const auto payload = rill::encode(r);
    (void)pub.raw().send(zmq::buffer(r.sensor), zmq::send_flags::sndmore);
    (void)pub.raw().send(zmq::buffer(payload), zmq::send_flags::none);
}

rill::Reading live_reading(const std::string& sensor, std::uint64_t seq, float t, float h) {
    return rill::test::taken_at(rill::test::reading(sensor, seq, t, h), rill::now());
}

// A day of garden and living-room data every 2 minutes, a silent cellar, and a sensor whose id
// needs escaping.
void seed(const TempPostgres& pg) {
    create_readings_table(pg);
    pg.execute(
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT 'garden', n, now() - (720 - n) * interval '2 minutes' - interval '4 seconds', "
        "round((12 + 4 * sin(n / 110.0) + random() * 0.3)::numeric, 1), "
        "round((64 + 9 * cos(n / 130.0) + random())::numeric, 1) FROM generate_series(1, 720) n; "
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT 'living-room', n, now() - (720 - n) * interval '2 minutes' - interval '40 "
        "seconds', round((21.5 + 0.8 * sin(n / 90.0))::numeric, 1), "
        "round((44 + 3 * sin(n / 120.0))::numeric, 1) FROM generate_series(1, 720) n; "
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "SELECT 'cellar', n, now() - interval '5 hours' + n * interval '1 minute', 11.2, 78.5 "
        "FROM generate_series(1, 30) n; "
        "INSERT INTO readings (sensor, seq, ts, temperature, humidity) "
        "VALUES ('<b>\"''&', 1, now() - interval '3 minutes', 19.4, 51.0)");
    rill::test::roll_up(pg);  // long ranges are read from the rollups
}

// Publishes until web-view's subscription is through (PUB/SUB's slow-joiner window).
void warm_up(rill::Socket& pub, const WebView& w) {
    std::uint64_t warm = 1000;
    REQUIRE(wait_until(
        [&] {
            publish(pub, live_reading("warmup", warm++, 1, 1));
            return get(w, "/metrics")->body.find("rill_web_live_readings_total 0") ==
                   std::string::npos;
        },
        15s));
}

// The seeded database, a publisher and a web-view subscribed to it, warmed up.
struct LiveDashboard {
    TempPostgres pg;
    rill::Socket pub{rill::default_context(), zmq::socket_type::pub};
    std::unique_ptr<WebView> web_view;

    LiveDashboard() {
        seed(pg);
        pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
        web_view = std::make_unique<WebView>(
            pg.conninfo(), std::vector<std::string>{"--connect", pub.last_endpoint()});
        warm_up(pub, *web_view);
    }
};

// A loopback TCP port nobody listens on right now: bound to port 0, then closed again.
int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    ::close(fd);
    REQUIRE(ok);
    return ntohs(a.sin_port);
}

// The nginx location block of docs/web-view.md ("Behind a reverse proxy"), web-view's port
// filled in. No proxy_buffering off: web-view's X-Accel-Buffering: no keeps /events unbuffered.
std::string weather_location(int web_view_port) {
    return "location /weather/ {\n"
           "    proxy_pass http://127.0.0.1:" +
           std::to_string(web_view_port) +
           "/;\n"
           "    proxy_http_version 1.1;\n"
           "    proxy_set_header Connection \"\";\n"
           "}\n";
}

// A real nginx (Debian package nginx) in one process (no master/worker split, so nothing
// outlives it), with its config, pid, logs and temp files in a temp dir, listening on a free
// loopback port with `location` as its only location.
class Nginx {
  public:
    static constexpr const char* path = "/usr/sbin/nginx";
    static bool available() { return ::access(path, X_OK) == 0; }

    explicit Nginx(const std::string& location) : port_(free_port()) {
        const auto d = dir_.path().string();
        std::ofstream(dir_.path() / "nginx.conf")
            << "master_process off;\ndaemon off;\npid " << d << "/nginx.pid;\nerror_log " << d
            << "/error.log;\nevents { worker_connections 64; }\nhttp {\n    access_log " << d
            << "/access.log;\n    client_body_temp_path " << d << "/body;\n    proxy_temp_path "
            << d << "/proxy;\n    fastcgi_temp_path " << d << "/fastcgi;\n    uwsgi_temp_path " << d
            << "/uwsgi;\n    scgi_temp_path " << d << "/scgi;\n    server {\n        listen "
            << "127.0.0.1:" << port_ << ";\n"
            << location << "    }\n}\n";
        ProcessOptions o;
        o.stderr_path = d + "/stderr.log";
        process_ = std::make_unique<Process>(
            std::vector<std::string>{path, "-p", d, "-c", d + "/nginx.conf", "-e",
                                     d + "/error.log"},
            o);
        httplib::Client c("127.0.0.1", port_);
        c.set_connection_timeout(1s);
        const bool up = wait_until([&] { return process_->running() && c.Get("/weather/"); }, 15s);
        if (!up) FAIL("nginx did not come up: " << read_file(dir_.path() / "error.log"));
    }
    ~Nginx() {
        process_->signal(SIGTERM);  // fast shutdown; the Process destructor kills if need be
        (void)process_->wait_for(5s);
    }
    Nginx(const Nginx&) = delete;
    Nginx& operator=(const Nginx&) = delete;

    [[nodiscard]] std::string url(const std::string& target) const {
        return "http://127.0.0.1:" + std::to_string(port_) + target;
    }
    [[nodiscard]] std::string access_log() const { return read_file(dir_.path() / "access.log"); }

  private:
    TempDir dir_{"rill-nginx"};
    int port_;
    std::unique_ptr<Process> process_;
};

// The milliseconds between the from and to of the chart's last api/series request.
constexpr const char* request_span_ms =
    "(q => Date.parse(q.get('to')) - Date.parse(q.get('from')))(new URLSearchParams("
    "document.getElementById('chart').dataset.request.split('?')[1]))";

}  // namespace

TEST_CASE("a headless browser shows the readings and applies live ones without reloading") {
    if (!Chromium::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " is missing (Debian package chromium)");
        return;
    }
    LiveDashboard live;
    auto& pg = live.pg;
    auto& pub = live.pub;
    auto& w = *live.web_view;

    Chromium browser(w.url("/"), 1280, 900);
    // The server-rendered readings and the chart drawn from /api/series.
    REQUIRE(
        browser.wait_for("document.querySelector('#chart canvas') && "
                         "document.querySelector('#live').dataset.state === 'on'",
                         30s));
    CHECK(browser.eval("document.querySelectorAll('.card').length") == 4);
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"cellar\"]').dataset.status") ==
          "silent");
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"garden\"] .status')"
                       ".textContent") == "fresh");
    CHECK(browser.eval(R"JS([...document.querySelectorAll('.card')]
                              .find(c => c.dataset.sensor === '<b>"\'&')
                              .querySelector('h3').textContent)JS") == "<b>\"'&");
    CHECK(browser.eval("document.querySelectorAll('#readings tbody tr').length") == 50);
    const std::string garden_t = pg.value(
        "SELECT to_char(temperature, 'FM990.0') FROM readings WHERE sensor = 'garden' AND "
        "seq = 720");
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"garden\"] .temp .num')"
                       ".textContent") == garden_t);
    CHECK(
        browser.eval("document.querySelector('#readings tbody tr td:nth-child(2)').textContent") ==
        "garden");
    CHECK(browser.eval("document.getElementById('chart-legend') !== null"));
    // About 1h of garden data at 2-minute steps is on the chart.
    CHECK(browser.eval("document.getElementById('chart-note').textContent") == "");

    // A live reading: the same document (marker survives) updates card, table and chart.
    browser.eval("window.rillMarker = 42");
    const auto before_rows = browser.eval("document.querySelectorAll('#readings tbody tr').length");
    publish(pub, live_reading("garden", 721, 33.3f, 71.0f));
    publish(pub, live_reading("balcony", 1, 9.9f, 88.0f));
    CHECK(
        browser.wait_for("document.querySelector('.card[data-sensor=\"balcony\"]') && "
                         "document.querySelector('.card[data-sensor=\"garden\"] .temp "
                         ".num').textContent === '33.3'",
                         20s));
    CHECK(browser.eval("window.rillMarker") == 42);
    CHECK(browser.eval("document.querySelector('#readings tbody tr').dataset.key") == "balcony/1");
    CHECK(browser.eval("document.querySelector('#readings tbody tr:nth-child(2)').dataset.key") ==
          "garden/721");
    CHECK(browser.eval("document.querySelector('#readings tbody tr:nth-child(2) "
                       "td:nth-child(3)').textContent") == "33.3 °C");
    CHECK(browser.eval("document.querySelectorAll('#readings tbody tr').length") == before_rows);
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"balcony\"] .hum .num')"
                       ".textContent") == "88.0");
    CHECK(
        browser.eval("[...document.querySelectorAll('#chart-sensor option')].some(o => o.value "
                     "=== 'balcony')"));
    // A sensor without humidity (a DS18B20): a dash on its card and in its table row.
    publish(pub, live_reading("pond", 1, 14.5f, rill::not_measured));
    CHECK(browser.wait_for("document.querySelector('.card[data-sensor=\"pond\"]') !== null", 20s));
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"pond\"] .hum .num')"
                       ".textContent") == "—");
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"pond\"] .temp .num')"
                       ".textContent") == "14.5");
    CHECK(browser.eval("document.querySelector('#readings tbody tr').dataset.key") == "pond/1");
    CHECK(browser.eval("document.querySelector('#readings tbody tr td:nth-child(4)')"
                       ".textContent") == "—");
    CHECK(browser.eval("document.querySelector('#readings tbody tr td:nth-child(3)')"
                       ".textContent") == "14.5 °C");

    const std::filesystem::path artifacts = RILL_WEB_ARTIFACTS;
    std::filesystem::create_directories(artifacts);
    browser.screenshot(artifacts / "dashboard-live.png");
    CHECK(std::filesystem::file_size(artifacts / "dashboard-live.png") > 20'000);
}

TEST_CASE(
    "screenshots of the dashboard in light, dark and phone sizes fit the screen without sideways "
    "scrolling and label their numbers") {
    if (!Chromium::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " is missing (Debian package chromium)");
        return;
    }
    TempPostgres pg;
    seed(pg);
    // Five cards: on a phone's two columns the last one is alone in its row.
    insert_row(pg, "balcony", 1, rill::now() - 10s, 8.5, 90.5);
    WebView w(pg.conninfo());
    const std::filesystem::path artifacts = RILL_WEB_ARTIFACTS;
    std::filesystem::create_directories(artifacts);
    struct Shot {
        const char* name;
        int width, height;
        bool dark;
    };
    for (const auto& shot :
         {Shot{"dashboard-light.png", 1280, 900, false},
          Shot{"dashboard-dark.png", 1280, 900, true}, Shot{"dashboard-phone.png", 390, 844, false},
          Shot{"dashboard-phone-dark.png", 390, 844, true}}) {
        INFO(shot.name);
        Chromium browser(w.url("/"), shot.width, shot.height, shot.dark);
        CHECK(
            browser.wait_for("document.querySelector('#chart canvas') && "
                             "Number(document.getElementById('chart').dataset.points) > 0",
                             30s));
        CHECK(browser.eval("matchMedia('(prefers-color-scheme: dark)').matches") == shot.dark);
        CHECK(browser.eval("innerWidth") == shot.width);
        CHECK(browser.eval("document.querySelectorAll('#readings tbody tr').length") == 50);
        // No sideways scrolling, also on a phone: not of the page, not inside the table.
        CHECK(browser.eval("document.documentElement.scrollWidth") == shot.width);
        CHECK(
            browser.eval("(w => w.scrollWidth <= w.clientWidth)("
                         "document.querySelector('.table-wrap'))"));
        // On a phone's two columns no card sits alone next to an empty cell: the last one reaches
        // the row's right end.
        if (shot.width < 600) {
            CHECK(
                browser.eval("Math.abs([...document.querySelectorAll('.card')].pop()"
                             ".getBoundingClientRect().right - document.getElementById('cards')"
                             ".getBoundingClientRect().right) < 1"));
        }
        // Every number says what it is: the sequence number, the time zones.
        CHECK(
            browser.eval("[...document.querySelectorAll('.card .seq')].every(s => "
                         "/^seq \\d+$/.test(s.textContent) && s.title.length > 0)"));
        // The time zone is named ("UTC", or e.g. "Europe/Berlin (UTC+01:00)"), the same in both.
        const auto zone = browser.eval("document.querySelector('#readings th .tz').textContent");
        CHECK(zone.get<std::string>().find("UTC") != std::string::npos);
        CHECK(browser.eval("document.getElementById('chart-tz').textContent") ==
              "Times in " + zone.get<std::string>() +
                  ", this browser's time zone. Drag across the chart to zoom in.");
        const auto file = artifacts / shot.name;
        browser.screenshot(file, true);
        CHECK(std::filesystem::file_size(file) > 20'000);
        MESSAGE("screenshot: " << file.string());
    }
}

TEST_CASE("behind nginx under a path prefix the page shows its cards, chart and live readings") {
    if (!Chromium::available() || !Nginx::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " or " << Nginx::path
                            << " is missing (Debian packages chromium, nginx)");
        return;
    }
    LiveDashboard live;
    auto& pub = live.pub;
    auto& w = *live.web_view;
    Nginx proxy(weather_location(w.port()));

    Chromium browser(proxy.url("/weather/"), 1280, 900);
    REQUIRE(
        browser.wait_for("document.querySelector('#chart canvas') && "
                         "document.querySelector('#live').dataset.state === 'on' && "
                         "Number(document.getElementById('chart').dataset.points) > 0",
                         30s));
    CHECK(browser.eval("document.querySelectorAll('.card').length") == 4);
    CHECK(browser.eval("document.querySelectorAll('#readings tbody tr').length") == 50);
    // Everything the page loaded came through the prefix (nginx answers 404 outside it).
    CHECK(browser.eval("performance.getEntriesByType('resource').length >= 5"));
    CHECK(
        browser.eval("performance.getEntriesByType('resource').every(e => "
                     "new URL(e.name).pathname.startsWith('/weather/'))"));
    CHECK(browser.eval("getComputedStyle(document.querySelector('.card')).borderRadius") ==
          "14px");  // app.css applied

    // A live reading reaches the page through nginx without waiting in a buffer.
    publish(pub, live_reading("garden", 721, 33.3f, 71.0f));
    CHECK(
        browser.wait_for("document.querySelector('.card[data-sensor=\"garden\"] .temp "
                         ".num').textContent === '33.3'",
                         10s));
    CHECK(browser.eval("document.querySelector('#readings tbody tr').dataset.key") == "garden/721");
    // nginx logs a request when it ends: the open /events is not there yet.
    const auto log = proxy.access_log();
    CHECK(log.find("\"GET /weather/api/series?sensor=garden") != std::string::npos);
    CHECK(log.find("\"GET /weather/assets/app.js") != std::string::npos);
}

TEST_CASE(
    "the chart's range is in the page's URL: 30 d reloads a 30-day range, a URL restores it") {
    if (!Chromium::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " is missing (Debian package chromium)");
        return;
    }
    TempPostgres pg;
    seed(pg);
    WebView w(pg.conninfo());
    const std::string drawn =
        "(c => c.dataset.drawn === c.dataset.request && Number(c.dataset.points) > 0)"
        "(document.getElementById('chart'))";
    {
        Chromium browser(w.url("/"), 1280, 900);
        REQUIRE(browser.wait_for(drawn, 30s));
        CHECK(browser.eval(request_span_ms) == 3600 * 1000);
        CHECK(browser.eval("location.search") == "?chart=garden&range=1h");

        browser.eval("document.querySelector('.ranges button[data-range=\"30d\"]').click()");
        CHECK(browser.wait_for("location.search === '?chart=garden&range=30d'", 5s));
        REQUIRE(browser.wait_for(drawn, 20s));
        CHECK(browser.eval(request_span_ms) == 30LL * 86400 * 1000);
        CHECK(browser.eval("document.querySelector('.ranges button.active').dataset.range") ==
              "30d");
        // A day of garden data in buckets of about half an hour: a few dozen points.
        CHECK(browser.eval("Number(document.getElementById('chart').dataset.points)") > 20);
        // Dragging across the right half of the plot (the day of data is at its end) zooms in:
        // that window is fetched again. "Reset zoom" goes back to 30 days, and so does a double
        // click on the chart.
        const auto zoom_in = [&] {
            const auto area = browser.eval(
                "(r => [r.left, r.right, r.top + r.height / 2])(document.querySelector('#chart "
                "canvas').getBoundingClientRect())");
            const double left = area[0].get<double>(), right = area[1].get<double>();
            const double y = area[2].get<double>();
            browser.drag((left + right) / 2, y, right - 30, y);
            REQUIRE(browser.wait_for("location.search.includes('&from=')", 5s));
            REQUIRE(browser.wait_for(drawn, 20s));
            const auto zoomed = browser.eval(request_span_ms).get<long long>();
            CHECK(zoomed > 5LL * 86400 * 1000);
            CHECK(zoomed < 25LL * 86400 * 1000);
            CHECK(browser.eval("document.getElementById('zoom-reset').hidden") == false);
        };
        const auto back_to_30_days = [&] {
            CHECK(browser.wait_for("location.search === '?chart=garden&range=30d'", 5s));
            REQUIRE(browser.wait_for(drawn, 20s));
            CHECK(browser.eval(request_span_ms) == 30LL * 86400 * 1000);
            CHECK(browser.eval("document.getElementById('zoom-reset').hidden") == true);
        };
        zoom_in();
        browser.eval("document.getElementById('zoom-reset').click()");
        back_to_30_days();
        zoom_in();
        browser.eval(
            "document.querySelector('#chart canvas').dispatchEvent(new "
            "MouseEvent('dblclick', {bubbles: true}))");
        back_to_30_days();
        // Export CSV asks for what the chart shows.
        CHECK(
            browser.eval("document.getElementById('chart-csv').getAttribute('href') === "
                         "'api/series.csv?' + document.getElementById('chart').dataset"
                         ".request.split('?')[1]"));
    }
    {
        Chromium browser(w.url("/?chart=living-room&range=7d"), 1280, 900);
        REQUIRE(browser.wait_for(drawn, 30s));
        CHECK(browser.eval("document.querySelector('.ranges button.active').dataset.range") ==
              "7d");
        CHECK(browser.eval("document.getElementById('chart-sensor').value") == "living-room");
        CHECK(browser.eval(request_span_ms) == 7LL * 86400 * 1000);
        CHECK(
            browser.eval("document.getElementById('chart').dataset.request.includes("
                         "'sensor=living-room&')"));
    }
    {
        Chromium browser(
            w.url("/?chart=garden&from=2026-01-01T00:00:00.000Z&to=2026-01-02T00:00:00.000Z"), 1280,
            900);
        REQUIRE(browser.wait_for("document.getElementById('chart').dataset.drawn", 30s));
        CHECK(browser.eval("document.querySelector('.ranges button.active').dataset.range") ==
              "custom");
        CHECK(browser.eval("document.getElementById('custom-range').hidden") == false);
        CHECK(
            browser.eval("document.getElementById('chart').dataset.request.startsWith("
                         "'api/series?sensor=garden&from=2026-01-01T00%3A00%3A00.000Z&to="
                         "2026-01-02T00%3A00%3A00.000Z&points=')"));
    }
}
