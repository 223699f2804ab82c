#include "rill/stream.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <deque>
#include <limits>
#include <map>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "rill/endpoint.hpp"
#include "rill/log.hpp"

namespace rill {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t decode_errc_count = static_cast<std::size_t>(DecodeErrc::topic_mismatch) + 1;

MetricsRegistry& registry_of(MetricsRegistry* m) {
    return m != nullptr ? *m : default_registry();
}
zmq::context_t& context_of(zmq::context_t* c) {
    return c != nullptr ? *c : default_context();
}

std::string default_identity() {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
    std::string id = host.data();
    if (id.empty()) id = "rill";
    return id + "/" + std::to_string(::getpid());
}

// An estimate of a reading's share of an encoded batch, for BatchOptions::max_bytes.
std::size_t estimated_bytes(const Reading& r) {
    std::size_t n = 32;
    for (const auto& e : r.extras)
        n += 12 + e.name.size();
    return n;
}

void validate(const Reading& r) {
    if (auto problem = reading_problem(r)) {
        throw std::invalid_argument("cannot publish reading " + r.sensor + "/" +
                                    std::to_string(r.seq) + ": " + *problem);
    }
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

struct ReceiveMetrics {
    Counter& frames;
    Counter& readings;
    Counter& bytes;
    Counter& heartbeats;
    Counter& gaps;
    Counter& missing;
    Counter& stale;
    Counter& silent;
    std::array<Counter*, decode_errc_count> malformed{};
};

ReceiveMetrics receive_metrics(MetricsRegistry& reg, const std::string& kind) {
    const Labels l{{"socket", kind}};
    ReceiveMetrics m{
        reg.counter("rill_stream_frames_received_total", "Readings frames received", l),
        reg.counter("rill_stream_readings_received_total", "Readings received", l),
        reg.counter("rill_stream_bytes_received_total", "Payload and topic bytes received", l),
        reg.counter("rill_stream_heartbeats_received_total", "Heartbeats received", l),
        reg.counter("rill_stream_gaps_total", "Gaps in sensor sequences detected", l),
        reg.counter("rill_stream_missing_readings_total", "Readings reported missing in gaps", l),
        reg.counter("rill_stream_stale_readings_total",
                    "Readings received with a seq below the expected one", l),
        reg.counter("rill_stream_publishers_silent_total",
                    "Times a publisher went silent (missed heartbeats)", l),
    };
    for (std::size_t i = 0; i < decode_errc_count; ++i) {
        m.malformed[i] = &reg.counter(
            "rill_stream_malformed_frames_total", "Messages rejected as malformed, by reason",
            {{"socket", kind}, {"reason", std::string(to_string(static_cast<DecodeErrc>(i)))}});
    }
    return m;
}

// --- sending --------------------------------------------------------------------------------

// Batches readings per sensor and sends frames on a PUB or PUSH socket. PUB sends never wait
// (zmq drops for slow subscribers); PUSH sends wait up to `send_timeout` and keep frames that
// were not taken in `queue_`, in order.
class BatchSender {
  public:
    BatchSender(zmq::socket_t& socket, const BatchOptions& batch, SendMetrics metrics,
                bool may_queue, milliseconds send_timeout)
        : socket_(&socket),
          batch_(batch),
          metrics_(metrics),
          may_queue_(may_queue),
          send_timeout_(send_timeout) {}

    // Queues `r` (already validated); sends its batch when full. Returns false when a frame
    // stayed queued.
    bool add(const Reading& r, Clock::time_point now) {
        if (batch_.max_readings == 1) return send_frame(std::span<const Reading>(&r, 1));
        auto it = pending_.find(r.sensor);
        if (it == pending_.end()) it = pending_.try_emplace(r.sensor).first;
        Pending& p = it->second;
        bool ok = true;
        if (!p.readings.empty() && p.readings.back().seq >= r.seq) ok = send_pending(p);
        if (p.readings.empty()) p.first_at = now;
        p.readings.push_back(r);
        p.bytes += estimated_bytes(r);
        if (p.readings.size() >= batch_.max_readings || p.bytes >= batch_.max_bytes) {
            ok = send_pending(p) && ok;
        }
        return ok;
    }

    // Sends the batches whose delay has passed (all when `all`), then retries queued frames.
    bool send_due(Clock::time_point now, bool all) {
        bool ok = drain();
        for (auto& [sensor, p] : pending_) {
            if (p.readings.empty()) continue;
            if (all || now - p.first_at >= batch_.max_delay) ok = send_pending(p) && ok;
        }
        return ok;
    }

    [[nodiscard]] Clock::time_point next_deadline() const {
        auto next = Clock::time_point::max();
        for (const auto& [sensor, p] : pending_) {
            if (!p.readings.empty()) next = std::min(next, p.first_at + batch_.max_delay);
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
        auto& newest = newest_[std::string(sensor)];
        newest = std::max(newest, seq);
    }

    [[nodiscard]] std::optional<std::uint64_t> newest(std::string_view sensor) const {
        const auto it = newest_.find(std::string(sensor));
        if (it == newest_.end()) return std::nullopt;
        return it->second;
    }
    [[nodiscard]] const std::unordered_map<std::string, std::uint64_t>& newest_all() const {
        return newest_;
    }
    [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }

  private:
    struct Pending {
        std::vector<Reading> readings;
        std::size_t bytes = 0;
        Clock::time_point first_at{};
    };

    bool send_pending(Pending& p) {
        const bool ok = send_frame(p.readings);
        p.readings.clear();
        p.bytes = 0;
        return ok;
    }

    bool send_frame(std::span<const Reading> batch) {
        payload_.clear();
        encode_batch(batch, payload_);
        const std::string& sensor = batch.front().sensor;
        auto& newest = newest_[sensor];
        newest = std::max(newest, batch.back().seq);
        const auto n = batch.size();
        if (!queue_.empty()) {
            queue_.push_back({sensor, payload_, n});
            return drain();
        }
        if (send_raw(sensor, payload_, send_timeout_)) {
            count_sent(sensor.size() + payload_.size(), n);
            return true;
        }
        if (!may_queue_) {
            metrics_.dropped.inc();
            return true;
        }
        queue_.push_back({sensor, payload_, n});
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
    std::unordered_map<std::string, Pending> pending_;
    std::unordered_map<std::string, std::uint64_t> newest_;
    std::deque<Frame> queue_;
    std::string payload_;
};

// --- receiving ------------------------------------------------------------------------------

// Logs rejected messages at most once per period, with the count of those not logged.
class RateLimitedLog {
  public:
    void log(std::string_view component, const std::string& message) {
        const auto now = Clock::now();
        if (logged_ && now - last_ < std::chrono::seconds(10)) {
            ++suppressed_;
            return;
        }
        std::string line = message;
        if (suppressed_ > 0) {
            line += " (" + std::to_string(suppressed_) + " similar messages not logged)";
        }
        log_warn(component, line);
        logged_ = true;
        last_ = now;
        suppressed_ = 0;
    }

  private:
    bool logged_ = false;
    Clock::time_point last_{};
    std::uint64_t suppressed_ = 0;
};

// Receives whole messages from a socket and decodes them, counting the bad ones.
class MessageReader {
  public:
    MessageReader(zmq::socket_t& socket, ReceiveMetrics metrics, std::string component)
        : socket_(&socket), metrics_(metrics), component_(std::move(component)) {}

    enum class Result { none, message, rejected };

    // Takes one message if one is waiting; decodes it into `out`. `peer` receives the sender's
    // address for heartbeats.
    Result read(Message& out, std::string& peer) {
        zmq::message_t topic;
        try {
            if (!socket_->recv(topic, zmq::recv_flags::dontwait)) return Result::none;
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) return Result::none;
            throw;
        }
        std::size_t parts = 1;
        zmq::message_t payload;
        bool more = topic.more();
        if (more) {
            (void)socket_->recv(payload, zmq::recv_flags::none);
            ++parts;
            more = payload.more();
            zmq::message_t extra;
            while (more) {
                (void)socket_->recv(extra, zmq::recv_flags::none);
                ++parts;
                more = extra.more();
            }
        }
        metrics_.bytes.inc(topic.size() + payload.size());
        if (parts != 2) {
            reject(DecodeErrc::malformed,
                   "message has " + std::to_string(parts) + " frames, expected 2 (topic, payload)");
            return Result::rejected;
        }
        try {
            out = decode_message(topic.to_string_view(), payload.to_string_view());
        } catch (const DecodeError& e) {
            reject(e.code(), e.what());
            return Result::rejected;
        }
        if (std::holds_alternative<Heartbeat>(out)) {
            peer.clear();
            try {
                if (const char* p = payload.gets("Peer-Address")) peer = p;
            } catch (const zmq::error_t&) {
                // ipc:// and inproc:// carry no peer address.
            }
        }
        return Result::message;
    }

    // Waits up to `timeout` for a message to arrive. False when a signal interrupted the wait.
    bool wait(milliseconds timeout) {
        std::array<zmq::pollitem_t, 1> items{{{socket_->handle(), 0, ZMQ_POLLIN, 0}}};
        try {
            (void)zmq::poll(items.data(), items.size(), timeout);
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) return false;
            throw;
        }
        return true;
    }

    [[nodiscard]] std::uint64_t malformed(DecodeErrc e) const noexcept {
        const auto i = static_cast<std::size_t>(e);
        return i < decode_errc_count ? local_malformed_[i] : 0;
    }

    ReceiveMetrics& metrics() noexcept { return metrics_; }

  private:
    void reject(DecodeErrc code, const std::string& what) {
        const auto i = static_cast<std::size_t>(code);
        ++local_malformed_[i];
        metrics_.malformed[i]->inc();
        log_.log(component_, "rejected message (" + std::string(to_string(code)) + "): " + what);
    }

    zmq::socket_t* socket_;
    ReceiveMetrics metrics_;
    std::string component_;
    std::array<std::uint64_t, decode_errc_count> local_malformed_{};
    RateLimitedLog log_;
};

constexpr milliseconds max_liveness_interval = std::chrono::hours(24);

// The largest frame a receiving socket accepts (ZMQ_MAXMSGSIZE). Without it libzmq allocates
// whatever size a peer's frame header declares and buffers the frame until it is complete, so
// one hostile peer could make a subscriber hold gigabytes. A larger frame makes libzmq drop that
// peer's connection at the header. The margin above the payload limit keeps a payload slightly
// over it reaching the decoder, which counts it as too_large.
constexpr auto max_frame_bytes = static_cast<std::int64_t>(limits::max_payload_bytes + 64 * 1024);

// The seq after `seq`, saturating at the largest one (which a sensor never reaches).
std::uint64_t after(std::uint64_t seq) {
    return seq == std::numeric_limits<std::uint64_t>::max() ? seq : seq + 1;
}

milliseconds until(Clock::time_point deadline, Clock::time_point now) {
    if (deadline <= now) return milliseconds(0);
    // Round up so that a wait never ends just before the deadline.
    return std::chrono::ceil<milliseconds>(deadline - now);
}

}  // namespace

// --- Publisher ------------------------------------------------------------------------------

struct Publisher::Impl {
    Impl(std::string_view endpoints, PublisherOptions o)
        : options(std::move(o)),
          socket(context_of(options.context), zmq::socket_type::pub, options.socket),
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
        socket.attach(endpoints, Attach::bind);
        next_heartbeat =
            options.heartbeat_interval.count() > 0 ? Clock::now() : Clock::time_point::max();
        next_duty = next_heartbeat;
    }

