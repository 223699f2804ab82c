#include "rill/endpoint.hpp"

#include <stdexcept>

namespace rill {

std::string Endpoint::to_string() const {
    return (attach == Attach::bind ? "@" : ">") + address;
}

std::vector<Endpoint> parse_endpoints(std::string_view spec, Attach fallback) {
    std::vector<Endpoint> out;
    std::size_t start = 0;
    while (start <= spec.size()) {
        const auto comma = spec.find(',', start);
        auto item = spec.substr(start, comma == std::string_view::npos ? spec.npos : comma - start);
        while (!item.empty() && item.front() == ' ')
            item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ')
            item.remove_suffix(1);
        Endpoint e;
        e.attach = fallback;
        if (!item.empty() && (item.front() == '@' || item.front() == '>')) {
            e.attach = item.front() == '@' ? Attach::bind : Attach::connect;
            item.remove_prefix(1);
        }
        if (item.empty()) {
            throw std::invalid_argument("empty endpoint in '" + std::string(spec) + "'");
        }
        const auto sep = item.find("://");
        if (sep == std::string_view::npos || sep + 3 >= item.size()) {
            throw std::invalid_argument("endpoint '" + std::string(item) +
                                        "' is not of the form transport://address");
        }
        const auto transport = item.substr(0, sep);
        if (transport != "tcp" && transport != "ipc" && transport != "inproc") {
            throw std::invalid_argument("endpoint '" + std::string(item) +
                                        "' has unknown transport '" + std::string(transport) +
                                        "' (use tcp, ipc or inproc)");
        }
        e.address.assign(item);
        out.push_back(std::move(e));
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

std::string to_string(const std::vector<Endpoint>& endpoints) {
    std::string out;
    for (const auto& e : endpoints) {
        if (!out.empty()) out += ',';
        out += e.to_string();
    }
    return out;
}

std::string tcp_host(std::string_view address) {
    constexpr std::string_view scheme = "tcp://";
    if (!address.starts_with(scheme)) return {};
    auto rest = address.substr(scheme.size());
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        return close == rest.npos ? std::string() : std::string(rest.substr(0, close + 1));
    }
    const auto colon = rest.rfind(':');
    return std::string(rest.substr(0, colon));
}

std::string resolve_announced(std::string_view announced, std::string_view seen_host) {
    const auto host = tcp_host(announced);
    if (seen_host.empty() || (host != "*" && host != "0.0.0.0" && host != "[::]" && host != "::")) {
        return std::string(announced);
    }
    const auto port = announced.substr(std::string_view("tcp://").size() + host.size());
    // ZeroMQ reports a peer's address without brackets: "10.0.0.5", "::1", or an IPv4 peer of a
    // dual-stack socket as "::ffff:10.0.0.5". The first and last connect as they are, an IPv6
    // address needs its brackets in an endpoint ("tcp://[::1]:5557").
    constexpr std::string_view mapped = "::ffff:";
    if (seen_host.starts_with(mapped) &&
        seen_host.find(':', mapped.size()) == std::string_view::npos &&
        seen_host.find('.', mapped.size()) != std::string_view::npos) {
        seen_host.remove_prefix(mapped.size());
    }
    if (seen_host.find(':') != std::string_view::npos && !seen_host.starts_with('[')) {
        return "tcp://[" + std::string(seen_host) + "]" + std::string(port);
    }
    return "tcp://" + std::string(seen_host) + std::string(port);
}

}  // namespace rill
