#include "metrics.hpp"

#include <cstdio>

namespace rill::web {

namespace {
std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}
}  // namespace

void Metrics::observe_request(const std::string& route, int status,
                              std::chrono::nanoseconds latency) {
    const double s = std::chrono::duration<double>(latency).count();
    std::lock_guard lock(mutex_);
    ++requests_[{route, status}];
    auto& h = latency_[route];
    for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
        if (s <= latency_buckets[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += s;
}

std::string Metrics::render() const {
    std::string out;
    out += "# HELP webview_http_requests_total HTTP requests answered, by route and status.\n";
    out += "# TYPE webview_http_requests_total counter\n";
    std::lock_guard lock(mutex_);
    for (const auto& [key, n] : requests_) {
        out += "webview_http_requests_total{route=\"" + key.first + "\",status=\"" +
               std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
    }
    out += "# HELP webview_http_request_duration_seconds Time to answer a request, by route.\n";
    out += "# TYPE webview_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
        const std::string r = "route=\"" + route + "\"";
        for (std::size_t i = 0; i < latency_buckets.size(); ++i) {
            out += "webview_http_request_duration_seconds_bucket{" + r + ",le=\"" +
                   num(latency_buckets[i]) + "\"} " + std::to_string(h.buckets[i]) + "\n";
        }
        out += "webview_http_request_duration_seconds_bucket{" + r + ",le=\"+Inf\"} " +
               std::to_string(h.count) + "\n";
        out += "webview_http_request_duration_seconds_sum{" + r + "} " + num(h.sum) + "\n";
        out += "webview_http_request_duration_seconds_count{" + r + "} " + std::to_string(h.count) +
               "\n";
    }
    out += "# HELP webview_sse_clients Browsers connected to /events.\n";
    out += "# TYPE webview_sse_clients gauge\n";
    out += "webview_sse_clients " + std::to_string(sse_clients_.load()) + "\n";
    out += "# HELP webview_feed_readings_total Readings received from the live stream.\n";
    out += "# TYPE webview_feed_readings_total counter\n";
    out += "webview_feed_readings_total " + std::to_string(feed_readings_.load()) + "\n";
    out +=
        "# HELP webview_feed_decode_errors_total Live-stream messages rejected by the decoder.\n";
    out += "# TYPE webview_feed_decode_errors_total counter\n";
    out += "webview_feed_decode_errors_total " + std::to_string(feed_decode_errors_.load()) + "\n";
    out += "# HELP webview_db_errors_total Database queries that failed.\n";
    out += "# TYPE webview_db_errors_total counter\n";
    out += "webview_db_errors_total " + std::to_string(db_errors_.load()) + "\n";
    return out;
}

}  // namespace rill::web
