#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "replay_keys.hpp"
#include "rill/log.hpp"
#include "rill/reliable.hpp"

namespace rill {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One contiguous range of one sensor for a lane to fetch from `endpoint`.
struct Job {
    std::uint64_t id = 0;
    std::string sensor;
    std::string endpoint;
    SeqRange range;
};

// How a job ended.
enum class Failure {
    none,
    timeout,  // no answer: the publisher may be down and come back
    invalid,  // the publisher answered, with an error or an answer that is not valid
    other,    // anything else (a socket failure, a bad endpoint)
};

// What a lane fetched for part of a job, or how the job ended.
struct Fetched {
    std::uint64_t job = 0;
    std::string sensor;
    std::optional<SeqRange> covered;  // seqs now accounted for: delivered, lost, invalid, skipped
    std::vector<Reading> readings;
    std::vector<SeqRange> lost;
    std::vector<InvalidReading> invalid;
    std::vector<SeqRange> skipped;
    bool done = false;  // the job is over
    Failure failure = Failure::none;
    std::optional<SeqRange> failed;  // the request that failed: seqs asked for
    std::string error;
};

bool matches(const std::vector<std::string>& prefixes, std::string_view sensor) {
    if (prefixes.empty()) return true;
    for (const auto& p : prefixes) {
        if (sensor.starts_with(p)) return true;
    }
    return false;
}

std::string range_text(SeqRange r) {
    return std::to_string(r.first) + ".." + std::to_string(r.last);
}

// A job never spans more than this many readings, so one sensor's long backlog does not keep
// its lane from the other sensors of the same publisher for long.
constexpr std::uint64_t max_job_readings = 1'000'000;

// At most this many lanes (replay endpoints served at once, one thread each). A job for another
// endpoint waits until a lane is idle.
constexpr std::size_t max_lanes = 16;

}  // namespace

struct ReliableSubscriber::Impl {
    struct SensorState {
        std::string endpoint;    // its publisher's replay endpoint, resolved
        bool announced = false;  // a heartbeat listed it
        SeqRanges wanted;        // seqs missing, not yet fetched or reported
        SeqRanges reported;      // seqs reported Lost (any kind): never asked for again
        std::uint64_t job = 0;   // the job queued or running for it; 0 = none
        std::string job_endpoint;
        // A gap was seen and no heartbeat listing the sensor since. A gap often means its
        // publisher restarted, maybe with a new replay endpoint that only its next heartbeat
        // announces: asking the previous one would wait for a dead endpoint's timeout. Bounded
        // by announce_wait() from await_since.
        bool await_heartbeat = false;
        Clock::time_point await_since{};
        Clock::time_point retry_at{};
        milliseconds backoff{0};  // the last failure's backoff; 0 after a success
        // Consecutive invalid answers to requests starting at invalid_from.
        unsigned invalid_answers = 0;
        std::uint64_t invalid_from = 0;
        Clock::time_point seen{};   // last listed by a heartbeat or seen in a gap or reading
        Clock::time_point timer{};  // the latest wake-up queued for it in `timers`
    };

    // One replay endpoint's worker: its jobs run one at a time on its own thread, so a slow or
    // broken endpoint delays only its own jobs.
    struct Lane {
        std::string endpoint;
        std::deque<Job> jobs;
        bool running = false;  // a job was taken and has not ended
        bool retire = false;
        std::thread thread;
    };

    ReliableSubscriberOptions options;
    StoredRanges stored;
    Subscriber sub;
    std::map<std::string, SensorState, std::less<>> sensors;
    // What schedule() looks at: the sensors whose state changed so that a job may be due now
    // (seqs became wanted, a job ended, a heartbeat listed it), and the times at which a
    // sensor's wait ends (a retry backoff, a heartbeat awaited). The owner calls schedule() at
    // every receive(): it must cost what the sensors with work cost, not what a publisher
    // carries (10,000 sensors at 1 reading/s each made it walk 10^8 sensors a second).
    std::set<std::string, std::less<>> to_schedule;
    std::multimap<Clock::time_point, std::string> timers;
    std::size_t inflight = 0;  // sensors with a job queued or running
    std::deque<ReliableEvent> ready;
    ReliableSubscriberStats st;
    std::uint64_t next_job = 1;
    milliseconds longest_interval{0};  // the longest heartbeat interval announced so far

