// Shared helpers of the web-view tests: the readings table, known rows, a web-view process and
// an HTTP client.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rill/reading.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

namespace rill::test {

/// Creates the readings table exactly as store-sub does: with rill::store::migrate, so the tests
/// run against the real schema. Throws when the schema existed already.
void create_readings_table(const TempPostgres& pg);

/// Inserts one row (extra = NULL) through SQL.
void insert_row(const TempPostgres& pg, const std::string& sensor, long long seq, Timestamp ts,
                double temperature, double humidity);

/// A SQL string literal of `s` (single quotes doubled).
std::string sql_quote(const std::string& s);

/// A web-view process on 127.0.0.1:0 whose port is read back from its log.
class WebView {
  public:
    /// Starts web-view with `--db conninfo --listen 127.0.0.1:0` plus `args`; waits (bounded)
    /// for its "listening on" line. Throws when it does not come up.
    WebView(const std::string& conninfo, std::vector<std::string> args = {});
    ~WebView();
    [[nodiscard]] int port() const noexcept { return port_; }
    [[nodiscard]] std::string url(const std::string& path = "/") const;
    [[nodiscard]] std::string log() const;
    [[nodiscard]] Process& process() noexcept { return *process_; }
    /// A client with short, bounded timeouts.
    [[nodiscard]] std::unique_ptr<httplib::Client> client() const;

  private:
    TempDir dir_;
    std::string log_path_;
    std::unique_ptr<Process> process_;
    int port_ = 0;
};

/// GET `path`; CHECK-free: throws when there is no response at all.
httplib::Result get(const WebView& w, const std::string& path,
                    const httplib::Headers& headers = {});

/// One Server-Sent Event as a browser sees it.
struct SseEvent {
    std::uint64_t id = 0;
    std::string type;  ///< "" = the default "message"
    nlohmann::json data;
};

/// An /events client on its own thread that parses frames until destroyed (the destructor
/// stops and joins it).
class SseClient {
  public:
    /// GETs `path` with a Last-Event-ID header when `last_id` is set.
    explicit SseClient(const WebView& w, std::optional<std::uint64_t> last_id = std::nullopt,
                       std::string path = "/events");
    ~SseClient();
    SseClient(const SseClient&) = delete;
    SseClient& operator=(const SseClient&) = delete;

    /// Every event received so far, in order.
    [[nodiscard]] std::vector<SseEvent> events();
    /// Waits up to `timeout` until at least `n` events arrived.
    [[nodiscard]] bool wait_for(std::size_t n, std::chrono::milliseconds timeout);
    /// The server ended the stream (or it failed).
    [[nodiscard]] bool ended() const { return ended_; }

  private:
    void parse(const std::string& frame);

    std::unique_ptr<httplib::Client> client_;
    std::thread thread_;
    std::mutex mutex_;
    std::string buffer_;
    std::vector<SseEvent> events_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> ended_{false};
};

}  // namespace rill::test
