// Test helper: a Mosquitto broker of the test's own, on a free loopback port, with its own
// configuration and persistence directory. Shared by the MQTT bridge tests and benches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/ports.hpp"
#include "support/process.hpp"

namespace rill::test {

struct MosquittoOptions {
    /// Extra lines of the listener's configuration (certfile, keyfile, cafile, ...).
    std::vector<std::string> listener;
    /// Extra global lines (password_file, allow_anonymous false, max_inflight_messages, ...);
    /// without "allow_anonymous" anonymous clients are allowed.
    std::vector<std::string> global;
};

/// A mosquitto process (run as root with `user root`: it would switch to the mosquitto user
/// otherwise and could not write the test's directory). Persistence is on, in `dir`/data. The
/// constructor starts it and waits (bounded, 20 s) until it accepts TCP connections; it throws
/// std::runtime_error with its log when it does not. The destructor kills it.
class Mosquitto {
  public:
    Mosquitto(const std::filesystem::path& dir, MosquittoOptions options = {});
    ~Mosquitto();
    Mosquitto(const Mosquitto&) = delete;
    Mosquitto& operator=(const Mosquitto&) = delete;

    /// Stops it with SIGTERM (it writes its persistence file) and waits, at most 20 s.
    void stop();
    /// Starts it again on the same port with the same persistence (after stop()).
    void start();
    /// Its TCP port.
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    /// "mqtt://127.0.0.1:PORT" (or mqtts:// when the listener has a certfile).
    [[nodiscard]] std::string url() const;
    /// Its log so far.
    [[nodiscard]] std::string log() const;

  private:
    std::filesystem::path dir_;
    std::filesystem::path config_;
    std::uint16_t port_ = 0;
    bool tls_ = false;
    std::unique_ptr<Process> process_;
};

/// Publishes every line of `lines` as one message to `topic` on the broker at QoS `qos` with
/// mosquitto_pub -l, `pace` apart when not zero; returns mosquitto_pub's exit code (bounded,
/// 60 s). `extra` is added to its arguments (e.g. --cafile).
int publish_lines(std::uint16_t port, const std::string& topic,
                  const std::vector<std::string>& lines, int qos = 1,
                  std::chrono::milliseconds pace = std::chrono::milliseconds{0},
                  const std::vector<std::string>& extra = {});

}  // namespace rill::test
