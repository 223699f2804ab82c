// bench-codec: ns per reading to encode and decode, single readings and batches of 100.
#include <benchmark/benchmark.h>

#include "rill/codec.hpp"

namespace {

std::vector<rill::Reading> make_batch(std::size_t n) {
    std::vector<rill::Reading> batch(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto& r = batch[i];
        r.sensor = "greenhouse-07";
        r.seq = 1'000'000 + i;
        r.ts = rill::Timestamp{
            std::chrono::microseconds{1'763'719'200'000'000LL + static_cast<long long>(i) * 1000}};
        r.temperature = 21.5f + static_cast<float>(i % 10) * 0.1f;
        r.humidity = 40.0f + static_cast<float>(i % 7);
    }
    return batch;
}

void BM_encode(benchmark::State& state) {
    const auto batch = make_batch(static_cast<std::size_t>(state.range(0)));
    std::string out;
    for (auto _ : state) {
        out.clear();
        rill::encode_batch(batch, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.counters["ns_per_reading"] =
        benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert,
                           benchmark::Counter::OneK::kIs1000);
    state.counters["bytes_per_reading"] =
        static_cast<double>(out.size()) / static_cast<double>(state.range(0));
}

void BM_decode(benchmark::State& state) {
    const auto payload = rill::encode_batch(make_batch(static_cast<std::size_t>(state.range(0))));
    std::vector<rill::Reading> out;
    for (auto _ : state) {
        out.clear();
        rill::decode_batch(payload, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.counters["ns_per_reading"] =
        benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert,
                           benchmark::Counter::OneK::kIs1000);
}

void BM_round_trip(benchmark::State& state) {
    const auto batch = make_batch(static_cast<std::size_t>(state.range(0)));
    std::string payload;
    std::vector<rill::Reading> out;
    for (auto _ : state) {
        payload.clear();
        out.clear();
        rill::encode_batch(batch, payload);
        rill::decode_batch(payload, out);
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * state.range(0));
    state.counters["ns_per_reading"] =
        benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)),
                           benchmark::Counter::kIsRate | benchmark::Counter::kInvert,
                           benchmark::Counter::OneK::kIs1000);
}

}  // namespace

BENCHMARK(BM_encode)->Arg(1)->Arg(100);
BENCHMARK(BM_decode)->Arg(1)->Arg(100);
BENCHMARK(BM_round_trip)->Arg(1)->Arg(100);
BENCHMARK_MAIN();
