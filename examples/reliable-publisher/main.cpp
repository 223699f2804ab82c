// reliable-publisher: publishes readings of one sensor, read as text lines from stdin, with
// rill's delivery contract: every reading is written to a durable outbox (which assigns its
// sequence number) before it is sent, a replay service answers subscribers that missed
// readings, and heartbeats announce the newest seq so that subscribers notice loss.
//
//   usage: reliable-publisher SENSOR_ID OUTBOX_DIR [STREAM_ENDPOINT [REPLAY_ENDPOINT]]
//
// Each input line is "TEMPERATURE HUMIDITY" (degrees Celsius, percent); blank lines and lines
// starting with '#' are skipped, a bad line is reported on stderr and skipped. Any program that
// prints such lines can feed it, for example the CPU temperature every five seconds:
//
//   while sleep 5; do
//       echo "$(( $(cat /sys/class/thermal/thermal_zone0/temp) / 1000 )) 0"
//   done | reliable-publisher cpu ./outbox-cpu
//
// When stdin ends, the program keeps serving heartbeats and replays (subscribers may still be
// catching up) until SIGINT or SIGTERM. Either signal stops it cleanly: pending readings are
// sent, the outbox is synced, sockets are closed. Restarted with the same OUTBOX_DIR, it
// continues the sequence where it stopped.
//
// It prints one line to stdout when it is ready, with the addresses it bound (port 0 becomes
// the real port): "stream tcp://127.0.0.1:5556 replay tcp://127.0.0.1:5557".
//
// One thread does everything: rill::ReliablePublisher is not thread-safe (its replay service
// runs on a thread of its own, inside the library), so the loop waits for input with ppoll()
// and gives the publisher its turn (heartbeats) between lines.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <rill/log.hpp>
#include <rill/reliable.hpp>
#include <rill/socket.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace {

using namespace std::chrono_literals;

// Set by the signal handler, read by the loop.
volatile sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

// Blocks SIGINT and SIGTERM and installs the handler. The signals are delivered only while the
// loop waits in ppoll() (which unblocks them atomically), so a signal can never slip in between
// "check the flag" and "start waiting". Returns the mask to wait with.
sigset_t install_signal_handlers() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigset_t wait_mask;
    sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    return wait_mask;
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r");
    return s.substr(first, last - first + 1);
}

// Parses the next whitespace-separated number of `line`, advancing it.
std::optional<float> next_number(std::string_view& line) {
    line = trim(line);
    const auto end = std::min(line.find_first_of(" \t"), line.size());
    float value = 0;
    const auto [ptr, ec] = std::from_chars(line.data(), line.data() + end, value);
    if (ec != std::errc{} || ptr != line.data() + end) return std::nullopt;
    line.remove_prefix(end);
    return value;
}

struct Values {
    float temperature = 0;
    float humidity = 0;
};

// "21.5 40" -> {21.5, 40}; nothing for anything else. Ranges are checked by the library.
std::optional<Values> parse_line(std::string_view line) {
    auto t = next_number(line);
    auto h = next_number(line);
    if (!t || !h || !trim(line).empty()) return std::nullopt;
    return Values{*t, *h};
}

class LinePublisher {
  public:
    LinePublisher(std::string sensor, rill::ReliablePublisher& publisher)
        : sensor_(std::move(sensor)), publisher_(publisher) {}

    // Publishes every complete line in `input` and keeps the incomplete rest for later.
    void feed(std::string_view input) {
        pending_.append(input);
        std::size_t start = 0;
        for (auto nl = pending_.find('\n'); nl != std::string::npos;
             nl = pending_.find('\n', start)) {
            line(std::string_view(pending_).substr(start, nl - start));
            start = nl + 1;
        }
        pending_.erase(0, start);
    }

    // The input ended: a last line without a newline still counts.
    void finish() {
        if (!pending_.empty()) line(pending_);
        pending_.clear();
    }

    [[nodiscard]] std::uint64_t published() const noexcept { return published_; }

