// The one file that knows how web-view receives the stream: a rill::Subscriber on a thread.
#include "live_feed.hpp"

#include <atomic>
#include <stdexcept>
#include <thread>
#include <variant>

#include "lru.hpp"
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
    s.max_sensors = o.max_sensors;
    s.max_publishers = o.max_publishers;
    return s;
}

// The last reading handed on for a sensor.
struct Shown {
    std::uint64_t seq = 0;
    Timestamp ts{};
    bool known = false;
};

}  // namespace

bool live_reading_supersedes(std::uint64_t seq, Timestamp ts, std::uint64_t shown_seq,
                             Timestamp shown_ts, Timestamp now) noexcept {
    const bool shown_from_future = shown_ts > now + max_future_skew;
    return seq > shown_seq || ts > shown_ts || shown_from_future;
}

struct LiveFeed::Impl {
    Subscriber subscriber;
    OnReading on_reading;
    OnPublisher on_publisher;
    LruMap<std::vector<std::string>> sensors_of;  // publisher -> its sensors
    LruMap<Shown> shown;                          // sensor -> the last reading handed on
    Counter& sensors_evicted;
    Counter& publishers_evicted;
    std::atomic<bool> stopping{false};
    std::thread thread;

    Impl(const LiveFeedOptions& o, OnReading r, OnPublisher p)
        : subscriber(join(o.endpoints), subscriber_options(o)),
          on_reading(std::move(r)),
          on_publisher(std::move(p)),
          sensors_of(o.max_publishers),
          shown(o.max_sensors),
          sensors_evicted(evicted_counter(o, "sensors")),
          publishers_evicted(evicted_counter(o, "publishers")) {}

    static Counter& evicted_counter(const LiveFeedOptions& o, const std::string& table) {
        auto& reg = o.metrics != nullptr ? *o.metrics : default_registry();
        return reg.counter("rill_web_live_evicted_total",
                           "Entries web-view's live tables forgot to stay within their bound",
                           {{"table", table}});
    }

    // Hands on the readings of `batch` that supersede what was shown for their sensor.
    void on_batch(const ReadingBatch& batch) {
        if (batch.readings.empty()) return;
        const auto before = shown.evicted();
        auto& last = shown[batch.readings.front().sensor];
        sensors_evicted.inc(shown.evicted() - before);
        const auto at = rill::now();
        bool followed_stale = false;
        for (std::size_t i = 0; i < batch.readings.size(); ++i) {
            const auto& r = batch.readings[i];
            if (last.known && !live_reading_supersedes(r.seq, r.ts, last.seq, last.ts, at)) {
                continue;
            }
            last = Shown{r.seq, r.ts, true};
            followed_stale = followed_stale || i < batch.stale;
            on_reading(r);
        }
        // A stale reading newer by time: the sensor's seqs went back (a reset, or a forged
        // huge seq before). Follow them, so that later readings are fresh again.
        if (followed_stale) {
            const auto& back = batch.readings.back();
            subscriber.expect(back.sensor, back.seq + 1);
        }
    }

    void publisher_status(const std::string& publisher, bool silent) {
        if (!on_publisher) return;
        PublisherStatus s;
        s.publisher = publisher;
        s.silent = silent;
        if (const auto* sensors = sensors_of.peek(publisher)) s.sensors = *sensors;
        on_publisher(s);
    }

    void handle(StreamEvent& event) {
        if (auto* batch = std::get_if<ReadingBatch>(&event)) {
            on_batch(*batch);
        } else if (auto* hb = std::get_if<HeartbeatSeen>(&event)) {
            const auto before = sensors_of.evicted();
            auto& sensors = sensors_of[hb->heartbeat.publisher];
            publishers_evicted.inc(sensors_of.evicted() - before);
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
