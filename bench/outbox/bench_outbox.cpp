// bench-outbox: outbox append rate (readings/s and MB/s) per fsync policy, single readings and
// batches of 100, the replay read rate and a replay answer decoded and re-encoded vs spliced
// from the stored bytes. The outbox lives in a fresh directory under
// $RILL_BENCH_DIR (default $TMPDIR or /tmp): point it at the disk you care about, e.g. the SD
// card of a Raspberry Pi.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "rill/crc32c.hpp"
#include "rill/log.hpp"
#include "rill/outbox.hpp"
#include "rill/replay.hpp"

namespace {

namespace fs = std::filesystem;

// A fresh directory, removed with its content on destruction.
class ScratchDir {
  public:
    ScratchDir() {
        const char* base = std::getenv("RILL_BENCH_DIR");
        if (!base || !*base) base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/bench-outbox-XXXXXX";
        if (!mkdtemp(pattern.data())) throw std::runtime_error("cannot create " + pattern);
        path_ = pattern;
    }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

std::vector<rill::Reading> make_batch(std::size_t n) {
    std::vector<rill::Reading> batch(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto& r = batch[i];
        r.sensor = "greenhouse-07";
        r.ts = rill::Timestamp{
            std::chrono::microseconds{1'763'719'200'000'000LL + static_cast<long long>(i) * 1000}};
        r.temperature = 21.5f + static_cast<float>(i % 10) * 0.1f;
        r.humidity = 40.0f + static_cast<float>(i % 7);
    }
    return batch;
}

const char* policy_name(rill::FsyncPolicy p) {
    switch (p) {
        case rill::FsyncPolicy::always:
            return "always";
        case rill::FsyncPolicy::batch:
            return "batch";
        case rill::FsyncPolicy::never:
            return "never";
    }
    return "?";
}

void BM_append(benchmark::State& state) {
    const auto policy = static_cast<rill::FsyncPolicy>(state.range(0));
    const auto n = static_cast<std::size_t>(state.range(1));
    state.SetLabel(std::string("fsync=") + policy_name(policy));
    ScratchDir dir;
    rill::OutboxOptions options;
    options.fsync = policy;
    rill::Outbox outbox(dir.path(), options);
    auto batch = make_batch(n);
    for (auto _ : state)
        outbox.append(batch);
    const auto m = outbox.metrics();
    state.SetItemsProcessed(static_cast<std::int64_t>(m.appended_readings));
    state.SetBytesProcessed(static_cast<std::int64_t>(m.appended_bytes));
    state.counters["fsyncs"] = static_cast<double>(m.fsyncs);
    state.counters["bytes_per_reading"] =
        static_cast<double>(m.appended_bytes) / static_cast<double>(m.appended_readings);
}

// Fills `outbox` with `per_sensor` readings of each of 10 interleaved sensors, in batches of 10.
void fill_interleaved(rill::Outbox& outbox, std::uint64_t per_sensor) {
    auto batch = make_batch(10);
    for (std::uint64_t i = 0; i < per_sensor / 10; ++i) {
        for (int s = 0; s < 10; ++s) {
            for (auto& r : batch)
                r.sensor = "sensor-" + std::to_string(s);
            outbox.append(batch);
        }
    }
}

// A replay request: 100 readings from a random seq of one sensor among 10 interleaved ones.
void BM_read(benchmark::State& state) {
    ScratchDir dir;
    rill::OutboxOptions options;
    options.fsync = rill::FsyncPolicy::never;
    rill::Outbox outbox(dir.path(), options);
    const auto per_sensor = static_cast<std::uint64_t>(state.range(0));
    fill_interleaved(outbox, per_sensor);
    std::uint64_t x = 12345;
    std::int64_t readings = 0;
    for (auto _ : state) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        const auto from = 1 + (x >> 33) % (per_sensor - 100);
        auto got = outbox.read("sensor-3", from, 100);
        readings += static_cast<std::int64_t>(got.readings.size());
        benchmark::DoNotOptimize(got.readings.data());
    }
    state.SetItemsProcessed(readings);
}

// A replay server's answer (proto/replay_v1.md result bytes) to "sensor-3 from a random seq,
// state.range(1) readings" among 10 interleaved sensors (100 000 readings each, batches of 10):
// state.range(0) = 0 decodes the records and encodes the readings again (before issue 12),
// 1 splices the stored bytes (Outbox::read_payload, what ReliablePublisher answers with).
void BM_replay_answer(benchmark::State& state) {
    ScratchDir dir;
    rill::OutboxOptions options;
    options.fsync = rill::FsyncPolicy::never;
    rill::Outbox outbox(dir.path(), options);
    constexpr std::uint64_t per_sensor = 100'000;
    fill_interleaved(outbox, per_sensor);
    const bool stored = state.range(0) == 1;
    const auto count = static_cast<std::size_t>(state.range(1));
    std::uint64_t x = 12345;
    std::int64_t readings = 0;
    std::int64_t bytes = 0;
    for (auto _ : state) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        const auto from = 1 + (x >> 33) % (per_sensor - count);
        std::string result;
        if (stored) {
            const rill::ReplayPayloadReply reply{outbox.read_payload("sensor-3", from, count)};
            readings += static_cast<std::int64_t>(reply.stored.count);
            result = rill::encode_replay_reply(reply);
        } else {
            auto got = outbox.read("sensor-3", from, count);
            rill::ReplayReply reply;
            readings += static_cast<std::int64_t>(got.readings.size());
            reply.readings = std::move(got.readings);
            reply.first_available = got.first_available;
            reply.newest = got.newest;
            result = rill::encode_replay_reply(reply);
        }
        bytes += static_cast<std::int64_t>(result.size());
        benchmark::DoNotOptimize(result.data());
    }
    state.SetItemsProcessed(readings);
    state.SetBytesProcessed(bytes);
}

// Opening an outbox of state.range(0) MiB in 16 MiB segments (10 sensors, batches of 100):
// index files for the closed segments, a full verification of the newest one.
void BM_open(benchmark::State& state) {
    ScratchDir dir;
    rill::OutboxOptions options;
    options.fsync = rill::FsyncPolicy::never;
    options.max_bytes = 1ULL << 30;
    const auto target = static_cast<std::uint64_t>(state.range(0)) << 20;
    {
        rill::Outbox outbox(dir.path(), options);
        auto batch = make_batch(100);
        for (int s = 0; outbox.metrics().disk_bytes < target; s = (s + 1) % 10) {
            for (auto& r : batch)
                r.sensor = "sensor-" + std::to_string(s);
            outbox.append(batch);
        }
        outbox.sync();
    }
    std::uint64_t segments = 0;
    for (auto _ : state) {
        rill::Outbox outbox(dir.path(), options);
        segments = outbox.metrics().segments;
    }
    state.counters["segments"] = static_cast<double>(segments);
}

void BM_crc32c(benchmark::State& state) {
    const std::string data(1 << 20, 'x');
    for (auto _ : state)
        benchmark::DoNotOptimize(rill::crc32c(data));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(data.size()));
}

}  // namespace

