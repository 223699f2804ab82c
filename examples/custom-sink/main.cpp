// custom-sink: stores every reading of rill streams exactly once in a sink of its own, an
// append-only text file, through rill::IngestLoop: the loop store-sub runs, into your store.
//
//   usage: custom-sink STREAM_ENDPOINTS FILE
//
//   custom-sink tcp://127.0.0.1:5556 readings.log
//
// The file holds one line per reading, tab-separated:
//
//   garden<TAB>1<TAB>2026-11-21T10:00:00.000000Z<TAB>21.5<TAB>40
//
// What you write is a rill::Sink (four duties, below); everything else comes from the library:
// subscribing, fetching by replay what was missed (gaps, readings published while this program
// was down), batching, retrying a sink that fails, draining on SIGTERM.
//
//  - open(): open the file, cut off a line torn by a crash (no newline: never complete), and
//    read back which (sensor, seq) it holds.
//  - stored(): that set. IngestLoop drops readings already stored, and asks the publishers
//    for everything else they hold.
//  - write(): append a batch as one write and fdatasync it: once write() returns, the batch is
//    durable. Readings already in the file (a retry after a failure) are skipped.
//  - close(): close the file; the loop reopens it after a failure.
//
// Events go to stdout, one line each; the library logs to stderr. SIGINT or SIGTERM stops it
// after writing what it holds; kill -9 loses nothing either (what was not written is fetched
// again on the next start).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <rill/ingest.hpp>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

namespace {

// One line to stdout, flushed, so that another program (or a test) can follow it.
void say(const std::string& line) {
    std::cout << line << std::endl;
}

// The shortest text that reads back as the same float: 21.5, not 21.500000.
std::string number_text(float v) {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc{} ? std::string(buf, end) : "nan";
}

// An append-only file of readings, one line each.
class FileSink : public rill::Sink {
  public:
    explicit FileSink(std::string path) : path_(std::move(path)) {}
    ~FileSink() override { FileSink::close(); }

    void open() override {
        std::ifstream in(path_, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const auto complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if (complete < text.size()) {  // a line torn by a crash: its reading comes again
            if (::truncate(path_.c_str(), static_cast<off_t>(complete)) != 0) fail("cut", true);
            say("repaired " + path_ + ": removed an incomplete last line");
            text.resize(complete);
        }
        stored_.clear();
        std::istringstream lines(text);
        std::uint64_t count = 0;
        for (std::string sensor, seq, rest; std::getline(lines, sensor, '\t');) {
            std::getline(lines, seq, '\t');
            std::getline(lines, rest);
            stored_[sensor].insert(std::stoull(seq));
            ++count;
        }
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) fail("open", true);
        say("opened " + path_ + ": " + std::to_string(count) + " readings");
    }

    [[nodiscard]] bool is_open() const noexcept override { return fd_ >= 0; }

    void close() noexcept override {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    [[nodiscard]] std::map<std::string, rill::SeqRanges> stored(std::string_view prefix) override {
        std::map<std::string, rill::SeqRanges> out;
        for (const auto& [sensor, seqs] : stored_) {
            if (sensor.starts_with(prefix)) out[sensor] = seqs;
        }
        return out;
    }

    std::uint64_t write(std::span<const rill::Reading> batch) override {
        std::string lines;
        std::uint64_t added = 0;
        for (const auto& r : batch) {
            if (stored_[r.sensor].contains(r.seq)) continue;  // already in the file
            if (r.sensor.find_first_of("\t\n") != std::string::npos) {
                throw rill::SinkError("a sensor id with a tab or newline: " + r.sensor, false);
            }
            lines += r.sensor + '\t' + std::to_string(r.seq) + '\t' + rill::to_iso8601(r.ts) +
                     '\t' + number_text(r.temperature) + '\t' + number_text(r.humidity) + '\n';
            ++added;
        }
        for (std::string_view rest = lines; !rest.empty();) {
            const auto n = ::write(fd_, rest.data(), rest.size());
            if (n < 0 && errno != EINTR) fail("append to", true);
            if (n > 0) rest.remove_prefix(static_cast<std::size_t>(n));
        }
        if (::fdatasync(fd_) != 0) fail("sync", true);
        for (const auto& r : batch)  // durable now: remember them as stored
            stored_[r.sensor].insert(r.seq);
        return added;
    }

    [[nodiscard]] std::string name() const override { return path_; }

  private:
    [[noreturn]] void fail(const std::string& what, bool transient) {
        const int error = errno;
        close();
        throw rill::SinkError("cannot " + what + " " + path_ + ": " + std::strerror(error),
                              transient);
    }

    std::string path_;
    int fd_ = -1;
    std::map<std::string, rill::SeqRanges> stored_;
};

rill::StopFlag* g_stop = nullptr;

void on_signal(int) {
    g_stop->request();  // async-signal-safe
}

int run(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " STREAM_ENDPOINTS FILE\n";
        return 2;
    }
    rill::StopFlag stop;
    g_stop = &stop;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    rill::IngestOptions options;
    options.subscriber.endpoints = argv[1];
    options.writer.flush_interval = std::chrono::milliseconds(20);
    options.log_component = "custom-sink";
    rill::IngestHooks hooks;
    hooks.ready = [](const std::string& status) { say("ready: " + status); };

    FileSink sink(argv[2]);
    rill::IngestLoop loop(options, sink, hooks);
    const auto summary = loop.run(stop);  // until SIGINT or SIGTERM
    say("stopped: stored " + std::to_string(summary.stored) + " readings" +
        (summary.drained ? "" : "; some were not written (the publishers still hold them)"));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "custom-sink: " << e.what() << "\n";
        return 1;
    }
}
