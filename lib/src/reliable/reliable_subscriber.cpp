#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "replay_keys.hpp"
#include "rill/log.hpp"
#include "rill/reliable.hpp"

namespace rill {

namespace {

using Clock = std::chrono::steady_clock;

// One contiguous range of one sensor for the replay thread to fetch.
struct Job {
    std::string sensor;
    std::string endpoint;
    SeqRange range;
};

// What the replay thread fetched for part of a job, or how the job ended.
struct Fetched {
    std::string sensor;
    std::optional<SeqRange> covered;  // seqs now accounted for: delivered or lost
    std::vector<Reading> readings;
    std::vector<SeqRange> lost;
    bool done = false;  // the job is over
    std::string error;  // the job failed (done is set)
};

bool matches(const std::vector<std::string>& prefixes, std::string_view sensor) {
    if (prefixes.empty()) return true;
    for (const auto& p : prefixes) {
        if (sensor.starts_with(p)) return true;
    }
    return false;
}

// A job never spans more than this many readings, so one sensor's long backlog does not keep
// the replay thread from the others for long.
constexpr std::uint64_t max_job_readings = 1'000'000;

}  // namespace

struct ReliableSubscriber::Impl {
    struct SensorState {
        std::string endpoint;    // its publisher's replay endpoint, resolved
        bool announced = false;  // a heartbeat listed it
        SeqRanges wanted;        // seqs missing, not yet fetched or lost
        bool inflight = false;   // a job for it is queued or running
        // A gap was seen and no heartbeat listing the sensor since. A gap often means its
        // publisher restarted, maybe with a new replay endpoint that only its next heartbeat
        // announces: asking the previous one would wait for a dead endpoint's timeout.
        bool await_heartbeat = false;
        Clock::time_point retry_at{};
    };

    ReliableSubscriberOptions options;
    StoredRanges stored;
    Subscriber sub;
    std::map<std::string, SensorState, std::less<>> sensors;
    std::deque<ReliableEvent> ready;
    ReliableSubscriberStats st;

    Counter& m_requests;
    Counter& m_failures;
    Counter& m_replayed;
    Counter& m_lost;
    Gauge& m_wanted;

    // Shared with the replay thread.
    std::mutex mutex;
    std::condition_variable wake_worker;
    std::condition_variable space;
    std::deque<Job> jobs;
    std::deque<Fetched> fetched;
    std::size_t fetched_readings = 0;
    bool stopping = false;
    std::atomic<std::uint64_t> requests{0};
    std::thread worker;

    static MetricsRegistry& registry_of(const ReliableSubscriberOptions& o) {
        return o.subscriber.metrics ? *o.subscriber.metrics : default_registry();
    }

    Impl(ReliableSubscriberOptions o, StoredRanges s)
        : options(std::move(o)),
          stored(std::move(s)),
          sub(options.endpoints, options.subscriber),
          m_requests(registry_of(options).counter("rill_replay_requests_total",
                                                  "Replay requests sent to publishers")),
          m_failures(registry_of(options).counter(
              "rill_replay_failures_total", "Replay requests that failed (timeout or error)")),
          m_replayed(registry_of(options).counter("rill_replay_readings_total",
                                                  "Readings received by replay")),
          m_lost(registry_of(options).counter(
              "rill_readings_lost_total",
              "Readings the publisher no longer had when asked (outbox full or too old)")),
          m_wanted(registry_of(options).gauge("rill_replay_wanted_readings",
                                              "Readings known missing and not yet replayed")) {
        if (options.replay_chunk == 0 || options.replay_chunk > limits::max_batch_readings) {
            throw std::invalid_argument("replay_chunk must be 1 to " +
                                        std::to_string(limits::max_batch_readings));
        }
        worker = std::thread([this] { run_worker(); });
    }

    ~Impl() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        wake_worker.notify_all();
        space.notify_all();
        worker.join();
    }

    // --- owner thread ------------------------------------------------------------------------