BENCHMARK(BM_crc32c)->MinTime(0.2);
BENCHMARK(BM_open)
    ->ArgNames({"MiB"})
    ->Arg(256)
    ->Unit(benchmark::kMillisecond)
    ->MinTime(0.5)
    ->UseRealTime();
BENCHMARK(BM_append)
    ->ArgNames({"policy", "batch"})
    ->Args({static_cast<long>(rill::FsyncPolicy::never), 1})
    ->Args({static_cast<long>(rill::FsyncPolicy::never), 100})
    ->Args({static_cast<long>(rill::FsyncPolicy::batch), 1})
    ->Args({static_cast<long>(rill::FsyncPolicy::batch), 100})
    ->Args({static_cast<long>(rill::FsyncPolicy::always), 1})
    ->Args({static_cast<long>(rill::FsyncPolicy::always), 100})
    ->MinTime(0.5)
    ->UseRealTime();
BENCHMARK(BM_read)->ArgNames({"readings_per_sensor"})->Arg(100'000)->MinTime(0.5)->UseRealTime();
BENCHMARK(BM_replay_answer)
    ->ArgNames({"stored_bytes", "readings"})
    ->ArgsProduct({{0, 1}, {100, 1000, 10'000}})
    ->MinTime(0.5)
    ->UseRealTime();

int main(int argc, char** argv) {
    rill::set_log_level(rill::LogLevel::error);  // dropping whole segments is expected here
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
