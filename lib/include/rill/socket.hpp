// rill/socket.hpp: an owning socket wrapper with typed options and CURVE security.
#pragma once

#include <chrono>
#include <map>
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
    /// The server's public key, which its clients trust.
    std::string public_key;
    /// The server's secret key.
    std::string secret_key;
};
/// CURVE keys of a connecting socket.
struct CurveClientKeys {
    std::string public_key;  ///< this client's key pair
    /// This client's secret key.
    std::string secret_key;
    std::string server_public_key;  ///< the server it trusts (the default key)
    /// Per-endpoint server keys: a connect to an address listed here ("tcp://10.0.0.5:5556",
    /// exactly as connected, without the '>' prefix) trusts that Z85 public key instead of
    /// server_public_key. libzmq copies the key into each connection at connect time, so one
    /// socket can connect to servers with different keys.
    std::map<std::string, std::string> server_public_key_for;
    /// The server key a connect to `address` trusts: its server_public_key_for entry, else
    /// server_public_key.
    [[nodiscard]] const std::string& server_key_for(const std::string& address) const;
};

/// Typed socket options; unset optionals keep zmq's defaults.
struct SocketOptions {
    std::optional<int>
        send_hwm;  ///< messages queued per peer before dropping or blocking; 0 = no limit
    /// Messages queued for receiving per peer; 0 = no limit.
    std::optional<int> recv_hwm;
    std::chrono::milliseconds linger{0};  ///< how long close() waits to flush pending messages
    /// The first wait before reconnecting a lost or refused connection.
    std::optional<std::chrono::milliseconds> reconnect_interval;
    /// The longest wait between reconnects (the wait doubles up to it); unset: no backoff.
    std::optional<std::chrono::milliseconds> reconnect_interval_max;
    std::optional<std::chrono::seconds> tcp_keepalive_idle;       ///< set: TCP keepalive on
    std::optional<std::chrono::milliseconds> heartbeat_interval;  ///< ZMTP heartbeats
    /// After a ZMTP heartbeat, how long to wait for any traffic before dropping the connection.
    std::optional<std::chrono::milliseconds> heartbeat_timeout;
    /// Set on the binding side: this socket is a CURVE server. Clients are checked by the ZAP
    /// handler of the process (see rill/security.hpp) when one runs, else any key is accepted.
    std::optional<CurveServerKeys> curve_server;
    /// Set on the connecting side: this socket is a CURVE client of that server.
    std::optional<CurveClientKeys> curve_client;
    /// The ZAP domain of a CURVE server socket (what ZapHandler checks).
    std::string zap_domain = "rill";
};

/// An owning ZeroMQ socket. Moving out empties the source; copying is deleted; the destructor
/// closes the socket (with the configured linger) and does not throw.
class Socket {
  public:
    Socket() = default;
    /// Creates a socket of `type` on `ctx` and applies `options`. Throws zmq::error_t.
    Socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& options = {});
    /// Moves the socket; the source is left empty (its operator bool is false).
    Socket(Socket&&) noexcept = default;
    /// Moves the socket; the source is left empty (its operator bool is false).
    Socket& operator=(Socket&&) noexcept = default;
    ~Socket() = default;

    /// Binds or connects each endpoint. Throws std::runtime_error naming the endpoint and the
    /// cause ("cannot bind tcp://127.0.0.1:5556: Address already in use").
    void attach(const std::vector<Endpoint>& endpoints);
    /// Parses `spec` (see parse_endpoints) with `fallback` and attaches each endpoint.
    void attach(std::string_view spec, Attach fallback);
    /// Connects to `address` ("tcp://host:5556", no prefix); a CURVE client socket first sets
    /// the server key CurveClientKeys::server_key_for(address). Used by attach for every
    /// connect, and to connect an endpoint again. Throws zmq::error_t.
    void connect(const std::string& address);
    /// The address of the last bind or connect, with wildcards and port 0 resolved by zmq
    /// ("tcp://127.0.0.1:41234"); what tests read back after binding port 0.
    [[nodiscard]] std::string last_endpoint() const;
    /// Every address this socket bound, resolved, in order.
    [[nodiscard]] const std::vector<std::string>& bound() const noexcept { return bound_; }

    /// The cppzmq socket, for options and calls this wrapper does not cover.
    [[nodiscard]] zmq::socket_t& raw() noexcept { return socket_; }
    /// The cppzmq socket, read-only.
    [[nodiscard]] const zmq::socket_t& raw() const noexcept { return socket_; }
    /// True while the socket is open (not default-constructed, moved from or closed).
    [[nodiscard]] explicit operator bool() const noexcept { return socket_.handle() != nullptr; }
    /// Closes the socket now, with its linger; idempotent.
    void close() noexcept { socket_.close(); }

  private:
    zmq::socket_t socket_;
    std::vector<std::string> bound_;
    std::optional<CurveClientKeys> curve_client_;  // for the server key of each connect
};

}  // namespace rill