    void on_stream(StreamEvent&& ev) {
        if (auto* b = std::get_if<ReadingBatch>(&ev)) {
            if (b->readings.empty()) return;
            auto it = sensors.find(b->readings.front().sensor);
            if (it != sensors.end() && !it->second.wanted.empty()) {
                for (const auto& r : b->readings)
                    it->second.wanted.erase(r.seq);
            }
            ready.emplace_back(Delivery{std::move(b->readings), false});
        } else if (auto* g = std::get_if<Gap>(&ev)) {
            ++st.gaps;
            auto& s = sensors[g->sensor];
            s.wanted.insert(SeqRange{g->from, g->to});
            s.await_heartbeat = true;
            ready.emplace_back(std::move(*g));
        } else if (auto* h = std::get_if<HeartbeatSeen>(&ev)) {
            for (const auto& [sensor, newest] : h->heartbeat.newest) {
                if (!matches(options.subscriber.prefixes, sensor)) continue;
                auto& s = sensors[sensor];
                s.endpoint = h->replay_endpoint;
                s.await_heartbeat = false;
                if (!s.announced) {
                    s.announced = true;
                    reconcile(sensor, newest, s);
                }
            }
            ready.emplace_back(std::move(*h));
        } else if (auto* silent = std::get_if<PublisherSilent>(&ev)) {
            ready.emplace_back(std::move(*silent));
        } else if (auto* back = std::get_if<PublisherBack>(&ev)) {
            ready.emplace_back(std::move(*back));
        }
    }

    // The first heartbeat listing `sensor`: everything up to where the stream takes over that
    // the owner has not stored is wanted.
    void reconcile(const std::string& sensor, std::uint64_t newest, SensorState& s) {
        std::uint64_t upto = newest;
        if (const auto expected = sub.expected(sensor)) {
            upto = *expected - 1;  // the stream delivers (or reports as gaps) from there on
        } else {
            sub.expect(sensor, newest + 1);
        }
        if (upto == 0) return;
        const SeqRanges have = stored ? stored(sensor) : SeqRanges{};
        std::uint64_t missing = 0;
        for (const auto& r : have.missing_in(SeqRange{1, upto})) {
            s.wanted.insert(r);
            missing += r.size();
        }
        if (missing > 0) {
            log_info("replay", "sensor " + sensor + ": " + std::to_string(missing) +
                                   " readings up to seq " + std::to_string(upto) +
                                   " are not stored; asking its publisher");
        }
    }

    void schedule() {
        const auto now = Clock::now();
        bool queued = false;
        for (auto& [sensor, s] : sensors) {
            if (s.inflight || s.wanted.empty() || now < s.retry_at || !s.announced ||
                s.await_heartbeat) {
                continue;
            }
            if (s.endpoint.empty()) {
                for (const auto& r : s.wanted.ranges()) {
                    report_lost(sensor, r, "its publisher has no replay service");
                }
                s.wanted = SeqRanges{};
                continue;
            }
            SeqRange r = *s.wanted.front();
            if (r.last - r.first >= max_job_readings) r.last = r.first + max_job_readings - 1;
            {
                std::lock_guard lock(mutex);
                jobs.push_back(Job{sensor, s.endpoint, r});
            }
            s.inflight = true;
            queued = true;
        }
        if (queued) wake_worker.notify_one();
    }

    void report_lost(const std::string& sensor, SeqRange r, std::string reason) {
        st.lost_readings += r.size();
        m_lost.inc(r.size());
        log_warn("replay", "sensor " + sensor + ": readings " + std::to_string(r.first) + ".." +
                               std::to_string(r.last) + " are lost: " + reason);
        ready.emplace_back(Lost{sensor, r, std::move(reason)});
    }

    void take_fetched() {
        std::deque<Fetched> got;
        {
            std::lock_guard lock(mutex);
            if (fetched.empty()) return;
            got.swap(fetched);
            fetched_readings = 0;
        }
        space.notify_all();
        for (auto& f : got) {
            auto& s = sensors[f.sensor];
            if (f.covered) s.wanted.erase(*f.covered);
            for (const auto& l : f.lost) {
                report_lost(f.sensor, l, "dropped by the publisher's outbox");
            }
            if (!f.readings.empty()) {
                st.replayed_readings += f.readings.size();
                m_replayed.inc(f.readings.size());
                ready.emplace_back(Delivery{std::move(f.readings), true});
            }
            if (f.done) {
                s.inflight = false;
                if (!f.error.empty()) {
                    ++st.replay_failures;
                    m_failures.inc();
                    s.retry_at = Clock::now() + options.replay_backoff;
                    log_warn("replay", "sensor " + f.sensor + " from " + s.endpoint + ": " +
                                           f.error + "; retrying in " +
                                           std::to_string(options.replay_backoff.count()) + " ms");
                }
            }
        }
    }

