// The receive side of rill/stream.hpp: Subscriber (gap detection, heartbeats, silence) and
// Puller.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "rill/endpoint.hpp"
#include "rill/log.hpp"
#include "rill/stream.hpp"
#include "transport/stream_detail.hpp"

namespace rill {

namespace {

using namespace stream_detail;
using std::chrono::milliseconds;

struct ReceiveMetrics {
    Counter& frames;
    Counter& readings;
    Counter& bytes;
    Counter& heartbeats;
    Counter& gaps;
    Counter& missing;
    Counter& stale;
    Counter& silent;
    Counter& sensors_evicted;
    Counter& publishers_evicted;
    Counter& invalid;
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
        reg.counter("rill_stream_sensors_evicted_total",
                    "Sensors forgotten because the subscriber tracked max_sensors", l),
        reg.counter("rill_stream_publishers_evicted_total",
                    "Publishers forgotten because the subscriber tracked max_publishers", l),
        reg.counter("rill_stream_invalid_readings_total",
                    "Readings discarded alone as invalid (NaN, out of range, ...); the rest of "
                    "their batch was kept",
                    l),
    };
    for (std::size_t i = 0; i < decode_errc_count; ++i) {
        m.malformed[i] = &reg.counter(
            "rill_stream_malformed_frames_total", "Messages rejected as malformed, by reason",
            {{"socket", kind}, {"reason", std::string(to_string(static_cast<DecodeErrc>(i)))}});
    }
    return m;
}

// --- receiving ------------------------------------------------------------------------------

// Receives whole messages from a socket and decodes them, counting the bad ones.
class MessageReader {
  public:
    MessageReader(zmq::socket_t& socket, ReceiveMetrics metrics, std::string component)
        : socket_(&socket),
          metrics_(metrics),
          log_(component, "rejected messages"),
          invalid_log_(component, "invalid readings") {}

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
            invalid_.clear();
            out = decode_message(topic.to_string_view(), payload.to_string_view(), invalid_);
        } catch (const DecodeError& e) {
            reject(e.code(), e.what());
            return Result::rejected;
        }
        if (!invalid_.empty()) discard(invalid_);
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

