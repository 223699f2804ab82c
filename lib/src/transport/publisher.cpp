// The send side of rill/stream.hpp: Publisher (batches, heartbeats) and Pusher, over one
// BatchSender that batches readings encoded once.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <functional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "codec/frame.hpp"
#include "rill/stream.hpp"
#include "transport/stream_detail.hpp"

namespace rill {

namespace {

using namespace stream_detail;
using std::chrono::milliseconds;

std::string default_identity() {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
    std::string id = host.data();
    if (id.empty()) id = "rill";
    return id + "/" + std::to_string(::getpid());
}

void validate(const BatchOptions& b) {
    if (b.max_readings < 1 || b.max_readings > limits::max_batch_readings) {
        throw std::invalid_argument("batch max_readings must be 1.." +
                                    std::to_string(limits::max_batch_readings));
    }
    if (b.max_delay.count() < 0) throw std::invalid_argument("batch max_delay is negative");
}

// --- metrics --------------------------------------------------------------------------------

struct SendMetrics {
    Counter& frames;
    Counter& readings;
    Counter& bytes;
    Counter& heartbeats;
    Counter& dropped;
};

SendMetrics send_metrics(MetricsRegistry& reg, const std::string& kind) {
    const Labels l{{"socket", kind}};
    return {
        reg.counter("rill_stream_frames_sent_total", "Readings frames sent", l),
        reg.counter("rill_stream_readings_sent_total", "Readings sent", l),
        reg.counter("rill_stream_bytes_sent_total", "Payload and topic bytes sent", l),
        reg.counter("rill_stream_heartbeats_sent_total", "Heartbeats sent", l),
        reg.counter("rill_stream_frames_dropped_total", "Frames the socket refused to queue", l)};
}

// --- sending --------------------------------------------------------------------------------

// Hashes std::string keys and std::string_view lookups alike.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

// Batches encoded readings per sensor and sends frames on a PUB or PUSH socket. Every reading
// is validated and encoded once (add) or arrives encoded (add_payload); a frame is its
// readings' bytes behind an envelope. PUB sends never wait (zmq drops for slow subscribers);
// PUSH sends wait up to `send_timeout` and keep frames that were not taken in `queue_`, in
// order.
class BatchSender {
  public:
    BatchSender(zmq::socket_t& socket, const BatchOptions& batch, SendMetrics metrics,
                bool may_queue, milliseconds send_timeout)
        : socket_(&socket),
          batch_(batch),
          metrics_(metrics),
          may_queue_(may_queue),
          send_timeout_(send_timeout) {}

    // Validates and encodes every reading (once each), then queues them in order and sends the
    // batches that are full. Throws std::invalid_argument (encode_batch) before queueing
    // anything when one is invalid. Returns false when a frame stayed queued.
    bool add(std::span<const Reading> readings, Clock::time_point now) {
        staged_.clear();
        staged_at_.clear();
        for (const auto& r : readings) {
            staged_at_.push_back(staged_.size());
            encode_batch(std::span<const Reading>(&r, 1), staged_);
        }
        staged_at_.push_back(staged_.size());
        bool ok = true;
        for (std::size_t i = 0; i < readings.size(); ++i) {
            const std::string_view payload =
                std::string_view(staged_).substr(staged_at_[i], staged_at_[i + 1] - staged_at_[i]);
            const Reading& r = readings[i];
            if (batch_.max_readings == 1) {
                ok = send_frame(r.sensor, payload, 1, r.seq) && ok;
            } else {
                ok = add_encoded(r.sensor, detail::split_batch(payload).readings, r.seq, now) && ok;
            }
        }
        return ok;
    }

