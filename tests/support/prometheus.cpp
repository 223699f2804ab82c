#include "support/prometheus.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>

#include "support/process.hpp"

namespace rill::test {

bool promtool_available() {
    return run_command({"sh", "-c", "command -v promtool >/dev/null"}, std::chrono::seconds(10)) ==
           0;
}

PromtoolResult promtool_check_metrics(const std::string& text) {
    TempDir dir("rill-promtool");
    const auto path = dir.path() / "metrics.txt";
    {
        std::ofstream out(path, std::ios::binary);
        out << text;
    }
    PromtoolResult r;
    r.status = run_command({"sh", "-c", "exec promtool check metrics < \"$0\"", path.string()},
                           std::chrono::seconds(60), &r.output);
    return r;
}

int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("cannot bind a loopback port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace rill::test