    bool any_inflight() const {
        for (const auto& [sensor, s] : sensors) {
            if (s.inflight) return true;
        }
        return false;
    }

    std::optional<ReliableEvent> pop() {
        if (ready.empty()) return std::nullopt;
        auto ev = std::move(ready.front());
        ready.pop_front();
        return ev;
    }

    std::optional<ReliableEvent> receive(std::chrono::milliseconds timeout) {
        if (auto ev = pop()) return ev;
        take_fetched();
        schedule();
        if (auto ev = pop()) return ev;
        // While replays run, look at their results at least every 10 ms.
        const auto wait =
            any_inflight() ? std::min(timeout, std::chrono::milliseconds(10)) : timeout;
        if (auto ev = sub.receive(wait)) on_stream(std::move(*ev));
        if (ready.empty()) take_fetched();
        return pop();
    }

    std::uint64_t wanted() const noexcept {
        std::uint64_t n = 0;
        for (const auto& [sensor, s] : sensors)
            n += s.wanted.count();
        return n;
    }

    // --- replay thread -----------------------------------------------------------------------

    void deliver(Fetched&& f) {
        std::unique_lock lock(mutex);
        space.wait(lock, [&] { return stopping || fetched_readings < options.replay_buffer; });
        if (stopping) return;
        fetched_readings += f.readings.size();
        fetched.push_back(std::move(f));
    }

    void run_worker() noexcept {
        std::map<std::string, std::unique_ptr<ReplayClient>> clients;
        zmq::context_t& ctx =
            options.subscriber.context ? *options.subscriber.context : default_context();
        for (;;) {
            Job job;
            {
                std::unique_lock lock(mutex);
                wake_worker.wait(lock, [&] { return stopping || !jobs.empty(); });
                if (stopping) return;
                job = std::move(jobs.front());
                jobs.pop_front();
            }
            std::uint64_t pos = job.range.first;
            try {
                auto& client = clients[job.endpoint];
                if (!client) {
                    client = std::make_unique<ReplayClient>(
                        ctx, job.endpoint,
                        reliable_detail::replay_socket_options(options, job.endpoint));
                }
                while (pos <= job.range.last) {
                    {
                        std::lock_guard lock(mutex);
                        if (stopping) return;
                    }
                    const std::uint64_t to =
                        std::min(job.range.last, pos + options.replay_chunk - 1);
                    auto res = client->fetch(job.sensor, pos, to,
                                             {options.replay_chunk, options.replay_call});
                    m_requests.inc(res.requests);
                    requests += res.requests;
                    Fetched f{job.sensor, SeqRange{pos, to}, std::move(res.readings),
                              std::move(res.lost)};
                    // Seqs above the publisher's newest were announced but it does not have
                    // them (its outbox was replaced): they will never come.
                    if (res.newest < to) {
                        const std::uint64_t from = std::max(pos, res.newest + 1);
                        if (f.lost.empty() || f.lost.back().last < from) {
                            f.lost.push_back(SeqRange{from, to});
                        }
                    }
                    deliver(std::move(f));
                    pos = to + 1;
                }
                deliver(Fetched{job.sensor, std::nullopt, {}, {}, true, {}});
            } catch (const std::exception& e) {
                // Drop the client: a fresh socket after a failure avoids stale replies.
                clients.erase(job.endpoint);
                deliver(Fetched{job.sensor,
                                std::nullopt,
                                {},
                                {},
                                true,
                                std::string(e.what()).empty() ? "replay failed" : e.what()});
            }
        }
    }
};

ReliableSubscriber::ReliableSubscriber(ReliableSubscriberOptions options, StoredRanges stored)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(stored))) {}

ReliableSubscriber::~ReliableSubscriber() = default;

std::optional<ReliableEvent> ReliableSubscriber::receive(std::chrono::milliseconds timeout) {
    return impl_->receive(timeout);
}

std::uint64_t ReliableSubscriber::wanted() const noexcept {
    return impl_->wanted();
}

ReliableSubscriberStats ReliableSubscriber::stats() const noexcept {
    auto s = impl_->st;
    s.replay_requests = impl_->requests.load();
    s.wanted_readings = impl_->wanted();
    impl_->m_wanted.set(static_cast<double>(s.wanted_readings));
    return s;
}

Subscriber& ReliableSubscriber::subscriber() noexcept {
    return impl_->sub;
}

}  // namespace rill
