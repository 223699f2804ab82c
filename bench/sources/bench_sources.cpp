// Throughput of the measurement sources: the simulator (goal: >= 1 M measurements/s on one
// core, for load tests) and the DHT frame decoder.
#include <benchmark/benchmark.h>

#include <array>
#include <vector>

#include "rill/dht.hpp"
#include "rill/sim_source.hpp"

namespace {

using namespace std::chrono_literals;

void BM_SimNext(benchmark::State& state) {
    rill::SimSource sim({.interval = 1us, .seed = 1, .paced = false});
    for (auto _ : state) {
        auto m = sim.next();
        benchmark::DoNotOptimize(m);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SimNext);

// next_batch at a paced rate of 1 GHz: always behind, so every call returns `max` at once;
// this is the path a load generator at --rate 1000000 takes.
void BM_SimNextBatch(benchmark::State& state) {
    const auto max = static_cast<std::size_t>(state.range(0));
    rill::SimSource sim({.interval = 1ns, .seed = 1});
    std::vector<rill::Measurement> out;
    out.reserve(max);
    std::int64_t items = 0;
    for (auto _ : state) {
        out.clear();
        items += static_cast<std::int64_t>(sim.next_batch(out, max));
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(items);
}
BENCHMARK(BM_SimNextBatch)->Arg(1)->Arg(64)->Arg(1024);

void BM_DhtDecode(benchmark::State& state) {
    const std::array<std::uint8_t, 5> frame{0x02, 0x8C, 0x80, 0x65, 0x73};
    std::vector<std::chrono::nanoseconds> edges{0us, 160us};
    auto t = 160us;
    for (int bit = 0; bit < 40; ++bit) {
        t += ((frame[static_cast<std::size_t>(bit / 8)] >> (7 - bit % 8)) & 1) ? 120us : 76us;
        edges.push_back(t);
    }
    for (auto _ : state) {
        auto r = rill::decode_dht_falling_edges(edges, rill::DhtModel::dht22);
        benchmark::DoNotOptimize(r);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DhtDecode);

}  // namespace

BENCHMARK_MAIN();
