// The dashboard over a live pipeline: a simulated sensor-pub, store-sub writing into a
// throwaway PostgreSQL, and web-view subscribed to the same stream, seen by a real headless
// Chromium. The screenshots are saved as test artifacts under build/tests/web-view/artifacts/.
#include <doctest/doctest.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "chromium.hpp"
#include "web_view_fixture.hpp"

using namespace rill::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// A process whose stderr goes to DIR/NAME.log.
std::unique_ptr<Process> start(const TempDir& dir, const std::string& name,
                               std::vector<std::string> argv) {
    ProcessOptions options;
    options.stderr_path = (dir.path() / (name + ".log")).string();
    return std::make_unique<Process>(std::move(argv), options);
}

std::string log_of(const TempDir& dir, const std::string& name) {
    return read_file(dir.path() / (name + ".log"));
}

// The stream endpoint sensor-pub announces in its start line
// ("... publishing on tcp://127.0.0.1:PORT, replay on ...").
std::string published_endpoint(const TempDir& dir, Process& pub) {
    const std::string marker = "publishing on ";
    std::string text;
    const bool up = wait_until(
        [&] {
            text = log_of(dir, "sensor-pub");
            return text.find(marker) != std::string::npos || !pub.running();
        },
        20s);
    const auto at = text.find(marker);
    if (!up || at == std::string::npos)
        throw std::runtime_error("sensor-pub did not start: " + text);
    const auto begin = at + marker.size();
    return text.substr(begin, text.find(',', begin) - begin);
}

bool stored(const TempPostgres& pg, long long seq) {
    return pg.value("SELECT count(*) FROM readings WHERE sensor = 'porch' AND seq = " +
                    std::to_string(seq)) == "1";
}

}  // namespace

TEST_CASE("the dashboard over a live sensor-pub and store-sub shows stored readings and new ones") {
    if (!Chromium::available()) {
        MESSAGE("SKIPPED: " << Chromium::path << " is missing (Debian package chromium)");
        return;
    }
    TempPostgres pg;
    TempDir dir("rill-pipeline");
    auto pub = start(dir, "sensor-pub",
                     {bin("sensor-pub"), "--sensor-id", "porch", "--source", "sim", "--interval",
                      "200ms", "--pub", "@tcp://127.0.0.1:0", "--replay", "@tcp://127.0.0.1:0",
                      "--outbox", (dir.path() / "outbox").string()});
    const std::string stream = published_endpoint(dir, *pub);
    INFO("stream: " << stream);
    CHECK(stream.rfind("tcp://127.0.0.1:", 0) == 0);
    // store-sub creates the schema (rill::store::migrate) and stores what the stream carries.
    auto store =
        start(dir, "store-sub", {bin("store-sub"), "--connect", stream, "--db", pg.conninfo()});
    REQUIRE_MESSAGE(wait_until(
                        [&] {
                            return pg.value("SELECT to_regclass('readings') IS NOT NULL") == "t" &&
                                   std::stoll(pg.value("SELECT count(*) FROM readings")) >= 5;
                        },
                        30s),
                    log_of(dir, "store-sub"));

    WebView w(pg.conninfo(), {"--connect", stream});
    Chromium browser(w.url("/"), 1280, 900);
    REQUIRE_MESSAGE(
        browser.wait_for("document.querySelector('#live').dataset.state === 'on' && "
                         "document.querySelector('.card[data-sensor=\"porch\"]') && "
                         "Number(document.getElementById('chart').dataset.points) > 0 && "
                         "document.querySelectorAll('#readings tbody tr').length > 0",
                         30s),
        w.log());

    // The card shows a reading that is in the database, with its temperature.
    const auto card = browser.eval(R"JS((() => {
        const c = document.querySelector('.card[data-sensor="porch"]');
        return {seq: Number(c.dataset.seq), t: c.querySelector('.temp .num').textContent};
    })())JS");
    const auto card_seq = card["seq"].get<long long>();
    REQUIRE(card_seq >= 1);
    // A live reading may be a moment ahead of store-sub's next batch.
    REQUIRE(wait_until([&] { return stored(pg, card_seq); }, 10s));
    const double stored_t =
        std::stod(pg.value("SELECT temperature FROM readings WHERE sensor = 'porch' AND seq = " +
                           std::to_string(card_seq)));
    // The card rounds to 0.1 (from the float on the wire, the table holds a real).
    CHECK(std::abs(std::stod(card["t"].get<std::string>()) - stored_t) <= 0.051);
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"porch\"] .status')"
                       ".textContent") == "fresh");
    // Every row of the table is a stored reading.
    const auto keys = browser.eval(
        "[...document.querySelectorAll('#readings tbody tr')].map(r => r.dataset.key)");
    REQUIRE(!keys.empty());
    for (const auto& key : keys) {
        const auto k = key.get<std::string>();
        REQUIRE(k.rfind("porch/", 0) == 0);
        const auto seq = std::stoll(k.substr(6));
        CHECK_MESSAGE(wait_until([&] { return stored(pg, seq); }, 10s), k);
    }
    // The chart was drawn from /api/series, i.e. from the table.
    CHECK(browser.eval("document.getElementById('chart-note').textContent") == "");

    // New readings arrive without a reload: the same document (the marker survives) moves on.
    browser.eval("window.rillMarker = 7");
    const auto points = browser.eval("Number(document.getElementById('chart').dataset.points)");
    const auto first_row = keys.front().get<std::string>();
    CHECK(
        browser.wait_for("Number(document.querySelector('.card[data-sensor=\"porch\"]')"
                         ".dataset.seq) >= " +
                             std::to_string(card_seq + 5),
                         20s));
    CHECK(browser.eval("window.rillMarker") == 7);
    CHECK(browser.eval("document.querySelector('#readings tbody tr').dataset.key") != first_row);
    // The chart redraws at its own pace (coalesced animation frames): wait for it, bounded.
    CHECK(browser.wait_for("Number(document.getElementById('chart').dataset.points) > " +
                               std::to_string(points.get<int>()),
                           10s));
    // ... and they are the ones store-sub stores.
    const auto newest =
        browser.eval("Number(document.querySelector('.card[data-sensor=\"porch\"]').dataset.seq)");
    CHECK(wait_until([&] { return stored(pg, newest.get<long long>()); }, 10s));

    const std::filesystem::path artifacts = RILL_WEB_ARTIFACTS;
    std::filesystem::create_directories(artifacts);
    browser.screenshot(artifacts / "dashboard-pipeline.png");
    CHECK(std::filesystem::file_size(artifacts / "dashboard-pipeline.png") > 20'000);
    MESSAGE("screenshot: " << (artifacts / "dashboard-pipeline.png").string());

    // The publisher's host vanishes (SIGKILL: no goodbye of any kind): its heartbeats end, and
    // the card says so long before its readings would count as stale.
    pub->signal(SIGKILL);
    REQUIRE(pub->wait_for(15s).has_value());
    CHECK_MESSAGE(browser.wait_for("document.querySelector('.card[data-sensor=\"porch\"] .status')"
                                   ".textContent === 'publisher silent'",
                                   20s),
                  w.log());
    CHECK(browser.eval("document.querySelector('.card[data-sensor=\"porch\"]').dataset.status") ==
          "stale");
    browser.screenshot(artifacts / "dashboard-pipeline-silent.png");

    store->signal(SIGTERM);
    const auto store_code = store->wait_for(15s);
    REQUIRE(store_code.has_value());
    CHECK(*store_code == 0);
}
