// A real headless Chromium against web-view: the page shows the known readings, applies live
// readings without a reload, and looks right (screenshots saved as test artifacts under
// build/tests/web-view/artifacts/).
#include <doctest/doctest.h>

#include <filesystem>

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
}

}  // namespace

TEST_CASE("a headless browser shows the readings and applies live ones without reloading") {
    if (!Chromium::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " is missing (Debian package chromium)");
        return;
    }
    TempPostgres pg;
    seed(pg);
    rill::Socket pub(rill::default_context(), zmq::socket_type::pub);
    pub.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    WebView w(pg.conninfo(), {"--connect", pub.last_endpoint()});
    // Wait until web-view's subscription is through (PUB/SUB's slow-joiner window).
    std::uint64_t warm = 1000;
    REQUIRE(wait_until(
        [&] {
            publish(pub, live_reading("warmup", warm++, 1, 1));
            return get(w, "/metrics")->body.find("rill_web_live_readings_total 0") ==
                   std::string::npos;
        },
        15s));

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

    const std::filesystem::path artifacts = RILL_WEB_ARTIFACTS;
    std::filesystem::create_directories(artifacts);
    browser.screenshot(artifacts / "dashboard-live.png");
    CHECK(std::filesystem::file_size(artifacts / "dashboard-live.png") > 20'000);
}

TEST_CASE("screenshots of the dashboard in light, dark and phone sizes are saved as artifacts") {
    if (!Chromium::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " is missing (Debian package chromium)");
        return;
    }
    TempPostgres pg;
    seed(pg);
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
        Chromium browser(w.url("/"), shot.width, shot.height, shot.dark);
        CHECK(browser.wait_for("document.querySelector('#chart canvas')", 30s));
        CHECK(browser.eval("matchMedia('(prefers-color-scheme: dark)').matches") == shot.dark);
        // No horizontal scrolling, also on a phone.
        CHECK(browser.eval("document.documentElement.scrollWidth <= innerWidth"));
        const auto file = artifacts / shot.name;
        browser.screenshot(file);
        CHECK(std::filesystem::file_size(file) > 20'000);
        MESSAGE("screenshot: " << file.string());
    }
}
