// Test helpers for multi-host tests on one machine: network namespaces joined by a bridge.
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2; used by the chaos tests (tests/chaos).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rill::test {

/// Why `ip netns` cannot be used here (not root, no iproute2, no permission to create a
/// namespace), or "" when it can.
[[nodiscard]] std::string netns_problem();

/// Runs `fn` on a thread that has entered network namespace `ns` (sockets it creates live
/// there); rethrows what `fn` throws.
void in_netns(const std::string& ns, const std::function<void()>& fn);

/// A private network of hosts on one machine: one namespace holding a bridge (the switch) and
/// one namespace per host, joined to the switch by a veth pair (host side `eth0`, switch side
/// named after the host). Names are `rill-chaos-<pid>-<n>-<host>` and the subnet 10.X.Y.0/24 is
/// chosen at random, so concurrent runs do not collide; the constructor first deletes
/// namespaces `rill-chaos-<pid>-*` left by processes that no longer exist (killing what still
/// runs inside them). The destructor kills (SIGKILL) what still runs in its namespaces and
/// deletes them (which removes the veths and the bridge), also when a test fails; stop the
/// processes inside properly before.
class Network {
  public:
    explicit Network(const std::vector<std::string>& hosts);
    ~Network();
    Network(const Network&) = delete;
    Network& operator=(const Network&) = delete;

    /// The namespace of `host`, for `ip netns exec`.
    [[nodiscard]] const std::string& ns(const std::string& host) const;
    /// The IPv4 address of `host` on the switch.
    [[nodiscard]] const std::string& address(const std::string& host) const;
    /// {"ip", "netns", "exec", ns(host)}: prefix of a command that runs on `host`.
    [[nodiscard]] std::vector<std::string> exec_prefix(const std::string& host) const;

    /// Takes the switch side of `host`'s veth down (the host loses its link) or up again.
    void link_down(const std::string& host);
    void link_up(const std::string& host);
    /// Shapes what the switch sends to `host` with a token bucket (`tc ... tbf rate RATE`), or
    /// removes the shaping with an empty rate.
    void shape(const std::string& host, const std::string& rate);

  private:
    void ip(const std::vector<std::string>& args) const;

    std::string prefix_;
    std::string switch_ns_;
    std::vector<std::string> created_;  // namespaces, in creation order
    std::map<std::string, std::string> ns_;
    std::map<std::string, std::string> address_;
};

}  // namespace rill::test
