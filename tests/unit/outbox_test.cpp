#include <doctest/doctest.h>
#include <msgpack.hpp>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "rill/codec.hpp"
#include "rill/crc32c.hpp"
#include "rill/outbox.hpp"
#include "rill/replay.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

Reading make(const std::string& sensor, std::uint64_t i) {
    Reading r;
    r.sensor = sensor;
    r.ts = Timestamp{1'763'719'200'000'000us + std::chrono::microseconds(i * 1000)};
    r.temperature = 20.0f + static_cast<float>(i % 100) * 0.25f;
    r.humidity = 40.0f + static_cast<float>(i % 50);
    return r;
}

// Appends `n` single readings of `sensor`; returns the seq of the last one.
std::uint64_t append_n(Outbox& outbox, const std::string& sensor, std::size_t n) {
    std::uint64_t last = 0;
    for (std::size_t i = 0; i < n; ++i) {
        Reading r = make(sensor, i);
        last = outbox.append(r).last;
    }
    return last;
}

OutboxOptions small_segments(FsyncPolicy fsync = FsyncPolicy::never) {
    OutboxOptions o;
    o.fsync = fsync;
    o.segment_bytes = 4096;
    o.max_bytes = 64ULL << 20;
    o.max_age = 0s;
    return o;
}

std::vector<fs::path> files_with(const fs::path& dir, const std::string& ext) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() == ext) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::uint64_t outbox_files_bytes(const fs::path& dir) {
    std::uint64_t sum = 0;
    for (const auto& p : files_with(dir, ".seg"))
        sum += fs::file_size(p);
    for (const auto& p : files_with(dir, ".idx"))
        sum += fs::file_size(p);
    return sum;
}

// Checks that `readings` are exactly seqs first, first + 1, ..., last of `sensor`.
void check_consecutive(const std::vector<Reading>& readings, const std::string& sensor,
                       std::uint64_t first, std::uint64_t last) {
    REQUIRE(readings.size() == last - first + 1);
    for (std::size_t i = 0; i < readings.size(); ++i) {
        REQUIRE(readings[i].sensor == sensor);
        REQUIRE(readings[i].seq == first + i);
    }
}

void flip_byte(const fs::path& path, std::uint64_t offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x10));
}

}  // namespace

TEST_CASE("outbox appends readings with fresh seqs and reads them back") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments(FsyncPolicy::always));
    std::vector<Reading> written;
    for (std::uint64_t i = 0; i < 5; ++i) {
        Reading r = make("kitchen", i);
        r.seq = 999;  // ignored: the outbox assigns seqs
        const auto range = outbox.append(r);
        CHECK(range == SeqRange{i + 1, i + 1});
        CHECK(r.seq == i + 1);
        written.push_back(r);
    }
    std::vector<Reading> batch;
    for (std::uint64_t i = 5; i < 105; ++i)
        batch.push_back(make("kitchen", i));
    batch[3].extras.push_back({"pressure", 1013.25});
    CHECK(outbox.append(batch) == SeqRange{6, 105});
    written.insert(written.end(), batch.begin(), batch.end());

    const auto got = outbox.read("kitchen", 1, 1000);
    CHECK(got.first_available == 1);
    CHECK(got.newest == 105);
    CHECK(got.readings == written);
    CHECK(outbox.newest("kitchen") == 105);
    CHECK(outbox.newest("garage") == 0);
    const auto m = outbox.metrics();
    CHECK(m.appended_readings == 105);
    CHECK(m.appended_records == 6);
    CHECK(m.fsyncs >= 6);
    CHECK(m.disk_bytes == outbox_files_bytes(dir.path()));
}

TEST_CASE("outbox with fsync batch syncs a quiet tail within the interval") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments(FsyncPolicy::batch);
    o.fsync_interval = 20ms;
    Outbox outbox(dir.path(), o);
    const auto before = outbox.metrics().fsyncs;
    append_n(outbox, "kitchen", 50);
    // Nothing else is appended: the group-commit thread syncs the tail on its own.
    CHECK(test::wait_until([&] { return outbox.metrics().fsyncs > before; }, 10s));
    const auto synced = outbox.metrics().fsyncs;
    std::this_thread::sleep_for(100ms);
    CHECK(outbox.metrics().fsyncs == synced);  // and only when there is something new
}

TEST_CASE("outbox resumes seq after a restart") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        CHECK(append_n(outbox, "kitchen", 300) == 300);  // several segments
        CHECK(append_n(outbox, "garage", 7) == 7);
    }
    for (int restart = 0; restart < 2; ++restart) {
        Outbox outbox(dir.path(), small_segments());
        CHECK(outbox.newest("kitchen") == 300 + 10 * restart);
        CHECK(outbox.newest("garage") == 7);
        CHECK(append_n(outbox, "kitchen", 10) == 310 + 10 * restart);
        check_consecutive(outbox.read("kitchen", 1, 10'000).readings, "kitchen", 1,
                          310 + 10 * restart);
        CHECK(outbox.metrics().truncated_tails == 0);
        CHECK(outbox.metrics().lost_readings == 0);
    }
}

TEST_CASE("outbox keeps interleaved sensors apart") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments();
    o.segment_bytes = 1 << 20;  // large segments: reads must use the sparse index
    Outbox outbox(dir.path(), o);
    const std::vector<std::string> sensors{"a", "bb", "ccc"};
    for (std::uint64_t i = 0; i < 6000; ++i) {
        const auto& s = sensors[static_cast<std::size_t>(i % 3)];
        if (i % 5 == 0) {
            std::vector<Reading> b{make(s, i), make(s, i + 1), make(s, i + 2)};
            outbox.append(b);
        } else {
            Reading r = make(s, i);
            outbox.append(r);
        }
    }
    std::uint64_t total = 0;
    for (const auto& s : sensors) {
        const std::uint64_t newest = outbox.newest(s);
        total += newest;
        check_consecutive(outbox.read(s, 1, 100'000).readings, s, 1, newest);
        check_consecutive(outbox.read(s, newest - 100, 7).readings, s, newest - 100, newest - 94);
    }
    CHECK(total == 6000 + 2 * 1200);
    CHECK(outbox.newest_all() ==
          std::vector<std::pair<std::string, std::uint64_t>>{{"a", outbox.newest("a")},
                                                             {"bb", outbox.newest("bb")},
                                                             {"ccc", outbox.newest("ccc")}});
}

TEST_CASE("outbox reads ranges within a segment and across segments and beyond the newest seq") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments());
    for (int i = 0; i < 100; ++i) {
        std::vector<Reading> b;
        for (int k = 0; k < 7; ++k)
            b.push_back(make("kitchen", static_cast<std::uint64_t>(k)));
        outbox.append(b);
    }
    CHECK(files_with(dir.path(), ".seg").size() > 3);
    check_consecutive(outbox.read("kitchen", 3, 5).readings, "kitchen", 3, 7);
    check_consecutive(outbox.read("kitchen", 10, 3).readings, "kitchen", 10, 12);  // mid-batch
    check_consecutive(outbox.read("kitchen", 1, 700).readings, "kitchen", 1, 700);
    check_consecutive(outbox.read("kitchen", 333, 250).readings, "kitchen", 333, 582);
    const auto tail = outbox.read("kitchen", 690, 100);
    check_consecutive(tail.readings, "kitchen", 690, 700);
    CHECK(tail.newest == 700);
    const auto beyond = outbox.read("kitchen", 701, 10);
    CHECK(beyond.readings.empty());
    CHECK(beyond.newest == 700);
    CHECK(beyond.first_available == 1);
    CHECK(outbox.read("kitchen", 5, 0).readings.empty());
    const auto unknown = outbox.read("cellar", 1, 10);
    CHECK(unknown.readings.empty());
    CHECK(unknown.newest == 0);
    CHECK(unknown.first_available == 1);
}

