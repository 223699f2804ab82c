// rill under a real Prometheus: the apps' /metrics pass `promtool check metrics` while readings
// flow, and a Prometheus server (Debian package) scrapes every app, finds it up and sees
// store-sub's stored readings rise. deploy/prometheus/rules are loaded and evaluated too.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "support/mosquitto.hpp"
#include "support/pipeline.hpp"
#include "support/prometheus.hpp"
#include "text.hpp"

using namespace rill::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// "http://HOST:PORT" from the first log line holding `marker` followed by it; nothing yet.
std::optional<std::string> url_after(const std::string& log, const std::string& marker) {
    const auto at = log.find(marker);
    if (at == std::string::npos) return std::nullopt;
    const auto begin = at + marker.size();
    const auto end = log.find_first_of("/ \n", begin + std::string("http://").size());
    if (end == std::string::npos) return std::nullopt;
    return log.substr(begin, end - begin);
}

// An app started by the test whose admin URL ("http://127.0.0.1:PORT", serving /metrics) is
// read from its log.
struct AdminApp {
    std::unique_ptr<Process> process;
    std::string log_path;
    std::string url;

    // Starts bin(name) with `args`; waits (bounded) for `marker` followed by its URL in its log.
    AdminApp(const TempDir& dir, const std::string& name, std::vector<std::string> args,
             const std::string& marker) {
        log_path = (dir.path() / (name + ".log")).string();
        args.insert(args.begin(), bin(name));
        process =
            std::make_unique<Process>(std::move(args), ProcessOptions{.stderr_path = log_path});
        std::optional<std::string> found;
        const bool up = wait_until(
            [&] {
                found = url_after(read_file(log_path), marker);
                return found.has_value() || !process->running();
            },
            30s);
        if (!up || !found)
            throw std::runtime_error(name + " did not start: " + read_file(log_path));
        url = *found;
    }
};

// sensor-pub -> store-sub -> PostgreSQL, and web-view on the same stream, each serving /metrics.
struct Pipeline {
    TempPostgres pg;
    TempDir dir{"rill-prometheus"};
    SensorPub pub{dir.path(), SensorPubOptions{.sensor_id = "garden",
                                               .rate = 50,
                                               .outbox = dir.path() / "outbox",
                                               .extra_args = {"--metrics", "127.0.0.1:0"}}};
    StoreSub store{dir.path(), StoreSubOptions{.connect = {pub.stream()}, .db = pg.conninfo()}};
    AdminApp web{dir,
                 "web-view",
                 {"--db", pg.conninfo(), "--listen", "127.0.0.1:0", "--connect", pub.stream()},
                 "listening on "};
    // mqtt-bridge over a real broker (no device publishes: its /metrics and up are what count).
    TempDir broker_dir{"rill-prometheus-broker"};
    Mosquitto broker{broker_dir.path()};
    AdminApp bridge{dir,
                    "mqtt-bridge",
                    {"--broker", broker.url(), "--topic", "dev/+/temperature={1}:plain", "--outbox",
                     (dir.path() / "bridge-outbox").string(), "--pub", "@tcp://127.0.0.1:0",
                     "--replay", "@tcp://127.0.0.1:0", "--metrics", "127.0.0.1:0"},
                    "serving /metrics and /healthz on "};

    // sensor-pub's admin URL, from its log.
    [[nodiscard]] std::string pub_admin() const {
        const auto url = url_after(read_file(pub.log_path()), "serving /metrics and /healthz on ");
        return url.value_or("");
    }
};

// The apps scraped, as Prometheus jobs: one row per app.
struct Target {
    std::string job;
    std::function<std::string(Pipeline&)> url;  // "http://HOST:PORT" serving /metrics
};
const std::vector<Target>& targets() {
    static const std::vector<Target> table = {
        {"sensor-pub", [](Pipeline& p) { return p.pub_admin(); }},
        {"store-sub", [](Pipeline& p) { return p.store.admin_url(); }},
        {"web-view", [](Pipeline& p) { return p.web.url; }},
        {"mqtt-bridge", [](Pipeline& p) { return p.bridge.url; }},
    };
    return table;
}

std::string host_port(const std::string& url) {
    return url.substr(url.find("://") + 3);
}

// A Prometheus server on a free loopback port, scraping `jobs` (job -> HOST:PORT) every second
// and evaluating deploy/prometheus/rules every second; storage in a temporary directory. The
// destructor stops it (SIGTERM, then SIGKILL). Run as root it needs no writable /etc: under
// strace it opens only /etc/hosts, nsswitch.conf and resolv.conf (read-only) and writes only
// below --storage.tsdb.path.
class PrometheusServer {
  public:
    explicit PrometheusServer(const std::vector<std::pair<std::string, std::string>>& jobs)
        : port_(free_loopback_port()) {
        std::string config =
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n  - " +
            std::string(RILL_SOURCE_DIR) + "/deploy/prometheus/rules/rill.rules.yml\n" +
            "scrape_configs:\n";
        for (const auto& [job, address] : jobs) {
            config += "  - job_name: " + job + "\n    static_configs:\n      - targets: [\"" +
                      address + "\"]\n";
        }
        const auto config_path = dir_.path() / "prometheus.yml";
        std::ofstream(config_path) << config;
        log_path_ = (dir_.path() / "prometheus.log").string();
        process_ = std::make_unique<Process>(
            std::vector<std::string>{RILL_PROMETHEUS, "--config.file=" + config_path.string(),
                                     "--storage.tsdb.path=" + (dir_.path() / "data").string(),
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                     "--log.level=warn"},
            ProcessOptions{.stderr_path = log_path_});
    }
    ~PrometheusServer() {
        process_->signal(SIGTERM);
        (void)process_->wait_for(10s);  // then the Process destructor kills it
    }
    PrometheusServer(const PrometheusServer&) = delete;
    PrometheusServer& operator=(const PrometheusServer&) = delete;

    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::string log() const { return read_file(log_path_); }
    [[nodiscard]] bool running() { return process_->running(); }

