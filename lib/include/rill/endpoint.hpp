// rill/endpoint.hpp: endpoint strings that say whether to bind or connect (czmq convention).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rill {

/// Whether a socket binds an endpoint (a server) or connects to it (a client).
enum class Attach { bind, connect };

/// One endpoint: `@tcp://*:5556` binds, `>tcp://host:5556` connects, and a bare
/// `tcp://host:5556` takes the socket kind's default.
struct Endpoint {
    /// Whether the socket binds or connects this address.
    Attach attach = Attach::connect;
    std::string address;  ///< the zmq address without the prefix: "tcp://host:5556"
    /// The endpoint with its prefix, as a user would write it.
    [[nodiscard]] std::string to_string() const;
    /// Member-wise equality.
    bool operator==(const Endpoint&) const = default;
};

/// Parses a comma-separated list of endpoints. Entries without a prefix take `fallback`.
/// Accepted transports: tcp://, ipc://, inproc://. Throws std::invalid_argument naming the
/// entry when an entry is empty, has no transport, or names an unknown one.
[[nodiscard]] std::vector<Endpoint> parse_endpoints(std::string_view spec, Attach fallback);

/// Joins endpoints back into the comma-separated form parse_endpoints reads.
[[nodiscard]] std::string to_string(const std::vector<Endpoint>& endpoints);

/// The endpoint a client should connect to, given the address a server announced and the host
/// the client reached that server on. A wildcard or unspecified host in `announced`
/// ("tcp://*:5557", "tcp://0.0.0.0:5557", "tcp://[::]:5557") is replaced by `seen_host` (as
/// ZeroMQ's Peer-Address gives it: an IPv6 address gets brackets, "tcp://[::1]:5557", and an
/// IPv4-mapped one "::ffff:10.0.0.5" becomes the IPv4 address); anything else, "tcp://[::1]:5557"
/// included, is returned unchanged.
[[nodiscard]] std::string resolve_announced(std::string_view announced, std::string_view seen_host);

/// The host part of a tcp:// address ("tcp://10.0.0.5:5556" -> "10.0.0.5"), or empty.
[[nodiscard]] std::string tcp_host(std::string_view address);

}  // namespace rill