TEST_CASE("outbox drops the oldest whole segments at the size bound and counts exactly") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments();
    o.max_bytes = 16384;
    std::vector<OutboxDrop> drops;
    o.on_drop = [&](const OutboxDrop& d) { drops.push_back(d); };
    Outbox outbox(dir.path(), o);
    for (std::uint64_t i = 0; i < 2000; ++i) {
        Reading r = make(i % 3 == 0 ? "garage" : "kitchen", i);
        outbox.append(r);
        REQUIRE(outbox_files_bytes(dir.path()) <= o.max_bytes);
    }
    REQUIRE_FALSE(drops.empty());
    const auto m = outbox.metrics();
    std::uint64_t dropped_total = 0;
    for (const std::string s : {"garage", "kitchen"}) {
        // Dropped ranges of a sensor are consecutive, oldest first, starting at seq 1 and ending
        // right before the first seq still available.
        std::uint64_t next = 1;
        for (const auto& d : drops) {
            if (d.sensor != s) continue;
            CHECK(d.reason == DropReason::max_bytes);
            CHECK(d.from_seq == next);
            CHECK(d.to_seq >= d.from_seq);
            next = d.to_seq + 1;
        }
        const std::uint64_t first = outbox.first_available(s);
        CHECK(first == next);
        CHECK(outbox.dropped(s) == first - 1);
        dropped_total += first - 1;
        // What a replay from seq 1 says: everything before first_available is gone.
        const auto got = outbox.read(s, 1, 100'000);
        CHECK(got.first_available == first);
        check_consecutive(got.readings, s, first, outbox.newest(s));
    }
    CHECK(outbox.newest("garage") + outbox.newest("kitchen") == 2000);
    CHECK(m.dropped_readings == dropped_total);
    CHECK(m.dropped_segments > 0);
    CHECK(m.disk_bytes == outbox_files_bytes(dir.path()));
    CHECK(m.segments == files_with(dir.path(), ".seg").size());
}

TEST_CASE("outbox keeps the seq of a sensor whose readings were all dropped") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments();
    o.max_bytes = 16384;
    {
        Outbox outbox(dir.path(), o);
        CHECK(append_n(outbox, "attic", 5) == 5);
        append_n(outbox, "kitchen", 1000);
        CHECK(outbox.first_available("attic") == 6);
        const auto got = outbox.read("attic", 1, 10);
        CHECK(got.readings.empty());
        CHECK(got.first_available == 6);
        CHECK(got.newest == 5);
        CHECK(outbox.dropped("attic") == 5);
    }
    Outbox outbox(dir.path(), o);
    CHECK(outbox.newest("attic") == 5);
    CHECK(outbox.first_available("attic") == 6);
    CHECK(append_n(outbox, "attic", 1) == 6);
}

TEST_CASE("outbox drops segments older than max_age") {
    test::TempDir dir("outbox");
    Timestamp clock = Timestamp{1'763'719'200'000'000us};
    OutboxOptions o = small_segments();
    o.max_age = 1h;
    o.clock = [&] { return clock; };
    std::vector<OutboxDrop> drops;
    o.on_drop = [&](const OutboxDrop& d) { drops.push_back(d); };
    {
        Outbox outbox(dir.path(), o);
        append_n(outbox, "kitchen", 200);  // several segments, all stamped at `clock`
        clock += 30min;
        append_n(outbox, "kitchen", 100);
        CHECK(drops.empty());
        clock += 45min;  // the first 200 are 75 min old, the next 100 are 45 min old
        append_n(outbox, "kitchen", 1);
        REQUIRE_FALSE(drops.empty());
        for (const auto& d : drops)
            CHECK(d.reason == DropReason::max_age);
        const std::uint64_t first = outbox.first_available("kitchen");
        CHECK(drops.front().from_seq == 1);
        CHECK(drops.back().to_seq == first - 1);
        CHECK(first <= 201);  // nothing younger than max_age went
        CHECK(first > 150);   // all but the segment holding both ages did
        CHECK(outbox.metrics().dropped_readings == first - 1);
        check_consecutive(outbox.read("kitchen", 1, 1000).readings, "kitchen", first, 301);
    }
    drops.clear();
    clock += 2h;  // everything is old now: open drops all but the active segment
    Outbox outbox(dir.path(), o);
    CHECK_FALSE(drops.empty());
    CHECK(outbox.metrics().segments == 1);
    CHECK(outbox.newest("kitchen") == 301);
    CHECK(append_n(outbox, "kitchen", 1) == 302);
}

TEST_CASE("outbox does not age out readings written before the clock was set") {
    test::TempDir dir("outbox");
    Timestamp clock = Timestamp{86'400'000'000us};  // 1970-01-02: a Pi booted without RTC
    OutboxOptions o = small_segments();
    o.max_age = 1h;
    o.clock = [&] { return clock; };
    std::vector<OutboxDrop> drops;
    o.on_drop = [&](const OutboxDrop& d) { drops.push_back(d); };
    Outbox outbox(dir.path(), o);
    append_n(outbox, "kitchen", 200);
    clock = Timestamp{1'763'719'200'000'000us};  // NTP answered
    append_n(outbox, "kitchen", 1);
    CHECK(drops.empty());
    CHECK(outbox.first_available("kitchen") == 1);
    clock += 2h;  // now the records stamped with a real time age out
    append_n(outbox, "kitchen", 1);
    CHECK(drops.empty());  // the closed segments hold only readings stamped in 1970
    CHECK(outbox.metrics().segments > 2);
}

TEST_CASE("outbox truncates a torn last record at open and keeps the rest") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        append_n(outbox, "kitchen", 150);
    }
    const auto segs = files_with(dir.path(), ".seg");
    REQUIRE(segs.size() > 1);
    const auto size = fs::file_size(segs.back());
    fs::resize_file(segs.back(), size - 5);  // cut into the last record
    Outbox outbox(dir.path(), small_segments());
    CHECK(outbox.metrics().truncated_tails == 1);
    CHECK(outbox.metrics().lost_readings == 0);
    // Seq 150 was handed out before: it is skipped, never used again.
    CHECK(outbox.newest("kitchen") == 150);
    CHECK(outbox.skipped("kitchen") == std::vector{SeqRange{150, 150}});
    CHECK(outbox.metrics().skipped_seqs == 1);
    check_consecutive(outbox.read("kitchen", 1, 1000).readings, "kitchen", 1, 149);
    CHECK(append_n(outbox, "kitchen", 1) == 151);
    const auto tail = outbox.read("kitchen", 140, 1000);
    check_consecutive(tail.readings, "kitchen", 140, 149);
    CHECK(tail.skipped == SeqRange{150, 150});
    check_consecutive(outbox.read("kitchen", 151, 1000).readings, "kitchen", 151, 151);
}

TEST_CASE("outbox truncates a bit-flipped last record at open and keeps the rest") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        append_n(outbox, "kitchen", 150);
        append_n(outbox, "garage", 1);
    }
    const auto segs = files_with(dir.path(), ".seg");
    const auto size = fs::file_size(segs.back());
    flip_byte(segs.back(), size - 3);  // inside the payload of the last record
    Outbox outbox(dir.path(), small_segments());
    CHECK(outbox.metrics().truncated_tails == 1);
    CHECK(outbox.metrics().corrupt_records == 1);
    CHECK(fs::file_size(segs.back()) < size);
    CHECK(outbox.newest("garage") == 1);  // handed out before: skipped, never used again
    CHECK(outbox.skipped("garage") == std::vector{SeqRange{1, 1}});
    CHECK(outbox.newest("kitchen") == 150);
    check_consecutive(outbox.read("kitchen", 1, 1000).readings, "kitchen", 1, 150);
    CHECK(append_n(outbox, "garage", 1) == 2);
}

