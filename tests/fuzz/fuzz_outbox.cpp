// fuzz-outbox: opening an Outbox whose only (newest) segment file holds the fuzz input, then
// reading every sensor it recovered. Damaged files must never crash it or make it throw
// (rill/outbox.hpp); a read returns readings of the sensor asked for, in increasing seq order.
//
// Input: byte 0 is a mode; the rest is the segment file. Mode bit 0 set: the harness rewrites
// the header checksum and every record's length-prefixed checksum before writing the file, so
// the fuzzer reaches the record parser behind the CRC-32C check (docs/outbox.md).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "fuzz_input.hpp"
#include "rill/crc32c.hpp"
#include "rill/log.hpp"
#include "rill/outbox.hpp"

namespace {

namespace fs = std::filesystem;

constexpr std::size_t header_bytes = 40;
constexpr std::size_t header_crc_at = 32;

std::uint32_t get_u32(const std::string& s, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i)
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}

std::uint64_t get_u64(const std::string& s, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i)
        v |= static_cast<std::uint64_t>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    return v;
}

void put_u32(std::string& s, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i)
        s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFU);
}

// Makes every checksum of `file` match what it covers, record by record, as far as the
// record lengths lead.
void fix_checksums(std::string& file) {
    if (file.size() < header_bytes) return;
    put_u32(file, header_crc_at, rill::crc32c(std::string_view(file).substr(0, header_crc_at)));
    std::size_t off = header_bytes;
    while (off + 8 <= file.size()) {
        const std::uint32_t length = get_u32(file, off);
        if (length > file.size() - off - 8) break;
        put_u32(file, off + 4, rill::crc32c(std::string_view(file).substr(off + 8, length)));
        off += 8 + std::size_t{length};
    }
}

// A fresh directory per input, removed when the input is done (libFuzzer ends a run with
// _Exit, so nothing that lives until exit is ever cleaned up).
struct Scratch {
    fs::path dir;
    Scratch() {
        // tmpfs when there is one: the outbox does several file operations per input.
        const fs::path base =
            fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
        std::string pattern = (base / "rill-fuzz-outbox-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) std::abort();
        dir = pattern;
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
};

std::string segment_file_name(const std::string& file) {
    const std::uint64_t number = file.size() >= 24 ? get_u64(file, 16) : 1;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%020llu.seg", static_cast<unsigned long long>(number));
    return buf;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    std::string file(reinterpret_cast<const char*>(data) + 1, size - 1);
    if ((data[0] & 1U) != 0) fix_checksums(file);

    rill::set_log_level(rill::LogLevel::error);  // damaged files are logged as warnings
    const Scratch scratch;
    const fs::path& dir = scratch.dir;
    {
        std::ofstream out(dir / segment_file_name(file), std::ios::binary);
        out.write(file.data(), static_cast<std::streamsize>(file.size()));
        if (!out) std::abort();
    }

    rill::OutboxOptions options;
    options.fsync = rill::FsyncPolicy::never;
    options.max_age = std::chrono::seconds(0);
    options.clock = [] {
        return rill::Timestamp{std::chrono::microseconds(1'763'719'200'000'000)};
    };
    rill::Outbox outbox(dir, options);
    for (const auto& [sensor, newest] : outbox.newest_all()) {
        if (outbox.newest(sensor) != newest) rill::fuzz::fail("newest(s) agrees with newest_all()");
        for (const std::uint64_t from : {std::uint64_t{1}, outbox.first_available(sensor)}) {
            const rill::OutboxRead got = outbox.read(sensor, from, 100'000);
            std::uint64_t previous = 0;
            for (const auto& r : got.readings) {
                if (r.sensor != sensor) rill::fuzz::fail("read(s) returns readings of s only");
                if (r.seq < from) rill::fuzz::fail("read(s, from) returns seq >= from");
                if (r.seq <= previous) rill::fuzz::fail("read() returns increasing seqs");
                if (r.seq > newest) rill::fuzz::fail("read() returns seqs up to newest(s)");
                previous = r.seq;
            }
            // The stored-bytes path (a replay's answer) keeps to the same bounds. It frames
            // records (rill's own encoding only) without checking the readings' values, so
            // what it takes can differ from read()'s on crafted records.
            const rill::OutboxPayload bytes = outbox.read_payload(sensor, from, 100'000);
            if (bytes.payload.empty() != (bytes.count == 0)) {
                rill::fuzz::fail("read_payload() gives a payload exactly when it has readings");
            }
            if (bytes.count > 0 && (bytes.first_seq < from || bytes.last_seq > newest ||
                                    bytes.last_seq - bytes.first_seq + 1 < bytes.count)) {
                rill::fuzz::fail("read_payload() gives increasing seqs in [from, newest]");
            }
        }
    }
    return 0;
}
