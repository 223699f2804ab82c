// csv-consumer: subscribes to rill streams and appends every reading to a CSV file exactly
// once, whatever is restarted or lost on the way.
//
//   usage: csv-consumer STREAM_ENDPOINTS CSV_FILE [SENSOR_PREFIX]
//
//   csv-consumer tcp://127.0.0.1:5556 readings.csv
//
// STREAM_ENDPOINTS is a comma-separated list of publishers' streams (entries without a prefix
// connect). The file gets a header and one row per reading:
//
//   sensor,seq,ts,temperature,humidity
//   "garden",1,2026-11-21T10:00:00.000000Z,21.5,40
//
// How "exactly once" works, and what the library does for it:
//
//  - The CSV file is this program's durable state, as the `readings` table is store-sub's. At
//    start it reads the file back and knows, per sensor, which seqs it holds (rill::SeqRanges).
//    A row cut off by a crash (no trailing newline) is removed first.
//  - rill::ReliableSubscriber asks for that state once per sensor (the StoredRanges callback)
//    when the sensor's publisher first announces it in a heartbeat, and fetches everything
//    missing from the publisher's outbox through its replay service: readings published while
//    this program was down, before it started, or lost on the network (a Gap on the stream).
//  - Readings arrive as Delivery events, from the stream or replayed; they may repeat readings
//    delivered before (at-least-once). Each reading is written only when its seq is not in the
//    file yet: that makes it exactly once.
//  - Readings the publisher no longer has (its bounded outbox dropped them) are reported once
//    as Lost: they will never come, and the program says so instead of waiting forever.
//
// Events are printed to stdout, one line each; the library logs to stderr. SIGINT or SIGTERM
// stops it cleanly; kill -9 loses nothing either (what was written is in the file, and what
// was not is fetched again on the next start).
//
// One thread: ReliableSubscriber::receive() and the StoredRanges callback run on it; the
// subscriber's replay requests run on a thread inside the library.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <rill/reliable.hpp>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>

