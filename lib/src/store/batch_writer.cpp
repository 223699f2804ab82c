// BatchWriter: a SinkWriter over its own PostgresSink, and open_writer (with retries).
#include "rill/store.hpp"

namespace rill::store {

rill::SinkWriterOptions WriterOptions::writer_options() const {
    rill::SinkWriterOptions o;
    o.batch_max = batch_max;
    o.flush_interval = flush_interval;
    o.pending_max = pending_max;
    o.backoff = backoff;
    o.sensor_prefix = sensor_prefix;
    o.registry = registry;
    return o;
}

BatchWriter::BatchWriter(const WriterOptions& options)
    : detail::PostgresSinkHolder{std::make_unique<PostgresSink>(options.conninfo, options.migrate)},
      rill::SinkWriter(*sink, options.writer_options()) {}

BatchWriter::BatchWriter(std::unique_ptr<PostgresSink> s, rill::SinkWriter&& writer)
    : detail::PostgresSinkHolder{std::move(s)}, rill::SinkWriter(std::move(writer)) {}

BatchWriter open_writer(const WriterOptions& options, const std::function<bool()>& keep_trying,
                        const std::function<void(const ReconnectEvent&)>& observer) {
    auto sink = std::make_unique<PostgresSink>(options.conninfo, options.migrate);
    auto writer = rill::open_sink_writer(*sink, options.writer_options(), keep_trying, observer);
    return BatchWriter(std::move(sink), std::move(writer));
}

}  // namespace rill::store