    // Waits up to `timeout` for a message to arrive (or, when given, for `also` to become
    // readable). False when a signal interrupted the wait.
    bool wait(milliseconds timeout, void* also = nullptr) {
        std::array<zmq::pollitem_t, 2> items{
            {{socket_->handle(), 0, ZMQ_POLLIN, 0}, {also, 0, ZMQ_POLLIN, 0}}};
        try {
            (void)zmq::poll(items.data(), also != nullptr ? 2 : 1, timeout);
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

    // Reports the log lines held back once their window has passed; returns when it next may
    // have to (the longest a receive loop may wait).
    Clock::time_point flush_logs(Clock::time_point now) noexcept {
        log_.flush(now);
        invalid_log_.flush(now);
        return std::min(log_.flush_due(), invalid_log_.flush_due());
    }

  private:
    void reject(DecodeErrc code, const std::string& what) {
        const auto i = static_cast<std::size_t>(code);
        ++local_malformed_[i];
        metrics_.malformed[i]->inc();
        log_.log("rejected message (" + std::string(to_string(code)) + "): " + what);
    }

    // Counts and logs readings discarded alone (proto/reading_v1.md, "One invalid reading");
    // the rest of their batch goes on, and the seqs left out show up as gaps.
    void discard(const std::vector<InvalidReading>& invalid) {
        metrics_.invalid.inc(invalid.size());
        for (const auto& r : invalid) {
            invalid_log_.log("discarded invalid reading " + r.sensor + "/" + std::to_string(r.seq) +
                             ": " + r.problem);
        }
    }

    zmq::socket_t* socket_;
    ReceiveMetrics metrics_;
    std::array<std::uint64_t, decode_errc_count> local_malformed_{};
    RateLimitedLog log_;
    RateLimitedLog invalid_log_;
    std::vector<InvalidReading> invalid_;
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

// libzmq 4.3 reconnects a connected endpoint after a connection error (announcing it with
// ZMQ_EVENT_CONNECT_RETRIED right after ZMQ_EVENT_DISCONNECTED) but not after a protocol error:
// a peer dropped for a frame above ZMQ_MAXMSGSIZE would stay disconnected until restart. This
// watches the socket's monitor and, when a disconnect of a connected endpoint is not followed by
// libzmq's own retry within `grace`, connects that endpoint again (disconnect + connect). A peer
// that keeps dropping the connection this way (e.g. a CURVE server refusing this client) is
// connected again after a wait doubling up to `max_wait`.
class Reconnector {
  public:
    static constexpr milliseconds grace{1000};
    static constexpr milliseconds max_wait{60'000};

    Reconnector(zmq::context_t& ctx, Socket& socket, std::string_view endpoints)
        : socket_(&socket) {
        for (auto& e : parse_endpoints(endpoints, Attach::connect)) {
            if (e.attach == Attach::connect) connected_.push_back(std::move(e.address));
        }
        if (connected_.empty()) return;
        static std::atomic<std::uint64_t> next_id{0};
        const auto address = "inproc://rill-subscriber-monitor-" + std::to_string(++next_id);
        if (zmq_socket_monitor(socket.raw().handle(), address.c_str(),
                               ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED) != 0) {
            throw zmq::error_t();
        }
        monitor_ = zmq::socket_t(ctx, zmq::socket_type::pair);
        monitor_.set(zmq::sockopt::linger, 0);
        monitor_.connect(address);
    }
    Reconnector(const Reconnector&) = delete;
    Reconnector& operator=(const Reconnector&) = delete;
    ~Reconnector() {
        if (monitor_.handle() != nullptr && *socket_) {
            (void)zmq_socket_monitor(socket_->raw().handle(), nullptr, 0);
        }
    }

    // The monitor socket to poll (nullptr when nothing is connected).
    [[nodiscard]] void* handle() noexcept { return monitor_.handle(); }

    // Reads the monitor's events and connects again the endpoints libzmq gave up on. Returns
    // when the next one is due (max when none).
    Clock::time_point service(Clock::time_point now) {
        log_.flush(now);
        if (monitor_.handle() == nullptr) return log_.flush_due();
        zmq::message_t head;
        zmq::message_t address;
        while (monitor_.recv(head, zmq::recv_flags::dontwait)) {
            if (!head.more() || !monitor_.recv(address, zmq::recv_flags::none)) continue;
            if (head.size() < 2) continue;
            std::uint16_t event = 0;
            std::memcpy(&event, head.data(), sizeof event);
            for (const auto& e : matching(address.to_string())) {
                if (event == ZMQ_EVENT_DISCONNECTED) pending_[e] = now + wait_for(e, now);
                if (event == ZMQ_EVENT_CONNECT_RETRIED) pending_.erase(e);
            }
        }
        auto next = Clock::time_point::max();
        for (auto it = pending_.begin(); it != pending_.end();) {
            if (now < it->second) {
                next = std::min(next, it->second);
                ++it;
                continue;
            }
            auto& f = forced_[it->first];
            ++f.count;
            f.last = now;
            log_.log("connecting " + it->first +
                     " again: libzmq dropped it without retrying (a protocol "
                     "error, e.g. a frame above the size limit, or a refused key)");
            try {
                socket_->raw().disconnect(it->first);
            } catch (const zmq::error_t&) {
                // Already gone from the socket's endpoints: connect is what matters.
            }
            socket_->connect(it->first);  // with this endpoint's CURVE server key
            it = pending_.erase(it);
        }
        return std::min(next, log_.flush_due());
    }

  private:
    struct Forced {
        unsigned count = 0;  // reconnects forced in a row
        Clock::time_point last{};
    };

    // How long after a disconnect of `endpoint` to wait for libzmq's retry before forcing one.
    milliseconds wait_for(const std::string& endpoint, Clock::time_point now) {
        auto& f = forced_[endpoint];
        if (now - f.last > std::chrono::minutes(5)) f.count = 0;
        return std::min(max_wait, milliseconds(grace.count() << std::min(f.count, 6U)));
    }

    // The connected endpoints an event's address may name: the same string, else those with
    // the same transport and port (libzmq reports the resolved address, "tcp://127.0.0.1:5556"
    // for "tcp://localhost:5556").
    std::vector<std::string> matching(const std::string& address) const {
        if (std::find(connected_.begin(), connected_.end(), address) != connected_.end()) {
            return {address};
        }
        std::vector<std::string> out;
        const auto scheme = address.substr(0, address.find("://"));
        const auto colon = address.rfind(':');
        const auto port = colon == std::string::npos ? std::string() : address.substr(colon);
        for (const auto& e : connected_) {
            if (scheme != "tcp" || e.rfind("tcp://", 0) != 0) continue;
            const auto c = e.rfind(':');
            if (c != std::string::npos && e.substr(c) == port) out.push_back(e);
        }
        return out;
    }

    Socket* socket_;
    zmq::socket_t monitor_;
    std::vector<std::string> connected_;
    std::map<std::string, Clock::time_point> pending_;
    std::map<std::string, Forced> forced_;
    RateLimitedLog log_{"stream", "reconnect notices"};
};

}  // namespace

// --- Subscriber -----------------------------------------------------------------------------

struct Subscriber::Impl {
    Impl(std::string_view endpoints, SubscriberOptions o)
        : options(std::move(o)),
          socket(context_of(options.context), zmq::socket_type::sub, options.socket),
          reader(socket.raw(), receive_metrics(registry_of(options.metrics), "sub"), "stream"),
          reconnector(context_of(options.context), socket, endpoints) {
        socket.raw().set(zmq::sockopt::maxmsgsize, max_frame_bytes);
        if (options.silent_after_missed < 1) {
            throw std::invalid_argument("silent_after_missed must be at least 1");
        }
        if (options.max_sensors < 1 || options.max_publishers < 1) {
            throw std::invalid_argument("max_sensors and max_publishers must be at least 1");
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
        bool silence_reported = false;  // its PublisherSilent went out (so PublisherBack does)
    };

    // One tracked sensor; `sensors` keeps them most recently seen first.
    struct SensorSeq {
        std::string sensor;
        std::uint64_t expected = 0;
    };
    using SensorList = std::list<SensorSeq>;

    // The tracked entry of `sensor`, marked most recently seen; nullptr when not tracked.
    SensorSeq* find_sensor(const std::string& sensor) {
        const auto it = sensor_index.find(sensor);
        if (it == sensor_index.end()) return nullptr;
        sensors.splice(sensors.begin(), sensors, it->second);
        return &*it->second;
    }

    // The entry of `sensor`, tracked from `expected` when it is new; the least recently seen
    // sensor is forgotten first when the table is full.
    SensorSeq& track_sensor(const std::string& sensor, std::uint64_t expected) {
        if (auto* found = find_sensor(sensor)) return *found;
        while (sensors.size() >= options.max_sensors) {
            auto& victim = sensors.back();
            if (last_sensor == &victim) last_sensor = nullptr;
            reader.metrics().sensors_evicted.inc();
            evictions_log.log("tracking " + std::to_string(sensors.size()) +
                              " sensors (max_sensors): forgot " + victim.sensor +
                              ", seen least recently");
            sensor_index.erase(victim.sensor);
            if (forgotten.size() >= options.max_sensors + limits::max_heartbeat_sensors) {
                forgotten.pop_front();
            }
            forgotten.push_back(std::move(victim.sensor));
            sensors.pop_back();
        }
        sensors.push_front(SensorSeq{sensor, expected});
        sensor_index.emplace(sensor, sensors.begin());
        return sensors.front();
    }

    std::deque<std::string> forgotten;  // evicted sensors, for take_forgotten()

    void untrack_sensor(const std::string& sensor) {
        const auto it = sensor_index.find(sensor);
        if (it == sensor_index.end()) return;
        if (last_sensor == &*it->second) last_sensor = nullptr;
        sensors.erase(it->second);
        sensor_index.erase(it);
    }

    // Makes room for one more publisher: forgets the one whose last heartbeat is oldest.
    void make_room_for_publisher() {
        while (publishers.size() >= options.max_publishers) {
            auto oldest = publishers.begin();
            for (auto i = publishers.begin(); i != publishers.end(); ++i) {
                if (i->second.last_seen < oldest->second.last_seen) oldest = i;
            }
            reader.metrics().publishers_evicted.inc();
            evictions_log.log("tracking " + std::to_string(publishers.size()) +
                              " publishers (max_publishers): forgot " + oldest->first +
                              ", heard from least recently");
            publishers.erase(oldest);
        }
    }

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
        if (last_sensor == nullptr || last_sensor->sensor != sensor) {
            last_sensor = &track_sensor(sensor, readings.front().seq);
        }
        std::uint64_t& expected = last_sensor->expected;
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
        if (!publishers.contains(hb.publisher)) make_room_for_publisher();
        auto [it, inserted] = publishers.try_emplace(hb.publisher);
        PublisherState& state = it->second;
        if (!inserted && state.silent && state.silence_reported) {
            events.emplace_back(PublisherBack{hb.publisher});
        }
        state.silence_reported = false;
        state.last_seen = now;
        // Bounded so that a hostile interval cannot overflow the deadline arithmetic.
        state.interval = std::clamp(hb.interval, milliseconds(0), max_liveness_interval);
        state.silent = false;
        for (const auto& [sensor, newest] : hb.newest) {
            // A sensor its publisher still announces counts as seen.
            auto* t = find_sensor(sensor);
            if (t == nullptr || newest < t->expected) continue;
            report_gap(sensor, t->expected, newest);
            t->expected = after(newest);
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
    // A flood of invented publishers going silent costs at most max_silent_reports_per_minute
    // events per minute, and one summary line for the rest.
    Clock::time_point check_silence(Clock::time_point now) {
        auto next = Clock::time_point::max();
        if (now - silence_window_start >= silence_window) {
            if (silences_not_reported > 0) {
                log_warn("stream", std::to_string(silences_not_reported) +
                                       " more publisher(s) went silent in the last minute (not "
                                       "reported one by one: max_silent_reports_per_minute " +
                                       std::to_string(options.max_silent_reports_per_minute) + ")");
            }
            silence_window_start = now;
            silences_reported = 0;
            silences_not_reported = 0;
        }
        for (auto& [id, state] : publishers) {
            if (state.silent || state.interval.count() <= 0) continue;
            const auto deadline = state.last_seen + state.interval * options.silent_after_missed;
            if (now >= deadline) {
                state.silent = true;
                reader.metrics().silent.inc();
                if (silences_reported < options.max_silent_reports_per_minute) {
                    ++silences_reported;
                    state.silence_reported = true;
                    events.emplace_back(PublisherSilent{
                        id, std::chrono::duration_cast<milliseconds>(now - state.last_seen)});
                } else {
                    ++silences_not_reported;
                }
            } else {
                next = std::min(next, deadline);
            }
        }
        // Wake up to write the summary even when nothing else happens.
        if (silences_not_reported > 0) next = std::min(next, silence_window_start + silence_window);
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
                        if (readings->empty()) {
                            // Every reading of the batch was invalid: nothing to deliver; their
                            // seqs show up as a gap with the next batch or heartbeat.
                            reader.metrics().frames.inc();
                        } else {
                            auto batch = on_readings(std::move(*readings));
                            // The common case: no gap to report before it, no check due.
                            if (events.empty() && !check) return batch;
                            events.emplace_back(std::move(batch));
                        }
                    } else {
                        on_heartbeat(std::get<Heartbeat>(std::move(msg)), std::move(peer),
                                     Clock::now());
                    }
                }
                if (!check) continue;
            }
            since_silence_check = 0;
            const auto now = Clock::now();
            evictions_log.flush(now);
            const auto next_duty = std::min({check_silence(now), reconnector.service(now),
                                             reader.flush_logs(now), evictions_log.flush_due()});
            if (!events.empty() || result != MessageReader::Result::none) continue;
            if (!deadline) deadline = now + timeout;
            if (now >= *deadline) return std::nullopt;
            if (!reader.wait(until(std::min(*deadline, next_duty), now), reconnector.handle())) {
                return std::nullopt;
            }
        }
    }

    static constexpr unsigned silence_check_every = 64;
    unsigned since_silence_check = 0;
    SubscriberOptions options;
    Socket socket;
    MessageReader reader;
    Reconnector reconnector;  // after `socket`: stops monitoring it before it closes
    // Tracked sensors, most recently seen first, and their index (at most max_sensors).
    SensorList sensors;
    std::unordered_map<std::string, SensorList::iterator> sensor_index;
    // The entry of the sensor of the last batch, so that a run of one sensor's batches costs no
    // hash lookup each. List entries stay where they are until erased: untrack_sensor() and
    // eviction reset it.
    SensorSeq* last_sensor = nullptr;
    std::map<std::string, PublisherState> publishers;  // at most max_publishers
    RateLimitedLog evictions_log{"stream", "table eviction notices"};
    static constexpr auto silence_window = std::chrono::minutes(1);
    Clock::time_point silence_window_start = Clock::now();
    unsigned silences_reported = 0;
    std::uint64_t silences_not_reported = 0;
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
    impl_->track_sensor(sensor, next_seq).expected = next_seq;
}

std::optional<std::uint64_t> Subscriber::expected(std::string_view sensor) const {
    const auto it = impl_->sensor_index.find(std::string(sensor));
    if (it == impl_->sensor_index.end()) return std::nullopt;
    return it->second->expected;
}

std::vector<std::string> Subscriber::take_forgotten() {
    std::vector<std::string> out(std::make_move_iterator(impl_->forgotten.begin()),
                                 std::make_move_iterator(impl_->forgotten.end()));
    impl_->forgotten.clear();
    return out;
}

void Subscriber::forget(std::string_view sensor) {
    impl_->untrack_sensor(std::string(sensor));
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
                if (readings->empty()) continue;  // every reading was invalid
                return std::move(*readings);
            }
            impl_->reader.metrics().heartbeats.inc();
            continue;
        }
        if (result == MessageReader::Result::rejected) continue;
        const auto now = Clock::now();
        const auto next_flush = impl_->reader.flush_logs(now);
        if (!deadline) deadline = now + timeout;
        if (now >= *deadline) return std::nullopt;
        if (!impl_->reader.wait(until(std::min(*deadline, next_flush), now))) return std::nullopt;
    }
}

std::uint64_t Puller::malformed(DecodeErrc reason) const noexcept {
    return impl_->reader.malformed(reason);
}

}  // namespace rill
