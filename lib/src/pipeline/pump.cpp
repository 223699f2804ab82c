// SourcePump: the source thread, the handoff queue between it and the publishing thread, and the
// publishing loop (see rill/pump.hpp).
#include "rill/pump.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "rill/log.hpp"

namespace rill {

namespace {

using Clock = std::chrono::steady_clock;

// Measurements handed from the source thread to the publishing thread. Bounded: the source
// thread waits when the publishing thread falls this far behind. fd() becomes readable when
// measurements arrive or the input ends, so the publishing thread sleeps in poll until then.
class Handoff {
  public:
    explicit Handoff(std::size_t max) : max_(max), fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (fd_ < 0) {
            throw std::system_error(errno, std::generic_category(), "cannot create an eventfd");
        }
    }
    ~Handoff() { ::close(fd_); }
    Handoff(const Handoff&) = delete;
    Handoff& operator=(const Handoff&) = delete;

    // Source thread. Returns false when the consumer closed the handoff.
    bool put(std::vector<Measurement>&& batch) {
        std::unique_lock lock(mutex_);
        space_.wait(lock, [&] { return size_ < max_ || closed_; });
        if (closed_) return false;
        size_ += batch.size();
        queue_.push_back(std::move(batch));
        if (queue_.size() == 1) signal();
        return true;
    }
    // Source thread: no more input.
    void finish() {
        const std::lock_guard lock(mutex_);
        finished_ = true;
        signal();
    }
    // Publishing thread: takes everything queued.
    std::deque<std::vector<Measurement>> take() {
        const std::lock_guard lock(mutex_);
        std::uint64_t count = 0;
        [[maybe_unused]] auto n = ::read(fd_, &count, sizeof count);  // EAGAIN when unset
        std::deque<std::vector<Measurement>> out;
        out.swap(queue_);
        size_ = 0;
        space_.notify_all();
        return out;
    }
    [[nodiscard]] bool finished_and_empty() {
        const std::lock_guard lock(mutex_);
        return finished_ && queue_.empty();
    }
    void close() {
        const std::lock_guard lock(mutex_);
        closed_ = true;
        space_.notify_all();
    }
    // Readable while measurements wait or after finish(); take() resets it.
    [[nodiscard]] int fd() const noexcept { return fd_; }

  private:
    void signal() {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
    }

    std::mutex mutex_;
    std::condition_variable space_;
    std::deque<std::vector<Measurement>> queue_;
    std::size_t size_ = 0;
    std::size_t max_;
    bool finished_ = false;
    bool closed_ = false;
    int fd_;
};

// Sleeps in poll(2) on `fds` until one is readable or `until`; a signal (EINTR) ends the wait
// early, like a timeout.
void wait_readable(std::span<pollfd> fds, SteadyTime until) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    const auto ms = std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, 60'000);
    if (::poll(fds.data(), fds.size(), static_cast<int>(ms)) < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "poll in the source pump");
    }
}

}  // namespace

std::string PumpStatus::line() const {
    return "sensor " + sensor_id + ": published up to seq " + std::to_string(published_up_to) +
           ", outbox " + std::to_string(outbox_bytes) + " bytes";
}

struct SourcePump::Impl {
    PumpOptions options;
    std::unique_ptr<Source> source;
    ReliablePublisher& publisher;
    Counter& published;
    std::uint64_t readings = 0;

    Impl(PumpOptions o, std::unique_ptr<Source> s, ReliablePublisher& p)
        : options(std::move(o)),
          source(std::move(s)),
          publisher(p),
          published((options.metrics != nullptr ? *options.metrics : default_registry())
                        .counter("rill_sensor_readings_total",
                                 "Readings taken from the source and appended to the outbox")) {}

    [[nodiscard]] PumpStatus status() const {
        auto& outbox = publisher.outbox();
        return PumpStatus{options.sensor_id, outbox.newest(options.sensor_id),
                          outbox.metrics().disk_bytes};
    }