TEST_CASE("outbox stops reading an older segment at a corrupt record and reports the loss") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        append_n(outbox, "kitchen", 300);
    }
    auto segs = files_with(dir.path(), ".seg");
    REQUIRE(segs.size() >= 4);
    // Damage the middle of the second segment and remove its index, so open has to scan it.
    flip_byte(segs[1], fs::file_size(segs[1]) / 2);
    fs::remove(fs::path(segs[1]).replace_extension(".idx"));
    std::vector<OutboxDrop> drops;
    OutboxOptions o = small_segments();
    o.on_drop = [&](const OutboxDrop& d) { drops.push_back(d); };
    Outbox outbox(dir.path(), o);
    REQUIRE(drops.size() == 1);
    CHECK(drops[0].reason == DropReason::corrupt);
    const auto lost = drops[0].to_seq - drops[0].from_seq + 1;
    CHECK(outbox.metrics().lost_readings == lost);
    CHECK(outbox.metrics().corrupt_records == 1);
    CHECK(outbox.newest("kitchen") == 300);
    const auto got = outbox.read("kitchen", 1, 1000);
    CHECK(got.readings.size() == 300 - lost);
    for (std::size_t i = 1; i < got.readings.size(); ++i) {
        const auto seq = got.readings[i].seq;
        CHECK(seq > got.readings[i - 1].seq);
        CHECK((seq == got.readings[i - 1].seq + 1 || seq == drops[0].to_seq + 1));
    }
    // A replay asked for the lost range gets what follows it.
    const auto after = outbox.read("kitchen", drops[0].from_seq, 3);
    check_consecutive(after.readings, "kitchen", drops[0].to_seq + 1, drops[0].to_seq + 3);
    CHECK(append_n(outbox, "kitchen", 1) == 301);
}

TEST_CASE("outbox rejects invalid batches without consuming a seq") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments());
    append_n(outbox, "kitchen", 3);
    std::vector<Reading> empty;
    CHECK_THROWS_AS(outbox.append(std::span<Reading>(empty)), std::invalid_argument);
    std::vector<Reading> mixed{make("kitchen", 1), make("garage", 2)};
    CHECK_THROWS_AS(outbox.append(mixed), std::invalid_argument);
    Reading bad = make("kitchen", 1);
    bad.humidity = 150.0f;
    CHECK_THROWS_AS(outbox.append(bad), std::invalid_argument);
    Reading bad_id = make("", 1);
    CHECK_THROWS_AS(outbox.append(bad_id), std::invalid_argument);
    CHECK(outbox.newest("kitchen") == 3);
    CHECK(append_n(outbox, "kitchen", 1) == 4);
    check_consecutive(outbox.read("kitchen", 1, 10).readings, "kitchen", 1, 4);
}

TEST_CASE("outbox refuses a second opener of the same directory") {
    test::TempDir dir("outbox");
    {
        Outbox first(dir.path(), small_segments());
        CHECK_THROWS_AS(Outbox(dir.path(), small_segments()), std::system_error);
    }
    Outbox again(dir.path(), small_segments());  // the lock went with the first one
    CHECK(again.metrics().segments == 1);
    OutboxOptions tiny = small_segments();
    tiny.max_bytes = tiny.segment_bytes;
    test::TempDir other("outbox");
    CHECK_THROWS_AS(Outbox(other.path(), tiny), std::invalid_argument);
}

TEST_CASE("outbox serves reads from another thread while appending") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments();
    o.max_bytes = 64 * 1024;  // segments are dropped while the reader reads
    Outbox outbox(dir.path(), o);
    std::atomic<bool> done{false};
    std::atomic<int> errors{0};
    std::atomic<std::uint64_t> reads{0};
    std::thread reader([&] {
        std::uint64_t from = 1;
        while (!done.load()) {
            const auto got = outbox.read("kitchen", from, 50);
            if (got.readings.empty()) {
                from = std::max(from, got.first_available);
                continue;
            }
            if (got.readings.front().seq < std::max(from, got.first_available)) ++errors;
            for (std::size_t i = 1; i < got.readings.size(); ++i) {
                if (got.readings[i].seq != got.readings[i - 1].seq + 1) ++errors;
            }
            if (got.readings.back().seq > got.newest) ++errors;
            from = got.readings.back().seq + 1;
            ++reads;
        }
    });
    append_n(outbox, "kitchen", 20'000);
    REQUIRE(test::wait_until([&] { return reads.load() > 10; }, 10s));
    done = true;
    reader.join();
    CHECK(errors.load() == 0);
    CHECK(outbox.metrics().dropped_segments > 0);
    CHECK(outbox.metrics().corrupt_records == 0);
}

