// Dates past 2038 and outbox offsets past 4 GiB, on every architecture
// (docs/raspberry-pi.md "32-bit time on armhf"). On a 32-bit target (armhf) these fail when the
// library is built with a 32-bit time_t or off_t: 2040 formats as 1903, and a segment larger than 2
// GiB cannot even be opened.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "rill/codec.hpp"
#include "rill/crc32c.hpp"
#include "rill/outbox.hpp"
#include "rill/reading.hpp"
#include "rill/stream_json.hpp"
#include "rill/units.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// 2040-01-01T00:00:00Z: past 2038-01-19T03:14:07Z, the last second of a signed 32-bit time_t.
constexpr Timestamp y2040{std::chrono::seconds{2'208'988'800}};
// 2106-02-07T06:28:16Z: 2^32 seconds, past even an unsigned 32-bit count of seconds.
constexpr Timestamp y2106{std::chrono::seconds{4'294'967'296}};

Reading reading_at(const std::string& sensor, Timestamp ts, std::uint64_t seq = 1) {
    Reading r;
    r.sensor = sensor;
    r.seq = seq;
    r.ts = ts;
    r.temperature = 21.5f;
    r.humidity = 40.25f;
    return r;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, std::string_view data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    REQUIRE(out.good());
}

std::uint64_t get_u64(const std::string& s, std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
    return v;
}
std::uint32_t get_u32(const std::string& s, std::size_t at) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
    return v;
}
void set_u64(std::string& s, std::size_t at, std::uint64_t v) {
    for (std::size_t i = 0; i < 8; ++i)
        s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFU);
}
void set_u32(std::string& s, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i)
        s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFU);
}

// Moves the records of closed segment `number` of the outbox in `dir` so that they start at
// `base` (past 4 GiB), leaving a hole (a sparse file) between the segment's snapshot and them,
// and rewrites its index file (docs/outbox.md, "Index files") to match: file size, end and
// every checkpoint offset move by the same amount. Returns the new size of the segment file.
std::uint64_t move_records_past(const fs::path& dir, std::uint64_t number, std::uint64_t base) {
    char name[32];
    std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(number));
    const fs::path seg_path = dir / (std::string(name) + ".seg");
    const fs::path idx_path = dir / (std::string(name) + ".idx");
    const std::string seg = read_file(seg_path);
    std::string idx = read_file(idx_path);
    REQUIRE(idx.size() > 60);
    REQUIRE(idx.substr(0, 8) == "RILLOIX1");
    REQUIRE(get_u64(idx, 16) == seg.size());
    const std::uint64_t end = get_u64(idx, 24);
    REQUIRE(end == seg.size());
    // The first readings record: the smallest checkpoint offset of any sensor.
    std::uint64_t first = end;
    std::vector<std::size_t> checkpoint_fields;
    const std::uint32_t sensors = get_u32(idx, 48);
    std::size_t at = 56;
    for (std::uint32_t i = 0; i < sensors; ++i) {
        const std::size_t len = static_cast<unsigned char>(idx[at]);
        at += 1 + len + 32;
        const std::uint32_t checkpoints = get_u32(idx, at);
        at += 4;
        for (std::uint32_t k = 0; k < checkpoints; ++k) {
            checkpoint_fields.push_back(at + 8);
            first = std::min(first, get_u64(idx, at + 8));
            at += 16;
        }
    }
    REQUIRE(at + 4 == idx.size());
    REQUIRE(first < end);
    const std::uint64_t delta = base - first;
    {
        // The head (segment header and snapshot) stays; the records go to `base`. Seeking past
        // the end and writing leaves a hole: the file takes no more disk than before.
        std::ofstream out(seg_path, std::ios::binary | std::ios::trunc);
        out.write(seg.data(), static_cast<std::streamsize>(first));
        out.seekp(static_cast<std::streamoff>(base));
        out.write(seg.data() + first, static_cast<std::streamsize>(end - first));
        REQUIRE(out.good());
    }
    const std::uint64_t size = end + delta;
    REQUIRE(fs::file_size(seg_path) == size);
    set_u64(idx, 16, size);
    set_u64(idx, 24, size);
    for (const std::size_t f : checkpoint_fields)
        set_u64(idx, f, get_u64(idx, f) + delta);
    set_u32(idx, idx.size() - 4, crc32c(std::string_view(idx).substr(0, idx.size() - 4)));
    write_file(idx_path, idx);
    return size;
}

OutboxOptions big_outbox(std::uint64_t max_bytes) {
    OutboxOptions o;
    o.fsync = FsyncPolicy::never;
    o.segment_bytes = 4096;
    o.max_bytes = max_bytes;
    o.max_age = 0s;
    return o;
}

}  // namespace

