// The apps speak systemd's notify protocol (apps/common/systemd_notify.hpp), tested without
// systemd: the test binds the AF_UNIX datagram socket systemd would, starts the real binary with
// NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID pointing at it, and reads what arrives.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/postgres.hpp"
#include "support/process.hpp"

namespace {

using namespace std::chrono_literals;
using rill::test::bin;
using rill::test::Process;
using rill::test::ProcessOptions;
using rill::test::read_file;
using rill::test::TempDir;
using rill::test::wait_until;

// What systemd listens on: an AF_UNIX datagram socket. Collects every message that arrived.
class NotifySocket {
  public:
    explicit NotifySocket(const std::filesystem::path& path) : path_(path.string()) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd_ < 0) throw std::runtime_error("socket(AF_UNIX): " + std::string(strerror(errno)));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path_.size() >= sizeof addr.sun_path) throw std::runtime_error("path too long");
        std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
        if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            throw std::runtime_error("bind " + path_ + ": " + strerror(errno));
        }
    }
    ~NotifySocket() { ::close(fd_); }
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;

    [[nodiscard]] const std::string& path() const noexcept { return path_; }

    // Every message received so far (reads what is queued first).
    const std::vector<std::string>& messages() {
        char buf[4096];
        for (;;) {
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0) break;  // EAGAIN: nothing more queued
            received_.emplace_back(buf, static_cast<std::size_t>(n));
        }
        return received_;
    }
    // Index of the first message starting with `prefix`, at or after `from`.
    std::optional<std::size_t> find(const std::string& prefix, std::size_t from = 0) {
        const auto& all = messages();
        for (std::size_t i = from; i < all.size(); ++i) {
            if (all[i].rfind(prefix, 0) == 0) return i;
        }
        return std::nullopt;
    }
    std::size_t count(const std::string& message, std::size_t from = 0) {
        const auto& all = messages();
        if (from >= all.size()) return 0;
        return static_cast<std::size_t>(
            std::count(all.begin() + static_cast<long>(from), all.end(), message));
    }
    // Every message, for failure output.
    std::string dump() {
        std::string out;
        for (const auto& m : messages())
            out += "[" + m + "] ";
        return out;
    }

  private:
    std::string path_;
    int fd_ = -1;
    std::vector<std::string> received_;
};

// Starts `argv` as systemd would start a Type=notify service with WatchdogSec: NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID (the service's own pid: sh exports $$ and execs the program, so
// the pid stays). `watchdog_pid` overrides the pid (a watchdog meant for another process).
Process start_service(const NotifySocket& socket, std::vector<std::string> argv,
                      const std::string& log, const std::string& watchdog_pid = "$$") {
    std::vector<std::string> sh{"sh", "-c", "export WATCHDOG_PID=" + watchdog_pid + "; exec \"$@\"",
                                "sh"};
    sh.insert(sh.end(), argv.begin(), argv.end());
    ProcessOptions o;
    o.env = {"NOTIFY_SOCKET=" + socket.path(), "WATCHDOG_USEC=200000"};
    o.stderr_path = log;
    return Process(std::move(sh), std::move(o));
}

// READY=1 arrives, then WATCHDOG=1 several times; SIGTERM brings STOPPING=1 and exit code 0.
// Returns the READY message.
std::string check_ready_watchdog_stopping(NotifySocket& socket, Process& app,
                                          const std::string& log) {
    INFO("messages: " << socket.dump() << "\nlog:\n" << read_file(log));
    REQUIRE(wait_until([&] { return socket.find("READY=1").has_value(); }, 20s));
    const auto ready = *socket.find("READY=1");
    CHECK(socket.find("STOPPING=1") == std::nullopt);
    // WATCHDOG_USEC=200000: a ping every 100 ms or so; ask for a few.
    CHECK(wait_until([&] { return socket.count("WATCHDOG=1", ready) >= 5; }, 10s));
    app.signal(SIGTERM);
    CHECK(wait_until([&] { return socket.find("STOPPING=1", ready).has_value(); }, 10s));
    CHECK(app.wait_for(30s) == 0);
    return socket.messages()[ready];
}

TEST_CASE(
    "sensor-pub tells systemd it is ready once bound, pings the watchdog and says when it "
    "stops") {
    TempDir dir("rill-notify");
    NotifySocket socket(dir.path() / "notify");
    const auto log = (dir.path() / "sensor-pub.log").string();
    auto app = start_service(socket,
                             {bin("sensor-pub"), "--sensor-id", "porch", "--source", "sim",
                              "--interval", "100ms", "--pub", "@tcp://127.0.0.1:0", "--replay",
                              "@tcp://127.0.0.1:0", "--outbox", (dir.path() / "outbox").string()},
                             log);
    INFO("log:\n" << read_file(log));
    REQUIRE(wait_until([&] { return socket.find("READY=1").has_value(); }, 20s));
    // Ready means bound: the start line with the bound endpoints was written before READY=1.
    CHECK(
        std::regex_search(read_file(log), std::regex("publishing on tcp://127\\.0\\.0\\.1:[1-9]")));
    // STATUS follows the outbox: readings get published, and the status says up to which seq.
    CHECK(wait_until(
        [&] {
            return socket.find("STATUS=sensor porch: published up to seq ").has_value() &&
                   std::any_of(
                       socket.messages().begin(), socket.messages().end(), [](const auto& m) {
                           return std::regex_search(m, std::regex("published up to seq [1-9]"));
                       });
        },
        10s));
    const auto ready = check_ready_watchdog_stopping(socket, app, log);
    CHECK(ready.find("STATUS=sensor porch: published up to seq ") != std::string::npos);
    CHECK(socket.find("STOPPING=1\nSTATUS=stopping on SIGTERM").has_value());
}