namespace {

// Reopens the outbox a writer was killed on and checks every sensor holds seq 1..newest, each
// once, except the seqs it says it skipped, with no lost readings. Returns the newest seq per
// sensor.
std::map<std::string, std::uint64_t> check_after_kill(const fs::path& dir, int sensors) {
    OutboxOptions o;
    o.segment_bytes = 64 * 1024;
    o.max_bytes = 1ULL << 30;
    o.max_age = 0s;
    Outbox outbox(dir, o);
    CHECK(outbox.metrics().lost_readings == 0);
    CHECK(outbox.metrics().truncated_tails <= 1);
    std::map<std::string, std::uint64_t> newest;
    for (int s = 0; s < sensors; ++s) {
        const std::string id = "s" + std::to_string(s);
        newest[id] = outbox.newest(id);
        REQUIRE(newest[id] > 0);
        // The readings and the skipped ranges tile 1..newest exactly; a read stops at a
        // skipped range and says so.
        std::uint64_t next = 1;
        std::size_t ranges = 0;
        while (next <= newest[id]) {
            const auto got = outbox.read(id, next, 10'000'000);
            for (const auto& r : got.readings)
                REQUIRE(r.seq == next++);
            if (!got.skipped) break;
            REQUIRE(got.skipped->first == next);
            next = got.skipped->last + 1;
            ++ranges;
        }
        CHECK(next == newest[id] + 1);
        CHECK(ranges == outbox.skipped(id).size());
        // Killed within this boot: every seq handed out was written, nothing is skipped.
        CHECK(ranges == 0);
        Reading r = make(id, 0);
        CHECK(outbox.append(r).first == newest[id] + 1);  // resumes right after the last intact
        newest[id] += 1;
    }
    CHECK(outbox.metrics().skipped_seqs == 0);
    return newest;
}

}  // namespace

TEST_CASE("outbox survives kill -9 during heavy writing without repeating a seq") {
    test::TempDir dir("outbox");
    const fs::path box = dir.path() / "box";
    for (int round = 1; round <= 3; ++round) {
        const std::uint64_t before = fs::exists(box) ? outbox_files_bytes(box) : 0;
        test::Process writer(
            {test::bin("outbox-writer"), box.string(), "never", "3", round == 2 ? "100" : "1"},
            {.stderr_path = (dir.path() / "writer.log").string()});
        REQUIRE(test::wait_until(
            [&] { return fs::exists(box) && outbox_files_bytes(box) > before + (1 << 20); }, 30s));
        writer.signal(SIGKILL);
        REQUIRE(writer.wait_for(10s) == 128 + SIGKILL);
        check_after_kill(box, 3);
    }
}

namespace {

// Runs outbox-writer on `box` (2 sensors, one reading per append, fsync `policy`) until it has
// acknowledged more than `acks_wanted` appends, kills it with SIGKILL and returns the last seq
// acknowledged per sensor: every seq it got back from append (and so could have published).
std::map<std::string, std::uint64_t> kill_writer(const fs::path& dir, const fs::path& box,
                                                 const std::string& policy,
                                                 std::ptrdiff_t acks_wanted) {
    const fs::path acks = dir / "acks";
    test::Process writer(
        {test::bin("outbox-writer"), box.string(), policy, "2", "1", acks.string()},
        {.stderr_path = (dir / "writer.log").string()});
    REQUIRE(test::wait_until(
        [&] {
            const std::string text = test::read_file(acks);
            return std::count(text.begin(), text.end(), '\n') > acks_wanted;
        },
        30s));
    writer.signal(SIGKILL);
    REQUIRE(writer.wait_for(10s) == 128 + SIGKILL);

    std::map<std::string, std::uint64_t> acked;
    std::istringstream lines(test::read_file(acks));
    std::string sensor;
    std::uint64_t seq = 0;
    while (lines >> sensor >> seq) {
        CHECK(seq == acked[sensor] + 1);  // acknowledged seqs never repeat nor skip
        acked[sensor] = seq;
    }
    REQUIRE(acked.size() == 2);
    return acked;
}

}  // namespace

TEST_CASE("outbox with fsync always keeps every acknowledged reading across kill -9") {
    test::TempDir dir("outbox");
    const fs::path box = dir.path() / "box";
    const auto acked = kill_writer(dir.path(), box, "always", 300);
    const auto newest = check_after_kill(box, 2);  // appends one more to each sensor
    for (const auto& [s, last] : acked) {
        // Every acknowledged reading is there; at most the one in flight beyond it.
        CHECK(newest.at(s) - 1 >= last);
        CHECK(newest.at(s) - 1 <= last + 1);
    }
}

TEST_CASE("outbox rebuilds a damaged index file from its segment") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        append_n(outbox, "kitchen", 300);
    }
    const auto indexes = files_with(dir.path(), ".idx");
    REQUIRE(indexes.size() >= 3);
    flip_byte(indexes[0], 20);
    fs::resize_file(indexes[1], fs::file_size(indexes[1]) / 2);
    fs::remove(indexes[2]);
    {
        Outbox outbox(dir.path(), small_segments());
        CHECK(outbox.metrics().corrupt_records == 0);
        CHECK(outbox.metrics().lost_readings == 0);
        check_consecutive(outbox.read("kitchen", 1, 1000).readings, "kitchen", 1, 300);
    }
    CHECK(files_with(dir.path(), ".idx").size() == indexes.size());  // written again
}

TEST_CASE("outbox opens whatever bytes its files hold") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        for (std::uint64_t i = 0; i < 400; ++i) {
            Reading r = make(i % 2 ? "kitchen" : "garage", i);
            outbox.append(r);
        }
    }
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    auto next = [&] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    for (int round = 0; round < 40; ++round) {
        std::vector<fs::path> files = files_with(dir.path(), ".seg");
        const auto idx = files_with(dir.path(), ".idx");
        files.insert(files.end(), idx.begin(), idx.end());
        const fs::path& victim = files[static_cast<std::size_t>(next() % files.size())];
        const auto size = fs::file_size(victim);
        if (size > 0 && next() % 4 == 0) {
            fs::resize_file(victim, next() % size);
        } else if (size > 0) {
            for (int k = 0; k < 3; ++k)
                flip_byte(victim, next() % size);
        }
        Outbox outbox(dir.path(), small_segments());  // must not throw
        for (const std::string s : {"kitchen", "garage"}) {
            const auto got = outbox.read(s, 1, 10'000);
            for (std::size_t i = 1; i < got.readings.size(); ++i) {
                REQUIRE(got.readings[i].seq > got.readings[i - 1].seq);
            }
            if (!got.readings.empty()) REQUIRE(got.readings.back().seq <= got.newest);
            Reading r = make(s, 0);
            REQUIRE(outbox.append(r).first == got.newest + 1);
        }
    }
}

// Found by fuzz-outbox (tests/fuzz): a record whose checksum matches but whose payload holds a
// reading of another sensor than its header ("kitchen" in the header, "gardenn" in the
// payload). read("kitchen") returned the "gardenn" reading. The input is the fuzzer's, a mode
// byte of 1 (fix checksums) and the segment; the test applies the harness's checksum fix-up.
TEST_CASE("outbox read skips a record whose payload disagrees with its checksummed header") {
    const std::string hex =
        "0152494c4c4f42583101000000280000000200000000000000004866e0174406"
        "003f66d1f000000000400000009a7618f501070000010000001d000000000000"
        "00004866e0174406006b69746368656e940100a767617264656e6e91941dcf00"
        "064417e06722c0ca41a00000ca42010717";
    std::string file;
    for (std::size_t i = 2; i + 1 < hex.size(); i += 2)  // byte 0 is the fuzzer's mode byte
        file.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    const auto set_u32 = [&](std::size_t at, std::uint32_t v) {
        for (std::size_t k = 0; k < 4; ++k)
            file[at + k] = static_cast<char>((v >> (8 * k)) & 0xFFU);
    };
    set_u32(32, crc32c(std::string_view(file).substr(0, 32)));     // the segment header
    set_u32(44, crc32c(std::string_view(file).substr(48, 0x40)));  // the one record
    test::TempDir dir("outbox");
    {
        std::ofstream out(dir.path() / "00000000000000000002.seg", std::ios::binary);
        out.write(file.data(), static_cast<std::streamsize>(file.size()));
    }
    Outbox outbox(dir.path(), small_segments());
    const auto got = outbox.read("kitchen", 1, 1000);
    for (const auto& r : got.readings)
        CHECK(r.sensor == "kitchen");
    CHECK(got.readings.empty());
    CHECK(outbox.metrics().corrupt_records == 1);
    CHECK(outbox.read("gardenn", 1, 1000).readings.empty());
    // The stored-bytes path (what a replay sends) frames the record and refuses it too.
    const auto bytes = outbox.read_payload("kitchen", 1, 1000);
    CHECK(bytes.count == 0);
    CHECK(bytes.payload.empty());
    CHECK(outbox.metrics().corrupt_records == 2);
}

