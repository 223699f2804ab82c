#include "common/http_admin.hpp"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <utility>

#include "rill/log.hpp"

namespace rill::app {

namespace {

constexpr std::size_t max_request_bytes = 8192;

// An owned file descriptor.
class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            if (fd_ >= 0) ::close(fd_);
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    [[nodiscard]] int get() const noexcept { return fd_; }

  private:
    int fd_ = -1;
};

std::string_view reason(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 503:
            return "Service Unavailable";
        default:
            return "Internal Server Error";
    }
}

void send_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the client left or timed out: nothing to do
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

struct HttpAdmin::Impl {
    Fd listener;
    Fd stop;
    std::function<std::string()> metrics;
    std::function<Health()> health;

    void run() noexcept {
        for (;;) {
            std::array<pollfd, 2> fds{{{listener.get(), POLLIN, 0}, {stop.get(), POLLIN, 0}}};
            if (::poll(fds.data(), fds.size(), -1) < 0) {
                if (errno == EINTR) continue;
                log_error("http",
                          std::string("poll failed, no more /metrics: ") + std::strerror(errno));
                return;
            }
            if (fds[1].revents != 0) return;
            if (fds[0].revents == 0) continue;
            Fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (conn.get() < 0) continue;  // the client gave up already, or out of fds
            serve(conn.get());
        }
    }

    // Reads one request and answers it.
    void serve(int fd) {
        const timeval timeout{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        std::string request;
        char buf[2048];
        while (request.find("\r\n\r\n") == std::string::npos) {
            if (request.size() > max_request_bytes) return respond(fd, false, 400, "too long\n");
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return;  // closed or timed out before a whole request
            request.append(buf, static_cast<std::size_t>(n));
        }
        // "METHOD SP TARGET SP HTTP/x.y"
        const auto line = std::string_view(request).substr(0, request.find("\r\n"));
        const auto sp1 = line.find(' ');
        const auto sp2 = line.find(' ', sp1 == std::string_view::npos ? sp1 : sp1 + 1);
        if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
            !line.substr(sp2 + 1).starts_with("HTTP/")) {
            return respond(fd, false, 400, "bad request\n");
        }
        const auto method = line.substr(0, sp1);
        auto path = line.substr(sp1 + 1, sp2 - sp1 - 1);
        path = path.substr(0, path.find('?'));
        const bool head = method == "HEAD";
        if (method != "GET" && !head) return respond(fd, false, 405, "GET or HEAD only\n");
        try {
            if (path == "/metrics") {
                return respond(fd, head, 200, metrics(),
                               "text/plain; version=0.0.4; charset=utf-8");
            }
            if (path == "/healthz") {
                const auto h = health();
                return respond(fd, head, h.ok ? 200 : 503, h.detail + "\n");
            }
        } catch (const std::exception& e) {
            log_error("http", "answering " + std::string(path) + ": " + e.what());
            return respond(fd, head, 500, "internal error\n");
        }
        respond(fd, head, 404, "not found: try /metrics or /healthz\n");
    }

    static void respond(int fd, bool head, int status, const std::string& body,
                        std::string_view type = "text/plain; charset=utf-8") {
        std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason(status)) +
                          "\r\nContent-Type: " + std::string(type) +
                          "\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\nConnection: close\r\n\r\n";
        if (!head) out += body;
        send_all(fd, out);
    }
};

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
    : impl_(std::make_unique<Impl>()) {
    const auto [host, port] = parse_listen(listen);
    impl_->metrics = std::move(metrics);
    impl_->health = std::move(health);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
        rc != 0) {
        throw std::runtime_error("cannot listen for /metrics on " + listen + ": " +
                                 ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addrs(found, &::freeaddrinfo);
    std::string error = "no address";
    for (const addrinfo* a = addrs.get(); a != nullptr; a = a->ai_next) {
        Fd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
        const int one = 1;
        if (fd.get() < 0 ||
            ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            ::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd.get(), 16) != 0) {
            error = std::strerror(errno);
            continue;
        }
        impl_->listener = std::move(fd);
        break;
    }
    if (impl_->listener.get() < 0) {
        throw std::runtime_error("cannot listen for /metrics on " + listen + ": " + error);
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(impl_->listener.get(), reinterpret_cast<sockaddr*>(&bound), &len);
    const int bound_port =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    impl_->stop = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (impl_->stop.get() < 0) {
        throw std::runtime_error(std::string("cannot create an eventfd: ") + std::strerror(errno));
    }
    url_ = "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(bound_port);
    thread_ = std::thread([impl = impl_.get()] { impl->run(); });
    log_info("http", "serving /metrics and /healthz on " + url_);
}

HttpAdmin::~HttpAdmin() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(impl_->stop.get(), &one, sizeof one);
    if (thread_.joinable()) thread_.join();
}

}  // namespace rill::app
