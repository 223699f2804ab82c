// A foreign publisher end to end: tests/interop/foreign_publisher.py, written in Python from
// proto/publisher_v1.md alone, feeds a real store-sub over a throwaway PostgreSQL. It drops
// frames on purpose (a gap in the middle of py-a, a tail of py-b announced only by its
// heartbeats) and lost the first readings of py-b from its outbox; store-sub must repair every
// hole through the Python replay endpoint, store each reading exactly once and report exactly
// the dropped ones lost.
#include <doctest/doctest.h>

#include <csignal>
#include <set>
#include <sstream>
#include <string>

#include "support/pipeline.hpp"
#include "support/postgres.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace rill::test;
using namespace std::chrono_literals;

namespace {

constexpr auto start_bound = 30s;
constexpr auto store_bound = 90s;

// The value after "`key` " on the first line of `text` starting with it; "" when none does.
std::string line_value(const std::string& text, const std::string& key) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + " ", 0) == 0) return line.substr(key.size() + 1);
    }
    return "";
}

// The seqs listed after "replayed SENSOR:" in the publisher's summary.
std::set<std::uint64_t> replayed(const std::string& summary, const std::string& sensor) {
    std::istringstream in(line_value(summary, "replayed " + sensor + ":"));
    std::set<std::uint64_t> seqs;
    for (std::uint64_t seq = 0; in >> seq;)
        seqs.insert(seq);
    return seqs;
}

bool includes(const std::set<std::uint64_t>& seqs, std::uint64_t first, std::uint64_t last) {
    for (auto seq = first; seq <= last; ++seq) {
        if (!seqs.contains(seq)) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("a Python publisher written from proto/publisher_v1.md gets every reading stored once") {
    TempDir dir("rill-interop");
    TempPostgres pg;
    const auto out = (dir.path() / "publisher.out").string();
    const auto err = (dir.path() / "publisher.err").string();
    // Replay answers cut at 64 bytes (two or three readings) and requests of 4 readings: the
    // repair needs several answers, cut both by bytes and by count.
    Process publisher({"/usr/bin/python3", RILL_SOURCE_DIR "/tests/interop/foreign_publisher.py",
                       "--replay-bytes", "64", "--max-seconds", "150"},
                      {.stdout_path = out, .stderr_path = err});
    REQUIRE_MESSAGE(
        wait_until([&] { return !line_value(read_file(out), "replay").empty(); }, start_bound),
        read_file(err));
    const auto stream = line_value(read_file(out), "stream");

    StoreSub sub(dir.path(),
                 {.connect = {stream}, .db = pg.conninfo(), .extra_args = {"--replay-chunk", "4"}});
    // py-a 1..20; py-b 3..15 (its outbox dropped 1..2 before anyone subscribed).
    const std::uint64_t expected_rows = 20 + 13;
    const bool stored = wait_rows(pg, expected_rows, store_bound);
    CHECK_MESSAGE(stored, sub.log());
    CHECK(exactly_once_problem(
              pg, std::map<std::string, SeqRange>{{"py-a", {1, 20}}, {"py-b", {3, 15}}}) == "");
    // The values went through the foreign encoder and the replay path unchanged: 8 was never
    // sent live (a replayed reading), 5 carries an extra.
    CHECK(pg.value("SELECT temperature || ' ' || humidity || ' ' || "
                   "(extract(epoch FROM ts) * 1000000)::bigint FROM readings "
                   "WHERE sensor = 'py-a' AND seq = 8") == "22 44 1763719208000000");
    CHECK(pg.value("SELECT temperature || ' ' || humidity FROM readings "
                   "WHERE sensor = 'py-b' AND seq = 14") == "-17 76");
    CHECK(pg.value("SELECT extra->>'battery_v' FROM readings WHERE sensor = 'py-a' AND seq = 5") ==
          "3.25");
    // Exactly what the foreign outbox had dropped is reported lost, once.
    CHECK(wait_until([&] { return sub.metric("rill_readings_lost_total") == 2.0; }, 10s));
    CHECK(lost_ranges(sub.log(), "py-b") == std::vector<SeqRange>{{1, 2}});
    CHECK(lost_ranges(sub.log(), "py-a").empty());

    sub.process().signal(SIGTERM);
    CHECK(sub.process().wait_for(30s) == 0);
    publisher.signal(SIGTERM);
    REQUIRE(publisher.wait_for(10s) == 0);
    const auto summary = read_file(out);
    INFO("publisher said:\n" << summary << read_file(err));
    CHECK(line_value(summary, "subscribed") == "yes");
    CHECK(line_value(summary, "invalid requests") == "0");
    CHECK(std::stoul("0" + line_value(summary, "cut by bytes")) > 0);
    // The holes were repaired through the foreign replay endpoint: the mid-stream gap, and the
    // tail only a heartbeat announced.
    CHECK(includes(replayed(summary, "py-a"), 7, 10));
    CHECK(includes(replayed(summary, "py-b"), 13, 15));
}