    // Queues the readings of `payload` (what encode_batch wrote) like add(), without decoding
    // them: their bytes are sent as they are. Throws std::invalid_argument when it is not a
    // readings payload.
    bool add_payload(std::string_view payload, Clock::time_point now) {
        detail::BatchParts parts;
        bounds_.clear();
        try {
            parts = detail::split_batch(payload);
            // Every boundary first, so that a bad payload queues nothing.
            std::size_t at = 0;
            for (std::size_t i = 0; i < parts.count; ++i) {
                const auto rest = parts.readings.substr(at);
                bounds_.push_back({at, detail::reading_seq(rest)});
                at += detail::object_bytes(rest);
            }
            if (at != parts.readings.size() || parts.count == 0) {
                throw DecodeError(DecodeErrc::trailing_bytes, "bytes after the readings");
            }
        } catch (const DecodeError& e) {
            throw std::invalid_argument(std::string("cannot publish a payload: ") + e.what());
        }
        // The payload is a frame as it is when batching would send exactly its readings as one:
        // nothing of its sensor is pending, and they fill a batch (by count, or by size only
        // with the last one) or go out at the end of this call anyway (no delay).
        const auto it = pending_.find(parts.sensor);
        const bool idle = it == pending_.end() || it->second.count == 0;
        if (idle && parts.count <= batch_.max_readings && bounds_.back().first < batch_.max_bytes &&
            (parts.count == batch_.max_readings || batch_.max_delay.count() == 0 ||
             parts.readings.size() >= batch_.max_bytes)) {
            return send_frame(parts.sensor, payload, parts.count, bounds_.back().second);
        }
        bounds_.push_back({parts.readings.size(), 0});
        bool ok = true;
        for (std::size_t i = 0; i + 1 < bounds_.size(); ++i) {
            const auto [at, seq] = bounds_[i];
            const auto reading = parts.readings.substr(at, bounds_[i + 1].first - at);
            ok = add_encoded(parts.sensor, reading, seq, now) && ok;
        }
        return ok;
    }

    // Sends the batches whose delay has passed (all when `all`), then retries queued frames.
    bool send_due(Clock::time_point now, bool all) {
        bool ok = drain();
        for (auto& [sensor, p] : pending_) {
            if (p.count == 0) continue;
            if (all || now - p.first_at >= batch_.max_delay) ok = send_pending(sensor, p) && ok;
        }
        return ok;
    }

    [[nodiscard]] Clock::time_point next_deadline() const {
        auto next = Clock::time_point::max();
        for (const auto& [sensor, p] : pending_) {
            if (p.count > 0) next = std::min(next, p.first_at + batch_.max_delay);
        }
        return next;
    }

    [[nodiscard]] bool batches_within_one_call() const {
        return batch_.max_delay.count() == 0 && batch_.max_readings > 1;
    }

    // Sends a control frame (heartbeat) immediately, never queued.
    void send_control(std::string_view topic, std::string_view payload) {
        if (send_raw(topic, payload, milliseconds(0))) {
            metrics_.heartbeats.inc();
            metrics_.bytes.inc(topic.size() + payload.size());
        } else {
            metrics_.dropped.inc();
        }
    }

    void announce(std::string_view sensor, std::uint64_t seq) {
        auto it = newest_.find(sensor);
        if (it == newest_.end()) it = newest_.emplace(std::string(sensor), 0).first;
        it->second = std::max(it->second, seq);
    }