namespace {

using namespace std::chrono_literals;

volatile sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

// Without SA_RESTART, a signal interrupts the wait inside ReliableSubscriber::receive(), which
// then returns nothing at once, and the loop sees the flag.
void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

// One line to stdout, flushed, so that another program (or a test) can follow it.
void say(const std::string& line) {
    std::cout << line << std::endl;
}

std::string range_text(std::uint64_t first, std::uint64_t last) {
    return first == last ? std::to_string(first)
                         : std::to_string(first) + ".." + std::to_string(last);
}

// The shortest text that reads back as the same float: 21.5, not 21.500000.
std::string number_text(float v) {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc{} ? std::string(buf, end) : "nan";
}

// CSV quoting (RFC 4180): sensor ids may hold commas and quotes.
std::string csv_quoted(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

// An append-only CSV file of readings that knows which (sensor, seq) it holds.
class CsvLog {
  public:
    // Opens `path`, creating it with a header when missing, and reads back which seqs of which
    // sensors it holds. Throws std::system_error when the file cannot be opened, read or
    // repaired, std::runtime_error naming the line when a row is not one this program wrote.
    explicit CsvLog(std::string path) : path_(std::move(path)) {
        std::string text;
        {
            std::ifstream in(path_, std::ios::binary);
            if (in) {
                std::ostringstream all;
                all << in.rdbuf();
                text = std::move(all).str();
            }
        }
        // A crash (kill -9, power cut) in the middle of a write may leave a row without its
        // newline: it was never complete, so it is cut off and its reading fetched again.
        const auto complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (complete < text.size()) {
            if (::truncate(path_.c_str(), static_cast<off_t>(complete)) != 0) {
                throw std::system_error(errno, std::generic_category(),
                                        "cannot cut the incomplete last row off " + path_);
            }
            say("repaired " + path_ + ": removed an incomplete last row");
            text.resize(complete);
        }
        load(text);
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            throw std::system_error(errno, std::generic_category(), "cannot open " + path_);
        }
        if (text.empty()) write_all("sensor,seq,ts,temperature,humidity\n");
    }
    ~CsvLog() { ::close(fd_); }
    CsvLog(const CsvLog&) = delete;
    CsvLog& operator=(const CsvLog&) = delete;

    // What the file holds for `sensor`: the owner's stored state ReliableSubscriber asks for.
    [[nodiscard]] rill::SeqRanges stored(const std::string& sensor) const {
        const auto it = stored_.find(sensor);
        return it == stored_.end() ? rill::SeqRanges{} : it->second;
    }

    // Appends the readings the file does not hold yet, as one write, and syncs the file.
    // Returns how many were written. Throws std::system_error when writing fails.
    std::size_t append(const std::vector<rill::Reading>& readings) {
        std::string rows;
        std::set<std::uint64_t> seqs;  // a delivery never repeats a seq, but be sure
        for (const auto& r : readings) {
            if (stored_[r.sensor].contains(r.seq) || !seqs.insert(r.seq).second) continue;
            rows += csv_quoted(r.sensor) + ',' + std::to_string(r.seq) + ',' +
                    rill::to_iso8601(r.ts) + ',' + number_text(r.temperature) + ',' +
                    number_text(r.humidity) + '\n';
        }
        if (rows.empty()) return 0;
        write_all(rows);
        // A row on disk is a reading stored: only now is it remembered as such.
        if (::fdatasync(fd_) != 0) {
            throw std::system_error(errno, std::generic_category(), "cannot sync " + path_);
        }
        for (const auto& r : readings) {
            if (seqs.contains(r.seq)) stored_[r.sensor].insert(r.seq);
        }
        return seqs.size();
    }

    [[nodiscard]] std::size_t sensors() const noexcept { return stored_.size(); }
    [[nodiscard]] std::uint64_t rows() const noexcept {
        std::uint64_t n = 0;
        for (const auto& [sensor, seqs] : stored_)
            n += seqs.count();
        return n;
    }

  private:
    void write_all(std::string_view data) {
        while (!data.empty()) {
            const auto n = ::write(fd_, data.data(), data.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                throw std::system_error(errno, std::generic_category(), "cannot write " + path_);
            }
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    // Reads the sensor and seq of every row after the header.
    void load(std::string_view text) {
        std::size_t line_no = 0;
        while (!text.empty()) {
            const auto nl = text.find('\n');
            std::string_view line = text.substr(0, nl);
            text.remove_prefix(nl + 1);
            if (++line_no == 1) continue;  // the header
            std::string sensor;
            std::size_t i = 1;  // after the opening quote
            bool closed = false;
            if (!line.empty() && line.front() == '"') {
                for (; i < line.size(); ++i) {
                    if (line[i] != '"') {
                        sensor += line[i];
                    } else if (i + 1 < line.size() && line[i + 1] == '"') {
                        sensor += '"';
                        ++i;
                    } else {
                        closed = true;
                        ++i;
                        break;
                    }
                }
            }
            std::uint64_t seq = 0;
            const char* first = line.data() + i + 1;
            const char* last = line.data() + line.size();
            const bool ok = closed && i < line.size() && line[i] == ',' &&
                            std::from_chars(first, last, seq).ec == std::errc{} && seq > 0;
            if (!ok) {
                throw std::runtime_error(path_ + ":" + std::to_string(line_no) +
                                         ": not a row of this program: '" + std::string(line) +
                                         "'");
            }
            stored_[sensor].insert(seq);
        }
    }

    std::string path_;
    int fd_ = -1;
    std::map<std::string, rill::SeqRanges, std::less<>> stored_;
};

// Handles the events of rill::ReliableSubscriber::receive().
struct EventPrinter {
    CsvLog& csv;
    std::set<std::string> publishers;  // heartbeats are printed once per publisher
    std::uint64_t duplicates = 0;

    void operator()(const rill::Delivery& d) {
        // Readings of one sensor in increasing seq order, maybe repeating earlier ones.
        const auto written = csv.append(d.readings);
        duplicates += d.readings.size() - written;
        say(std::string(d.replayed ? "replayed " : "delivery ") + d.readings.front().sensor + " " +
            range_text(d.readings.front().seq, d.readings.back().seq) + ": wrote " +
            std::to_string(written));
    }
    void operator()(const rill::Lost& l) {
        // The publisher's outbox no longer has these (or it has no replay service).
        say("lost " + l.sensor + " " + range_text(l.range.first, l.range.last) + ": " + l.reason);
    }
    void operator()(const rill::Gap& g) {
        // For information: ReliableSubscriber asks for a replay of it by itself.
        say("gap " + g.sensor + " " + range_text(g.from, g.to) + ": asking for a replay");
    }
    void operator()(const rill::HeartbeatSeen& h) {
        if (publishers.insert(h.heartbeat.publisher).second) {
            say("publisher " + h.heartbeat.publisher + " replay " +
                (h.replay_endpoint.empty() ? "none" : h.replay_endpoint));
        }
    }
    void operator()(const rill::PublisherSilent& s) {
        say("publisher " + s.publisher + " silent for " + std::to_string(s.silent_for.count()) +
            " ms");
    }
    void operator()(const rill::PublisherBack& b) { say("publisher " + b.publisher + " back"); }
};

int run(int argc, char** argv) {
    if (argc < 3 || argc > 4) {
        std::cerr << "usage: " << argv[0] << " STREAM_ENDPOINTS CSV_FILE [SENSOR_PREFIX]\n";
        return 2;
    }
    install_signal_handlers();
    CsvLog csv(argv[2]);
    say("opened " + std::string(argv[2]) + ": " + std::to_string(csv.rows()) + " readings of " +
        std::to_string(csv.sensors()) + " sensors");

    rill::ReliableSubscriberOptions options;
    options.endpoints = argv[1];
    if (argc > 3) options.subscriber.prefixes = {argv[3]};
    options.replay_call = rill::CallOptions{2s, 2};  // per replay request: timeout, retries
    // Called on this thread, from receive(), the first time a heartbeat lists a sensor.
    rill::ReliableSubscriber subscriber(
        options, [&csv](const std::string& sensor) { return csv.stored(sensor); });

    EventPrinter printer{csv, {}, 0};
    while (g_stop == 0) {
        // Waits up to 500 ms; returns early (empty) when a signal arrives.
        if (auto event = subscriber.receive(500ms)) std::visit(printer, *event);
    }
    const auto stats = subscriber.stats();
    say("stopped: " + std::to_string(csv.rows()) + " readings in the file, " +
        std::to_string(printer.duplicates) + " duplicates skipped, " +
        std::to_string(stats.replayed_readings) + " replayed, " +
        std::to_string(stats.lost_readings) + " lost");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "csv-consumer: " << e.what() << "\n";
        return 1;
    }
}
