#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>

#include "rill/log.hpp"
#include "rill/reliable.hpp"

namespace rill {

struct ReliablePublisher::Impl {
    Outbox outbox;
    Publisher publisher;
    std::unique_ptr<ReplayServer> replay;
    std::string replay_endpoint;
    std::string payload;  // publish(): the batch as the outbox encoded it
    bool closed = false;
    // replay_activity(): written by the replay server's thread, read by the owner's.
    mutable std::mutex activity_mutex;
    std::uint64_t requests = 0;
    std::set<std::string, std::less<>> open;  // sensors the outbox holds, at most

    Impl(ReliablePublisherOptions& o)
        : outbox(o.outbox_dir, o.outbox), publisher(o.publish_endpoints, std::move(o.publisher)) {
        zmq::context_t& ctx = o.context ? *o.context : default_context();
        if (!o.replay_endpoints.empty()) {
            replay = std::make_unique<ReplayServer>(
                ctx, o.replay_endpoints,
                ReplayServer::PayloadCallback(
                    [this](const ReplayRequest& req) { return answer(req); }),
                o.replay_socket);
            if (o.announce_replay.empty() && replay->bound().empty()) {
                throw std::invalid_argument("the replay service at '" + o.replay_endpoints +
                                            "' binds no address: give announce_replay");
            }
            replay_endpoint =
                o.announce_replay.empty() ? replay->bound().front() : o.announce_replay;
        }
        publisher.set_replay_endpoint(replay_endpoint);
        for (const auto& [sensor, newest] : outbox.newest_all()) {
            publisher.announce(sensor, newest);
        }
    }

    // Runs on the replay server's thread; the outbox is thread-safe. Answers with the stored
    // bytes: the records' bodies are readings payloads, spliced without decoding them.
    ReplayPayloadReply answer(const ReplayRequest& req) {
        auto reply =
            ReplayPayloadReply{outbox.read_payload(req.sensor, req.from_seq, req.max_readings)};
        note_request(req);
        return reply;
    }

    // Counts an answered request; its sensor stays open while the window asked for ends below
    // the newest seq (only sensors the outbox holds, so the set stays bounded).
    void note_request(const ReplayRequest& req) {
        const auto newest = outbox.newest(req.sensor);
        const bool short_of_newest =
            newest > 0 && req.max_readings > 0 &&
            req.from_seq <= newest - std::min<std::uint64_t>(newest, req.max_readings);
        const std::lock_guard lock(activity_mutex);
        requests += 1;
        if (short_of_newest) {
            open.insert(req.sensor);
        } else if (auto it = open.find(req.sensor); it != open.end()) {
            open.erase(it);
        }
    }
};

ReliablePublisher::ReliablePublisher(ReliablePublisherOptions options)
    : impl_(std::make_unique<Impl>(options)) {}

ReliablePublisher::~ReliablePublisher() {
    try {
        close();
    } catch (const std::exception& e) {
        log_error("publisher", std::string("closing: ") + e.what());
    }
}

SeqRange ReliablePublisher::publish(std::span<Reading> batch) {
    // Validated and encoded once, by the outbox: the record's body is the frame's payload.
    impl_->payload.clear();
    const auto seqs = impl_->outbox.append(batch, impl_->payload);
    impl_->publisher.publish_payload(impl_->payload);
    return seqs;
}

SteadyTime ReliablePublisher::service() {
    return impl_->publisher.service();
}

void ReliablePublisher::poll_once(std::chrono::milliseconds timeout) {
    impl_->publisher.poll_once(timeout);
}

void ReliablePublisher::flush() {
    impl_->publisher.flush();
}

void ReliablePublisher::close() {
    if (impl_->closed) return;
    impl_->closed = true;
    impl_->publisher.flush();
    if (impl_->replay) impl_->replay->stop();
    impl_->outbox.close();
}

Outbox& ReliablePublisher::outbox() noexcept {
    return impl_->outbox;
}
Publisher& ReliablePublisher::publisher() noexcept {
    return impl_->publisher;
}
const std::string& ReliablePublisher::replay_endpoint() const noexcept {
    return impl_->replay_endpoint;
}

ReplayActivity ReliablePublisher::replay_activity() const {
    const std::lock_guard lock(impl_->activity_mutex);
    return ReplayActivity{impl_->requests, impl_->open.size()};
}

}  // namespace rill
