#include "support/mosquitto.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace rill::test {

using namespace std::chrono_literals;

namespace {
bool accepts(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}
}  // namespace

Mosquitto::Mosquitto(const std::filesystem::path& dir, MosquittoOptions options)
    : dir_(dir), config_(dir / "mosquitto.conf"), port_(free_loopback_port()) {
    std::filesystem::create_directories(dir_ / "data");
    std::ofstream conf(config_);
    conf << "user root\n"
         << "persistence true\n"
         << "persistence_location " << (dir_ / "data").string() << "/\n"
         << "log_dest stderr\n"
         << "log_type all\n";
    bool anonymous_set = false;
    for (const auto& line : options.global) {
        conf << line << "\n";
        if (line.starts_with("allow_anonymous")) anonymous_set = true;
    }
    if (!anonymous_set) conf << "allow_anonymous true\n";
    conf << "listener " << port_ << " 127.0.0.1\n";
    for (const auto& line : options.listener) {
        conf << line << "\n";
        if (line.starts_with("certfile")) tls_ = true;
    }
    conf.close();
    start();
}

Mosquitto::~Mosquitto() = default;

void Mosquitto::start() {
    process_ =
        std::make_unique<Process>(std::vector<std::string>{"mosquitto", "-c", config_.string()},
                                  ProcessOptions{.stderr_path = (dir_ / "mosquitto.log").string()});
    if (!wait_until([&] { return accepts(port_) || !process_->running(); }, 20s) ||
        !process_->running()) {
        throw std::runtime_error("mosquitto did not start on port " + std::to_string(port_) +
                                 ":\n" + log());
    }
}

void Mosquitto::stop() {
    if (!process_) return;
    process_->signal(SIGTERM);
    (void)process_->wait_for(20s);
    process_.reset();
}

std::string Mosquitto::url() const {
    return std::string(tls_ ? "mqtts" : "mqtt") + "://127.0.0.1:" + std::to_string(port_);
}

std::string Mosquitto::log() const {
    return read_file(dir_ / "mosquitto.log");
}

int publish_lines(std::uint16_t port, const std::string& topic,
                  const std::vector<std::string>& lines, int qos, std::chrono::milliseconds pace,
                  const std::vector<std::string>& extra) {
    // mosquitto_pub -l publishes each stdin line as one message, over one connection.
    std::ostringstream script;
    script << "for v in";
    for (const auto& l : lines)
        script << " '" << l << "'";
    script << "; do printf '%s\\n' \"$v\";";
    if (pace.count() > 0)
        script << " sleep " << (static_cast<double>(pace.count()) / 1000.0) << ";";
    script << " done | mosquitto_pub -h 127.0.0.1 -p " << port << " -q " << qos << " -t '" << topic
           << "' -l";
    for (const auto& e : extra)
        script << " '" << e << "'";
    return run_command({"sh", "-c", script.str()}, std::chrono::seconds(60));
}

}  // namespace rill::test