    Counter& m_requests;
    Counter& m_failures;
    Counter& m_replayed;
    Counter& m_lost;
    Counter& m_skipped;
    Counter& m_evicted;
    RateLimitedLog evictions_log{"replay", "sensor eviction notices"};
    Gauge& m_wanted;

    // Replay sockets live in a context of their own: the destructor shuts it down, which
    // interrupts a request in flight at once (inproc:// endpoints need the stream's context).
    zmq::context_t replay_ctx{1};

    // Shared with the lanes.
    std::mutex mutex;
    std::condition_variable wake_lanes;
    std::condition_variable space;
    std::map<std::string, std::unique_ptr<Lane>, std::less<>> lanes;
    std::set<std::uint64_t> cancelled;  // running jobs to stop after their current request
    std::deque<Fetched> fetched;
    std::size_t fetched_readings = 0;
    bool stopping = false;
    std::atomic<std::uint64_t> requests{0};

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
              "Readings reported lost: the publisher no longer had them, its copy is invalid, or "
              "no heartbeat announced their sensor")),
          m_skipped(registry_of(options).counter(
              "rill_readings_skipped_total",
              "Seqs the publisher reserved and did not hold after a power cut: never used, or "
              "readings the power cut took back before they were synced")),
          m_evicted(registry_of(options).counter(
              "rill_reliable_sensors_evicted_total",
              "Idle sensors the replay side forgot because it tracked max_sensors")),
          m_wanted(registry_of(options).gauge("rill_replay_wanted_readings",
                                              "Readings known missing and not yet replayed")) {
        if (options.replay_chunk == 0 || options.replay_chunk > limits::max_batch_readings) {
            throw std::invalid_argument("replay_chunk must be 1 to " +
                                        std::to_string(limits::max_batch_readings));
        }
        if (options.replay_backoff <= milliseconds::zero() ||
            options.replay_backoff_max < options.replay_backoff) {
            throw std::invalid_argument("replay_backoff must be > 0 and <= replay_backoff_max");
        }
        if (options.replay_invalid_limit == 0) {
            throw std::invalid_argument("replay_invalid_limit must be >= 1");
        }
    }

    ~Impl() {
        {
            std::lock_guard lock(mutex);
            stopping = true;
        }
        wake_lanes.notify_all();
        space.notify_all();
        // Interrupts every blocking call on the replay sockets (they fail with ETERM).
        replay_ctx.shutdown();
        for (auto& [endpoint, lane] : lanes) {
            if (lane->thread.joinable()) lane->thread.join();
        }
    }

    // --- owner thread ------------------------------------------------------------------------

    // How long a sensor with a gap waits for a heartbeat listing it.
    milliseconds announce_wait() const {
        const auto interval = std::max(longest_interval, milliseconds(1000));
        return interval * std::max(1u, options.subscriber.silent_after_missed);
    }

    void await(SensorState& s) {
        if (!s.await_heartbeat) s.await_since = Clock::now();
        s.await_heartbeat = true;
    }

    // The sensor's state, made when new; marks it seen now. At more than max_sensors sensors,
    // idle ones (nothing wanted, no job, not waiting for a heartbeat) seen least recently are
    // forgotten, a sixteenth of the cap at a time so that a flood of invented ids costs one
    // scan per many new ids. A forgotten real sensor is set up again by its next heartbeat and
    // reconciled against the store, so nothing it misses goes unasked.
    SensorState& touch(const std::string& sensor) {
        const auto now = Clock::now();
        auto [it, added] = sensors.try_emplace(sensor);
        it->second.seen = now;
        const std::size_t cap = options.subscriber.max_sensors;
        if (!added || sensors.size() <= cap) return it->second;
        std::vector<std::pair<Clock::time_point, const std::string*>> idle;
        for (const auto& [name, st_] : sensors) {
            if (name != sensor && st_.job == 0 && st_.wanted.empty() && !st_.await_heartbeat) {
                idle.emplace_back(st_.seen, &name);
            }
        }
        const std::size_t want = sensors.size() - cap + std::max<std::size_t>(1, cap / 16);
        const std::size_t n = std::min(want, idle.size());
        std::nth_element(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(n), idle.end());
        std::vector<std::string> victims;
        for (std::size_t i = 0; i < n; ++i)
            victims.push_back(*idle[i].second);
        for (const auto& v : victims)
            sensors.erase(v);
        m_evicted.inc(n);
        if (n > 0) {
            evictions_log.log("tracking more than " + std::to_string(cap) +
                              " sensors (max_sensors): forgot " + std::to_string(n) +
                              " idle ones seen least recently, e.g. " + victims.front());
        }
        return it->second;
    }

    void on_stream(StreamEvent&& ev) {
        if (auto* b = std::get_if<ReadingBatch>(&ev)) {
            if (b->readings.empty()) return;
            auto it = sensors.find(b->readings.front().sensor);
            if (it != sensors.end()) it->second.seen = Clock::now();
            if (it != sensors.end() && !it->second.wanted.empty()) {
                for (const auto& r : b->readings)
                    it->second.wanted.erase(r.seq);
            }
            ready.emplace_back(Delivery{std::move(b->readings), false});
        } else if (auto* g = std::get_if<Gap>(&ev)) {
            ++st.gaps;
            auto& s = touch(g->sensor);
            for (const auto& r : s.reported.missing_in(SeqRange{g->from, g->to}))
                s.wanted.insert(r);
            await(s);
            if (!s.wanted.empty()) to_schedule.insert(g->sensor);
            ready.emplace_back(std::move(*g));
        } else if (auto* h = std::get_if<HeartbeatSeen>(&ev)) {
            longest_interval = std::max(longest_interval, h->heartbeat.interval);
            for (const auto& [sensor, newest] : h->heartbeat.newest) {
                if (!matches(options.subscriber.prefixes, sensor)) continue;
                auto& s = touch(sensor);
                if (s.endpoint != h->replay_endpoint) moved(sensor, s, h->replay_endpoint);
                s.await_heartbeat = false;
                if (!s.announced) {
                    s.announced = true;
                    reconcile(sensor, newest, s);
                }
                if (s.job == 0 && !s.wanted.empty()) to_schedule.insert(sensor);
            }
            ready.emplace_back(std::move(*h));
        } else if (auto* silent = std::get_if<PublisherSilent>(&ev)) {
            ready.emplace_back(std::move(*silent));
        } else if (auto* back = std::get_if<PublisherBack>(&ev)) {
            ready.emplace_back(std::move(*back));
        }
    }

    // The sensor's publisher announces another replay endpoint: a job for the previous one is
    // withdrawn (or, when running, stopped after its current request and its outcome ignored),
    // and the sensor is asked at the new endpoint at once, with a fresh backoff.
    void moved(const std::string& sensor, SensorState& s, const std::string& endpoint) {
        if (s.job != 0 && s.job_endpoint != endpoint) {
            std::lock_guard lock(mutex);
            bool withdrawn = false;
            if (auto it = lanes.find(s.job_endpoint); it != lanes.end()) {
                auto& q = it->second->jobs;
                for (auto j = q.begin(); j != q.end(); ++j) {
                    if (j->id == s.job) {
                        q.erase(j);
                        withdrawn = true;
                        break;
                    }
                }
            }
            if (!withdrawn) cancelled.insert(s.job);
            s.job = 0;
            --inflight;
        }
        if (!s.endpoint.empty()) {
            log_info("replay", "sensor " + sensor + ": its replay endpoint is now " + endpoint);
        }
        s.endpoint = endpoint;
        s.retry_at = {};
        s.backoff = milliseconds::zero();
        s.invalid_answers = 0;
    }

    // The first heartbeat listing `sensor`: everything up to where the stream takes over that
    // the owner has not stored (and that was not reported lost) is wanted.
    void reconcile(const std::string& sensor, std::uint64_t newest, SensorState& s) {
        std::uint64_t upto = newest;
        if (const auto expected = sub.expected(sensor)) {
            upto = *expected - 1;  // the stream delivers (or reports as gaps) from there on
        } else {
            sub.expect(sensor, newest + 1);
        }
        if (upto == 0) return;
        SeqRanges have = stored ? stored(sensor) : SeqRanges{};
        for (const auto& r : s.reported.ranges())
            have.insert(r);
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

    // Queues `job` on its endpoint's lane, starting one when needed. False when every lane is
    // busy and none may be added (the job is tried again later).
    bool enqueue(Job job) {
        std::unique_lock lock(mutex);
        auto it = lanes.find(job.endpoint);
        if (it == lanes.end()) {
            if (lanes.size() >= max_lanes) {
                auto idle = lanes.begin();
                while (idle != lanes.end() &&
                       (idle->second->running || !idle->second->jobs.empty()))
                    ++idle;
                if (idle == lanes.end()) return false;
                auto lane = std::move(idle->second);
                lanes.erase(idle);
                lane->retire = true;
                lock.unlock();
                wake_lanes.notify_all();
                lane->thread.join();
                lock.lock();
            }
            auto lane = std::make_unique<Lane>();
            lane->endpoint = job.endpoint;
            Lane* raw = lane.get();
            it = lanes.emplace(job.endpoint, std::move(lane)).first;
            raw->thread = std::thread([this, raw] { run_lane(*raw); });
        }
        it->second->jobs.push_back(std::move(job));
        lock.unlock();
        wake_lanes.notify_all();
        return true;
    }

    // Queues the due jobs and reports what can never be fetched. Returns when it next has
    // something to do (a retry or an announcement wait ending).
    Clock::time_point schedule() {
        const auto now = Clock::now();
        while (!timers.empty() && timers.begin()->first <= now) {
            to_schedule.insert(std::move(timers.begin()->second));
            timers.erase(timers.begin());
        }
        // A sensor waiting until `at` is looked at again then.
        const auto wake_at = [&](const std::string& sensor, SensorState& s, Clock::time_point at) {
            if (s.timer == at) return;
            s.timer = at;
            timers.emplace(at, sensor);
        };
        for (auto a = to_schedule.begin(); a != to_schedule.end(); a = to_schedule.erase(a)) {
            const auto found = sensors.find(*a);
            if (found == sensors.end()) continue;  // forgotten meanwhile
            const std::string& sensor = found->first;
            SensorState& s = found->second;
            if (s.job != 0 || s.wanted.empty()) continue;
            if (s.await_heartbeat || !s.announced) {
                const auto wait = announce_wait();
                if (!s.await_heartbeat) s.await_since = now;  // not announced, no gap seen yet
                s.await_heartbeat = true;
                if (now < s.await_since + wait) {
                    wake_at(sensor, s, s.await_since + wait);
                    continue;
                }
                if (!s.announced) {
                    // No heartbeat names the sensor, so no publisher is known to hold it.
                    const auto reason = "no heartbeat lists sensor " + sensor + " within " +
                                        std::to_string(wait.count()) +
                                        " ms, so no replay service is known for it";
                    for (const auto& r : s.wanted.ranges())
                        report(sensor, r, reason, LossKind::dropped);
                    s.await_heartbeat = false;
                    continue;
                }
                // Announced before: its last announced endpoint is the best guess.
                s.await_heartbeat = false;
                log_info("replay", "sensor " + sensor + ": no heartbeat listed it for " +
                                       std::to_string(wait.count()) +
                                       " ms after a gap; asking its last replay endpoint");
            }
            if (now < s.retry_at) {
                wake_at(sensor, s, s.retry_at);
                continue;
            }
            if (s.endpoint.empty()) {
                for (const auto& r : s.wanted.ranges()) {
                    report(sensor, r, "its publisher has no replay service", LossKind::dropped);
                }
                continue;
            }
            SeqRange r = *s.wanted.front();
            if (r.last - r.first >= max_job_readings) r.last = r.first + max_job_readings - 1;
            const auto id = next_job++;
            if (!enqueue(Job{id, sensor, s.endpoint, r})) {
                wake_at(sensor, s, now + milliseconds(10));
                continue;
            }
            ++inflight;
            s.job = id;
            s.job_endpoint = s.endpoint;
            log_debug("replay",
                      "sensor " + sensor + ": asking " + s.endpoint + " for " + range_text(r));
        }
        return timers.empty() ? Clock::time_point::max() : timers.begin()->first;
    }

    // Reports `r` of `sensor` as never to be delivered: counted by kind, logged, remembered so
    // that it is neither asked for nor reported again.
    void report(const std::string& sensor, SeqRange r, std::string reason, LossKind kind) {
        auto& s = sensors[sensor];
        for (const auto& part : s.reported.missing_in(r)) {
            s.reported.insert(part);
            s.wanted.erase(part);
            if (kind == LossKind::skipped) {
                st.skipped_readings += part.size();
                m_skipped.inc(part.size());
                log_info("replay", "sensor " + sensor + ": seqs " + range_text(part) +
                                       " were skipped: " + reason);
            } else {
                st.lost_readings += part.size();
                if (kind == LossKind::invalid) st.invalid_readings += part.size();
                m_lost.inc(part.size());
                log_warn("replay", "sensor " + sensor + ": readings " + range_text(part) +
                                       " are lost: " + reason);
            }
            ready.emplace_back(Lost{sensor, part, reason, kind});
        }
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
        for (auto& f : got)
            take(f);
    }

    void take(Fetched& f) {
        auto& s = sensors[f.sensor];
        const bool current = f.job == s.job;
        if (current) {
            // Skipped and invalid first: a decoder may also list them as lost.
            for (const auto& r : f.skipped) {
                report(f.sensor, r,
                       "its publisher reserved them before a crash and never used them",
                       LossKind::skipped);
            }
            for (const auto& bad : f.invalid) {
                report(f.sensor, SeqRange{bad.seq, bad.seq},
                       "its publisher's copy is invalid: " + bad.problem, LossKind::invalid);
            }
            for (const auto& l : f.lost) {
                report(f.sensor, l, "dropped by the publisher's outbox", LossKind::dropped);
            }
            if (f.covered) s.wanted.erase(*f.covered);
        }
        if (!f.readings.empty()) {
            // From a withdrawn job too: they are the publisher's readings all the same.
            for (const auto& r : f.readings)
                s.wanted.erase(r.seq);
            st.replayed_readings += f.readings.size();
            m_replayed.inc(f.readings.size());
            ready.emplace_back(Delivery{std::move(f.readings), true});
        }
        if (f.done && !current) {
            // A withdrawn job has ended: forget that it was withdrawn.
            std::lock_guard lock(mutex);
            cancelled.erase(f.job);
        }
        if (!f.done || !current) return;
        s.job = 0;
        --inflight;
        to_schedule.insert(f.sensor);  // the rest of its wanted seqs, or its retry
        if (f.failure == Failure::none) {
            s.backoff = milliseconds::zero();
            s.invalid_answers = 0;
            return;
        }
        ++st.replay_failures;
        m_failures.inc();
        if (f.failure == Failure::invalid && f.failed) {
            if (s.invalid_answers > 0 && s.invalid_from == f.failed->first) {
                ++s.invalid_answers;
            } else {
                s.invalid_answers = 1;
                s.invalid_from = f.failed->first;
            }
            if (s.invalid_answers >= options.replay_invalid_limit) {
                const auto reason = std::to_string(s.invalid_answers) +
                                    " invalid answers in a row from " + s.job_endpoint +
                                    ", the last: " + f.error;
                for (const auto& r : s.reported.missing_in(*f.failed)) {
                    // Only what is still wanted: the stream may have delivered some.
                    SeqRanges part;
                    part.insert(r);
                    for (const auto& gone : s.wanted.missing_in(r))
                        part.erase(gone);
                    for (const auto& p : part.ranges())
                        report(f.sensor, p, reason, LossKind::invalid);
                }
                s.invalid_answers = 0;
                s.backoff = milliseconds::zero();
                s.retry_at = {};
                return;
            }
        }
        s.backoff = s.backoff == milliseconds::zero()
                        ? options.replay_backoff
                        : std::min(s.backoff * 2, options.replay_backoff_max);
        s.retry_at = Clock::now() + s.backoff;
        log_warn("replay", "sensor " + f.sensor + " from " + s.job_endpoint + ": " + f.error +
                               "; retrying in " + std::to_string(s.backoff.count()) + " ms");
    }

    bool any_inflight() const { return inflight > 0; }

    std::optional<ReliableEvent> pop() {
        if (ready.empty()) return std::nullopt;
        auto ev = std::move(ready.front());
        ready.pop_front();
        return ev;
    }

    std::optional<ReliableEvent> receive(milliseconds timeout) {
        if (auto ev = pop()) return ev;
        evictions_log.flush();
        take_fetched();
        const auto due = schedule();
        if (auto ev = pop()) return ev;
        // While replays run, look at their results at least every 10 ms; wake for the next
        // retry or announcement deadline.
        auto wait = any_inflight() ? std::min(timeout, milliseconds(10)) : timeout;
        if (due != Clock::time_point::max()) {
            const auto until = std::chrono::ceil<milliseconds>(due - Clock::now());
            wait = std::clamp(until, milliseconds::zero(), wait);
        }
        if (auto ev = sub.receive(wait)) on_stream(std::move(*ev));
        // A sensor the stream forgot (max_sensors) is tracked again from its next reading,
        // without a gap for what it missed: reconcile it with the owner at its next heartbeat.
        for (const auto& name : sub.take_forgotten()) {
            if (auto it = sensors.find(name); it != sensors.end()) it->second.announced = false;
        }
        if (ready.empty()) take_fetched();
        return pop();
    }

    std::uint64_t wanted() const noexcept {
        std::uint64_t n = 0;
        for (const auto& [sensor, s] : sensors)
            n += s.wanted.count();
        return n;
    }

    // --- lanes -------------------------------------------------------------------------------

    // Hands `f` to the owner, waiting while the buffer is full. False when stopping.
    bool deliver(Fetched&& f) {
        std::unique_lock lock(mutex);
        space.wait(lock, [&] { return stopping || fetched_readings < options.replay_buffer; });
        if (stopping) return false;
        fetched_readings += f.readings.size();
        fetched.push_back(std::move(f));
        return true;
    }

    // True when the lane must stop fetching `job` (stopping, or the job was withdrawn).
    bool abandon(std::uint64_t job) {
        std::lock_guard lock(mutex);
        return stopping || cancelled.contains(job);
    }

    void run_lane(Lane& lane) noexcept {
        std::unique_ptr<ReplayClient> client;
        zmq::context_t& ctx =
            lane.endpoint.starts_with("inproc://")
                ? (options.subscriber.context ? *options.subscriber.context : default_context())
                : replay_ctx;
        for (;;) {
            Job job;
            {
                std::unique_lock lock(mutex);
                lane.running = false;
                wake_lanes.wait(lock,
                                [&] { return stopping || lane.retire || !lane.jobs.empty(); });
                if (stopping || lane.retire) return;
                job = std::move(lane.jobs.front());
                lane.jobs.pop_front();
                lane.running = true;
            }
            if (!fetch(job, ctx, client)) return;
            std::lock_guard lock(mutex);
            cancelled.erase(job.id);
        }
    }

    // Fetches `job` and hands its results and end to the owner. False when stopping.
    bool fetch(const Job& job, zmq::context_t& ctx, std::unique_ptr<ReplayClient>& client) {
        std::uint64_t pos = job.range.first;
        std::uint64_t to = pos;
        Fetched end{job.id, job.sensor};
        end.done = true;
        try {
            if (!client) {
                client = std::make_unique<ReplayClient>(
                    ctx, job.endpoint,
                    reliable_detail::replay_socket_options(options, job.endpoint));
            }
            while (pos <= job.range.last) {
                if (abandon(job.id)) break;
                to = std::min(job.range.last, pos + options.replay_chunk - 1);
                auto res =
                    client->fetch(job.sensor, pos, to, {options.replay_chunk, options.replay_call});
                m_requests.inc(res.requests);
                requests += res.requests;
                Fetched f{job.id,
                          job.sensor,
                          SeqRange{pos, to},
                          std::move(res.readings),
                          std::move(res.lost),
                          std::move(res.invalid),
                          std::move(res.skipped)};
                // Seqs above the publisher's newest were announced but it does not have
                // them (its outbox was replaced): they will never come.
                if (res.newest < to) {
                    const std::uint64_t from = std::max(pos, res.newest + 1);
                    if (f.lost.empty() || f.lost.back().last < from) {
                        f.lost.push_back(SeqRange{from, to});
                    }
                }
                if (!deliver(std::move(f))) return false;
                pos = to + 1;
            }
        } catch (const RpcTimeout& e) {
            end.failure = Failure::timeout;
            end.error = e.what();
        } catch (const RpcError& e) {
            end.failure = Failure::invalid;
            end.error = e.what();
        } catch (const DecodeError& e) {
            end.failure = Failure::invalid;
            end.error = e.what();
        } catch (const std::exception& e) {
            end.failure = Failure::other;
            end.error = e.what();
        }
        if (end.failure != Failure::none) {
            {
                std::lock_guard lock(mutex);
                if (stopping) return false;
            }
            // A fresh socket after a failure avoids stale replies.
            client.reset();
            end.failed = SeqRange{pos, to};
            if (end.error.empty()) end.error = "replay failed";
        }
        return deliver(std::move(end));
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
