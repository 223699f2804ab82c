// bench-transport: readings/s over TCP loopback through rill's Publisher/Subscriber and
// Pusher/Puller, next to plain cppzmq on the same socket pair with frames of the same size.
//
// Each case runs a sender thread and a receiver thread on their own zmq context with
// unlimited high-water marks; the rate is measured on the receiver, from the first to the last
// reading that arrived, counting what arrived. Prints one line per case:
//   <case>: <N> readings/s, raw libzmq <M> msgs/s, ratio <R>
// where raw is plain cppzmq sending single-reading-sized [topic, payload] messages, so the
// ratio of a batched case says how many times more readings than raw messages get through.
//
// The "reliable" cases send through ReliablePublisher (outbox append with fsync never, then
// publish; no replay service) to a Subscriber: the sender's CPU per reading then includes the
// outbox's encode and write.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "rill/codec.hpp"
#include "rill/reliable.hpp"
#include "rill/stream.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

enum class Pattern { pubsub, pushpull, reliable };

struct Result {
    std::uint64_t received = 0;
    double seconds = 0;
    double sender_cpu = 0;    // CPU seconds of the sending thread while it sent
    double receiver_cpu = 0;  // CPU seconds of the receiving thread while it received
    [[nodiscard]] double ns_per(double cpu) const {
        return received > 0 ? cpu * 1e9 / double(received) : 0;
    }
    [[nodiscard]] double rate() const { return seconds > 0 ? double(received) / seconds : 0; }
};

double thread_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

