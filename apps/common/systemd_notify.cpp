#include "common/systemd_notify.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "rill/log.hpp"

namespace rill::app {

SystemdNotifier::SystemdNotifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    active_ = socket != nullptr && *socket != '\0';
    std::uint64_t usec = 0;
    // Checks WATCHDOG_PID against getpid(): a watchdog meant for another process is not ours.
    if (active_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        watchdog_ = std::chrono::microseconds(static_cast<std::int64_t>(usec));
    }
}

void SystemdNotifier::send(const std::string& message) {
    if (!active_) return;
    const int r = sd_notify(0, message.c_str());
    if (r < 0 && !send_failed_) {
        send_failed_ = true;  // once: a supervisor that went away must not flood the log
        rill::log_warn("systemd",
                       "cannot notify systemd (NOTIFY_SOCKET): " + std::string(std::strerror(-r)));
    }
}

namespace {

// STATUS= is one line of the notify message: newlines (libpq's errors have them) and tabs become
// spaces, runs of spaces one.
std::string one_line(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
        if (c == ' ' && !out.empty() && out.back() == ' ') continue;
        out += c;
    }
    return out;
}

}  // namespace

void SystemdNotifier::ready(std::string_view status) {
    last_status_ = one_line(status);
    send("READY=1\nSTATUS=" + last_status_);
}

void SystemdNotifier::status(std::string_view status) {
    auto line = one_line(status);
    if (line == last_status_) return;
    last_status_ = std::move(line);
    send("STATUS=" + last_status_);
}

void SystemdNotifier::stopping(std::string_view status) {
    last_status_ = one_line(status);
    send("STOPPING=1\nSTATUS=" + last_status_);
}

void SystemdNotifier::keep_alive() {
    if (!watchdog_enabled()) return;
    const auto now = Clock::now();
    if (last_keep_alive_ != Clock::time_point{} && now < keep_alive_due()) return;
    last_keep_alive_ = now;
    send("WATCHDOG=1");
}

SystemdNotifier::Clock::time_point SystemdNotifier::keep_alive_due() const noexcept {
    if (!watchdog_enabled()) return Clock::time_point::max();
    return last_keep_alive_ + watchdog_ / 2;
}

namespace {

// A connected TCP socket, closed on scope exit.
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

bool http_get_ok(const std::string& host, int port, const std::string& path,
                 std::chrono::milliseconds timeout) noexcept {
    try {
        std::string target = host;
        if (target.empty() || target == "0.0.0.0") target = "127.0.0.1";
        if (target == "::" || target == "[::]") target = "::1";
        if (target.size() > 2 && target.front() == '[' && target.back() == ']') {
            target = target.substr(1, target.size() - 2);
        }
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV;
        addrinfo* found = nullptr;
        if (getaddrinfo(target.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
            return false;
        }
        std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, &freeaddrinfo);
        Fd s;
        s.fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s.fd < 0) return false;
        // Bounds connect, send and each recv (Linux applies SO_SNDTIMEO to connect).
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
        timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
        ::setsockopt(s.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(s.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (::connect(s.fd, found->ai_addr, found->ai_addrlen) != 0) return false;
        const std::string request =
            "GET " + path + " HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n";
        if (::send(s.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(request.size())) {
            return false;
        }
        std::string head;
        char buf[256];
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (head.find("\r\n") == std::string::npos && head.size() < 1024 &&
               std::chrono::steady_clock::now() < deadline) {
            const auto n = ::recv(s.fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            head.append(buf, static_cast<std::size_t>(n));
        }
        // "HTTP/1.1 200 OK"
        return head.rfind("HTTP/1.", 0) == 0 && head.size() >= 12 && head.compare(9, 3, "200") == 0;
    } catch (...) {
        return false;
    }
}

}  // namespace rill::app