  private:
    void line(std::string_view text) {
        ++line_no_;
        text = trim(text);
        if (text.empty() || text.front() == '#') return;
        const auto values = parse_line(text);
        if (!values) {
            rill::log_warn("example", "line " + std::to_string(line_no_) + ": '" +
                                          std::string(text) +
                                          "' is not 'TEMPERATURE HUMIDITY'; skipped");
            return;
        }
        // The outbox assigns seq: the 0 here is overwritten by publish().
        rill::Reading reading{sensor_, 0, rill::now(), values->temperature, values->humidity, {}};
        try {
            // Appends to the outbox (durable per its fsync policy), then sends. Blocks only for
            // the disk write.
            const auto seqs = publisher_.publish(std::span<rill::Reading>(&reading, 1));
            ++published_;
            rill::log_debug("example", "published seq " + std::to_string(seqs.first));
        } catch (const std::invalid_argument& e) {
            // An out-of-range value (humidity 120, temperature below absolute zero, NaN):
            // nothing was appended or sent.
            rill::log_warn("example", "line " + std::to_string(line_no_) + ": " + e.what());
        }
    }

    std::string sensor_;
    rill::ReliablePublisher& publisher_;
    std::string pending_;
    std::uint64_t line_no_ = 0;
    std::uint64_t published_ = 0;
};

int run(int argc, char** argv) {
    if (argc < 3 || argc > 5) {
        std::cerr << "usage: " << argv[0]
                  << " SENSOR_ID OUTBOX_DIR [STREAM_ENDPOINT [REPLAY_ENDPOINT]]\n"
                     "  reads 'TEMPERATURE HUMIDITY' lines from stdin and publishes them\n"
                     "  defaults: @tcp://127.0.0.1:5556 and @tcp://127.0.0.1:5557\n";
        return 2;
    }
    const std::string sensor = argv[1];
    if (const auto problem = rill::sensor_id_problem(sensor)) {
        std::cerr << "bad SENSOR_ID '" << sensor << "': " << *problem << "\n";
        return 2;
    }
    const sigset_t wait_mask = install_signal_handlers();

    rill::ReliablePublisherOptions options;
    options.outbox_dir = argv[2];
    options.outbox.fsync = rill::FsyncPolicy::batch;  // group commit every 100 ms
    if (argc > 3) options.publish_endpoints = argv[3];
    if (argc > 4) options.replay_endpoints = argv[4];
    options.publisher.heartbeat_interval = 1s;
    // Give queued messages up to a second to leave at shutdown (see close_default_context).
    options.publisher.socket.linger = 1s;

    std::uint64_t published = 0;
    {
        // Opens (and recovers) the outbox, binds the stream and the replay service. Throws
        // with the cause: outbox locked by another process, address in use, ...
        const std::string stream = options.publish_endpoints;
        rill::ReliablePublisher publisher(std::move(options));
        // bound() is empty when the stream only connects (">tcp://collector:5556").
        const auto& bound = publisher.publisher().bound();
        std::cout << "stream " << (bound.empty() ? stream : bound.front()) << " replay "
                  << publisher.replay_endpoint() << std::endl;
        rill::log_info("example", "sensor " + sensor + " resumes after seq " +
                                      std::to_string(publisher.outbox().newest(sensor)));

        LinePublisher lines(sensor, publisher);
        bool input_open = true;
        char buffer[4096];
        while (g_stop == 0) {
            // Heartbeats (and delayed batches) are due at `next`; wait for input until then.
            const auto next = publisher.service();
            const auto wait = std::clamp<std::chrono::steady_clock::duration>(
                next - std::chrono::steady_clock::now(), 0s, 1s);
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
            timespec timeout{0, static_cast<long>(ns)};
            pollfd in{input_open ? STDIN_FILENO : -1, POLLIN, 0};  // poll ignores fd -1
            if (ppoll(&in, 1, &timeout, &wait_mask) < 0) {
                if (errno == EINTR) continue;  // a signal: the loop condition decides
                throw std::system_error(errno, std::generic_category(), "cannot poll stdin");
            }
            if (!input_open || (in.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
            const auto n = ::read(STDIN_FILENO, buffer, sizeof buffer);
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                throw std::system_error(errno, std::generic_category(), "cannot read stdin");
            }
            if (n == 0) {
                lines.finish();
                input_open = false;
                rill::log_info("example", "stdin closed after " +
                                              std::to_string(lines.published()) +
                                              " readings; serving replays until SIGINT/SIGTERM");
                continue;
            }
            lines.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
        }
        published = lines.published();
        // Sends what is pending, syncs the outbox and stops the replay service. The destructor
        // would do the same but could only log a failure; here it reaches the exit status.
        publisher.close();
    }
    // Every socket is closed now: let the default context deliver what they still queued.
    rill::close_default_context(2s);
    rill::log_info("example",
                   "stopped after publishing " + std::to_string(published) + " readings");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "reliable-publisher: " << e.what() << "\n";
        return 1;
    }
}