    void send_heartbeat(Clock::time_point now) {
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
        if (options.heartbeat_interval.count() > 0) {
            next_heartbeat = now + options.heartbeat_interval;
        }
    }

    Clock::time_point service(Clock::time_point now) {
        (void)sender.send_due(now, false);
        if (now >= next_heartbeat) send_heartbeat(now);
        next_duty = std::min(next_heartbeat, sender.next_deadline());
        return next_duty;
    }

    PublisherOptions options;
    Socket socket;
    BatchSender sender;
    Clock::time_point next_heartbeat;
    Clock::time_point next_duty;
};

Publisher::Publisher(std::string_view endpoints, PublisherOptions options)
    : impl_(std::make_unique<Impl>(endpoints, std::move(options))) {}

Publisher::~Publisher() = default;
Publisher::Publisher(Publisher&&) noexcept = default;
Publisher& Publisher::operator=(Publisher&&) noexcept = default;

void Publisher::publish(const Reading& reading) {
    // Unbatched readings are validated by encode_batch before anything is sent.
    if (impl_->options.batch.max_readings > 1) validate(reading);
    const auto now = Clock::now();
    (void)impl_->sender.add(reading, now);
    if (impl_->sender.batches_within_one_call()) (void)impl_->sender.send_due(now, true);
    if (now >= impl_->next_duty) (void)impl_->service(now);
}

