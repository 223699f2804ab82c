#include "supervisor.hpp"

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <chrono>

#include "rill/log.hpp"

namespace rill::web {

namespace {

constexpr const char* component = "web-view";

sigset_t stop_signals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    return signals;
}

}  // namespace

void block_stop_signals() {
    const sigset_t signals = stop_signals();
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

void supervise(app::Shutdown& shutdown, app::SystemdNotifier& systemd, Server& server,
               const std::string& host, int port, const std::atomic<bool>& done) {
    const sigset_t signals = stop_signals();
    pthread_sigmask(SIG_UNBLOCK, &signals, nullptr);
    const auto probe_timeout = std::clamp<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(systemd.watchdog_interval() / 4),
        std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
    bool answering = true;
    while (!done) {
        pollfd wake{shutdown.fd(), POLLIN, 0};
        (void)::poll(&wake, 1, 200);  // EINTR (the signal itself) just ends the wait
        if (shutdown.requested()) {
            log_info(component, "stopping on " + shutdown.reason());
            systemd.stopping("stopping on " + shutdown.reason());
            server.stop();
            return;
        }
        if (!systemd.watchdog_enabled() ||
            app::SystemdNotifier::Clock::now() < systemd.keep_alive_due()) {
            continue;
        }
        const bool ok = app::http_get_ok(host, port, "/assets/favicon.svg", probe_timeout);
        if (ok) systemd.keep_alive();
        if (ok == answering) continue;
        answering = ok;
        if (ok) {
            log_info(component, "the HTTP server answers its self-check again");
        } else {
            log_warn(component,
                     "the HTTP server did not answer its self-check (GET "
                     "/assets/favicon.svg); withholding the watchdog ping");
        }
    }
}

}  // namespace rill::web
