#include "support/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/process.hpp"

namespace rill::test {

namespace {

using namespace std::chrono_literals;

constexpr auto command_bound = 30s;
const std::string name_prefix = "rill-chaos-";

std::string run_checked(const std::vector<std::string>& argv) {
    std::string out;
    const int code = run_command(argv, command_bound, &out);
    if (code != 0) {
        std::string cmd;
        for (const auto& a : argv)
            cmd += (cmd.empty() ? "" : " ") + a;
        throw std::runtime_error("'" + cmd + "' failed (exit " + std::to_string(code) +
                                 "): " + out);
    }
    return out;
}

std::vector<std::string> namespaces() {
    std::string out;
    if (run_command({"ip", "netns", "list"}, command_bound, &out) != 0) return {};
    std::vector<std::string> names;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        const auto name = line.substr(0, line.find(' '));
        if (!name.empty()) names.push_back(name);
    }
    return names;
}

// Kills (SIGKILL) every process still inside namespace `ns`, then deletes it.
void delete_namespace(const std::string& ns) {
    std::string out;
    if (run_command({"ip", "netns", "pids", ns}, command_bound, &out) == 0) {
        std::istringstream in(out);
        long pid = 0;
        while (in >> pid) {
            if (pid > 1) kill(static_cast<pid_t>(pid), SIGKILL);
        }
    }
    (void)run_command({"ip", "netns", "delete", ns}, command_bound);
}

// Deletes rill-chaos-<pid>-* namespaces whose creating process is gone (a crashed run).
void delete_leftovers() {
    for (const auto& name : namespaces()) {
        if (name.rfind(name_prefix, 0) != 0) continue;
        const auto rest = name.substr(name_prefix.size());
        const auto dash = rest.find('-');
        pid_t pid = 0;
        try {
            pid = static_cast<pid_t>(std::stol(rest.substr(0, dash)));
        } catch (const std::exception&) {
            pid = 0;  // not ours to judge by pid: a leftover of an older naming, delete it
        }
        if (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM)) continue;  // a live run
        delete_namespace(name);
    }
}

}  // namespace

std::string netns_problem() {
    if (geteuid() != 0) return "the chaos tests need root (ip netns add, veth, bridge, tc)";
    std::string out;
    try {
        if (run_command({"ip", "-V"}, command_bound, &out) != 0) {
            return "iproute2's 'ip' does not run: " + out;
        }
        const std::string probe = name_prefix + std::to_string(getpid()) + "-probe";
        if (run_command({"ip", "netns", "add", probe}, command_bound, &out) != 0) {
            return "cannot create a network namespace (ip netns add): " + out;
        }
        (void)run_command({"ip", "netns", "delete", probe}, command_bound);
    } catch (const std::exception& e) {
        return std::string("cannot run iproute2: ") + e.what();
    }
    return "";
}

void in_netns(const std::string& ns, const std::function<void()>& fn) {
    std::exception_ptr error;
    std::thread t([&] {
        try {
            const std::string path = "/run/netns/" + ns;
            const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
            }
            const int r = setns(fd, CLONE_NEWNET);
            const int saved = errno;
            close(fd);
            if (r != 0) {
                throw std::runtime_error("cannot enter network namespace " + ns + ": " +
                                         std::strerror(saved));
            }
            fn();
        } catch (...) {
            error = std::current_exception();
        }
    });
    t.join();
    if (error) std::rethrow_exception(error);
}

Network::Network(const std::vector<std::string>& hosts) {
    delete_leftovers();
    static int instance = 0;
    prefix_ = name_prefix + std::to_string(getpid()) + "-" + std::to_string(++instance) + "-";
    std::random_device rd;
    std::mt19937 rng(rd());
    const auto subnet =
        "10." + std::to_string(100 + rng() % 150) + "." + std::to_string(rng() % 256) + ".";
    try {
        switch_ns_ = prefix_ + "switch";
        ip({"netns", "add", switch_ns_});
        created_.push_back(switch_ns_);
        ip({"-n", switch_ns_, "link", "add", "br0", "type", "bridge"});
        ip({"-n", switch_ns_, "link", "set", "br0", "up"});
        int n = 0;
        for (const auto& host : hosts) {
            if (host.empty() || host.size() > 15 || ns_.count(host) != 0) {
                throw std::invalid_argument("Network: bad or repeated host name '" + host + "'");
            }
            const auto ns = prefix_ + host;
            ip({"netns", "add", ns});
            created_.push_back(ns);
            ns_[host] = ns;
            address_[host] = subnet + std::to_string(++n + 1);
            ip({"-n", switch_ns_, "link", "add", host, "type", "veth", "peer", "name", "eth0",
                "netns", ns});
            ip({"-n", switch_ns_, "link", "set", host, "master", "br0", "up"});
            ip({"-n", ns, "addr", "add", address_[host] + "/24", "dev", "eth0"});
            ip({"-n", ns, "link", "set", "eth0", "up"});
            ip({"-n", ns, "link", "set", "lo", "up"});
        }
    } catch (...) {
        for (auto it = created_.rbegin(); it != created_.rend(); ++it)
            delete_namespace(*it);
        throw;
    }
}

Network::~Network() {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
        try {
            delete_namespace(*it);
        } catch (...) {
        }
    }
}

const std::string& Network::ns(const std::string& host) const {
    const auto it = ns_.find(host);
    if (it == ns_.end()) throw std::invalid_argument("Network: no host '" + host + "'");
    return it->second;
}

const std::string& Network::address(const std::string& host) const {
    const auto it = address_.find(host);
    if (it == address_.end()) throw std::invalid_argument("Network: no host '" + host + "'");
    return it->second;
}

std::vector<std::string> Network::exec_prefix(const std::string& host) const {
    return {"ip", "netns", "exec", ns(host)};
}

void Network::link_down(const std::string& host) {
    (void)ns(host);
    ip({"-n", switch_ns_, "link", "set", host, "down"});
}

void Network::link_up(const std::string& host) {
    (void)ns(host);
    ip({"-n", switch_ns_, "link", "set", host, "up"});
}

void Network::shape(const std::string& host, const std::string& rate) {
    (void)ns(host);
    if (rate.empty()) {
        (void)run_checked(
            {"ip", "netns", "exec", switch_ns_, "tc", "qdisc", "del", "dev", host, "root"});
        return;
    }
    (void)run_checked({"ip", "netns", "exec", switch_ns_, "tc", "qdisc", "add", "dev", host, "root",
                       "tbf", "rate", rate, "burst", "32kbit", "latency", "1s"});
}

void Network::ip(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    (void)run_checked(argv);
}

}  // namespace rill::test
