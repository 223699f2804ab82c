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

}  // namespace rill::test