TEST_CASE("outbox read_payload gives the stored bytes, the same as encoding what read returns") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments());  // 4 KiB segments: reads cross segments
    for (int b = 0; b < 40; ++b) {
        std::vector<Reading> batch;
        for (int i = 0; i < 10; ++i)
            batch.push_back(make(b % 2 ? "kitchen" : "garden", static_cast<std::uint64_t>(i)));
        (void)outbox.append(batch);
    }
    REQUIRE(outbox.metrics().segments > 2);
    struct Case {
        std::uint64_t from;
        std::size_t count;
    };
    // from a record start; from inside a record; a count cut inside a record; both; past the
    // newest; across segments.
    for (const Case c : {Case{1, 10}, Case{4, 10}, Case{1, 7}, Case{13, 15}, Case{201, 5},
                         Case{1, 1000}, Case{95, 3}}) {
        CAPTURE(c.from);
        CAPTURE(c.count);
        const auto decoded = outbox.read("kitchen", c.from, c.count);
        const auto bytes = outbox.read_payload("kitchen", c.from, c.count);
        REQUIRE(bytes.count == decoded.readings.size());
        CHECK(bytes.first_available == decoded.first_available);
        CHECK(bytes.newest == decoded.newest);
        if (decoded.readings.empty()) {
            CHECK(bytes.payload.empty());
            continue;
        }
        CHECK(bytes.payload == encode_batch(decoded.readings));
        CHECK(bytes.first_seq == decoded.readings.front().seq);
        CHECK(bytes.last_seq == decoded.readings.back().seq);
    }
    CHECK(outbox.read_payload("nobody", 1, 10).newest == 0);
}

TEST_CASE("outbox keeps a quantity not measured through append, read and read_payload") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments());
    std::vector<Reading> batch;
    for (int i = 0; i < 12; ++i) {
        Reading r = make("pond", static_cast<std::uint64_t>(i));
        if (i % 3 == 0) r.humidity = not_measured;
        if (i % 3 == 1) r.temperature = not_measured;
        batch.push_back(r);
    }
    (void)outbox.append(batch);
    const auto read = outbox.read("pond", 1, 100).readings;
    REQUIRE(read.size() == 12);
    CHECK(read == batch);  // not_measured equals not_measured
    CHECK_FALSE(is_measured(read[0].humidity));
    CHECK(is_measured(read[0].temperature));
    CHECK_FALSE(is_measured(read[1].temperature));
    // Spliced from inside the record, nil fields included: what the encoder writes.
    const auto bytes = outbox.read_payload("pond", 2, 7);
    REQUIRE(bytes.count == 7);
    CHECK(bytes.payload == encode_batch(std::span(read).subspan(1, 7)));
    CHECK(decode_batch(bytes.payload) == std::vector<Reading>(read.begin() + 1, read.begin() + 8));
}

TEST_CASE("outbox read_payload stops at a reading boundary before max_bytes") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments());
    std::vector<Reading> batch;
    for (int i = 0; i < 100; ++i)
        batch.push_back(make("kitchen", static_cast<std::uint64_t>(i)));
    (void)outbox.append(batch);
    const auto all = outbox.read_payload("kitchen", 1, 100);
    REQUIRE(all.count == 100);
    const std::size_t max_bytes = all.payload.size() / 3;
    const auto cut = outbox.read_payload("kitchen", 5, 100, max_bytes);
    REQUIRE(cut.count > 0);
    CHECK(cut.count < 95);
    CHECK(cut.payload.size() <= max_bytes);
    CHECK(cut.payload == encode_batch(outbox.read("kitchen", 5, cut.count).readings));
    // One more reading would not have fitted.
    CHECK(encode_batch(outbox.read("kitchen", 5, cut.count + 1).readings).size() > max_bytes);
}

TEST_CASE("outbox registers its series in the registry it is given and keeps them current") {
    test::TempDir dir("outbox");
    MetricsRegistry reg;
    auto o = small_segments();
    o.max_bytes = 4 * 4096;
    o.metrics = &reg;
    Outbox outbox(dir.path(), o);
    const auto value = [&](std::string_view name) { return reg.value(name, {}).value_or(-1); };
    CHECK(value("rill_outbox_max_bytes") == 4 * 4096);
    CHECK(value("rill_outbox_segments") == 1);
    append_n(outbox, "kitchen", 2000);  // several times max_bytes: segments get dropped
    outbox.sync();
    const auto m = outbox.metrics();
    CHECK(m.fsyncs >= 1);
    REQUIRE(m.dropped_readings > 0);
    CHECK(value("rill_outbox_dropped_readings_total") == static_cast<double>(m.dropped_readings));
    CHECK(value("rill_outbox_fsyncs_total") == static_cast<double>(m.fsyncs));
    CHECK(value("rill_outbox_disk_bytes") == static_cast<double>(m.disk_bytes));
    CHECK(value("rill_outbox_segments") == static_cast<double>(m.segments));
    CHECK(value("rill_outbox_corrupt_records_total") == 0);
    CHECK(value("rill_outbox_truncated_tails_total") == 0);
    CHECK(reg.render_prometheus().find("# HELP rill_outbox_dropped_readings_total Readings dropped "
                                       "from the outbox (full or too old)") != std::string::npos);
}

TEST_CASE("outbox counts a torn tail and a corrupt record in its registry at open") {
    test::TempDir dir("outbox");
    {
        Outbox outbox(dir.path(), small_segments());
        append_n(outbox, "kitchen", 3);
    }
    const auto seg = files_with(dir.path(), ".seg").back();
    flip_byte(seg, fs::file_size(seg) - 3);  // inside the last record: a checksum mismatch
    MetricsRegistry reg;
    auto o = small_segments();
    o.metrics = &reg;
    Outbox outbox(dir.path(), o);
    CHECK(reg.value("rill_outbox_truncated_tails_total", {}) == 1);
    CHECK(reg.value("rill_outbox_corrupt_records_total", {}) == 1);
    // Seq 3 was handed out before: skipped, never used again.
    CHECK(outbox.newest("kitchen") == 3);
    CHECK(reg.value("rill_outbox_skipped_seqs_total", {}) == 1);
}