void Publisher::publish(std::span<const Reading> readings) {
    for (const auto& r : readings)
        validate(r);
    const auto now = Clock::now();
    for (const auto& r : readings)
        (void)impl_->sender.add(r, now);
    if (impl_->sender.batches_within_one_call()) (void)impl_->sender.send_due(now, true);
    if (now >= impl_->next_duty) (void)impl_->service(now);
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
    // Unbatched readings are validated by encode_batch before anything is sent.
    if (impl_->options.batch.max_readings == 1 && impl_->sender.queued() == 0) {
        return impl_->sender.add(reading, Clock::time_point{});
    }
    return push(std::span<const Reading>(&reading, 1));
}

bool Pusher::push(std::span<const Reading> readings) {
    for (const auto& r : readings)
        validate(r);
    const auto now = Clock::now();
    bool ok = true;
    for (const auto& r : readings)
        ok = impl_->sender.add(r, now) && ok;
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

// --- Subscriber -----------------------------------------------------------------------------

struct Subscriber::Impl {
    Impl(std::string_view endpoints, SubscriberOptions o)
        : options(std::move(o)),
          socket(context_of(options.context), zmq::socket_type::sub, options.socket),
          reader(socket.raw(), receive_metrics(registry_of(options.metrics), "sub"), "stream") {
        socket.raw().set(zmq::sockopt::maxmsgsize, max_frame_bytes);
        if (options.silent_after_missed < 1) {
            throw std::invalid_argument("silent_after_missed must be at least 1");
        }
        if (options.prefixes.empty()) {
            socket.raw().set(zmq::sockopt::subscribe, "");
        } else {
            for (const auto& p : options.prefixes)
                socket.raw().set(zmq::sockopt::subscribe, p);
            socket.raw().set(zmq::sockopt::subscribe, heartbeat_topic);
        }
        socket.attach(endpoints, Attach::connect);
    }

    struct PublisherState {
        Clock::time_point last_seen;
        milliseconds interval;
        bool silent = false;
    };

    void report_gap(const std::string& sensor, std::uint64_t from, std::uint64_t to) {
        auto& m = reader.metrics();
        m.gaps.inc();
        m.missing.inc(to - from + 1);
        events.emplace_back(Gap{sensor, from, to});
    }

    // Tracks seqs, queues the gaps found and returns the batch (to go after them).
    ReadingBatch on_readings(std::vector<Reading>&& readings) {
        auto& m = reader.metrics();
        m.frames.inc();
        m.readings.inc(readings.size());
        const std::string& sensor = readings.front().sensor;
        if (last_sensor == nullptr || last_sensor->first != sensor) {
            auto it = expected_seq.find(sensor);
            if (it == expected_seq.end()) {
                it = expected_seq.emplace(sensor, readings.front().seq).first;
            }
            last_sensor = &*it;
        }
        std::uint64_t& expected = last_sensor->second;
        ReadingBatch batch;
        for (const auto& r : readings) {
            if (r.seq < expected) {
                ++batch.stale;
                continue;
            }
            if (r.seq > expected) report_gap(sensor, expected, r.seq - 1);
            expected = after(r.seq);
        }
        if (batch.stale > 0) m.stale.inc(batch.stale);
        batch.readings = std::move(readings);
        return batch;
    }

    void on_heartbeat(Heartbeat&& hb, std::string&& peer, Clock::time_point now) {
        reader.metrics().heartbeats.inc();
        auto [it, inserted] = publishers.try_emplace(hb.publisher);
        PublisherState& state = it->second;
        if (!inserted && state.silent) events.emplace_back(PublisherBack{hb.publisher});
        state.last_seen = now;
        // Bounded so that a hostile interval cannot overflow the deadline arithmetic.
        state.interval = std::clamp(hb.interval, milliseconds(0), max_liveness_interval);
        state.silent = false;
        for (const auto& [sensor, newest] : hb.newest) {
            const auto t = expected_seq.find(sensor);
            if (t == expected_seq.end() || newest < t->second) continue;
            report_gap(sensor, t->second, newest);
            t->second = after(newest);
        }
        HeartbeatSeen seen;
        seen.replay_endpoint = hb.replay_endpoint.empty()
                                   ? std::string()
                                   : resolve_announced(hb.replay_endpoint, peer);
        seen.peer_address = std::move(peer);
        seen.heartbeat = std::move(hb);
        events.emplace_back(std::move(seen));
    }

    // Reports publishers whose heartbeats stopped; returns when the next one may go silent.
    Clock::time_point check_silence(Clock::time_point now) {
        auto next = Clock::time_point::max();
        for (auto& [id, state] : publishers) {
            if (state.silent || state.interval.count() <= 0) continue;
            const auto deadline = state.last_seen + state.interval * options.silent_after_missed;
            if (now >= deadline) {
                state.silent = true;
                reader.metrics().silent.inc();
                events.emplace_back(PublisherSilent{
                    id, std::chrono::duration_cast<milliseconds>(now - state.last_seen)});
            } else {
                next = std::min(next, deadline);
            }
        }
        return next;
    }

    std::optional<StreamEvent> receive(milliseconds timeout) {
        // The clock is read only when idle and every few messages (for silence detection), not
        // once per message.
        std::optional<Clock::time_point> deadline;
        for (;;) {
            if (!events.empty()) {
                StreamEvent e = std::move(events.front());
                events.pop_front();
                return e;
            }
            Message msg;
            std::string peer;
            const auto result = reader.read(msg, peer);
            if (result != MessageReader::Result::none) {
                // Under steady traffic, silence is checked every silence_check_every messages.
                const bool check = ++since_silence_check >= silence_check_every;
                if (result == MessageReader::Result::message) {
                    if (auto* readings = std::get_if<std::vector<Reading>>(&msg)) {
                        auto batch = on_readings(std::move(*readings));
                        // The common case: no gap to report before it, no check due.
                        if (events.empty() && !check) return batch;
                        events.emplace_back(std::move(batch));
                    } else {
                        on_heartbeat(std::get<Heartbeat>(std::move(msg)), std::move(peer),
                                     Clock::now());
                    }
                }
                if (!check) continue;
            }
            since_silence_check = 0;
            const auto now = Clock::now();
            const auto next_silence = check_silence(now);
            if (!events.empty() || result != MessageReader::Result::none) continue;
            if (!deadline) deadline = now + timeout;
            if (now >= *deadline) return std::nullopt;
            if (!reader.wait(until(std::min(*deadline, next_silence), now))) return std::nullopt;
        }
    }

    static constexpr unsigned silence_check_every = 64;
    unsigned since_silence_check = 0;
    SubscriberOptions options;
    Socket socket;
    MessageReader reader;
    std::unordered_map<std::string, std::uint64_t> expected_seq;
    // The entry of the sensor of the last batch, so that a run of one sensor's batches costs no
    // hash lookup each. Entries of an unordered_map stay where they are until erased: only
    // forget() must reset it.
    std::pair<const std::string, std::uint64_t>* last_sensor = nullptr;
    std::map<std::string, PublisherState> publishers;
    std::deque<StreamEvent> events;
};

Subscriber::Subscriber(std::string_view endpoints, SubscriberOptions options)
    : impl_(std::make_unique<Impl>(endpoints, std::move(options))) {}
Subscriber::~Subscriber() = default;
Subscriber::Subscriber(Subscriber&&) noexcept = default;
Subscriber& Subscriber::operator=(Subscriber&&) noexcept = default;

std::optional<StreamEvent> Subscriber::receive(std::chrono::milliseconds timeout) {
    return impl_->receive(timeout);
}

void Subscriber::expect(const std::string& sensor, std::uint64_t next_seq) {
    if (next_seq < 1) throw std::invalid_argument("expected seq of " + sensor + " must be >= 1");
    impl_->expected_seq[sensor] = next_seq;
}

std::optional<std::uint64_t> Subscriber::expected(std::string_view sensor) const {
    const auto it = impl_->expected_seq.find(std::string(sensor));
    if (it == impl_->expected_seq.end()) return std::nullopt;
    return it->second;
}

void Subscriber::forget(std::string_view sensor) {
    impl_->last_sensor = nullptr;
    impl_->expected_seq.erase(std::string(sensor));
}

std::uint64_t Subscriber::malformed(DecodeErrc reason) const noexcept {
    return impl_->reader.malformed(reason);
}

// --- Puller ---------------------------------------------------------------------------------

struct Puller::Impl {
    Impl(std::string_view endpoints, PullerOptions o)
        : options(std::move(o)),
          socket(context_of(options.context), zmq::socket_type::pull, options.socket),
          reader(socket.raw(), receive_metrics(registry_of(options.metrics), "pull"), "stream") {
        socket.raw().set(zmq::sockopt::maxmsgsize, max_frame_bytes);
        socket.attach(endpoints, Attach::connect);
    }

    PullerOptions options;
    Socket socket;
    MessageReader reader;
};

Puller::Puller(std::string_view endpoints, PullerOptions options)
    : impl_(std::make_unique<Impl>(endpoints, std::move(options))) {}
Puller::~Puller() = default;
Puller::Puller(Puller&&) noexcept = default;
Puller& Puller::operator=(Puller&&) noexcept = default;

std::optional<std::vector<Reading>> Puller::receive(std::chrono::milliseconds timeout) {
    std::optional<Clock::time_point> deadline;  // read the clock only when idle
    for (;;) {
        Message msg;
        std::string peer;
        const auto result = impl_->reader.read(msg, peer);
        if (result == MessageReader::Result::message) {
            if (auto* readings = std::get_if<std::vector<Reading>>(&msg)) {
                auto& m = impl_->reader.metrics();
                m.frames.inc();
                m.readings.inc(readings->size());
                return std::move(*readings);
            }
            impl_->reader.metrics().heartbeats.inc();
            continue;
        }
        if (result == MessageReader::Result::rejected) continue;
        const auto now = Clock::now();
        if (!deadline) deadline = now + timeout;
        if (now >= *deadline) return std::nullopt;
        if (!impl_->reader.wait(until(*deadline, now))) return std::nullopt;
    }
}

std::uint64_t Puller::malformed(DecodeErrc reason) const noexcept {
    return impl_->reader.malformed(reason);
}

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