    // Calls the keep-alive hook; returns when it is due next.
    SteadyTime keep_alive() const {
        return options.hooks.keep_alive ? options.hooks.keep_alive() : SteadyTime::max();
    }

    // The source thread: reads until stopped, the input ends or `count` is reached.
    void read(Handoff& handoff, std::exception_ptr& error) {
        try {
            std::uint64_t taken = 0;
            std::vector<Measurement> buf;
            const auto count = options.count;
            while (count == 0 || taken < count) {
                std::size_t want = 1024;
                if (count != 0)
                    want = static_cast<std::size_t>(std::min<std::uint64_t>(want, count - taken));
                buf.clear();
                if (source->next_batch(buf, want) == 0) break;
                taken += buf.size();
                if (!handoff.put(std::move(buf))) break;
                buf = {};
            }
        } catch (...) {
            error = std::current_exception();
        }
        handoff.finish();
    }

    void publish_queued(Handoff& handoff, std::vector<Reading>& batch) {
        for (auto& ms : handoff.take()) {
            batch.clear();
            batch.reserve(ms.size());
            for (auto& m : ms) {
                batch.push_back(Reading{options.sensor_id, 0, m.ts, m.temperature, m.humidity,
                                        std::move(m.extras)});
            }
            publisher.publish(batch);
            published.inc(batch.size());
            readings += batch.size();
        }
    }

    // The publishing loop, until a stop request or the end of the input.
    void pump(const StopFlag& stop, Handoff& handoff) {
        const auto& hooks = options.hooks;
        std::vector<Reading> batch;
        std::array<pollfd, 2> fds{{{stop.fd(), POLLIN, 0}, {handoff.fd(), POLLIN, 0}}};
        auto next_status = Clock::now() + options.status_interval;
        for (;;) {
            publish_queued(handoff, batch);
            // After take(): a finish() that came before it is seen here, one after it makes
            // handoff.fd() readable again, so the poll below wakes for it.
            if (stop.requested() || handoff.finished_and_empty()) break;
            const auto keep_alive_due = keep_alive();
            if (Clock::now() >= next_status) {
                if (hooks.status) hooks.status(status());
                next_status = Clock::now() + options.status_interval;
            }
            wait_readable(fds, std::min({publisher.service(), keep_alive_due, next_status}));
        }
    }