    [[nodiscard]] std::optional<std::uint64_t> newest(std::string_view sensor) const {
        const auto it = newest_.find(sensor);
        if (it == newest_.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] const StringMap<std::uint64_t>& newest_all() const { return newest_; }
    [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }

  private:
    // A sensor's queued readings, encoded, back to back.
    struct Pending {
        std::string readings;
        std::size_t count = 0;
        std::uint64_t last_seq = 0;
        Clock::time_point first_at{};
    };

    // Queues one encoded reading of `sensor`; sends its batch when full. A seq not above the
    // previous one queued first sends the batch (batches hold strictly increasing seqs).
    bool add_encoded(std::string_view sensor, std::string_view reading, std::uint64_t seq,
                     Clock::time_point now) {
        auto it = pending_.find(sensor);
        if (it == pending_.end()) it = pending_.try_emplace(std::string(sensor)).first;
        Pending& p = it->second;
        bool ok = true;
        if (p.count > 0 && p.last_seq >= seq) ok = send_pending(it->first, p);
        if (p.count == 0) p.first_at = now;
        p.readings.append(reading);
        p.count += 1;
        p.last_seq = seq;
        if (p.count >= batch_.max_readings || p.readings.size() >= batch_.max_bytes) {
            ok = send_pending(it->first, p) && ok;
        }
        return ok;
    }

    bool send_pending(const std::string& sensor, Pending& p) {
        payload_.clear();
        detail::append_batch_header(payload_, sensor, p.count);
        payload_ += p.readings;
        const bool ok = send_frame(sensor, payload_, p.count, p.last_seq);
        p.readings.clear();
        p.count = 0;
        return ok;
    }

    bool send_frame(std::string_view sensor, std::string_view payload, std::size_t n,
                    std::uint64_t last_seq) {
        announce(sensor, last_seq);
        if (!queue_.empty()) {
            queue_.push_back({std::string(sensor), std::string(payload), n});
            return drain();
        }
        if (send_raw(sensor, payload, send_timeout_)) {
            count_sent(sensor.size() + payload.size(), n);
            return true;
        }
        if (!may_queue_) {
            metrics_.dropped.inc();
            return true;
        }
        queue_.push_back({std::string(sensor), std::string(payload), n});
        return false;
    }

    bool drain() {
        while (!queue_.empty()) {
            const auto& f = queue_.front();
            if (!send_raw(f.topic, f.payload, send_timeout_)) return false;
            count_sent(f.topic.size() + f.payload.size(), f.readings);
            queue_.pop_front();
        }
        return true;
    }

    void count_sent(std::size_t bytes, std::size_t readings) {
        metrics_.frames.inc();
        metrics_.readings.inc(readings);
        metrics_.bytes.inc(bytes);
    }

    // Sends [topic, payload]; waits up to `timeout` for room. False when there was none.
    bool send_raw(std::string_view topic, std::string_view payload, milliseconds timeout) {
        std::optional<Clock::time_point> deadline;  // read the clock only when there is no room
        for (;;) {
            if (socket_->send(zmq::const_buffer(topic.data(), topic.size()),
                              zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                // The parts after an accepted first part are always accepted.
                (void)socket_->send(zmq::const_buffer(payload.data(), payload.size()),
                                    zmq::send_flags::none);
                return true;
            }
            const auto t = Clock::now();
            if (!deadline) deadline = t + timeout;
            const auto left = std::chrono::duration_cast<milliseconds>(*deadline - t);
            if (left.count() <= 0) return false;
            std::array<zmq::pollitem_t, 1> items{{{socket_->handle(), 0, ZMQ_POLLOUT, 0}}};
            try {
                (void)zmq::poll(items.data(), items.size(), left);
            } catch (const zmq::error_t& e) {
                if (e.num() != EINTR) throw;
                return false;  // a signal: give the owner its thread back; the frame stays queued
            }
        }
    }

    struct Frame {
        std::string topic;
        std::string payload;
        std::size_t readings;
    };

    zmq::socket_t* socket_;
    BatchOptions batch_;
    SendMetrics metrics_;
    bool may_queue_;
    milliseconds send_timeout_;
    StringMap<Pending> pending_;
    StringMap<std::uint64_t> newest_;
    std::deque<Frame> queue_;
    std::string payload_;
    // add(): the readings of one call, each encoded as a payload of its own, and where each
    // starts (plus the end).
    std::string staged_;
    std::vector<std::size_t> staged_at_;
    // add_payload(): where each reading starts in the payload's readings, and its seq.
    std::vector<std::pair<std::size_t, std::uint64_t>> bounds_;
};

}  // namespace

// --- Publisher ------------------------------------------------------------------------------

struct Publisher::Impl {
    Impl(std::string_view endpoints, PublisherOptions o)
        : options(std::move(o)),
          socket(context_of(options.context), zmq::socket_type::xpub, options.socket),
          sender(socket.raw(), options.batch, send_metrics(registry_of(options.metrics), "pub"),
                 false, milliseconds(0)) {
        validate(options.batch);
        if (options.identity.empty()) options.identity = default_identity();
        if (options.identity.size() > limits::max_publisher_id_bytes) {
            throw std::invalid_argument("publisher identity is longer than " +
                                        std::to_string(limits::max_publisher_id_bytes) + " bytes");
        }
        if (options.heartbeat_interval.count() < 0) {
            throw std::invalid_argument("heartbeat interval is negative");
        }
        // Every subscribe and unsubscribe message, repeats included, and an unsubscribe for each
        // topic of a subscriber that disconnects: each join and leave is seen (rill/stream.hpp).
        socket.raw().set(zmq::sockopt::xpub_verboser, 1);
        socket.attach(endpoints, Attach::bind);
        next_heartbeat =
            options.heartbeat_interval.count() > 0 ? Clock::now() : Clock::time_point::max();
        next_duty = next_heartbeat;
    }

