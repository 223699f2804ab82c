// One command-line voice for every rill executable: argument errors start with the program's
// name and exit 64 (EX_USAGE), --help shows defaults with their units, and sensor-pub keeps its
// outbox where docs/operations.md says and nowhere when it cannot start.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::Process;
using rill::test::read_file;
using rill::test::run_command;
using rill::test::TempDir;

namespace {

constexpr int ex_usage = 64;

struct Outcome {
    int code = -1;
    std::string output;  ///< stdout and stderr
};

Outcome run_app(const std::string& app, const std::vector<std::string>& args) {
    std::vector<std::string> argv{bin(app)};
    argv.insert(argv.end(), args.begin(), args.end());
    Outcome o;
    o.code = run_command(argv, 30s, &o.output);
    return o;
}

// Runs `app` with extra environment entries; stdout and stderr go to one file.
Outcome run_with_env(const std::string& app, const std::vector<std::string>& args,
                     std::vector<std::string> env) {
    TempDir dir("rill-cli");
    const auto log = (dir.path() / "log").string();
    std::vector<std::string> argv{bin(app)};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p(argv, {.env = std::move(env), .stdout_path = log, .stderr_path = log});
    Outcome o;
    o.code = p.wait_for(30s).value_or(-1);
    o.output = read_file(log);
    return o;
}

// A plain TCP listener on a free loopback port, held until destruction (no SO_REUSEPORT).
class HeldPort {
  public:
    HeldPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::listen(fd_, 4) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len)) {
            throw std::runtime_error("cannot hold a loopback port");
        }
        port_ = ntohs(a.sin_port);
    }
    ~HeldPort() { ::close(fd_); }
    HeldPort(const HeldPort&) = delete;
    HeldPort& operator=(const HeldPort&) = delete;
    [[nodiscard]] int port() const noexcept { return port_; }

  private:
    int fd_;
    int port_ = 0;
};

void check_usage_error(const std::string& app, const std::vector<std::string>& args,
                       const std::string& mentions) {
    const auto o = run_app(app, args);
    INFO(app << ": " << o.output);
    CHECK(o.code == ex_usage);
    CHECK(o.output.rfind(app + ": ", 0) == 0);
    CHECK(o.output.find(mentions) != std::string::npos);
    CHECK(o.output.find('\n') == o.output.size() - 1);  // one line
}

}  // namespace

TEST_CASE("every rill executable refuses an unknown flag with its name first and exit code 64") {
    // With the required arguments given: CLI11 reports a missing one first.
    const std::vector<std::pair<std::string, std::vector<std::string>>> runs{
        {"sensor-pub", {"--sensor-id", "s", "--bogus"}},
        {"store-sub", {"--connect", "tcp://127.0.0.1:1", "--bogus"}},
        {"web-view", {"--db", "dbname=x", "--bogus"}},
        {"tap", {"tcp://127.0.0.1:1", "--bogus"}},
        {"rill-keygen", {"station", "--bogus"}},
    };
    for (const auto& [app, args] : runs)
        check_usage_error(app, args, "--bogus");
    check_usage_error("sensor-pub", {"--bogus"}, "--sensor-id is required");
}

TEST_CASE("every rill executable refuses a bad flag value with its name first and exit code 64") {
    check_usage_error("sensor-pub", {"--sensor-id", "s", "--seed", "x"}, "--seed");
    check_usage_error("sensor-pub", {"--sensor-id", "s", "--interval", "5"}, "--interval");
    check_usage_error("store-sub", {"--connect", "tcp://127.0.0.1:1", "--batch-max", "lots"},
                      "--batch-max");
    check_usage_error("store-sub", {"--connect", "tcp://127.0.0.1:1", "--log-level", "loud"},
                      "--log-level");
    check_usage_error("web-view", {"--db", "dbname=x", "--stale-after", "soon"}, "--stale-after");
    check_usage_error("web-view", {"--db", "dbname=x", "--max-live-clients", "0"},
                      "--max-live-clients");
    check_usage_error("web-view", {"--db", "dbname=x", "--max-live-sensors", "0"},
                      "--max-live-sensors");
    check_usage_error("store-sub", {"--connect", "tcp://127.0.0.1:1", "--max-sensors", "0"},
                      "--max-sensors");
    check_usage_error("store-sub", {"--connect", "tcp://127.0.0.1:1", "--max-publishers", "none"},
                      "--max-publishers");
    check_usage_error("tap", {"tcp://127.0.0.1:1", "--count", "many"}, "--count");
    check_usage_error("rill-keygen", {"station", "--dir"}, "--dir");
    check_usage_error("rill-keygen", {}, "name");
}

TEST_CASE("the programs' own checks of flag values are argument errors with exit code 64 too") {
    // Checked after parsing, before anything is opened or bound.
    check_usage_error("sensor-pub", {"--sensor-id", ""}, "--sensor-id");
    check_usage_error("sensor-pub", {"--sensor-id", "s", "--fsync", "sometimes"}, "--fsync");
    check_usage_error("sensor-pub", {"--sensor-id", "s", "--interval", "1s", "--rate", "5"},
                      "--rate");
    check_usage_error("store-sub", {"--connect", "tcp://127.0.0.1:1", "--db", ""}, "--db");
    check_usage_error("web-view", {"--db", "dbname=x", "--stale-after", "0"}, "--stale-after");
    check_usage_error("web-view", {"--db", "dbname=x", "--listen", "nowhere"}, "--listen");
}

