#include "rill/socket.hpp"

#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

namespace rill {

zmq::context_t& default_context() {
    // Leaked on purpose: destroying a context while another static still holds a socket would
    // block exit forever.
    static auto* ctx = new zmq::context_t(1);
    return *ctx;
}

Socket::Socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& o)
    : socket_(ctx, type) {
    namespace opt = zmq::sockopt;
    if (o.send_hwm) socket_.set(opt::sndhwm, *o.send_hwm);
    if (o.recv_hwm) socket_.set(opt::rcvhwm, *o.recv_hwm);
    socket_.set(opt::linger, static_cast<int>(o.linger.count()));
    if (o.reconnect_interval) {
        socket_.set(opt::reconnect_ivl, static_cast<int>(o.reconnect_interval->count()));
    }
    if (o.reconnect_interval_max) {
        socket_.set(opt::reconnect_ivl_max, static_cast<int>(o.reconnect_interval_max->count()));
    }
    if (o.tcp_keepalive_idle) {
        socket_.set(opt::tcp_keepalive, 1);
        socket_.set(opt::tcp_keepalive_idle, static_cast<int>(o.tcp_keepalive_idle->count()));
    }
    if (o.heartbeat_interval) {
        socket_.set(opt::heartbeat_ivl, static_cast<int>(o.heartbeat_interval->count()));
    }
    if (o.heartbeat_timeout) {
        socket_.set(opt::heartbeat_timeout, static_cast<int>(o.heartbeat_timeout->count()));
    }
    if (o.curve_server && o.curve_client) {
        throw std::invalid_argument("a socket is either a CURVE server or a CURVE client");
    }
    if (o.curve_server) {
        socket_.set(opt::zap_domain, o.zap_domain);
        socket_.set(opt::curve_server, true);
        socket_.set(opt::curve_secretkey, o.curve_server->secret_key);
    }
    if (o.curve_client) {
        curve_client_ = o.curve_client;
        curve_client_->secret_key.clear();  // only the server keys are needed later
        socket_.set(opt::curve_serverkey, o.curve_client->server_public_key);
        socket_.set(opt::curve_publickey, o.curve_client->public_key);
        socket_.set(opt::curve_secretkey, o.curve_client->secret_key);
    }
}

bool close_default_context(std::chrono::milliseconds max_wait) noexcept {
    try {
        zmq::context_t* ctx = &default_context();
        auto done = std::make_shared<std::promise<void>>();
        auto finished = done->get_future();
        // zmq_ctx_term blocks until every socket is closed and flushed: wait for it on a thread
        // of its own so that a socket left open cannot hang the program's exit.
        std::thread([ctx, done] {
            ctx->close();
            done->set_value();
        }).detach();
        return finished.wait_for(max_wait) == std::future_status::ready;
    } catch (...) {
        return false;
    }
}

void Socket::attach(const std::vector<Endpoint>& endpoints) {
    for (const auto& e : endpoints) {
        try {
            if (e.attach == Attach::bind) {
                socket_.bind(e.address);
                bound_.push_back(last_endpoint());
            } else {
                connect(e.address);
            }
        } catch (const zmq::error_t& err) {
            throw std::runtime_error(std::string("cannot ") +
                                     (e.attach == Attach::bind ? "bind " : "connect to ") +
                                     e.address + ": " + err.what());
        }
    }
}

void Socket::attach(std::string_view spec, Attach fallback) {
    attach(parse_endpoints(spec, fallback));
}

void Socket::connect(const std::string& address) {
    // libzmq copies the socket's options into a connection when connect() starts it (and reuses
    // that copy for its reconnects), so setting the key just before is per connection.
    if (curve_client_) {
        socket_.set(zmq::sockopt::curve_serverkey, curve_client_->server_key_for(address));
    }
    socket_.connect(address);
}

const std::string& CurveClientKeys::server_key_for(const std::string& address) const {
    const auto it = server_public_key_for.find(address);
    return it == server_public_key_for.end() ? server_public_key : it->second;
}

std::string Socket::last_endpoint() const {
    return socket_.get(zmq::sockopt::last_endpoint);
}

}  // namespace rill
