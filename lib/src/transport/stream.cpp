// rill/stream.hpp's stream_metrics(): the counters of both sides, read from a registry.
#include "rill/stream.hpp"
#include "transport/stream_detail.hpp"

namespace rill {

using stream_detail::decode_errc_count;

StreamMetrics stream_metrics(std::string_view kind, const MetricsRegistry* registry) {
    const MetricsRegistry& reg = registry ? *registry : default_registry();
    const Labels l{{"socket", std::string(kind)}};
    auto get = [&](std::string_view name) {
        return static_cast<std::uint64_t>(reg.value(name, l).value_or(0));
    };
    StreamMetrics m;
    m.frames_sent = get("rill_stream_frames_sent_total");
    m.readings_sent = get("rill_stream_readings_sent_total");
    m.bytes_sent = get("rill_stream_bytes_sent_total");
    m.heartbeats_sent = get("rill_stream_heartbeats_sent_total");
    m.frames_dropped = get("rill_stream_frames_dropped_total");
    m.frames_received = get("rill_stream_frames_received_total");
    m.readings_received = get("rill_stream_readings_received_total");
    m.bytes_received = get("rill_stream_bytes_received_total");
    m.heartbeats_received = get("rill_stream_heartbeats_received_total");
    m.gaps = get("rill_stream_gaps_total");
    m.missing_readings = get("rill_stream_missing_readings_total");
    m.stale_readings = get("rill_stream_stale_readings_total");
    m.publishers_silent = get("rill_stream_publishers_silent_total");
    for (std::size_t i = 0; i < decode_errc_count; ++i) {
        const Labels reason{{"reason", std::string(to_string(static_cast<DecodeErrc>(i)))},
                            {"socket", std::string(kind)}};
        m.malformed_frames += static_cast<std::uint64_t>(
            reg.value("rill_stream_malformed_frames_total", reason).value_or(0));
    }
    return m;
}

}  // namespace rill