TEST_CASE("outbox append hands back the record's body: the batch's wire payload with its seqs") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), small_segments());
    append_n(outbox, "kitchen", 2);
    std::vector<Reading> batch{make("kitchen", 7), make("kitchen", 8)};
    batch[1].extras.push_back({"pressure", 1013.25});
    std::string payload = "kept";
    CHECK(outbox.append(batch, payload) == SeqRange{3, 4});
    CHECK(payload == "kept" + encode_batch(batch));
    CHECK(decode_batch(std::string_view(payload).substr(4)) ==
          outbox.read("kitchen", 3, 10).readings);

    std::vector<Reading> bad{make("kitchen", 9)};
    bad[0].humidity = 101;
    CHECK_THROWS_AS(outbox.append(bad, payload), std::invalid_argument);
    CHECK(payload == "kept" + encode_batch(batch));  // unchanged by a failed append
}

TEST_CASE("an outbox written before encode-once opens, replays and continues its seqs") {
    // Written by the outbox of commit bd9e6e6 (before append handed back its payload): kitchen
    // 1..3 as single readings (3 with an extra), garage 1..2 as one batch.
    const std::string hex =
        "52494c4c4f42583101000000280000000100000000000000004866e017440600cc0629e300000000180000005b"
        "49d0a1"
        "02000000000000000000000000000000004866e0174406004000000015e2dbd701070000010000000100000000"
        "000000"
        "004866e0174406006b69746368656e940100a76b69746368656e919401cf00064417e0664800ca41ac0000ca42"
        "200000"
        "40000000ea1d5dbe01070000010000000200000000000000004866e0174406006b69746368656e940100a76b69"
        "746368"
        "656e919402cf00064417e0664801ca41ac0000ca42200000530000006028d0a501070000010000000300000000"
        "000000"
        "004866e0174406006b69746368656e940100a76b69746368656e919503cf00064417e0664802ca41ac0000ca42"
        "200000"
        "81a87072657373757265cb408faa00000000005300000060876425010600000200000001000000000000000048"
        "66e017"
        "440600676172616765940100a6676172616765929401cf00064417e0664864cac0500000ca42a000009402cf00"
        "064417"
        "e0664865cac0500000ca42a00000";
    std::string file;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        file.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    test::TempDir dir("outbox");
    {
        std::ofstream out(dir.path() / "00000000000000000001.seg", std::ios::binary);
        out.write(file.data(), static_cast<std::streamsize>(file.size()));
    }
    Outbox outbox(dir.path(), small_segments());
    CHECK(outbox.metrics().truncated_tails == 0);
    const auto kitchen = outbox.read("kitchen", 1, 100);
    check_consecutive(kitchen.readings, "kitchen", 1, 3);
    CHECK(kitchen.readings[0].temperature == 21.5f);
    REQUIRE(kitchen.readings[2].extras.size() == 1);
    CHECK(kitchen.readings[2].extras[0].value == 1013.25);
    const auto garage = outbox.read("garage", 2, 100);
    check_consecutive(garage.readings, "garage", 2, 2);
    CHECK(garage.readings[0].temperature == -3.25f);
    Reading next = make("kitchen", 4);
    std::string payload;
    CHECK(outbox.append(std::span<Reading>(&next, 1), payload) == SeqRange{4, 4});
    CHECK(decode_batch(payload) == std::vector<Reading>{next});
}

namespace {

// Copies the outbox directory `from` as a power cut would leave it: every file as it is, except
// that the segment `segment` is cut back to `durable` bytes (what was fdatasynced).
void copy_as_after_power_cut(const fs::path& from, const fs::path& to, const fs::path& segment,
                             std::uint64_t durable) {
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(from)) {
        fs::copy_file(e.path(), to / e.path().filename());
    }
    fs::resize_file(to / segment.filename(), durable);
}

// `o` as after a reboot: the boot id is read from a file in `dir` holding another id than this
// boot's.
OutboxOptions rebooted(OutboxOptions o, const fs::path& dir) {
    o.boot_id_path = dir / "other-boot-id";
    std::ofstream(o.boot_id_path) << "00000000-1111-4222-8333-444444444444\n";
    return o;
}

OutboxOptions rarely_synced() {
    OutboxOptions o;
    o.fsync = FsyncPolicy::batch;
    o.fsync_interval = 1h;  // nothing is synced but what the test syncs
    o.segment_bytes = 1 << 20;
    o.max_bytes = 64ULL << 20;
    o.max_age = 0s;
    return o;
}

}  // namespace

TEST_CASE("outbox resumes past every seq handed out before a power cut and reports them skipped") {
    test::TempDir dir("outbox");
    const fs::path live = dir.path() / "live";
    const fs::path cut = dir.path() / "cut";
    {
        Outbox outbox(live, rarely_synced());
        CHECK(append_n(outbox, "kitchen", 10) == 10);
        outbox.sync();
        const auto segs = files_with(live, ".seg");
        REQUIRE(segs.size() == 1);
        const auto durable = fs::file_size(segs[0]);
        // Handed out (and so maybe published), never synced: a power cut takes them.
        CHECK(append_n(outbox, "kitchen", 300) == 310);
        CHECK(append_n(outbox, "garage", 5) == 5);
        CHECK(outbox.metrics().reservations >= 2);
        copy_as_after_power_cut(live, cut, segs[0], durable);
    }
    std::uint64_t newest = 0;
    {
        Outbox outbox(cut, rebooted(rarely_synced(), dir.path()));
        newest = outbox.newest("kitchen");
        CHECK(newest >= 310);
        CHECK(outbox.newest("garage") >= 5);
        CHECK(outbox.skipped("kitchen") == std::vector{SeqRange{11, newest}});
        CHECK(outbox.skipped("garage") == std::vector{SeqRange{1, outbox.newest("garage")}});
        CHECK(outbox.metrics().skipped_seqs == newest - 10 + outbox.newest("garage"));
        CHECK(outbox.metrics().lost_readings == 0);
        CHECK(outbox.newest_all() == std::vector<std::pair<std::string, std::uint64_t>>{
                                         {"garage", outbox.newest("garage")}, {"kitchen", newest}});
        CHECK(append_n(outbox, "kitchen", 1) == newest + 1);  // past everything handed out

        // A read stops before the skipped range and reports it when it got every reading below.
        const auto head = outbox.read("kitchen", 5, 100);
        check_consecutive(head.readings, "kitchen", 5, 10);
        CHECK(head.skipped == SeqRange{11, newest});
        CHECK(!outbox.read("kitchen", 5, 3).skipped);  // cut short: asked again from 8
        CHECK(outbox.read("kitchen", 5, 6).skipped == SeqRange{11, newest});
        const auto inside = outbox.read_payload("kitchen", 20, 100);
        CHECK(inside.count == 0);
        CHECK(inside.skipped == SeqRange{20, newest});
        const auto after = outbox.read_payload("kitchen", newest + 1, 100);
        CHECK(after.count == 1);
        CHECK(!after.skipped);
    }
    // A clean restart skips nothing more and remembers the skipped range.
    Outbox outbox(cut, rarely_synced());
    CHECK(outbox.newest("kitchen") == newest + 1);
    CHECK(outbox.metrics().skipped_seqs == 0);
    CHECK(outbox.metrics().lost_readings == 0);
    CHECK(outbox.skipped("kitchen") == std::vector{SeqRange{11, newest}});
    CHECK(outbox.read_payload("kitchen", 1, 100).skipped == SeqRange{11, newest});
}

