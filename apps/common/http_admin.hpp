// The admin HTTP endpoint of an app: GET /metrics (Prometheus text) and GET /healthz.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace rill::app {

/// What /healthz answers: 200 with `detail` when ok, 503 with it otherwise.
struct Health {
    bool ok = true;
    std::string detail = "ok";
};

/// Serves /metrics and /healthz on its own thread until destroyed. The callbacks run on that
/// thread: they must be thread-safe.
///
/// A deliberately small HTTP/1.1 server (GET and HEAD of two paths, one connection at a time,
/// "Connection: close", 2 s socket timeouts, requests up to 8 KiB): what a Prometheus scrape
/// and a health probe need. It replaces cpp-httplib here because linking that library pulled
/// OpenSSL, zlib and brotli into every app and about 4 MB into sensor-pub's resident memory.
class HttpAdmin {
  public:
    /// `listen` is "HOST:PORT", optionally prefixed with '@' or "http://"; port 0 picks a free
    /// port. Throws std::runtime_error naming the address when it cannot listen.
    HttpAdmin(const std::string& listen, std::function<std::string()> metrics,
              std::function<Health()> health);
    ~HttpAdmin();
    HttpAdmin(const HttpAdmin&) = delete;
    HttpAdmin& operator=(const HttpAdmin&) = delete;

    /// "http://127.0.0.1:PORT" with the port actually bound.
    [[nodiscard]] const std::string& url() const noexcept { return url_; }

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::thread thread_;
    std::string url_;
};

/// Splits "HOST:PORT" (with an optional '@' or "http://" prefix, IPv6 in brackets) into its
/// parts. Throws std::invalid_argument.
std::pair<std::string, int> parse_listen(const std::string& listen);

}  // namespace rill::app
