#include "replay_keys.hpp"

#include <optional>
#include <string>

#include "rill/endpoint.hpp"

namespace rill::reliable_detail {

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
        if (e.attach != Attach::connect || tcp_host(e.address) != host) continue;
        auto key = given(e.address);
        if (!key) key = stream ? stream->server_public_key : out.curve_client->server_public_key;
        if (agreed && *agreed != *key) conflict = true;
        agreed = std::move(key);
    }
    if (agreed && !conflict) out.curve_client->server_public_key = *agreed;
    return out;
}

}  // namespace rill::reliable_detail