rill::Reading make_reading(std::uint64_t seq) {
    rill::Reading r;
    r.sensor = "greenhouse-07";
    r.seq = seq;
    r.ts = rill::Timestamp{std::chrono::microseconds{1'763'719'200'000'000LL}};
    r.temperature = 21.5f;
    r.humidity = 40.25f;
    return r;
}

rill::SocketOptions unlimited() {
    rill::SocketOptions o;
    o.send_hwm = 0;
    o.recv_hwm = 0;
    return o;
}

// Counts arrivals between the first and the last; stops at `expected` or after 2 s idle.
struct Meter {
    std::uint64_t expected;
    std::uint64_t received = 0;
    Clock::time_point first{};
    Clock::time_point last{};
    void add(std::uint64_t n) {
        const auto t = Clock::now();
        if (received == 0) first = t;
        received += n;
        last = t;
    }
    [[nodiscard]] bool done() const { return received >= expected; }
    [[nodiscard]] Result result() const {
        // The first arrival opens the clock: count the readings after it.
        const auto n = received > 0 ? received - 1 : 0;
        return {n, std::chrono::duration<double>(last - first).count()};
    }
};

// --- rill ------------------------------------------------------------------------------------

Result run_rill(Pattern pattern, std::uint64_t n, std::size_t per_frame) {
    zmq::context_t ctx(1);
    std::atomic<bool> ready{false};
    std::atomic<bool> receiver_done{false};
    std::string endpoint;
    std::atomic<bool> bound{false};
    double sender_cpu = 0;

    std::thread sender([&] {
        rill::BatchOptions batch{.max_readings = per_frame};
        std::vector<rill::Reading> frame;
        for (std::size_t i = 0; i < per_frame; ++i)
            frame.push_back(make_reading(i + 1));
        auto send_all = [&](auto&& send_one, auto&& send_frame) {
            const double cpu0 = thread_cpu();
            std::uint64_t seq = 0;
            if (per_frame == 1) {
                auto r = make_reading(1);
                while (seq < n) {
                    r.seq = ++seq;
                    send_one(r);
                }
            } else {
                while (seq < n) {
                    for (auto& r : frame)
                        r.seq = ++seq;
                    send_frame(frame);
                }
            }
            sender_cpu = thread_cpu() - cpu0;
        };
        if (pattern == Pattern::pubsub) {
            rill::Publisher pub("@tcp://127.0.0.1:0", {.socket = unlimited(),
                                                       .batch = batch,
                                                       .heartbeat_interval = 0ms,
                                                       .metrics = nullptr,
                                                       .context = &ctx});
            endpoint = pub.bound().front();
            bound = true;
            while (!ready) {
                pub.heartbeat();
                std::this_thread::sleep_for(10ms);
            }
            send_all([&](const rill::Reading& r) { pub.publish(r); },
                     [&](const std::vector<rill::Reading>& f) { pub.publish(f); });
            while (!receiver_done)
                std::this_thread::sleep_for(10ms);
        } else if (pattern == Pattern::reliable) {
            std::string tmpl =
                (std::filesystem::temp_directory_path() / "bench-transport-XXXXXX").string();
            if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
            {
                rill::ReliablePublisherOptions o;
                o.outbox_dir = tmpl;
                o.outbox.fsync = rill::FsyncPolicy::never;
                o.outbox.max_age = 0s;
                o.publish_endpoints = "@tcp://127.0.0.1:0";
                o.replay_endpoints = "";
                o.publisher = {.socket = unlimited(),
                               .batch = batch,
                               .heartbeat_interval = 0ms,
                               .metrics = nullptr,
                               .context = &ctx};
                rill::ReliablePublisher rp(std::move(o));
                endpoint = rp.publisher().bound().front();
                bound = true;
                while (!ready) {
                    rp.publisher().heartbeat();
                    std::this_thread::sleep_for(10ms);
                }
                auto one = make_reading(1);
                send_all(
                    [&](const rill::Reading& r) {
                        one = r;
                        (void)rp.publish(std::span<rill::Reading>(&one, 1));
                    },
                    [&](std::vector<rill::Reading>& f) { (void)rp.publish(f); });
                while (!receiver_done)
                    std::this_thread::sleep_for(10ms);
            }
            std::filesystem::remove_all(tmpl);
        } else {
            rill::Pusher push("@tcp://127.0.0.1:0",
                              {.socket = unlimited(), .batch = batch, .context = &ctx});
            endpoint = push.bound().front();
            bound = true;
            while (!ready)
                std::this_thread::sleep_for(1ms);
            send_all([&](const rill::Reading& r) { (void)push.push(r); },
                     [&](const std::vector<rill::Reading>& f) { (void)push.push(f); });
            while (!receiver_done)
                std::this_thread::sleep_for(10ms);
        }
    });

    while (!bound)
        std::this_thread::sleep_for(1ms);
    Meter meter{n};
    double receiver_cpu = 0;
    if (pattern != Pattern::pushpull) {
        rill::Subscriber sub(endpoint, {.socket = unlimited(), .context = &ctx});
        while (!ready) {
            if (auto e = sub.receive(100ms); e && std::holds_alternative<rill::HeartbeatSeen>(*e)) {
                ready = true;
            }
        }
        const double cpu0 = thread_cpu();
        while (!meter.done()) {
            auto e = sub.receive(2s);
            if (!e) break;
            if (auto* b = std::get_if<rill::ReadingBatch>(&*e)) meter.add(b->readings.size());
        }
        receiver_cpu = thread_cpu() - cpu0;
    } else {
        rill::Puller pull(endpoint, {.socket = unlimited(), .context = &ctx});
        ready = true;
        const double cpu0 = thread_cpu();
        while (!meter.done()) {
            auto r = pull.receive(2s);
            if (!r) break;
            meter.add(r->size());
        }
        receiver_cpu = thread_cpu() - cpu0;
    }
    receiver_done = true;
    sender.join();
    auto result = meter.result();
    result.sender_cpu = sender_cpu;
    result.receiver_cpu = receiver_cpu;
    return result;
}

// --- raw cppzmq ----------------------------------------------------------------------------

Result run_raw(Pattern pattern, std::uint64_t n) {
    zmq::context_t ctx(1);
    const auto sample = make_reading(1);
    const std::string topic = sample.sensor;
    const std::string payload(rill::encode(sample).size(), 'x');
    const auto send_type =
        pattern != Pattern::pushpull ? zmq::socket_type::pub : zmq::socket_type::push;
    const auto recv_type =
        pattern != Pattern::pushpull ? zmq::socket_type::sub : zmq::socket_type::pull;
    zmq::socket_t out(ctx, send_type);
    out.set(zmq::sockopt::sndhwm, 0);
    out.set(zmq::sockopt::linger, 0);
    out.bind("tcp://127.0.0.1:0");
    const auto endpoint = out.get(zmq::sockopt::last_endpoint);
    std::atomic<bool> ready{false};
    std::atomic<bool> receiver_done{false};
    double sender_cpu = 0;

    std::thread sender([&] {
        // Warm-up messages until the receiver has one: its subscription is in effect.
        const std::string warm = "warm";
        while (!ready) {
            (void)out.send(zmq::buffer(warm), zmq::send_flags::sndmore);
            (void)out.send(zmq::buffer(payload), zmq::send_flags::none);
            std::this_thread::sleep_for(10ms);
        }
        const double cpu0 = thread_cpu();
        for (std::uint64_t i = 0; i < n; ++i) {
            (void)out.send(zmq::buffer(topic), zmq::send_flags::sndmore);
            (void)out.send(zmq::buffer(payload), zmq::send_flags::none);
        }
        sender_cpu = thread_cpu() - cpu0;
        while (!receiver_done)
            std::this_thread::sleep_for(10ms);
    });

    zmq::socket_t in(ctx, recv_type);
    in.set(zmq::sockopt::rcvhwm, 0);
    in.set(zmq::sockopt::linger, 0);
    in.set(zmq::sockopt::rcvtimeo, 2000);
    if (pattern != Pattern::pushpull) in.set(zmq::sockopt::subscribe, "");
    in.connect(endpoint);
    Meter meter{n};
    zmq::message_t t;
    zmq::message_t p;
    double cpu0 = 0;
    for (;;) {
        if (!in.recv(t)) break;
        if (!in.recv(p)) break;
        if (t.to_string_view() == "warm") {
            ready = true;
            cpu0 = thread_cpu();
            continue;
        }
        meter.add(1);
        if (meter.done()) break;
    }
    const double receiver_cpu = thread_cpu() - cpu0;
    receiver_done = true;
    sender.join();
    out.close();
    in.close();
    auto result = meter.result();
    result.sender_cpu = sender_cpu;
    result.receiver_cpu = receiver_cpu;
    return result;
}

void print(const std::string& name, const Result& r, const Result& raw) {
    std::printf("%s: %.0f readings/s, raw libzmq %.0f msgs/s, ratio %.2f\n", name.c_str(), r.rate(),
                raw.rate(), raw.rate() > 0 ? r.rate() / raw.rate() : 0.0);
    if (r.received == 0) std::printf("  (nothing arrived)\n");
    std::printf(
        "  cpu ns per reading: sender %.0f, receiver %.0f; raw per msg: sender %.0f, "
        "receiver %.0f\n",
        r.ns_per(r.sender_cpu), r.ns_per(r.receiver_cpu), raw.ns_per(raw.sender_cpu),
        raw.ns_per(raw.receiver_cpu));
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bench-transport: rill stream throughput over TCP loopback vs raw libzmq"};
    bool quick = false;
    std::size_t batch = 100;
    app.add_flag("--quick", quick, "Fewer messages: finishes in well under 30 s")
        ->envname("RILL_BENCH_QUICK");
    app.add_option("--batch", batch, "Readings per frame in the batched cases")
        ->envname("RILL_BENCH_BATCH");
    CLI11_PARSE(app, argc, argv);

    const std::uint64_t single = quick ? 300'000 : 2'000'000;
    const std::uint64_t batched = quick ? 2'000'000 : 10'000'000;
    std::printf(
        "bench-transport: %llu single readings, %llu batched readings (%zu per frame) "
        "per run, best of 3 interleaved runs, TCP loopback, unlimited HWM\n",
        static_cast<unsigned long long>(single), static_cast<unsigned long long>(batched), batch);

    // The machine is shared: each figure is the best of `rounds` interleaved runs, so that a
    // burst of someone else's load does not decide a ratio.
    const int rounds = 3;
    auto best = [](Result& b, const Result& r) {
        if (r.rate() > b.rate()) b = r;
    };
    for (const auto pattern : {Pattern::pubsub, Pattern::pushpull, Pattern::reliable}) {
        const std::string name = pattern == Pattern::pubsub     ? "pubsub"
                                 : pattern == Pattern::pushpull ? "pushpull"
                                                                : "reliable";
        Result raw;
        Result one;
        Result many;
        for (int i = 0; i < rounds; ++i) {
            best(raw, run_raw(pattern, single));
            best(one, run_rill(pattern, single, 1));
            best(many, run_rill(pattern, batched, batch));
        }
        print(name + " 1/frame", one, raw);
        print(name + " " + std::to_string(batch) + "/frame", many, raw);
    }
    return 0;
}
