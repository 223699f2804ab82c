#include "common/shutdown.hpp"

#include <signal.h>

#include <cerrno>
#include <string>

namespace rill::app {

namespace {
Shutdown* g_instance = nullptr;
}

Shutdown& Shutdown::install() {
    static Shutdown instance;
    if (g_instance == nullptr) {
        g_instance = &instance;
        struct sigaction sa {};
        sa.sa_handler = &Shutdown::handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGINT, &sa, nullptr);
        sigaction(SIGTERM, &sa, nullptr);
        signal(SIGPIPE, SIG_IGN);
    }
    return instance;
}

std::string Shutdown::reason() const {
    if (!requested()) return "";
    switch (signal_number()) {
        case SIGTERM:
            return "SIGTERM";
        case SIGINT:
            return "SIGINT";
        default:
            return "request";
    }
}

void Shutdown::request() noexcept {
    stop_.request();
}

void Shutdown::handler(int sig) noexcept {
    if (g_instance == nullptr) return;
    if (g_instance->requested()) {
        // Asked twice: the next signal takes the default action.
        ::signal(sig, SIG_DFL);
    }
    g_instance->signal_.store(sig);
    g_instance->request();
}

void poll_interruptible(std::span<zmq::pollitem_t> items, std::chrono::milliseconds timeout) {
    try {
        zmq::poll(items.data(), items.size(), timeout);
    } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
    }
}

}  // namespace rill::app
