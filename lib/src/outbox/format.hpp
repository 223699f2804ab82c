// The outbox's on-disk format (docs/outbox.md): segment headers, records (encode, parse,
// CRC), snapshot records and index files, and the in-memory index a segment is described by.
// Internal to the outbox module; the log (outbox.cpp) owns segments, bounds, fsyncs and
// recovery. Keep this and docs/outbox.md in step.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "rill/reading.hpp"
#include "rill/seq_ranges.hpp"

namespace rill::outbox_format {

namespace fs = std::filesystem;

// Segments pass 4 GiB with large segment_bytes: file positions must reach pread/pwrite/ftruncate
// whole (lib/CMakeLists.txt sets _FILE_OFFSET_BITS=64 on 32-bit targets).
static_assert(sizeof(off_t) == 8,
              "the outbox needs a 64-bit off_t: build with _FILE_OFFSET_BITS=64");

// --- on-disk constants (docs/outbox.md) ------------------------------------------------------
constexpr std::string_view segment_magic = "RILLOBX1";
constexpr std::string_view index_magic = "RILLOIX1";
constexpr std::uint32_t format_version = 1;
constexpr std::size_t segment_header_bytes = 40;
constexpr std::size_t record_prefix_bytes = 8;  // length, crc
constexpr std::size_t record_fixed_bytes = 24;  // kind .. appended_at, after the prefix
constexpr std::size_t record_header_bytes = record_prefix_bytes + record_fixed_bytes;
constexpr std::uint32_t max_record_length = 64U << 20;
constexpr std::uint8_t kind_readings = 1;
constexpr std::uint8_t kind_snapshot = 2;
// A sparse index entry per sensor at least every this many bytes of a segment, so a read
// starts scanning at most this far before its first reading.
constexpr std::uint64_t checkpoint_stride = 64 * 1024;
// Reads start with small chunks (a replay usually wants little) and double up to the maximum.
constexpr std::size_t first_read_chunk = 64 * 1024;
constexpr std::size_t max_read_chunk = 1 << 20;
// Records stamped before 2020-01-01 were written while the clock was not set (a Raspberry Pi
// without a real-time clock boots in the past until NTP answers): their age is unknown, so
// max_age does not delete them; max_bytes still does.
constexpr Timestamp plausible_time{std::chrono::seconds{1'577'836'800}};

// --- little-endian fields --------------------------------------------------------------------
void put_u8(std::string& out, std::uint8_t v);
void put_u16(std::string& out, std::uint16_t v);
void put_u32(std::string& out, std::uint32_t v);
void put_u64(std::string& out, std::uint64_t v);
void set_u32(std::string& out, std::size_t at, std::uint32_t v);
std::uint64_t get_le(const char* p, int n);
std::uint32_t get_u32(const char* p);
std::uint64_t get_u64(const char* p);
std::int64_t to_us(Timestamp t);
Timestamp from_us(std::uint64_t v);
[[noreturn]] void throw_errno(const std::string& what, const fs::path& path);
void sync_directory(const fs::path& dir);

// --- an owning file descriptor ---------------------------------------------------------------
class File {
  public:
    File(const fs::path& path, int flags) : path_(path) {
        fd_ = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
        if (fd_ < 0) throw_errno("cannot open outbox file", path);
    }
    ~File() {
        if (fd_ >= 0) ::close(fd_);
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    [[nodiscard]] const fs::path& path() const noexcept { return path_; }
    [[nodiscard]] int fd() const noexcept { return fd_; }

    void write_at(std::string_view data, std::uint64_t offset) const {
        while (!data.empty()) {
            const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
            if (n < 0) {
                if (errno == EINTR) continue;
                throw_errno("cannot write outbox file", path_);
            }
            data.remove_prefix(static_cast<std::size_t>(n));
            offset += static_cast<std::uint64_t>(n);
        }
    }
    // Reads up to `n` bytes at `offset`; fewer only at the end of the file.
    std::size_t read_at(char* buf, std::size_t n, std::uint64_t offset) const {
        std::size_t done = 0;
        while (done < n) {
            const ssize_t r = ::pread(fd_, buf + done, n - done, static_cast<off_t>(offset + done));
            if (r < 0) {
                if (errno == EINTR) continue;
                throw_errno("cannot read outbox file", path_);
            }
            if (r == 0) break;
            done += static_cast<std::size_t>(r);
        }
        return done;
    }
    void datasync() const {
        if (::fdatasync(fd_) != 0) throw_errno("cannot fdatasync outbox file", path_);
    }
    void truncate(std::uint64_t size) const {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
            throw_errno("cannot truncate outbox file", path_);
        }
    }
    [[nodiscard]] std::uint64_t size() const {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) throw_errno("cannot stat outbox file", path_);
        return static_cast<std::uint64_t>(st.st_size);
    }

  private:
    fs::path path_;
    int fd_ = -1;
};

// Buffered sequential access to [0, end) of a file: views of byte ranges, refilled in chunks.
class ChunkReader {
  public:
    ChunkReader(const File& f, std::uint64_t end) : file_(f), end_(end) {}
    // A view of [offset, offset + n), or nothing when that passes the end.
    std::optional<std::string_view> get(std::uint64_t offset, std::size_t n) {
        if (offset > end_ || n > end_ - offset) return std::nullopt;
        if (offset < buf_offset_ || offset + n > buf_offset_ + buf_.size()) {
            const std::size_t want = static_cast<std::size_t>(
                std::min<std::uint64_t>(std::max(n, chunk_), end_ - offset));
            chunk_ = std::min(chunk_ * 2, max_read_chunk);
            buf_.resize(want);
            buf_.resize(file_.read_at(buf_.data(), want, offset));
            buf_offset_ = offset;
            if (buf_.size() < n) return std::nullopt;  // the file is shorter than expected
        }
        return std::string_view(buf_).substr(static_cast<std::size_t>(offset - buf_offset_), n);
    }

  private:
    const File& file_;
    std::uint64_t end_;
    std::string buf_;
    std::uint64_t buf_offset_ = 0;
    std::size_t chunk_ = first_read_chunk;
};

// --- records ---------------------------------------------------------------------------------
struct Record {
    std::uint64_t offset = 0;
    std::uint64_t size = 0;  // prefix + length
    std::uint8_t kind = 0;
    std::uint32_t count = 0;
    std::uint64_t first_seq = 0;
    Timestamp appended_at{};
    std::string_view sensor;
    std::string_view payload;
};

enum class RecordStatus { ok, end, torn, corrupt };

struct Parsed {
    RecordStatus status = RecordStatus::end;
    Record record;
    std::string problem;
};

// Parses and verifies the record at `offset`. `end` = the offset reads stop at.
Parsed parse_record(ChunkReader& in, std::uint64_t offset, std::uint64_t end);
// Why the decoded payload `batch` of readings record `r` disagrees with the record's header
// (sensor, first_seq, count); empty when it agrees.
std::string payload_mismatch(const Record& r, const std::vector<Reading>& batch);
// One encoded reading of a readings record: its seq and its bytes (a view into the record).
struct RecordReading {
    std::uint64_t seq = 0;
    std::string_view bytes;
};
// Frames the payload of readings record `r` into its encoded readings without decoding them,
// checking what payload_mismatch checks (the payload's sensor, count and seqs agree with the
// header) and that nothing follows the last reading. Throws DecodeError when they disagree or
// the payload is not a readings payload. The readings' values are not checked.
std::vector<RecordReading> frame_record(const Record& r);
void begin_record(std::string& out, std::uint8_t kind, std::string_view sensor, std::uint32_t count,
                  std::uint64_t first_seq, Timestamp at);
void finish_record(std::string& out);
std::string segment_header(std::uint64_t number, Timestamp created);
std::string segment_name(std::uint64_t number, std::string_view ext);
std::optional<std::uint64_t> segment_number_of(const fs::path& p, std::string_view ext);

// --- in-memory index -------------------------------------------------------------------------
struct Checkpoint {
    std::uint64_t seq;     // first seq of the record at offset
    std::uint64_t offset;  // of a record of this sensor
};

// What one segment holds of one sensor. readings == 0: the sensor appears only in the
// segment's snapshot.
struct Extent {
    std::uint64_t snapshot_newest = 0;
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::uint64_t readings = 0;
    std::vector<Checkpoint> checkpoints;
};

struct Segment {
    std::uint64_t number = 0;
    fs::path path;
    std::shared_ptr<File> file;  // open for the active segment only
    std::uint64_t end = 0;       // end of the valid records; appends go here
    std::uint64_t file_size = 0;
    std::uint64_t index_bytes = 0;
    Timestamp created{};
    Timestamp newest_at{};  // appended_at of its newest record
    bool has_snapshot = false;
    bool has_readings = false;
    std::map<std::string, Extent, std::less<>> sensors;

    [[nodiscard]] std::uint64_t disk_bytes() const { return file_size + index_bytes; }

    void add_readings(std::string_view sensor, std::uint64_t first, std::uint32_t count,
                      std::uint64_t offset, Timestamp at) {
        auto it = sensors.find(sensor);
        if (it == sensors.end()) it = sensors.emplace(std::string(sensor), Extent{}).first;
        Extent& e = it->second;
        if (e.readings == 0) e.first = first;
        has_readings = true;
        if (e.checkpoints.empty() || offset - e.checkpoints.back().offset >= checkpoint_stride) {
            e.checkpoints.push_back({first, offset});
        }
        e.last = first + count - 1;
        e.readings += count;
        newest_at = std::max(newest_at, at);
    }
};

// The result of verifying a segment file from its start.
struct ScanResult {
    Segment segment;
    bool header_ok = false;
    std::optional<std::uint64_t> bad_offset;  // the first torn/corrupt record
    std::string problem;
};

ScanResult scan_segment(const fs::path& path, std::uint64_t number);
// The index file of a closed segment: its in-memory summary, so that open need not read it.
std::string encode_index(const Segment& seg);
// Loads an index file into `seg` (path, number and file_size already set). False when the
// index is missing, damaged or describes another version of the segment.
bool load_index(const fs::path& path, Segment& seg);

// --- seq reservations (docs/outbox.md, "Seq reservations") ------------------------------------
// Two files, written in turn; the valid one with the higher generation holds the state.
constexpr std::string_view reservation_magic = "RILLORS1";
constexpr std::string_view reservation_files[2] = {"seqs-0.rsv", "seqs-1.rsv"};
// Skipped ranges kept per sensor; beyond it the oldest is forgotten (then replayed as lost).
constexpr std::size_t max_skipped_ranges = 64;
// A boot id is a 36-character UUID; longer text is not one.
constexpr std::size_t max_boot_id_bytes = 64;

// What the reservation files say of one sensor.
struct SeqState {
    std::uint64_t reserved = 0;     // no seq above this was handed out
    std::vector<SeqRange> skipped;  // seqs reserved before a crash and never durably written
    bool operator==(const SeqState&) const = default;
};
using SeqStates = std::map<std::string, SeqState, std::less<>>;

// A reservation file's content.
struct Reservations {
    std::uint64_t generation = 0;  // grows by one per write
    // Written by close(): every reservation equals the newest seq handed out.
    bool released = false;
    // The boot id (/proc/sys/kernel/random/boot_id) of the writer's boot; empty when unknown.
    std::string boot_id;
    SeqStates states;
};

std::string encode_reservations(const Reservations& r);
// A reservation file's content; nothing when its bytes are damaged.
std::optional<Reservations> decode_reservations(std::string_view data);
// The boot id in the file at `path` (its first line, at most 64 bytes); empty when it cannot be
// read.
std::string read_boot_id(const fs::path& path);
// Adds [first, last] to `ranges` (sorted, disjoint), merging overlapping and adjacent ranges.
void add_range(std::vector<SeqRange>& ranges, SeqRange r);
// The parts of [first, last] not covered by `ranges` (sorted, disjoint).
std::vector<SeqRange> subtract_ranges(SeqRange r, const std::vector<SeqRange>& ranges);

}  // namespace rill::outbox_format
