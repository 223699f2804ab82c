#include "support/pipeline.hpp"

#include "support/netns.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rill::test {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string next_log_path(const std::filesystem::path& dir, const std::string& name) {
    static std::atomic<int> counter{0};
    return (dir / (name + "-" + std::to_string(++counter) + ".log")).string();
}

// The text between `after` and the next `until` (or the end of the line) in the first line of
// `log` that contains `marker`; nothing when there is no such line yet.
std::optional<std::string> field(const std::string& log, const std::string& marker,
                                 const std::string& after, const std::string& until) {
    const auto m = log.find(marker);
    if (m == std::string::npos) return std::nullopt;
    const auto eol = log.find('\n', m);
    if (eol == std::string::npos) return std::nullopt;  // the line is not complete yet
    const auto line = log.substr(m, eol - m);
    const auto a = line.find(after);
    if (a == std::string::npos) return std::nullopt;
    const auto start = a + after.size();
    const auto end = until.empty() ? std::string::npos : line.find(until, start);
    return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const noexcept { return fd_; }

  private:
    int fd_;
};

}  // namespace

// --- sensor-pub --------------------------------------------------------------------------------

SensorPub::SensorPub(const std::filesystem::path& log_dir, SensorPubOptions o)
    : log_path_(next_log_path(log_dir, "sensor-pub-" + o.sensor_id)) {
    if (o.outbox.empty()) throw std::invalid_argument("SensorPub needs an outbox directory");
    std::vector<std::string> argv;
    if (!o.netns.empty()) argv = {"ip", "netns", "exec", o.netns};
    // --linger-full: the whole linger, whoever caught up; tests stop the process themselves.
    std::vector<std::string> own = o.program;
    if (own.empty()) own.push_back(bin("sensor-pub"));
    own.insert(own.end(), {"--sensor-id", o.sensor_id, "--source", "sim", "--rate",
                           std::to_string(o.rate), "--outbox", o.outbox.string(), "--pub", o.pub,
                           "--replay", o.replay, "--heartbeat-interval", o.heartbeat_interval,
                           "--linger", o.linger, "--linger-full"});
    argv.insert(argv.end(), own.begin(), own.end());
    if (o.count > 0) {
        argv.push_back("--count");
        argv.push_back(std::to_string(o.count));
    }
    argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
    process_ = std::make_unique<Process>(
        argv, ProcessOptions{.stderr_path = log_path_, .die_with_parent = !o.netns.empty()});

    const std::string marker = "info sensor-pub: sensor " + o.sensor_id + " from ";
    const bool started = wait_until(
        [&] {
            const auto text = log();
            const auto stream = field(text, marker, "publishing on ", ",");
            const auto replay = field(text, marker, "replay on ", ",");
            const auto seq = field(text, marker, " at seq ", "");
            if (!stream || !replay || !seq) return !process_->running();
            stream_ = *stream;
            replay_ = *replay;
            start_seq_ = std::stoull(*seq);
            return true;
        },
        30s);
    if (!started || stream_.empty()) {
        throw std::runtime_error("sensor-pub did not start; its log:\n" + log());
    }
}

std::string SensorPub::log() const {
    return read_file(log_path_);
}

std::optional<std::uint64_t> SensorPub::wait_published(std::chrono::milliseconds timeout) {
    std::optional<std::uint64_t> seq;
    (void)wait_until(
        [&] {
            if (const auto s = field(log(), "info sensor-pub: published up to seq ",
                                     "published up to seq ", "")) {
                seq = std::stoull(*s);
            }
            return seq.has_value();
        },
        timeout);
    return seq;
}

// --- store-sub ---------------------------------------------------------------------------------

StoreSub::StoreSub(const std::filesystem::path& log_dir, StoreSubOptions o)
    : log_path_(next_log_path(log_dir, "store-sub")), netns_(o.netns) {
    std::vector<std::string> argv;
    if (!o.netns.empty()) argv = {"ip", "netns", "exec", o.netns};
    // --linger-full: the whole linger, whoever caught up; tests stop the process themselves.
    argv.insert(argv.end(), {bin("store-sub"), "--db", o.db});
    for (const auto& c : o.connect) {
        argv.push_back("--connect");
        argv.push_back(c);
    }
    for (const auto& s : o.sensors) {
        argv.push_back("--sensors");
        argv.push_back(s);
    }
    if (o.metrics) {
        argv.push_back("--metrics");
        argv.push_back("127.0.0.1:0");
    }
    argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
    process_ = std::make_unique<Process>(
        argv, ProcessOptions{.stderr_path = log_path_, .die_with_parent = !o.netns.empty()});
    if (!o.metrics) return;
    const bool started = wait_until(
        [&] {
            if (const auto url = field(log(), "info http: serving /metrics and /healthz on ",
                                       "/healthz on ", "")) {
                admin_url_ = *url;
                return true;
            }
            return !process_->running();
        },
        30s);
    if (!started || admin_url_.empty()) {
        throw std::runtime_error("store-sub did not start its admin server; its log:\n" + log());
    }
}

std::string StoreSub::log() const {
    return read_file(log_path_);
}

std::optional<std::string> StoreSub::metrics() const {
    if (admin_url_.empty()) return std::nullopt;
    std::optional<HttpResponse> r;
    if (netns_.empty()) {
        r = http_get(admin_url_, "/metrics");
    } else {
        in_netns(netns_, [&] { r = http_get(admin_url_, "/metrics"); });
    }
    if (!r || r->status != 200) return std::nullopt;
    return std::move(r->body);
}

std::optional<double> StoreSub::metric(const std::string& name, const std::string& label) const {
    const auto text = metrics();
    if (!text) return std::nullopt;
    return metric_sum(*text, name, label);
}

