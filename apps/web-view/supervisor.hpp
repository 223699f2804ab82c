// web-view: the thread that takes the stop signals and feeds systemd's watchdog.
#pragma once

#include <atomic>
#include <string>

#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "server.hpp"

namespace rill::web {

/// Blocks SIGINT and SIGTERM in the calling thread, so that every thread it starts afterwards
/// has them blocked too: call it after rill::app::Shutdown::install() and before any thread
/// starts; supervise() unblocks them on its own thread.
void block_stop_signals();

/// The body of the supervisor thread, from READY=1 until `done` is set (after Server::run()
/// returned) or a stop signal arrived. It is the only thread that takes SIGINT/SIGTERM and the
/// owner of `systemd` meanwhile. Every 200 ms it checks `shutdown`; on a request it logs
/// "stopping on SIGTERM" (or SIGINT), tells systemd STOPPING=1 and calls server.stop(), which
/// makes Server::run() return. When the watchdog is on, WATCHDOG=1 is sent only after the server
/// answered GET /assets/favicon.svg on host:port (no database involved), so a wedged server gets
/// restarted; a change between answering and not is logged once.
void supervise(app::Shutdown& shutdown, app::SystemdNotifier& systemd, Server& server,
               const std::string& host, int port, const std::atomic<bool>& done);

}  // namespace rill::web