TEST_CASE("sensor-pub does not ping a watchdog meant for another process") {
    TempDir dir("rill-notify");
    NotifySocket socket(dir.path() / "notify");
    const auto log = (dir.path() / "sensor-pub.log").string();
    // WATCHDOG_PID of another process (pid 1): sd_watchdog_enabled says no, as systemd means.
    auto app = start_service(socket,
                             {bin("sensor-pub"), "--sensor-id", "porch", "--source", "sim",
                              "--interval", "50ms", "--pub", "@tcp://127.0.0.1:0", "--replay",
                              "@tcp://127.0.0.1:0", "--outbox", (dir.path() / "outbox").string()},
                             log, "1");
    INFO("messages: " << socket.dump() << "\nlog:\n" << read_file(log));
    REQUIRE(wait_until([&] { return socket.find("READY=1").has_value(); }, 20s));
    // Long enough for several pings had the watchdog been taken as ours (every 100 ms).
    // Two STATUS updates (one a second): time for a dozen pings had the watchdog been ours.
    CHECK(wait_until([&] { return socket.messages().size() >= 3; }, 10s));
    CHECK(socket.count("WATCHDOG=1") == 0);
    app.signal(SIGTERM);
    CHECK(wait_until([&] { return socket.find("STOPPING=1").has_value(); }, 10s));
    CHECK(app.wait_for(30s) == 0);
}

TEST_CASE("store-sub is ready once subscribed with the database open") {
    rill::test::TempPostgres pg;
    TempDir dir("rill-notify");
    NotifySocket socket(dir.path() / "notify");
    const auto log = (dir.path() / "store-sub.log").string();
    auto app = start_service(
        socket, {bin("store-sub"), "--db", pg.conninfo(), "--connect", "tcp://127.0.0.1:9"}, log);
    const auto ready = check_ready_watchdog_stopping(socket, app, log);
    CHECK(ready.find("STATUS=subscribed to tcp://127.0.0.1:9, database open") != std::string::npos);
    // The schema was created before READY=1: the database really was open.
    CHECK(pg.value("select count(*) from readings") == "0");
    CHECK(socket.find("STOPPING=1\nSTATUS=stopping on SIGTERM: writing 0 pending readings")
              .has_value());
}

TEST_CASE("store-sub is ready and says it waits when the database is down at start") {
    TempDir dir("rill-notify");
    NotifySocket socket(dir.path() / "notify");
    const auto log = (dir.path() / "store-sub.log").string();
    // Nothing listens on port 1: every connection attempt is refused at once.
    auto app = start_service(
        socket,
        {bin("store-sub"), "--db", "postgresql://rill@127.0.0.1:1/rill?connect_timeout=2",
         "--connect", "tcp://127.0.0.1:9"},
        log);
    const auto ready = check_ready_watchdog_stopping(socket, app, log);
    // One STATUS line: libpq's multi-line error is folded into it.
    CHECK(ready.rfind("READY=1\nSTATUS=waiting for the database (attempt 1): ", 0) == 0);
    CHECK(std::count(ready.begin(), ready.end(), '\n') == 1);
    CHECK(socket.find("STOPPING=1\nSTATUS=stopping on SIGTERM before the database answered")
              .has_value());
}

TEST_CASE("web-view is ready once listening and pings the watchdog while its server answers") {
    TempDir dir("rill-notify");
    NotifySocket socket(dir.path() / "notify");
    const auto log = (dir.path() / "web-view.log").string();
    // The watchdog's self-check fetches a built-in asset: no database needed.
    auto app = start_service(
        socket,
        {bin("web-view"), "--db", "postgresql://rill@127.0.0.1:1/rill", "--listen", "127.0.0.1:0"},
        log);
    const auto ready = check_ready_watchdog_stopping(socket, app, log);
    CHECK(std::regex_search(
        ready, std::regex("^READY=1\nSTATUS=listening on http://127\\.0\\.0\\.1:[1-9]")));
    CHECK(socket.find("STOPPING=1\nSTATUS=stopping on SIGTERM").has_value());
}

}  // namespace

#ifdef RILL_HAVE_MQTT_BRIDGE
TEST_CASE("mqtt-bridge is ready once bound even without a broker and pings the watchdog") {
    TempDir dir("rill-notify");
    NotifySocket socket(dir.path() / "notify");
    const auto log = (dir.path() / "mqtt-bridge.log").string();
    // Port 1 on the loopback refuses: the bridge keeps retrying and stays ready.
    auto app =
        start_service(socket,
                      {bin("mqtt-bridge"), "--broker", "mqtt://127.0.0.1:1", "--topic",
                       "dev/+/temperature={1}:plain", "--pub", "@tcp://127.0.0.1:0", "--replay",
                       "@tcp://127.0.0.1:0", "--outbox", (dir.path() / "outbox").string()},
                      log);
    const auto ready = check_ready_watchdog_stopping(socket, app, log);
    CHECK(ready.find("STATUS=connecting to mqtt://127.0.0.1:1") != std::string::npos);
    CHECK(socket.find("STATUS=not connected to the broker").has_value());
    CHECK(read_file(log).find("cannot connect to mqtt://127.0.0.1:1") != std::string::npos);
}
#endif
