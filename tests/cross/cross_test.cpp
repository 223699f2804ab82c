// The cross end-to-end test: a sensor-pub built for another architecture (arm64 or armhf, by
// ./run cross ARCH) runs under qemu-user and publishes to this build's native store-sub into a
// real PostgreSQL. It is killed with SIGKILL mid-stream and restarted on its outbox; the readings
// table must hold seq 1..newest once. The foreign program and its emulator come from
// RILL_CROSS_SENSOR_PUB and RILL_CROSS_EMULATOR ("qemu-aarch64-static -L /");
// without RILL_CROSS_SENSOR_PUB the program exits 77, which ctest reports as skipped.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <elf.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace rill::test;
using namespace std::chrono_literals;

namespace {

// Bounds for an emulated publisher on a loaded 2-core machine (qemu-user runs it several times
// slower than natively); the test goes on as soon as the condition holds.
constexpr auto store_bound = 180s;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

// e_machine of an ELF file (EM_AARCH64, EM_ARM, EM_X86_64 ...); 0 when it is not one.
unsigned elf_machine(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    Elf64_Ehdr h{};  // e_machine sits at the same offset in 32- and 64-bit headers
    in.read(reinterpret_cast<char*>(&h), sizeof h);
    if (!in || std::string(reinterpret_cast<const char*>(h.e_ident), 4) != ELFMAG) return 0;
    return h.e_machine;
}

// The emulator's words, then the foreign sensor-pub.
std::vector<std::string> foreign_sensor_pub() {
    std::vector<std::string> program;
    std::istringstream words(env("RILL_CROSS_EMULATOR"));
    for (std::string w; words >> w;)
        program.push_back(w);
    program.push_back(env("RILL_CROSS_SENSOR_PUB"));
    return program;
}

}  // namespace

TEST_CASE(
    "a foreign sensor-pub under qemu killed with SIGKILL and restarted: a native store-sub "
    "stores seq 1..newest once") {
    const auto path = env("RILL_CROSS_SENSOR_PUB");
    // The publisher really is of another architecture than this test and store-sub.
    REQUIRE(elf_machine(path) != 0);
    REQUIRE(elf_machine(path) != elf_machine("/proc/self/exe"));
    const auto program = foreign_sensor_pub();

    TempDir dir("rill-cross");
    TempPostgres pg;
    const auto outbox = dir.path() / "outbox";
    std::optional<StoreSub> sub;
    std::string stream;
    std::uint64_t stored_at_kill = 0;
    {
        SensorPub first(dir.path(),
                        {.sensor_id = "pi", .rate = 500, .outbox = outbox, .program = program});
        stream = first.stream();
        sub.emplace(dir.path(), StoreSubOptions{.connect = {stream}, .db = pg.conninfo()});
        REQUIRE(wait_rows(pg, 1'000, store_bound));
        first.process().signal(SIGKILL);
        REQUIRE(first.process().wait_for(10s) == 128 + SIGKILL);
        stored_at_kill = stored_rows(pg);
    }

    // The second run comes back on the same stream endpoint, continues after what its outbox
    // holds, and store-sub fetches whatever the kill cut off by replay.
    const std::uint64_t rest = 1'000;
    SensorPub second(dir.path(), {.sensor_id = "pi",
                                  .count = rest,
                                  .rate = 500,
                                  .outbox = outbox,
                                  .pub = "@" + stream,
                                  .program = program});
    CHECK(second.start_seq() >= stored_at_kill);
    const auto newest = second.wait_published(store_bound);
    REQUIRE(newest == second.start_seq() + rest);
    REQUIRE(wait_rows(pg, *newest, store_bound));
    CHECK(exactly_once_problem(pg, {{"pi", *newest}}) == "");
    CHECK(sub->process().running());
    second.process().signal(SIGTERM);
    CHECK(second.process().wait_for(60s) == 0);
}

int main(int argc, char** argv) {
    if (env("RILL_CROSS_SENSOR_PUB").empty()) {
        std::fprintf(stderr,
                     "skipped: RILL_CROSS_SENSOR_PUB names no foreign sensor-pub (./run cross "
                     "arm64 or ./run test-cross arm64 build one and run this test with it)\n");
        return 77;
    }
    doctest::Context context(argc, argv);
    return context.run();
}