    // Takes in the (un)subscribe messages the XPUB socket received (never blocks).
    void read_subscriptions() {
        zmq::message_t msg;
        while (socket.raw().recv(msg, zmq::recv_flags::dontwait)) {
            if (msg.size() == 0) continue;
            const auto first = *static_cast<const unsigned char*>(msg.data());
            if (first == 1) {
                audience.subscriptions += 1;
                audience.active_subscriptions += 1;
                audience.heartbeats_since_subscription = 0;
            } else if (first == 0 && audience.active_subscriptions > 0) {
                audience.active_subscriptions -= 1;
            }
        }
    }

    void send_heartbeat(Clock::time_point now) {
        // Joins first: a subscription read here is in effect for the heartbeat sent below.
        read_subscriptions();
        Heartbeat hb;
        hb.publisher = options.identity;
        hb.sent_at = rill::now();
        hb.interval = options.heartbeat_interval.count() > 0 ? options.heartbeat_interval
                                                             : milliseconds(1000);
        hb.replay_endpoint = options.replay_endpoint;
        const auto& all = sender.newest_all();
        std::vector<std::pair<std::string, std::uint64_t>> newest(all.begin(), all.end());
        std::sort(newest.begin(), newest.end());
        // A heartbeat lists at most max_heartbeat_sensors sensors; more take several.
        std::size_t i = 0;
        do {
            const auto n = std::min(limits::max_heartbeat_sensors, newest.size() - i);
            hb.newest.assign(newest.begin() + static_cast<std::ptrdiff_t>(i),
                             newest.begin() + static_cast<std::ptrdiff_t>(i + n));
            sender.send_control(heartbeat_topic, encode_heartbeat(hb));
            i += n;
        } while (i < newest.size());
        audience.heartbeats += 1;
        audience.heartbeats_since_subscription += 1;
        if (options.heartbeat_interval.count() > 0) {
            next_heartbeat = now + options.heartbeat_interval;
        }
    }

    Clock::time_point service(Clock::time_point now) {
        (void)sender.send_due(now, false);
        if (now >= next_heartbeat) {
            send_heartbeat(now);
        } else {
            read_subscriptions();
        }
        next_duty = std::min(next_heartbeat, sender.next_deadline());
        return next_duty;
    }

    // Sends what publish() made due.
    void after_queueing(Clock::time_point now) {
        if (sender.batches_within_one_call()) (void)sender.send_due(now, true);
        if (now >= next_duty) (void)service(now);
    }