TEST_CASE(
    "outbox killed with SIGKILL within one boot skips nothing and reuses no seq it handed out") {
    for (const std::string policy : {"never", "batch"}) {
        CAPTURE(policy);
        test::TempDir dir("outbox");
        const fs::path box = dir.path() / "box";
        const auto acked = kill_writer(dir.path(), box, policy, 2000);

        OutboxOptions o;
        o.segment_bytes = 64 * 1024;
        o.max_age = 0s;
        Outbox outbox(box, o);
        CHECK(outbox.metrics().skipped_seqs == 0);
        CHECK(outbox.metrics().lost_readings == 0);
        for (const auto& [id, last] : acked) {
            CAPTURE(id);
            const std::uint64_t newest = outbox.newest(id);
            CHECK(outbox.skipped(id).empty());
            // Every acknowledged seq was written, at most the one in flight beyond it.
            CHECK(newest >= last);
            CHECK(newest <= last + 1);
            check_consecutive(outbox.read(id, 1, 10'000'000).readings, id, 1, newest);
            Reading r = make(id, 0);
            CHECK(outbox.append(r).first == newest + 1);  // no acknowledged seq is used again
        }
    }
}

TEST_CASE(
    "an unclean shutdown's unused reservation is released in the same boot, skipped after a "
    "reboot or with an unknown boot id") {
    test::TempDir dir("outbox");
    const fs::path live = dir.path() / "live";
    std::uint64_t written = 0;
    {
        Outbox outbox(live, rarely_synced());
        written = append_n(outbox, "kitchen", 310);
        REQUIRE(written == 310);
        // As a kill -9 leaves it: every write() in the page cache, the reservation above.
        const auto seg = files_with(live, ".seg").at(0);
        for (const std::string copy : {"same", "reboot", "unknown"}) {
            copy_as_after_power_cut(live, dir.path() / copy, seg, fs::file_size(seg));
        }
    }
    {
        Outbox outbox(dir.path() / "same", rarely_synced());
        CHECK(outbox.newest("kitchen") == written);
        CHECK(outbox.skipped("kitchen").empty());
        CHECK(outbox.metrics().skipped_seqs == 0);
        CHECK(outbox.metrics().reservations == 1);  // released
        CHECK(append_n(outbox, "kitchen", 1) == written + 1);
        check_consecutive(outbox.read("kitchen", 1, 1000).readings, "kitchen", 1, written + 1);
    }
    {
        // Closed cleanly since: a later reboot skips nothing either.
        Outbox outbox(dir.path() / "same", rebooted(rarely_synced(), dir.path()));
        CHECK(outbox.newest("kitchen") == written + 1);
        CHECK(outbox.skipped("kitchen").empty());
    }
    auto unknown = rarely_synced();
    unknown.boot_id_path = dir.path() / "no-such-boot-id";
    for (const auto& [copy, options] : {std::pair{"reboot", rebooted(rarely_synced(), dir.path())},
                                        std::pair{"unknown", unknown}}) {
        CAPTURE(copy);
        Outbox outbox(dir.path() / copy, options);
        const std::uint64_t newest = outbox.newest("kitchen");
        CHECK(newest > written);
        CHECK(outbox.skipped("kitchen") == std::vector{SeqRange{written + 1, newest}});
        CHECK(outbox.metrics().skipped_seqs == newest - written);
        CHECK(append_n(outbox, "kitchen", 1) == newest + 1);
    }
}

TEST_CASE("outbox reserves seqs in growing blocks, not one fsync per reading") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), rarely_synced());
    append_n(outbox, "kitchen", 10'000);
    const auto m = outbox.metrics();
    CHECK(m.reservations >= 1);
    CHECK(m.reservations <= 10);  // 64, 128, 256, ... in well under 10 s
    CHECK(m.fsyncs <= 2);
}

TEST_CASE("outbox with fsync always reserves nothing and a clean restart skips nothing") {
    for (const FsyncPolicy policy : {FsyncPolicy::always, FsyncPolicy::batch, FsyncPolicy::never}) {
        CAPTURE(static_cast<int>(policy));
        test::TempDir dir("outbox");
        {
            Outbox outbox(dir.path(), small_segments(policy));
            append_n(outbox, "kitchen", 300);
            CHECK((outbox.metrics().reservations == 0) == (policy == FsyncPolicy::always));
        }
        Outbox outbox(dir.path(), small_segments(policy));
        CHECK(outbox.newest("kitchen") == 300);
        CHECK(outbox.skipped("kitchen").empty());
        CHECK(outbox.metrics().skipped_seqs == 0);
    }
}

TEST_CASE("a replay server says which seqs the outbox skipped in the reply's fifth element") {
    test::TempDir dir("outbox");
    const fs::path live = dir.path() / "live";
    const fs::path cut = dir.path() / "cut";
    {
        Outbox outbox(live, rarely_synced());
        append_n(outbox, "kitchen", 10);
        outbox.sync();
        const auto seg = files_with(live, ".seg").at(0);
        const auto durable = fs::file_size(seg);
        append_n(outbox, "kitchen", 20);
        copy_as_after_power_cut(live, cut, seg, durable);
    }
    Outbox outbox(cut, rebooted(rarely_synced(), dir.path()));
    const std::uint64_t newest = outbox.newest("kitchen");
    REQUIRE(newest >= 30);
    append_n(outbox, "kitchen", 2);
    zmq::context_t ctx;
    ReplayServer server(
        ctx, "tcp://127.0.0.1:0", ReplayServer::PayloadCallback([&](const ReplayRequest& r) {
            return ReplayPayloadReply{outbox.read_payload(r.sensor, r.from_seq, r.max_readings)};
        }));
    RpcClient client(ctx, server.last_endpoint());
    // The result array as sent: [readings, first_available, newest, lost(, skipped)].
    const auto ask = [&](std::uint64_t from, std::uint32_t max) {
        const std::string result =
            client.call(replay_method, encode_replay_request({"kitchen", from, max}), {5s, 0});
        const msgpack::object_handle h = msgpack::unpack(result.data(), result.size());
        return h.get().as<std::vector<msgpack::object>>().size() == 5
                   ? std::optional(h.get().via.array.ptr[4].as<std::vector<std::uint64_t>>())
                   : std::nullopt;
    };
    CHECK(ask(5, 100) == std::vector<std::uint64_t>{11, newest});
    CHECK(ask(15, 100) == std::vector<std::uint64_t>{15, newest});
    CHECK(ask(5, 2) == std::nullopt);  // cut before the range: asked again later
    CHECK(ask(newest + 1, 100) == std::nullopt);
    // A client that knows 4 elements reads the rest of the reply as before.
    ReplayClient replay(ctx, server.last_endpoint());
    const auto reply = replay.request({"kitchen", 5, 100}, {5s, 0});
    check_consecutive(reply.readings, "kitchen", 5, 10);
    CHECK(reply.newest == newest + 2);
}

