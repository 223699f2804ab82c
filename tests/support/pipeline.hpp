// Test helpers that run the real pipeline: sensor-pub and store-sub processes over a
// TempPostgres, their endpoints read from their logs, and exact checks of what was stored.
// Shared by the end-to-end tests (tests/e2e) and the chaos tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rill/seq_ranges.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace rill::test {

struct SensorPubOptions {
    std::string sensor_id = "s1";
    std::uint64_t count = 0;       ///< --count; 0: run until stopped
    unsigned rate = 10'000;        ///< --rate, readings per second
    std::filesystem::path outbox;  ///< required: the outbox directory
    std::string linger = "120s";   ///< --linger (long: tests stop the process themselves)
    std::string heartbeat_interval = "200ms";
    /// --pub and --replay; the defaults bind free loopback ports. A restarted publisher passes
    /// the endpoints of its previous run to come back where subscribers look for it.
    std::string pub = "@tcp://127.0.0.1:0";
    std::string replay = "@tcp://127.0.0.1:0";
    std::vector<std::string> extra_args;
    /// Run inside this network namespace (`ip netns exec`; the process keeps its pid).
    std::string netns;
    /// The command that runs sensor-pub, e.g. {"qemu-aarch64-static", "-L", "/",
    /// "build-arm64/bin/sensor-pub"} for a foreign build (tests/cross);
    /// empty: this tree's.
    std::vector<std::string> program;
};

/// A sensor-pub process (sim source) whose stderr goes to `log_path()`. The constructor waits
/// (bounded, 30 s) for its start line and reads the endpoints it bound and the seq its outbox
/// was at; it throws std::runtime_error with the log when the line does not come. The
/// destructor kills it (SIGKILL) when it still runs.
class SensorPub {
  public:
    SensorPub(const std::filesystem::path& log_dir, SensorPubOptions options);

    /// "tcp://127.0.0.1:PORT" of the stream and of the replay service.
    [[nodiscard]] const std::string& stream() const noexcept { return stream_; }
    [[nodiscard]] const std::string& replay() const noexcept { return replay_; }
    /// The newest seq in the outbox when it started.
    [[nodiscard]] std::uint64_t start_seq() const noexcept { return start_seq_; }
    [[nodiscard]] const std::string& log_path() const noexcept { return log_path_; }
    [[nodiscard]] std::string log() const;
    [[nodiscard]] Process& process() noexcept { return *process_; }
    /// Waits up to `timeout` for "published up to seq N" (the source is done); returns N.
    [[nodiscard]] std::optional<std::uint64_t> wait_published(std::chrono::milliseconds timeout);

  private:
    std::string log_path_;
    std::unique_ptr<Process> process_;
    std::string stream_;
    std::string replay_;
    std::uint64_t start_seq_ = 0;
};

struct StoreSubOptions {
    std::vector<std::string> connect;  ///< --connect endpoints
    std::string db;                    ///< --db (TempPostgres::conninfo())
    std::vector<std::string> sensors;  ///< --sensors prefixes
    bool metrics = true;               ///< serve --metrics on a free loopback port
    std::vector<std::string> extra_args;
    /// Run inside this network namespace (`ip netns exec`); /metrics is then read from a
    /// thread inside it (the loopback of the namespace).
    std::string netns;
};

/// A store-sub process whose stderr goes to `log_path()`. With options.metrics the
/// constructor waits (bounded, 30 s) for its admin server's line and reads its URL.
class StoreSub {
  public:
    StoreSub(const std::filesystem::path& log_dir, StoreSubOptions options);

    /// "http://127.0.0.1:PORT" of /metrics and /healthz ("" without metrics).
    [[nodiscard]] const std::string& admin_url() const noexcept { return admin_url_; }
    [[nodiscard]] const std::string& log_path() const noexcept { return log_path_; }
    [[nodiscard]] std::string log() const;
    [[nodiscard]] Process& process() noexcept { return *process_; }
    /// The text of /metrics; nothing when it cannot be fetched.
    [[nodiscard]] std::optional<std::string> metrics() const;
    /// The sum of every sample of `name` whose labels contain `label` (e.g.
    /// R"(reason="malformed")"); nothing when /metrics cannot be fetched.
    [[nodiscard]] std::optional<double> metric(const std::string& name,
                                               const std::string& label = "") const;
    /// The HTTP status of GET /healthz; 0 when it cannot be fetched.
    [[nodiscard]] int healthz() const;

  private:
    std::string log_path_;
    std::unique_ptr<Process> process_;
    std::string admin_url_;
    std::string netns_;
};

struct HttpResponse {
    int status = 0;
    std::string body;
};

/// GET `path` from `base_url` ("http://HOST:PORT") with HTTP/1.0 over a plain socket, waiting
/// at most `timeout`. Nothing when the connection fails or no complete answer arrives.
[[nodiscard]] std::optional<HttpResponse> http_get(
    const std::string& base_url, const std::string& path,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

/// The sum of every sample of `name` in Prometheus text whose labels contain `label`.
[[nodiscard]] double metric_sum(const std::string& text, const std::string& name,
                                const std::string& label = "");

/// The seq ranges of `sensor` that sensor-pub's log reports its outbox dropped ("warn outbox:
/// dropped segment ... readings: s1 1..600"), in log order.
[[nodiscard]] std::vector<SeqRange> dropped_ranges(const std::string& sensor_pub_log,
                                                   const std::string& sensor);

/// The seq ranges of `sensor` that store-sub's log reports lost ("warn replay: sensor S:
/// readings A..B are lost: ..."), in log order.
[[nodiscard]] std::vector<SeqRange> lost_ranges(const std::string& store_sub_log,
                                                const std::string& sensor);

/// Rows in the readings table (0 while it does not exist or the database is down).
[[nodiscard]] std::uint64_t stored_rows(const TempPostgres& pg);

/// Waits up to `timeout` until the readings table holds at least `rows` rows.
bool wait_rows(const TempPostgres& pg, std::uint64_t rows, std::chrono::milliseconds timeout);

/// Checks with one query that the readings table holds, for every sensor in `expected`,
/// exactly seqs 1..N once (count = distinct (sensor, seq) = N, min 1, max N) and nothing of
/// any other sensor. Returns "" when it does, else a description of what is stored.
[[nodiscard]] std::string exactly_once_problem(
    const TempPostgres& pg, const std::map<std::string, std::uint64_t>& expected);
/// The same for exactly seqs first..last of each sensor (e.g. after the outbox dropped the
/// oldest).
[[nodiscard]] std::string exactly_once_problem(const TempPostgres& pg,
                                               const std::map<std::string, SeqRange>& expected);

}  // namespace rill::test