    PublisherOptions options;
    Socket socket;
    BatchSender sender;
    Clock::time_point next_heartbeat;
    Clock::time_point next_duty;
    StreamAudience audience;
};

Publisher::Publisher(std::string_view endpoints, PublisherOptions options)
    : impl_(std::make_unique<Impl>(endpoints, std::move(options))) {}

Publisher::~Publisher() = default;
Publisher::Publisher(Publisher&&) noexcept = default;
Publisher& Publisher::operator=(Publisher&&) noexcept = default;

void Publisher::publish(const Reading& reading) {
    publish(std::span<const Reading>(&reading, 1));
}

void Publisher::publish(std::span<const Reading> readings) {
    const auto now = Clock::now();
    (void)impl_->sender.add(readings, now);  // validates and encodes each reading once
    impl_->after_queueing(now);
}

void Publisher::publish_payload(std::string_view payload) {
    const auto now = Clock::now();
    (void)impl_->sender.add_payload(payload, now);
    impl_->after_queueing(now);
}

void Publisher::flush() {
    (void)impl_->sender.send_due(Clock::now(), true);
}

void Publisher::heartbeat() {
    const auto now = Clock::now();
    impl_->send_heartbeat(now);
    impl_->next_duty = std::min(impl_->next_heartbeat, impl_->sender.next_deadline());
}

SteadyTime Publisher::service() {
    return impl_->service(Clock::now());
}

void Publisher::poll_once(std::chrono::milliseconds timeout) {
    const auto until_time = std::min(Clock::now() + timeout, next_deadline());
    std::this_thread::sleep_until(until_time);
    (void)service();
}

SteadyTime Publisher::next_deadline() const {
    return std::min(impl_->next_heartbeat, impl_->sender.next_deadline());
}

void Publisher::set_replay_endpoint(std::string endpoint) {
    if (endpoint.size() > limits::max_endpoint_bytes) {
        throw std::invalid_argument("replay endpoint is longer than " +
                                    std::to_string(limits::max_endpoint_bytes) + " bytes");
    }
    impl_->options.replay_endpoint = std::move(endpoint);
}

const std::string& Publisher::identity() const noexcept {
    return impl_->options.identity;
}

const std::vector<std::string>& Publisher::bound() const noexcept {
    return impl_->socket.bound();
}

std::optional<std::uint64_t> Publisher::newest(std::string_view sensor) const {
    return impl_->sender.newest(sensor);
}

StreamAudience Publisher::audience() const noexcept {
    return impl_->audience;
}

void Publisher::announce(std::string_view sensor, std::uint64_t newest) {
    if (auto problem = sensor_id_problem(sensor)) throw std::invalid_argument(*problem);
    impl_->sender.announce(sensor, newest);
}

// --- Pusher ---------------------------------------------------------------------------------

struct Pusher::Impl {
    Impl(std::string_view endpoints, PusherOptions o)
        : options(std::move(o)),
          socket(context_of(options.context), zmq::socket_type::push, options.socket),
          sender(socket.raw(), options.batch, send_metrics(registry_of(options.metrics), "push"),
                 true, options.send_timeout) {
        validate(options.batch);
        socket.attach(endpoints, Attach::bind);
    }

    PusherOptions options;
    Socket socket;
    BatchSender sender;
};

Pusher::Pusher(std::string_view endpoints, PusherOptions options)
    : impl_(std::make_unique<Impl>(endpoints, std::move(options))) {}
Pusher::~Pusher() = default;
Pusher::Pusher(Pusher&&) noexcept = default;
Pusher& Pusher::operator=(Pusher&&) noexcept = default;

bool Pusher::push(const Reading& reading) {
    // An unbatched reading with nothing queued before it is sent at once: no clock needed.
    if (impl_->options.batch.max_readings == 1 && impl_->sender.queued() == 0) {
        return impl_->sender.add(std::span<const Reading>(&reading, 1), Clock::time_point{});
    }
    return push(std::span<const Reading>(&reading, 1));
}

bool Pusher::push(std::span<const Reading> readings) {
    const auto now = Clock::now();
    const bool ok = impl_->sender.add(readings, now);  // validates and encodes each reading once
    if (impl_->sender.batches_within_one_call()) return impl_->sender.send_due(now, true);
    return impl_->sender.send_due(now, false) && ok;
}

bool Pusher::flush() {
    return impl_->sender.send_due(Clock::now(), true);
}

SteadyTime Pusher::service() {
    (void)impl_->sender.send_due(Clock::now(), false);
    return impl_->sender.next_deadline();
}

void Pusher::poll_once(std::chrono::milliseconds timeout) {
    std::this_thread::sleep_until(std::min(Clock::now() + timeout, impl_->sender.next_deadline()));
    (void)service();
}

std::size_t Pusher::queued_frames() const noexcept {
    return impl_->sender.queued();
}

const std::vector<std::string>& Pusher::bound() const noexcept {
    return impl_->socket.bound();
}

}  // namespace rill
