#include "common/http_admin.hpp"

#include <httplib.h>

#include <stdexcept>

#include "rill/log.hpp"

namespace rill::app {

std::pair<std::string, int> parse_listen(const std::string& listen) {
    std::string s = listen;
    if (s.starts_with('@')) s.erase(0, 1);
    if (s.starts_with("http://")) s.erase(0, 7);
    while (!s.empty() && s.back() == '/')
        s.pop_back();
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
        throw std::invalid_argument("listen address '" + listen + "' is not HOST:PORT");
    }
    std::string host = s.substr(0, colon);
    if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
    int port = 0;
    for (char c : s.substr(colon + 1)) {
        if (c < '0' || c > '9' || port > 65535) {
            throw std::invalid_argument("listen address '" + listen + "' has a bad port");
        }
        port = port * 10 + (c - '0');
    }
    if (port > 65535) throw std::invalid_argument("listen address '" + listen + "' has a bad port");
    return {host, port};
}

HttpAdmin::HttpAdmin(const std::string& listen, std::function<std::string()> metrics,
                     std::function<Health()> health)
    : server_(std::make_unique<httplib::Server>()) {
    const auto [host, port] = parse_listen(listen);
    server_->Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
        res.set_content(metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server_->Get("/healthz", [health](const httplib::Request&, httplib::Response& res) {
        const auto h = health();
        res.status = h.ok ? 200 : 503;
        res.set_content(h.detail + "\n", "text/plain; charset=utf-8");
    });
    int bound = port;
    if (port == 0) {
        bound = server_->bind_to_any_port(host);
    } else if (!server_->bind_to_port(host, port)) {
        bound = -1;
    }
    if (bound <= 0) {
        throw std::runtime_error("cannot listen for /metrics on " + listen);
    }
    url_ = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(bound);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    log_info("http", "serving /metrics and /healthz on " + url_);
}

HttpAdmin::~HttpAdmin() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
}

}  // namespace rill::app