TEST_CASE("an idle outbox's fsync thread does not wake up") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments(FsyncPolicy::batch);
    o.fsync_interval = 10ms;
    Outbox outbox(dir.path(), o);
    append_n(outbox, "kitchen", 3);
    CHECK(test::wait_until(
        [&] { return outbox.metrics().fsyncs > 0 && outbox.metrics().flusher_wakeups >= 2; }, 10s));
    std::this_thread::sleep_for(50ms);
    const auto woke = outbox.metrics().flusher_wakeups;
    std::this_thread::sleep_for(1s);  // 100 intervals
    CHECK(outbox.metrics().flusher_wakeups == woke);
    // Work wakes it: a new append is synced within the interval.
    const auto fsyncs = outbox.metrics().fsyncs;
    append_n(outbox, "kitchen", 1);
    CHECK(test::wait_until([&] { return outbox.metrics().fsyncs > fsyncs; }, 10s));
}

TEST_CASE("outbox refuses a record of a closed segment whose payload byte flipped, index intact") {
    test::TempDir dir("outbox");
    std::vector<Reading> written;
    {
        Outbox outbox(dir.path(), small_segments());
        for (std::uint64_t i = 0; i < 150; ++i) {
            Reading r = make("kitchen", i);
            outbox.append(r);
            written.push_back(r);
        }
    }
    const auto segs = files_with(dir.path(), ".seg");
    REQUIRE(segs.size() >= 3);
    REQUIRE(files_with(dir.path(), ".idx").size() == segs.size() - 1);
    // The last byte of the first segment is the humidity of its last reading.
    flip_byte(segs[0], fs::file_size(segs[0]) - 1);
    const auto idx_before = test::read_file(fs::path(segs[0]).replace_extension(".idx"));
    Outbox outbox(dir.path(), small_segments());
    CHECK(outbox.metrics().corrupt_records == 0);  // open trusts the intact index
    CHECK(test::read_file(fs::path(segs[0]).replace_extension(".idx")) == idx_before);
    const auto got = outbox.read("kitchen", 1, 1000);
    CHECK(outbox.metrics().corrupt_records == 1);  // the read refused the record
    REQUIRE(!got.readings.empty());
    std::uint64_t missing = 0;
    for (const auto& r : got.readings) {
        CHECK(r == written.at(static_cast<std::size_t>(r.seq - 1)));  // never a changed reading
    }
    for (std::uint64_t seq = 1; seq <= 150; ++seq) {
        missing += std::none_of(got.readings.begin(), got.readings.end(),
                                [&](const Reading& r) { return r.seq == seq; });
    }
    CHECK(missing >= 1);
    const auto payload = outbox.read_payload("kitchen", 1, 1000);
    CHECK(payload.count == got.readings.size());
    CHECK(outbox.metrics().corrupt_records == 2);
}

TEST_CASE("outbox replay answers stay within the payload limit for 10,000 readings of 16 extras") {
    test::TempDir dir("outbox");
    OutboxOptions o = small_segments();
    o.segment_bytes = 16ULL << 20;
    Outbox outbox(dir.path(), o);
    for (int b = 0; b < 100; ++b) {
        std::vector<Reading> batch;
        for (int i = 0; i < 100; ++i) {
            Reading r = make("kitchen", static_cast<std::uint64_t>(b * 100 + i));
            for (int e = 0; e < 16; ++e) {
                r.extras.push_back({"extra-quantity-with-long-name" + std::to_string(e % 10) +
                                        std::to_string(e / 10),
                                    1.5 * e});
            }
            batch.push_back(std::move(r));
        }
        outbox.append(batch);
    }
    const auto first = outbox.read_payload("kitchen", 1, 10'000);
    CHECK(first.count > 0);
    CHECK(first.count < 10'000);
    CHECK(first.payload.size() <= limits::max_payload_bytes);

    zmq::context_t ctx;
    ReplayServer stored(
        ctx, "tcp://127.0.0.1:0", ReplayServer::PayloadCallback([&](const ReplayRequest& r) {
            return ReplayPayloadReply{outbox.read_payload(r.sensor, r.from_seq, r.max_readings)};
        }));
    ReplayServer decoded(ctx, "tcp://127.0.0.1:0",
                         ReplayServer::Callback([&](const ReplayRequest& r) {
                             const auto got = outbox.read(r.sensor, r.from_seq, r.max_readings);
                             ReplayReply reply;
                             reply.readings = got.readings;
                             reply.first_available = got.first_available;
                             reply.newest = got.newest;
                             return reply;
                         }));
    for (ReplayServer* server : {&stored, &decoded}) {
        ReplayClient client(ctx, server->last_endpoint());
        const auto one = client.request({"kitchen", 1, 10'000}, {10s, 0});
        CHECK(one.readings.size() > 0);
        CHECK(one.readings.size() < 10'000);
        const auto all = client.fetch("kitchen", 1, 10'000, {10'000, {10s, 0}});
        CHECK(all.readings.size() == 10'000);
        CHECK(all.lost.empty());
        CHECK(all.requests > 1);
    }
}

TEST_CASE("a replay reply with a skipped range encodes as proto/replay_v1.md shows") {
    ReplayReply reply;
    reply.first_available = 1;
    reply.newest = 140;
    reply.skipped = SeqRange{11, 138};
    CHECK(encode_replay_reply(reply) ==
          std::string("\x95\xc4\x00\x01\xcc\x8c\xc0\x92\x0b\xcc\x8a", 11));
    reply.skipped = SeqRange{141, 141};  // above newest
    CHECK_THROWS_AS((void)encode_replay_reply(reply), std::invalid_argument);
    reply.skipped.reset();
    CHECK(encode_replay_reply(reply) ==
          std::string("\x94\xc4\x00\x01\xcc\x8c\xc0", 7));  // 4 elements, as before
}

TEST_CASE("many slow sensors share their seq reservation writes") {
    test::TempDir dir("outbox");
    Outbox outbox(dir.path(), rarely_synced());
    constexpr int sensors = 100;
    std::uint64_t first_round = 0;
    for (int round = 0; round < 100; ++round) {
        for (int s = 0; s < sensors; ++s) {
            Reading r = make("sensor-" + std::to_string(s), static_cast<std::uint64_t>(round));
            outbox.append(r);
        }
        if (round == 0) first_round = outbox.metrics().reservations;  // one per new sensor
    }
    // Every sensor passes its first block (64) at round 64: one shared write, not 100.
    CHECK(first_round == sensors);
    CHECK(outbox.metrics().reservations - first_round <= 2);
}