    // After an ended input: a heartbeat at once, then heartbeats and replays until the known
    // subscribers caught up, `linger` passed or a stop request (rill/pump.hpp). Logs the line
    // saying which (not for a stop request: run() logs "stopped by signal").
    LingerEnd linger(const StopFlag& stop) {
        auto& stream = publisher.publisher();
        stream.heartbeat();  // the newest seq of every sensor, right after the last reading
        if (options.linger.count() <= 0) return LingerEnd::none;
        const auto start = Clock::now();
        const auto until = start + options.linger;
        const auto bound = std::chrono::duration<double>(options.linger).count();
        // Heartbeats counted from the one just sent (it went out after the input ended).
        const auto heartbeats_at_end = stream.audience().heartbeats - 1;
        auto replay = publisher.replay_activity();
        auto heartbeats_seen = stream.audience().heartbeats;
        std::uint64_t quiet = 0;  // heartbeat intervals that ended without a replay request
        std::array<pollfd, 1> fds{{{stop.fd(), POLLIN, 0}}};
        for (;;) {
            if (stop.requested()) return LingerEnd::stop_requested;
            const auto next = publisher.service();
            const auto audience = stream.audience();
            const auto now_replay = publisher.replay_activity();
            if (now_replay.requests != replay.requests) {
                quiet = 0;
                heartbeats_seen = audience.heartbeats;  // count intervals from here
            } else if (audience.heartbeats != heartbeats_seen) {
                quiet += audience.heartbeats - heartbeats_seen;
                heartbeats_seen = audience.heartbeats;
            }
            replay = now_replay;
            const auto after = std::min(audience.heartbeats - heartbeats_at_end,
                                        audience.heartbeats_since_subscription);
            const bool joined = audience.active_subscriptions > 0;
            const auto waited = std::chrono::duration<double>(Clock::now() - start).count();
            if (!options.linger_full && joined && after >= options.caught_up_heartbeats &&
                quiet >= options.quiet_heartbeats && replay.open_sensors == 0) {
                log_info(options.log_component,
                         "subscribers caught up after " + seconds(waited) + " (" +
                             std::to_string(audience.active_subscriptions) +
                             " subscriptions active, " + std::to_string(replay.requests) +
                             " replay requests answered, " + std::to_string(after) +
                             " heartbeats since the end and the last join)");
                return LingerEnd::caught_up;
            }
            if (Clock::now() >= until) {
                std::string why;
                if (options.linger_full) {
                    log_info(options.log_component,
                             "lingered the whole " + seconds(bound) + " as asked");
                    return LingerEnd::bound;
                }
                if (!joined) {
                    why = audience.subscriptions > 0 ? "every subscriber left"
                                                     : "no subscriber joined";
                } else if (replay.open_sensors > 0) {
                    why = "a replay was still fetching " + std::to_string(replay.open_sensors) +
                          " sensors";
                } else if (after < options.caught_up_heartbeats) {
                    why = "a subscriber joined " + std::to_string(after) + " heartbeats ago";
                } else {
                    why = "replay requests were still arriving";
                }
                log_warn(options.log_component,
                         "linger bound of " + seconds(bound) +
                             " passed before the subscribers were known to have caught up (" + why +
                             ")");
                return LingerEnd::bound;
            }
            const auto keep_alive_due = keep_alive();
            wait_readable(fds, std::min({next, until, keep_alive_due}));
        }
    }

    static std::string seconds(double s) {
        std::array<char, 32> buf{};
        std::snprintf(buf.data(), buf.size(), "%.1f s", s);
        return buf.data();
    }
};

SourcePump::SourcePump(PumpOptions options, std::unique_ptr<Source> source,
                       ReliablePublisher& publisher) {
    if (auto problem = sensor_id_problem(options.sensor_id)) {
        throw std::invalid_argument("SourcePump: sensor id: " + *problem);
    }
    if (!source) throw std::invalid_argument("SourcePump: no source");
    impl_ = std::make_unique<Impl>(std::move(options), std::move(source), publisher);
}

SourcePump::~SourcePump() = default;

Source& SourcePump::source() noexcept {
    return *impl_->source;
}

PumpStatus SourcePump::status() const {
    return impl_->status();
}

PumpSummary SourcePump::run(const StopFlag& stop) {
    auto& d = *impl_;
    const auto& hooks = d.options.hooks;
    const auto& component = d.options.log_component;
    if (hooks.ready) hooks.ready(d.status());

    Handoff handoff(std::max<std::size_t>(1, d.options.max_queued));
    std::exception_ptr source_error;
    std::thread reader([&] { d.read(handoff, source_error); });
    try {
        d.pump(stop, handoff);
    } catch (...) {
        d.source->request_stop();
        handoff.close();
        reader.join();
        throw;
    }
    const auto end = stop.requested() ? PumpEnd::stop_requested : PumpEnd::end_of_input;
    if (hooks.stopping) hooks.stopping(end, d.status());
    d.source->request_stop();
    handoff.close();
    reader.join();
    if (source_error) std::rethrow_exception(source_error);
    std::vector<Reading> batch;
    d.publish_queued(handoff, batch);
    d.publisher.flush();
    log_info(component, "published up to seq " + std::to_string(d.status().published_up_to));

    const auto lingered = end == PumpEnd::end_of_input ? d.linger(stop) : LingerEnd::none;
    d.publisher.close();
    log_info(component, stop.requested() ? "stopped by signal" : "done");
    return PumpSummary{d.status().published_up_to, d.readings, end, lingered};
}

}  // namespace rill