    // The "data" member of a successful API answer to `path`; nothing otherwise.
    [[nodiscard]] std::optional<json> api(const std::string& path) const {
        const auto r = http_get(url(), path, 5s);
        if (!r || r->status != 200) return std::nullopt;
        const auto j = json::parse(r->body, nullptr, false);
        if (j.is_discarded() || j.value("status", "") != "success") return std::nullopt;
        return j["data"];
    }
    // The value of a query that returns one sample; nothing when it returns none.
    [[nodiscard]] std::optional<double> scalar(const std::string& query) const {
        const auto data = api("/api/v1/query?query=" + rill::web::url_encode(query));
        if (!data || (*data)["result"].size() != 1) return std::nullopt;
        return std::stod((*data)["result"][0]["value"][1].get<std::string>());
    }

  private:
    TempDir dir_{"rill-prometheus-server"};
    int port_;
    std::string log_path_;
    std::unique_ptr<Process> process_;
};

bool readings_flow(Pipeline& p) {
    return wait_rows(p.pg, 20, 60s);
}

}  // namespace

TEST_CASE("promtool check metrics accepts the /metrics of every app while readings flow") {
    REQUIRE(promtool_available());
    Pipeline p;
    REQUIRE_MESSAGE(readings_flow(p), p.store.log());
    for (const auto& t : targets()) {
        const std::string url = t.url(p);
        INFO(t.job << " at " << url);
        REQUIRE(!url.empty());
        const auto r = http_get(url, "/metrics");
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body.find("rill_build_info{") != std::string::npos);
        const auto check = promtool_check_metrics(r->body);
        CHECK_MESSAGE(check.status == 0, check.output);
    }
    // The readings themselves are on web-view's /metrics too.
    const auto web = http_get(p.web.url, "/metrics");
    REQUIRE(web);
    CHECK(web->body.find("rill_sensor_temperature_celsius{sensor=\"garden\"} ") !=
          std::string::npos);
}

TEST_CASE("a real Prometheus scrapes every app, finds it up and sees stored readings rise") {
    Pipeline p;
    REQUIRE_MESSAGE(readings_flow(p), p.store.log());
    std::vector<std::pair<std::string, std::string>> jobs;
    for (const auto& t : targets()) {
        const std::string url = t.url(p);
        REQUIRE_MESSAGE(!url.empty(), t.job);
        jobs.emplace_back(t.job, host_port(url));
    }
    PrometheusServer prom(jobs);
    INFO("prometheus log: " << prom.log());

    // Every target up, as Prometheus sees it.
    json active;
    const bool all_up = wait_until(
        [&] {
            const auto data = prom.api("/api/v1/targets?state=active");
            if (!data) return false;
            active = (*data)["activeTargets"];
            if (active.size() != jobs.size()) return false;
            for (const auto& t : active) {
                if (t["health"] != "up") return false;
            }
            return true;
        },
        60s);
    REQUIRE_MESSAGE(all_up, "targets: " << active.dump() << "\nlog: " << prom.log());
    for (const auto& [job, address] : jobs) {
        INFO(job);
        CHECK(prom.scalar("up{job=\"" + job + "\"}") == 1.0);
    }

    // store-sub's stored-readings counter rises while readings flow: two queries apart.
    const std::string stored = "sum(rill_store_readings_total{job=\"store-sub\"})";
    std::optional<double> first;
    REQUIRE(wait_until([&] { return (first = prom.scalar(stored)).has_value(); }, 30s));
    std::optional<double> later;
    const bool rose = wait_until(
        [&] {
            later = prom.scalar(stored);
            return later && *later > *first;
        },
        30s);
    CHECK_MESSAGE(rose, "first " << *first << ", later " << later.value_or(-1));
    // ... and web-view's gauge of the sensor is there.
    CHECK(prom.scalar("rill_sensor_temperature_celsius{job=\"web-view\",sensor=\"garden\"}"));

    // The shipped rules load and evaluate without error on the real series, and none fires on
    // a healthy pipeline.
    json groups;
    const bool evaluated = wait_until(
        [&] {
            const auto data = prom.api("/api/v1/rules");
            if (!data) return false;
            groups = (*data)["groups"];
            if (groups.empty()) return false;
            for (const auto& g : groups) {
                for (const auto& r : g["rules"]) {
                    if (r.value("lastEvaluation", "").starts_with("0001-")) return false;
                }
            }
            return true;
        },
        30s);
    REQUIRE_MESSAGE(evaluated, groups.dump());
    for (const auto& g : groups) {
        for (const auto& r : g["rules"]) {
            INFO(r["name"].get<std::string>() << ": " << r.value("lastError", ""));
            CHECK(r["health"] == "ok");
            CHECK(r["state"] == "inactive");
        }
    }
    CHECK(prom.running());
}