TEST_CASE("--help shows every app's defaults with their units and exits 0") {
    const std::vector<std::pair<std::string, std::vector<std::string>>> expected{
        {"sensor-pub", {"--interval", "5s", "--outbox-max-bytes", "256MiB", "--linger", "30s"}},
        {"store-sub", {"--flush-interval", "20ms", "--drain-timeout", "10s"}},
        {"web-view", {"--stale-after", "1m", "--silent-after", "10m", "127.0.0.1:8080"}},
        {"tap", {"--count", "--log-level", "warn"}},
        {"rill-keygen", {"--dir"}},
    };
    for (const auto& [app, words] : expected) {
        const auto o = run_app(app, {"--help"});
        INFO(app << ": " << o.output);
        CHECK(o.code == 0);
        for (const auto& w : words)
            CHECK_MESSAGE(o.output.find(w) != std::string::npos, w);
    }
}

TEST_CASE("sensor-pub on a port in use exits 1 naming the address and leaves no outbox behind") {
    const HeldPort held;
    TempDir dir("rill-cli");
    const auto outbox = dir.path() / "outbox";
    const auto address = "tcp://127.0.0.1:" + std::to_string(held.port());
    const auto o = run_with_env("sensor-pub",
                                {"--sensor-id", "held", "--outbox", outbox.string(), "--pub",
                                 "@" + address, "--replay", "@tcp://127.0.0.1:0", "--count", "1"},
                                {});
    INFO(o.output);
    CHECK(o.code == 1);
    CHECK(o.output.find("sensor-pub: ") != std::string::npos);
    CHECK(o.output.find(std::to_string(held.port())) != std::string::npos);
    CHECK_FALSE(fs::exists(outbox));

    // The default location too: nothing under $XDG_STATE_HOME, nothing in the working directory.
    const auto state = dir.path() / "state";
    const auto d =
        run_with_env("sensor-pub",
                     {"--sensor-id", "held-default", "--pub", "@" + address, "--replay",
                      "@tcp://127.0.0.1:0", "--count", "1"},
                     {"XDG_STATE_HOME=" + state.string(), "STATE_DIRECTORY=", "RILL_OUTBOX="});
    INFO(d.output);
    CHECK(d.code == 1);
    CHECK_FALSE(fs::exists(state / "rill" / "outbox-held-default"));
    CHECK_FALSE(fs::exists("outbox-held-default"));
}

TEST_CASE(
    "sensor-pub without --outbox keeps it under $STATE_DIRECTORY, else $XDG_STATE_HOME/rill,"
    " else ~/.local/state/rill") {
    TempDir dir("rill-cli");
    const std::vector<std::string> args{
        "--pub", "@tcp://127.0.0.1:0", "--replay", "@tcp://127.0.0.1:0", "--count",
        "2",     "--interval",         "10ms",     "--linger",           "0"};
    const auto home = dir.path() / "home";
    const auto xdg = dir.path() / "xdg";
    const auto state = dir.path() / "state";
    struct Case {
        std::string id;
        std::vector<std::string> env;
        fs::path expected;
    };
    const std::vector<Case> cases{
        {"by-systemd",
         {"HOME=" + home.string(), "XDG_STATE_HOME=" + xdg.string(),
          "STATE_DIRECTORY=" + state.string()},
         state / "outbox-by-systemd"},
        {"by-xdg",
         {"HOME=" + home.string(), "XDG_STATE_HOME=" + xdg.string(), "STATE_DIRECTORY="},
         xdg / "rill" / "outbox-by-xdg"},
        {"by-home",
         {"HOME=" + home.string(), "XDG_STATE_HOME=", "STATE_DIRECTORY="},
         home / ".local" / "state" / "rill" / "outbox-by-home"},
    };
    for (const auto& c : cases) {
        auto argv = args;
        argv.insert(argv.begin(), {"--sensor-id", c.id});
        auto env = c.env;
        env.emplace_back("RILL_OUTBOX=");
        const auto o = run_with_env("sensor-pub", argv, env);
        INFO(c.id << ": " << o.output);
        CHECK(o.code == 0);
        CHECK(fs::is_directory(c.expected));
        CHECK(o.output.find("outbox " + c.expected.string()) != std::string::npos);
        CHECK_FALSE(fs::exists("outbox-" + c.id));
    }
}

TEST_CASE("sensor-pub and store-sub refuse an admin address in use with exit 1 naming it") {
    const HeldPort held;
    const auto address = "127.0.0.1:" + std::to_string(held.port());
    TempDir dir("rill-cli");
    const auto pub =
        run_with_env("sensor-pub",
                     {"--sensor-id", "admin", "--outbox", (dir.path() / "ob").string(), "--pub",
                      "@tcp://127.0.0.1:0", "--replay", "@tcp://127.0.0.1:0", "--metrics", address},
                     {});
    INFO(pub.output);
    CHECK(pub.code == 1);
    CHECK(pub.output.find("error sensor-pub: cannot listen for /metrics on " + address +
                          ": Address already in use") != std::string::npos);
    CHECK_FALSE(fs::exists(dir.path() / "ob"));
    // store-sub opens no database connection before it serves /metrics.
    const auto sub = run_with_env("store-sub",
                                  {"--connect", "tcp://127.0.0.1:1", "--db",
                                   "host=/nonexistent dbname=x", "--metrics", address},
                                  {});
    INFO(sub.output);
    CHECK(sub.code == 1);
    CHECK(sub.output.find("error store-sub: cannot listen for /metrics on " + address +
                          ": Address already in use") != std::string::npos);
}
