#include "replay_keys.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include <optional>
#include <set>
#include <string>

#include "rill/endpoint.hpp"

namespace rill::reliable_detail {

namespace {

// `host` ("pi-07", "10.0.0.5", "[::1]") without brackets, and the numeric addresses it resolves
// to (none when it does not resolve).
std::set<std::string> addresses_of(const std::string& host) {
    std::string name = host;
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') {
        name = name.substr(1, name.size() - 2);
    }
    std::set<std::string> out{name};
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0) return out;
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
        char text[NI_MAXHOST];
        if (::getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0,
                          NI_NUMERICHOST) == 0) {
            out.insert(text);
        }
    }
    ::freeaddrinfo(found);
    return out;
}

// True when the hosts are the same text, or resolve to a common address ("pi-07" and the
// "10.0.0.5" a heartbeat's wildcard replay endpoint was resolved to).
bool same_host(const std::string& a, const std::string& b) {
    if (a == b) return true;
    const auto left = addresses_of(a);
    for (const auto& address : addresses_of(b)) {
        if (left.contains(address)) return true;
    }
    return false;
}

}  // namespace

SocketOptions replay_socket_options(const ReliableSubscriberOptions& options,
                                    std::string_view endpoint) {
    SocketOptions out = options.replay_socket;
    if (!out.curve_client) return out;
    const auto& stream = options.subscriber.socket.curve_client;
    // The key given for exactly `address`, if any.
    auto given = [&](const std::string& address) -> std::optional<std::string> {
        const CurveClientKeys* replay = &*out.curve_client;
        for (const CurveClientKeys* keys : {replay, stream ? &*stream : nullptr}) {
            if (keys == nullptr) continue;
            if (auto it = keys->server_public_key_for.find(address);
                it != keys->server_public_key_for.end()) {
                return it->second;
            }
        }
        return std::nullopt;
    };
    const std::string address(endpoint);
    if (auto key = given(address)) {
        out.curve_client->server_public_key = *key;
        return out;
    }
    const auto host = tcp_host(address);
    if (host.empty()) return out;
    std::optional<std::string> agreed;
    bool conflict = false;
    std::vector<Endpoint> configured;
    try {
        configured = parse_endpoints(options.endpoints, Attach::connect);
    } catch (const std::invalid_argument&) {
        return out;  // the Subscriber refused them already
    }
    for (const auto& e : configured) {
        if (e.attach != Attach::connect || !same_host(tcp_host(e.address), host)) continue;
        auto key = given(e.address);
        if (!key) key = stream ? stream->server_public_key : out.curve_client->server_public_key;
        if (agreed && *agreed != *key) conflict = true;
        agreed = std::move(key);
    }
    if (agreed && !conflict) out.curve_client->server_public_key = *agreed;
    return out;
}

}  // namespace rill::reliable_detail