TEST_CASE("readings dated 2040, 2106 and 9999 are valid and survive the codec unchanged") {
    const Timestamp y9999{std::chrono::microseconds{limits::max_ts_us}};
    std::vector<Reading> batch;
    std::uint64_t seq = 1;
    for (const Timestamp ts : {y2040, y2040 + 1us, y2106, y2106 + 1us, y9999})
        batch.push_back(reading_at("future", ts, seq++));
    for (const Reading& r : batch) {
        CAPTURE(r.ts.time_since_epoch().count());
        CHECK_FALSE(reading_problem(r).has_value());
    }
    const std::vector<Reading> back = decode_batch(encode_batch(batch));
    CHECK(back == batch);
}

TEST_CASE("dates past 2038 and 2106 format and parse as RFC 3339 without wrapping") {
    CHECK(to_iso8601(y2040) == "2040-01-01T00:00:00.000000Z");
    CHECK(to_iso8601(y2040 + 1'500'000us) == "2040-01-01T00:00:01.500000Z");
    CHECK(to_iso8601(y2106) == "2106-02-07T06:28:16.000000Z");
    CHECK(to_iso8601(Timestamp{std::chrono::microseconds{limits::max_ts_us}}) ==
          "9999-12-31T23:59:59.999999Z");
    // Just before and after the last second of a 32-bit time_t.
    CHECK(to_iso8601(Timestamp{std::chrono::seconds{2'147'483'647}}) ==
          "2038-01-19T03:14:07.000000Z");
    CHECK(to_iso8601(Timestamp{std::chrono::seconds{2'147'483'648}}) ==
          "2038-01-19T03:14:08.000000Z");
    CHECK(parse_time("2040-01-01T00:00:00Z") == y2040);
    CHECK(parse_time("2106-02-07T06:28:16Z") == y2106);
    CHECK(parse_time("4294967296") == y2106);
    for (const Timestamp ts : {y2040 + 123'456us, y2106 + 999'999us}) {
        CHECK(parse_time(to_iso8601(ts)) == ts);
    }
}

TEST_CASE("the stream's JSON text writes readings and heartbeats dated past 2038") {
    std::string out;
    append_json(out, reading_at("future", y2106 + 250'000us, 7));
    CHECK(out.find("\"ts\":\"2106-02-07T06:28:16.250000Z\"") != std::string::npos);
    HeartbeatSeen hb;
    hb.heartbeat.publisher = "pi";
    hb.heartbeat.sent_at = y2040;
    out.clear();
    append_json(out, hb);
    CHECK(out.find("\"sent_at\":\"2040-01-01T00:00:00.000000Z\"") != std::string::npos);
}

TEST_CASE("the outbox keeps readings dated past 2038 across a restart and ages them by its clock") {
    test::TempDir dir("time64");
    Timestamp clock = y2106;
    OutboxOptions o;
    o.fsync = FsyncPolicy::never;
    o.segment_bytes = 4096;
    o.max_bytes = 64ULL << 20;
    o.max_age = std::chrono::hours(24 * 7);
    o.clock = [&] { return clock; };
    std::vector<OutboxDrop> drops;
    o.on_drop = [&](const OutboxDrop& d) { drops.push_back(d); };
    std::vector<Reading> written;
    {
        Outbox outbox(dir.path(), o);
        for (int i = 0; i < 200; ++i) {
            Reading r = reading_at("future", (i % 2 == 0 ? y2040 : y2106) + i * 1s);
            (void)outbox.append(r);
            written.push_back(r);
        }
        REQUIRE(outbox.metrics().segments > 2);
    }
    {
        clock = y2106 + 24h;  // a day later: nothing is too old yet
        const Outbox outbox(dir.path(), o);
        const OutboxRead got = outbox.read("future", 1, 1000);
        CHECK(got.readings == written);
        CHECK(drops.empty());
    }
    {
        clock = y2106 + std::chrono::hours(24 * 8);  // every closed segment is now too old
        const Outbox outbox(dir.path(), o);
        REQUIRE_FALSE(drops.empty());
        for (const OutboxDrop& d : drops)
            CHECK(d.reason == DropReason::max_age);
        CHECK(drops.front().from_seq == 1);
        CHECK(outbox.first_available("future") > 1);
        CHECK(outbox.newest("future") == 200);
    }
}

TEST_CASE("the outbox reads, replays and resumes records stored past 4 GiB into a segment") {
    test::TempDir dir("time64");
    const std::uint64_t max_bytes = parse_size("8GiB");
    std::vector<Reading> written;
    {
        Outbox outbox(dir.path(), big_outbox(max_bytes));
        for (std::int64_t i = 0; i < 200; ++i) {
            Reading r = reading_at("big", Timestamp{1'795'255'200s} + i * 1s);
            (void)outbox.append(r);
            written.push_back(r);
        }
        REQUIRE(outbox.metrics().segments >= 3);
    }
    // Segment 1 (closed, with its index) now holds its records past the 4 GiB mark.
    const std::uint64_t base = (1ULL << 32) + (1ULL << 20);
    const std::uint64_t size = move_records_past(dir.path(), 1, base);
    REQUIRE(size > (1ULL << 32));
    const auto check_all = [&](const Outbox& outbox, std::size_t expected) {
        const OutboxRead got = outbox.read("big", 1, 1000);
        CHECK(got.first_available == 1);
        REQUIRE(got.readings.size() == expected);
        CHECK(std::equal(got.readings.begin(), got.readings.end(), written.begin()));
        // What a replay sends: the stored bytes, spliced.
        const OutboxPayload payload = outbox.read_payload("big", 1, 1000);
        CHECK(payload.count == expected);
        CHECK(payload.first_seq == 1);
        CHECK(decode_batch(payload.payload) == got.readings);
        // A read that starts in the middle of the moved records.
        const OutboxRead middle = outbox.read("big", 5, 3);
        REQUIRE(middle.readings.size() == 3);
        CHECK(middle.readings.front() == written[4]);
    };
    {
        Outbox outbox(dir.path(), big_outbox(max_bytes));
        CHECK(outbox.metrics().disk_bytes > size);
        check_all(outbox, written.size());
        // Resume: seqs go on after a restart, next to the segment past 4 GiB.
        for (std::int64_t i = 0; i < 5; ++i) {
            Reading r = reading_at("big", Timestamp{1'795'255'200s} + (200 + i) * 1s);
            CHECK(outbox.append(r).first == static_cast<std::uint64_t>(201 + i));
            written.push_back(r);
        }
    }
    const Outbox outbox(dir.path(), big_outbox(max_bytes));
    check_all(outbox, written.size());
    CHECK(outbox.newest("big") == 205);
}

TEST_CASE("an outbox of more than 4 GiB on disk is counted and bounded without wrapping") {
    test::TempDir dir("time64");
    {
        Outbox outbox(dir.path(), big_outbox(parse_size("8GiB")));
        for (std::int64_t i = 0; i < 200; ++i) {
            Reading r = reading_at("big", Timestamp{1'795'255'200s} + i * 1s);
            (void)outbox.append(r);
        }
        REQUIRE(outbox.metrics().segments >= 2);
    }
    const std::uint64_t size = move_records_past(dir.path(), 1, (1ULL << 32) + 4096);
    std::vector<OutboxDrop> drops;
    OutboxOptions o = big_outbox(parse_size("4GiB"));
    o.on_drop = [&](const OutboxDrop& d) { drops.push_back(d); };
    const Outbox outbox(dir.path(), o);
    // 4 GiB and a bit do not fit in 4 GiB: the oldest segment goes, and it is said so.
    REQUIRE(drops.size() == 1);
    CHECK(drops[0].reason == DropReason::max_bytes);
    CHECK(drops[0].from_seq == 1);
    CHECK(outbox.first_available("big") == drops[0].to_seq + 1);
    CHECK(outbox.metrics().disk_bytes < size);
    CHECK(outbox.metrics().dropped_segments == 1);
}

TEST_CASE("sizes of 4 GiB and more parse exactly without wrapping") {
    CHECK(parse_size("4GiB") == 4ULL << 30);
    CHECK(parse_size("8GiB") == 8ULL << 30);
    CHECK(parse_size("4294967296") == 1ULL << 32);
    CHECK(parse_size("4294967297B") == (1ULL << 32) + 1);
    CHECK(parse_size("1.5GiB") == 3ULL << 29);
    CHECK(parse_size("16TiB") == 16ULL << 40);
    CHECK(parse_size("9007199254740993") == 9'007'199'254'740'993ULL);  // 2^53 + 1
    CHECK(parse_size("10000000000000000000") == 10'000'000'000'000'000'000ULL);
    CHECK(parse_size("18446744073709551615") == 18'446'744'073'709'551'615ULL);
    for (const char* bad : {"18446744073709551616", "16777216TiB", "99999999999999999999G"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS((void)parse_size(bad), std::invalid_argument);
    }
}