int StoreSub::healthz() const {
    if (admin_url_.empty()) return 0;
    std::optional<HttpResponse> r;
    if (netns_.empty()) {
        r = http_get(admin_url_, "/healthz");
    } else {
        in_netns(netns_, [&] { r = http_get(admin_url_, "/healthz"); });
    }
    return r ? r->status : 0;
}

// --- HTTP and metrics --------------------------------------------------------------------------

std::optional<HttpResponse> http_get(const std::string& base_url, const std::string& path,
                                     std::chrono::milliseconds timeout) {
    const std::string scheme = "http://";
    if (base_url.rfind(scheme, 0) != 0) return std::nullopt;
    const auto hostport = base_url.substr(scheme.size());
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    const auto host = hostport.substr(0, colon);
    const int port = std::atoi(hostport.c_str() + colon + 1);

    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return std::nullopt;
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) return std::nullopt;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        return std::nullopt;
    }
    const std::string request =
        "GET " + path + " HTTP/1.0\r\nHost: " + hostport + "\r\nConnection: close\r\n\r\n";
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        return std::nullopt;
    }
    const auto deadline = Clock::now() + timeout;
    std::string answer;
    char buf[16384];
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        answer.append(buf, static_cast<std::size_t>(n));
    }
    // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
    const auto sp = answer.find(' ');
    const auto head_end = answer.find("\r\n\r\n");
    if (sp == std::string::npos || head_end == std::string::npos) return std::nullopt;
    HttpResponse r;
    r.status = std::atoi(answer.c_str() + sp + 1);
    r.body = answer.substr(head_end + 4);
    return r;
}

double metric_sum(const std::string& text, const std::string& name, const std::string& label) {
    double sum = 0;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#' || line.rfind(name, 0) != 0) continue;
        const char next = line.size() > name.size() ? line[name.size()] : '\0';
        if (next != '{' && next != ' ') continue;
        std::string labels;
        if (next == '{') {
            const auto close = line.find('}');
            if (close == std::string::npos) continue;
            labels = line.substr(name.size(), close - name.size() + 1);
        }
        if (!label.empty() && labels.find(label) == std::string::npos) continue;
        const auto value_at = line.rfind(' ');
        sum += std::strtod(line.c_str() + value_at + 1, nullptr);
    }
    return sum;
}

// --- logs ------------------------------------------------------------------------------------

namespace {

// "A..B" right after `at` in `line`.
std::optional<SeqRange> range_at(const std::string& line, std::size_t at) {
    const auto dots = line.find("..", at);
    if (dots == std::string::npos) return std::nullopt;
    try {
        return SeqRange{std::stoull(line.substr(at, dots - at)),
                        std::stoull(line.substr(dots + 2))};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

std::vector<SeqRange> dropped_ranges(const std::string& log, const std::string& sensor) {
    std::vector<SeqRange> out;
    std::istringstream in(log);
    std::string line;
    const std::string marker = " " + sensor + " ";
    while (std::getline(in, line)) {
        if (line.find("warn outbox: dropped segment") == std::string::npos) continue;
        const auto at = line.find(marker);
        if (at == std::string::npos) continue;
        if (const auto r = range_at(line, at + marker.size())) out.push_back(*r);
    }
    return out;
}

std::vector<SeqRange> lost_ranges(const std::string& log, const std::string& sensor) {
    std::vector<SeqRange> out;
    std::istringstream in(log);
    std::string line;
    const std::string marker = "warn replay: sensor " + sensor + ": readings ";
    while (std::getline(in, line)) {
        const auto at = line.find(marker);
        if (at == std::string::npos || line.find(" are lost: ") == std::string::npos) continue;
        if (const auto r = range_at(line, at + marker.size())) out.push_back(*r);
    }
    return out;
}

// --- the database ------------------------------------------------------------------------------

std::uint64_t stored_rows(const TempPostgres& pg) {
    try {
        return std::stoull(pg.value("SELECT count(*) FROM readings"));
    } catch (const std::exception&) {
        return 0;  // no table yet, or the server is down
    }
}

bool wait_rows(const TempPostgres& pg, std::uint64_t rows, std::chrono::milliseconds timeout) {
    return wait_until(
        [&] {
            if (stored_rows(pg) >= rows) return true;
            std::this_thread::sleep_for(100ms);  // don't hammer a loaded machine
            return false;
        },
        timeout);
}

std::string exactly_once_problem(const TempPostgres& pg,
                                 const std::map<std::string, std::uint64_t>& expected) {
    std::map<std::string, SeqRange> ranges;
    for (const auto& [sensor, n] : expected)
        ranges[sensor] = SeqRange{1, n};
    return exactly_once_problem(pg, ranges);
}

std::string exactly_once_problem(const TempPostgres& pg,
                                 const std::map<std::string, SeqRange>& expected) {
    const auto rows = pg.column(
        "SELECT sensor || ': count ' || count(*) || ', distinct ' || count(DISTINCT (sensor, seq)) "
        "|| ', min ' || min(seq) || ', max ' || max(seq) FROM readings GROUP BY sensor "
        "ORDER BY sensor COLLATE \"C\"");
    std::vector<std::string> want;
    for (const auto& [sensor, range] : expected) {
        const auto count = std::to_string(range.size());
        want.push_back(sensor + ": count " + count + ", distinct " + count + ", min " +
                       std::to_string(range.first) + ", max " + std::to_string(range.last));
    }
    if (rows == want) return "";
    std::string problem = "stored:";
    for (const auto& r : rows)
        problem += "\n  " + r;
    problem += "\nexpected:";
    for (const auto& w : want)
        problem += "\n  " + w;
    return problem;
}

}  // namespace rill::test
