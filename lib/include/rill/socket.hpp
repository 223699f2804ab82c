// rill/socket.hpp: an owning socket wrapper with typed options and CURVE security.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "rill/endpoint.hpp"

namespace rill {

/// The process-wide ZeroMQ context every rill object uses unless given another one. Created on
/// first use; never destroyed before exit (sockets must be closed before the context is).
zmq::context_t& default_context();

/// Terminates the default context at the end of a program: waits until every socket on it has
/// sent what it queued (up to each socket's linger), then stops the context's I/O threads.
/// Without it, messages still queued when main() returns are lost, because the default context
/// is never destroyed. Call it after every object using the default context is gone; nothing may
/// use default_context() afterwards. Gives up after `max_wait` (a socket still open would make
/// it wait forever) and returns false then. Does not throw.
bool close_default_context(std::chrono::milliseconds max_wait) noexcept;

/// CURVE keys in zmq's Z85 text form (40 characters each).
struct CurveServerKeys {
    std::string public_key;
    std::string secret_key;
};
struct CurveClientKeys {
    std::string public_key;  ///< this client's key pair
    std::string secret_key;
    std::string server_public_key;  ///< the server it trusts
};

/// Typed socket options; unset optionals keep zmq's defaults.
struct SocketOptions {
    std::optional<int>
        send_hwm;  ///< messages queued per peer before dropping or blocking; 0 = no limit
    std::optional<int> recv_hwm;
    std::chrono::milliseconds linger{0};  ///< how long close() waits to flush pending messages
    std::optional<std::chrono::milliseconds> reconnect_interval;
    std::optional<std::chrono::milliseconds> reconnect_interval_max;
    std::optional<std::chrono::seconds> tcp_keepalive_idle;       ///< set: TCP keepalive on
    std::optional<std::chrono::milliseconds> heartbeat_interval;  ///< ZMTP heartbeats
    std::optional<std::chrono::milliseconds> heartbeat_timeout;
    /// Set on the binding side: this socket is a CURVE server. Clients are checked by the ZAP
    /// handler of the process (see rill/security.hpp) when one runs, else any key is accepted.
    std::optional<CurveServerKeys> curve_server;
    /// Set on the connecting side: this socket is a CURVE client of that server.
    std::optional<CurveClientKeys> curve_client;
    std::string zap_domain = "rill";
};

/// An owning ZeroMQ socket. Moving out empties the source; copying is deleted; the destructor
/// closes the socket (with the configured linger) and does not throw.
class Socket {
  public:
    Socket() = default;
    /// Creates a socket of `type` on `ctx` and applies `options`. Throws zmq::error_t.
    Socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& options = {});
    Socket(Socket&&) noexcept = default;
    Socket& operator=(Socket&&) noexcept = default;
    ~Socket() = default;

    /// Binds or connects each endpoint. Throws std::runtime_error naming the endpoint and the
    /// cause ("cannot bind tcp://127.0.0.1:5556: Address already in use").
    void attach(const std::vector<Endpoint>& endpoints);
    /// Parses `spec` (see parse_endpoints) with `fallback` and attaches each endpoint.
    void attach(std::string_view spec, Attach fallback);
    /// The address of the last bind or connect, with wildcards and port 0 resolved by zmq
    /// ("tcp://127.0.0.1:41234"); what tests read back after binding port 0.
    [[nodiscard]] std::string last_endpoint() const;
    /// Every address this socket bound, resolved, in order.
    [[nodiscard]] const std::vector<std::string>& bound() const noexcept { return bound_; }

    [[nodiscard]] zmq::socket_t& raw() noexcept { return socket_; }
    [[nodiscard]] const zmq::socket_t& raw() const noexcept { return socket_; }
    [[nodiscard]] explicit operator bool() const noexcept { return socket_.handle() != nullptr; }
    void close() noexcept { socket_.close(); }

  private:
    zmq::socket_t socket_;
    std::vector<std::string> bound_;
};

}  // namespace rill
