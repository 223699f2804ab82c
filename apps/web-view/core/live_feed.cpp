// The one file that knows how web-view receives the stream: a rill::Subscriber on a thread.
#include "live_feed.hpp"

#include <atomic>
#include <map>
#include <stdexcept>
#include <thread>
#include <variant>

#include "rill/log.hpp"
#include "rill/stream.hpp"

namespace rill::web {

namespace {

constexpr const char* component = "live-feed";
constexpr std::chrono::milliseconds receive_timeout{100};

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts)
        out += (out.empty() ? "" : ",") + p;
    return out;
}

SubscriberOptions subscriber_options(const LiveFeedOptions& o) {
    SubscriberOptions s;
    s.socket.reconnect_interval = std::chrono::milliseconds(200);
    s.socket.reconnect_interval_max = std::chrono::milliseconds(5000);
    s.prefixes = o.prefixes;
    s.silent_after_missed = o.silent_after_missed;
    s.metrics = o.metrics;
    s.socket.curve_client = o.curve;
    return s;
}

}  // namespace

struct LiveFeed::Impl {
    Subscriber subscriber;
    OnReading on_reading;
    OnPublisher on_publisher;
    std::map<std::string, std::vector<std::string>> sensors_of;  // publisher -> its sensors
    std::atomic<bool> stopping{false};
    std::thread thread;

    Impl(const LiveFeedOptions& o, OnReading r, OnPublisher p)
        : subscriber(join(o.endpoints), subscriber_options(o)),
          on_reading(std::move(r)),
          on_publisher(std::move(p)) {}

    void publisher_status(const std::string& publisher, bool silent) {
        if (!on_publisher) return;
        PublisherStatus s;
        s.publisher = publisher;
        s.silent = silent;
        if (auto it = sensors_of.find(publisher); it != sensors_of.end()) s.sensors = it->second;
        on_publisher(s);
    }

    void handle(StreamEvent& event) {
        if (auto* batch = std::get_if<ReadingBatch>(&event)) {
            for (const auto& r : batch->fresh())
                on_reading(r);
        } else if (auto* hb = std::get_if<HeartbeatSeen>(&event)) {
            auto& sensors = sensors_of[hb->heartbeat.publisher];
            sensors.clear();
            for (const auto& [sensor, newest] : hb->heartbeat.newest)
                sensors.push_back(sensor);
        } else if (auto* silent = std::get_if<PublisherSilent>(&event)) {
            log_warn(component, "publisher " + silent->publisher + " is silent for " +
                                    std::to_string(silent->silent_for.count()) + " ms");
            publisher_status(silent->publisher, true);
        } else if (auto* back = std::get_if<PublisherBack>(&event)) {
            log_info(component, "publisher " + back->publisher + " is back");
            publisher_status(back->publisher, false);
        } else if (auto* gap = std::get_if<Gap>(&event)) {
            log_debug(component, "missed " + std::to_string(gap->count()) + " live readings of " +
                                     gap->sensor);
        }
    }

    void run() {
        while (!stopping.load()) {
            try {
                auto event = subscriber.receive(receive_timeout);
                if (event) handle(*event);
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) return;
                log_error(component, std::string("receiving the stream failed: ") + e.what());
                return;
            } catch (const std::exception& e) {
                // A callback failed (e.g. out of memory); keep receiving.
                log_error(component, std::string("handling a live event failed: ") + e.what());
            }
        }
    }
};

LiveFeed::LiveFeed(LiveFeedOptions options, OnReading on_reading, OnPublisher on_publisher)
    : impl_(std::make_unique<Impl>(options, std::move(on_reading), std::move(on_publisher))) {
    Impl* impl = impl_.get();
    impl->thread = std::thread([impl] { impl->run(); });
}

LiveFeed::~LiveFeed() {
    stop();
}

void LiveFeed::stop() {
    impl_->stopping = true;
    if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace rill::web
