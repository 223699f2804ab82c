#include "web_view_fixture.hpp"

#include <csignal>
#include <stdexcept>

#include "rill/store.hpp"

namespace rill::test {

void create_readings_table(const TempPostgres& pg) {
    auto conn = rill::store::Connection::open(pg.conninfo());
    if (rill::store::migrate(conn).empty()) {
        throw std::runtime_error("create_readings_table: the schema already existed");
    }
}

std::string sql_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

void insert_row(const TempPostgres& pg, const std::string& sensor, long long seq, Timestamp ts,
                double temperature, double humidity) {
    pg.execute("INSERT INTO readings (sensor, seq, ts, temperature, humidity) VALUES (" +
               sql_quote(sensor) + ", " + std::to_string(seq) + ", " + sql_quote(to_iso8601(ts)) +
               ", " + std::to_string(temperature) + ", " + std::to_string(humidity) + ")");
}

WebView::WebView(const std::string& conninfo, std::vector<std::string> args)
    : dir_("rill-web-view") {
    log_path_ = (dir_.path() / "web-view.log").string();
    std::vector<std::string> argv = {bin("web-view"), "--db", conninfo, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.stderr_path = log_path_;
    process_ = std::make_unique<Process>(argv, options);
    const std::string marker = "listening on http://127.0.0.1:";
    const bool up = wait_until(
        [&] {
            return read_file(log_path_).find(marker) != std::string::npos || !process_->running();
        },
        std::chrono::seconds(20));
    const std::string text = read_file(log_path_);
    const auto at = text.find(marker);
    if (!up || at == std::string::npos) {
        throw std::runtime_error("web-view did not start: " + text);
    }
    port_ = std::stoi(text.substr(at + marker.size()));
}

WebView::~WebView() {
    if (process_ && process_->running()) {
        process_->signal(SIGTERM);
        (void)process_->wait_for(std::chrono::seconds(10));
    }
}

std::string WebView::url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::string WebView::log() const {
    return read_file(log_path_);
}

std::unique_ptr<httplib::Client> WebView::client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_connection_timeout(std::chrono::seconds(5));
    c->set_read_timeout(std::chrono::seconds(30));
    return c;
}

httplib::Result get(const WebView& w, const std::string& path, const httplib::Headers& headers) {
    auto c = w.client();
    auto r = c->Get(path, headers);
    if (!r)
        throw std::runtime_error("GET " + path +
                                 " got no response: " + httplib::to_string(r.error()));
    return r;
}

SseClient::SseClient(const WebView& w, std::optional<std::uint64_t> last_id, std::string path)
    : client_(w.client()) {
    client_->set_read_timeout(std::chrono::seconds(20));
    httplib::Headers headers;
    if (last_id) headers.emplace("Last-Event-ID", std::to_string(*last_id));
    thread_ = std::thread([this, headers, path] {
        auto r = client_->Get(path, headers, [this](const char* data, std::size_t n) {
            std::lock_guard lock(mutex_);
            buffer_.append(data, n);
            for (auto end = buffer_.find("\n\n"); end != std::string::npos;
                 end = buffer_.find("\n\n")) {
                parse(buffer_.substr(0, end));
                buffer_.erase(0, end + 2);
            }
            return !stop_;
        });
        ended_ = true;
    });
}

SseClient::~SseClient() {
    stop_ = true;
    client_->stop();
    thread_.join();
}

std::vector<SseEvent> SseClient::events() {
    std::lock_guard lock(mutex_);
    return events_;
}

bool SseClient::wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    return wait_until([&] { return events().size() >= n; }, timeout);
}

void SseClient::parse(const std::string& frame) {
    SseEvent e;
    bool has_data = false;
    std::size_t at = 0;
    while (at < frame.size()) {
        auto nl = frame.find('\n', at);
        if (nl == std::string::npos) nl = frame.size();
        const std::string line = frame.substr(at, nl - at);
        at = nl + 1;
        if (line.rfind("id: ", 0) == 0) e.id = std::stoull(line.substr(4));
        if (line.rfind("event: ", 0) == 0) e.type = line.substr(7);
        if (line.rfind("data: ", 0) == 0) {
            e.data = nlohmann::json::parse(line.substr(6));
            has_data = true;
        }
    }
    if (has_data) events_.push_back(std::move(e));
}

}  // namespace rill::test
