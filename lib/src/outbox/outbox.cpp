// The outbox log. File formats are specified in docs/outbox.md; keep the two in step.
#include "rill/outbox.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "rill/codec.hpp"
#include "rill/crc32c.hpp"
#include "rill/log.hpp"

namespace rill {

std::string_view to_string(DropReason r) noexcept {
    switch (r) {
        case DropReason::max_bytes:
            return "max_bytes";
        case DropReason::max_age:
            return "max_age";
        case DropReason::corrupt:
            return "corrupt";
    }
    return "unknown";
}

namespace {

namespace fs = std::filesystem;
constexpr std::string_view component = "outbox";

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
void put_u8(std::string& out, std::uint8_t v) {
    out.push_back(static_cast<char>(v));
}
void put_u16(std::string& out, std::uint16_t v) {
    for (int i = 0; i < 2; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
}
void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
}
void put_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFU));
}
void set_u32(std::string& out, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i)
        out[at + i] = static_cast<char>((v >> (8 * i)) & 0xFFU);
}
std::uint64_t get_le(const char* p, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i)
        v = (v << 8) | static_cast<unsigned char>(p[i]);
    return v;
}
std::uint32_t get_u32(const char* p) {
    return static_cast<std::uint32_t>(get_le(p, 4));
}
std::uint64_t get_u64(const char* p) {
    return get_le(p, 8);
}
std::int64_t to_us(Timestamp t) {
    return t.time_since_epoch().count();
}
Timestamp from_us(std::uint64_t v) {
    return Timestamp{std::chrono::microseconds{static_cast<std::int64_t>(v)}};
}

[[noreturn]] void throw_errno(const std::string& what, const fs::path& path) {
    throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

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

void sync_directory(const fs::path& dir) {
    const File d(dir, O_RDONLY | O_DIRECTORY);
    if (::fsync(d.fd()) != 0) throw_errno("cannot fsync outbox directory", dir);
}

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
Parsed parse_record(ChunkReader& in, std::uint64_t offset, std::uint64_t end) {
    Parsed p;
    if (offset == end) return p;
    const auto prefix = in.get(offset, record_prefix_bytes);
    if (!prefix) {
        p.status = RecordStatus::torn;
        p.problem = "short record header";
        return p;
    }
    const std::uint32_t length = get_u32(prefix->data());
    const std::uint32_t crc = get_u32(prefix->data() + 4);
    if (length < record_fixed_bytes || length > max_record_length) {
        p.status = RecordStatus::corrupt;
        p.problem = "record length " + std::to_string(length) + " out of range";
        return p;
    }
    const auto body = in.get(offset + record_prefix_bytes, length);
    if (!body) {
        p.status = RecordStatus::torn;
        p.problem = "record of " + std::to_string(length) + " bytes passes the end of the file";
        return p;
    }
    if (crc32c(*body) != crc) {
        p.status = RecordStatus::corrupt;
        p.problem = "checksum mismatch";
        return p;
    }
    const char* b = body->data();
    Record& r = p.record;
    r.offset = offset;
    r.size = record_prefix_bytes + length;
    r.kind = static_cast<std::uint8_t>(b[0]);
    const std::size_t sensor_len = static_cast<unsigned char>(b[1]);
    r.count = get_u32(b + 4);
    r.first_seq = get_u64(b + 8);
    r.appended_at = from_us(get_u64(b + 16));
    const bool readings_ok = r.kind == kind_readings && sensor_len >= 1 &&
                             sensor_len <= limits::max_sensor_id_bytes &&
                             record_fixed_bytes + sensor_len < length && r.count >= 1 &&
                             r.first_seq >= 1 && r.first_seq + r.count > r.first_seq;
    const bool snapshot_ok = r.kind == kind_snapshot && sensor_len == 0;
    if (!readings_ok && !snapshot_ok) {
        p.status = RecordStatus::corrupt;
        p.problem = "inconsistent record header";
        return p;
    }
    r.sensor = body->substr(record_fixed_bytes, sensor_len);
    r.payload = body->substr(record_fixed_bytes + sensor_len);
    p.status = RecordStatus::ok;
    return p;
}

// Why the decoded payload `batch` of readings record `r` disagrees with the record's header
// (sensor, first_seq, count); empty when it agrees.
std::string payload_mismatch(const Record& r, const std::vector<Reading>& batch) {
    if (batch.size() != r.count) {
        return "payload holds " + std::to_string(batch.size()) + " readings, the header " +
               std::to_string(r.count);
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch[i].sensor != r.sensor) return "payload reading of another sensor than the header";
        if (batch[i].seq != r.first_seq + i) return "payload seqs disagree with the header";
    }
    return {};
}

void begin_record(std::string& out, std::uint8_t kind, std::string_view sensor, std::uint32_t count,
                  std::uint64_t first_seq, Timestamp at) {
    out.clear();
    put_u32(out, 0);  // length, set by finish_record
    put_u32(out, 0);  // crc
    put_u8(out, kind);
    put_u8(out, static_cast<std::uint8_t>(sensor.size()));
    put_u16(out, 0);
    put_u32(out, count);
    put_u64(out, first_seq);
    put_u64(out, static_cast<std::uint64_t>(to_us(at)));
    out.append(sensor);
}

void finish_record(std::string& out) {
    const auto length = static_cast<std::uint32_t>(out.size() - record_prefix_bytes);
    set_u32(out, 0, length);
    set_u32(out, 4, crc32c(std::string_view(out).substr(record_prefix_bytes)));
}

std::string segment_header(std::uint64_t number, Timestamp created) {
    std::string h(segment_magic);
    put_u32(h, format_version);
    put_u32(h, static_cast<std::uint32_t>(segment_header_bytes));
    put_u64(h, number);
    put_u64(h, static_cast<std::uint64_t>(to_us(created)));
    put_u32(h, crc32c(h));
    put_u32(h, 0);
    return h;
}

std::string segment_name(std::uint64_t number, std::string_view ext) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(number));
    return std::string(buf) + std::string(ext);
}

std::optional<std::uint64_t> segment_number_of(const fs::path& p, std::string_view ext) {
    if (p.extension() != ext) return std::nullopt;
    const std::string stem = p.stem().string();
    if (stem.size() != 20) return std::nullopt;
    std::uint64_t n = 0;
    const auto [ptr, ec] = std::from_chars(stem.data(), stem.data() + stem.size(), n);
    if (ec != std::errc{} || ptr != stem.data() + stem.size()) return std::nullopt;
    return n;
}

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

struct SensorState {
    std::uint64_t newest = 0;
    std::uint64_t dropped = 0;
};

// The result of verifying a segment file from its start.
struct ScanResult {
    Segment segment;
    bool header_ok = false;
    std::optional<std::uint64_t> bad_offset;  // the first torn/corrupt record
    std::string problem;
};

ScanResult scan_segment(const fs::path& path, std::uint64_t number) {
    ScanResult s;
    s.segment.number = number;
    s.segment.path = path;
    auto file = std::make_shared<File>(path, O_RDWR);
    s.segment.file_size = file->size();
    ChunkReader in(*file, s.segment.file_size);
    const auto h = in.get(0, segment_header_bytes);
    if (!h || h->substr(0, 8) != segment_magic || get_u32(h->data() + 8) != format_version ||
        get_u64(h->data() + 16) != number || crc32c(h->substr(0, 32)) != get_u32(h->data() + 32)) {
        s.problem = "missing or damaged segment header";
        s.segment.file = std::move(file);
        return s;
    }
    s.header_ok = true;
    s.segment.created = from_us(get_u64(h->data() + 24));
    s.segment.newest_at = s.segment.created;
    std::uint64_t off = segment_header_bytes;
    for (;;) {
        Parsed p = parse_record(in, off, s.segment.file_size);
        if (p.status == RecordStatus::end) break;
        if (p.status != RecordStatus::ok) {
            s.bad_offset = off;
            s.problem = p.problem;
            break;
        }
        const Record& r = p.record;
        if (r.kind == kind_readings) {
            // Seqs of a sensor grow by one from record to record; anything else is damage.
            const auto it = s.segment.sensors.find(r.sensor);
            if (it != s.segment.sensors.end() && it->second.readings > 0 &&
                r.first_seq != it->second.last + 1) {
                s.bad_offset = off;
                s.problem = "seq " + std::to_string(r.first_seq) + " of sensor " +
                            std::string(r.sensor) + " does not follow " +
                            std::to_string(it->second.last);
                break;
            }
            s.segment.add_readings(r.sensor, r.first_seq, r.count, off, r.appended_at);
        } else {
            std::string_view pl = r.payload;
            bool ok = true;
            for (std::uint32_t i = 0; i < r.count && ok; ++i) {
                const std::size_t len = pl.empty() ? 0 : static_cast<unsigned char>(pl[0]);
                if (len == 0 || pl.size() < 1 + len + 8) {
                    ok = false;
                    break;
                }
                Extent& e = s.segment.sensors[std::string(pl.substr(1, len))];
                e.snapshot_newest = std::max(e.snapshot_newest, get_u64(pl.data() + 1 + len));
                pl.remove_prefix(1 + len + 8);
            }
            if (!ok || !pl.empty()) {
                s.bad_offset = off;
                s.problem = "malformed snapshot record";
                break;
            }
            s.segment.has_snapshot = true;
            s.segment.newest_at = std::max(s.segment.newest_at, r.appended_at);
        }
        off += r.size;
    }
    s.segment.end = off;
    s.segment.file = std::move(file);
    return s;
}

// The index file of a closed segment: its in-memory summary, so that open need not read it.
std::string encode_index(const Segment& seg) {
    std::string out(index_magic);
    put_u64(out, seg.number);
    put_u64(out, seg.file_size);
    put_u64(out, seg.end);
    put_u64(out, static_cast<std::uint64_t>(to_us(seg.created)));
    put_u64(out, static_cast<std::uint64_t>(to_us(seg.newest_at)));
    put_u32(out, static_cast<std::uint32_t>(seg.sensors.size()));
    put_u32(out, seg.has_snapshot ? 1 : 0);
    for (const auto& [sensor, e] : seg.sensors) {
        put_u8(out, static_cast<std::uint8_t>(sensor.size()));
        out.append(sensor);
        put_u64(out, e.snapshot_newest);
        put_u64(out, e.first);
        put_u64(out, e.last);
        put_u64(out, e.readings);
        put_u32(out, static_cast<std::uint32_t>(e.checkpoints.size()));
        for (const auto& c : e.checkpoints) {
            put_u64(out, c.seq);
            put_u64(out, c.offset);
        }
    }
    put_u32(out, crc32c(out));
    return out;
}

// Loads an index file into `seg` (path, number and file_size already set). False when the
// index is missing, damaged or describes another version of the segment.
bool load_index(const fs::path& path, Segment& seg) {
    std::string data;
    try {
        const File f(path, O_RDONLY);
        const auto size = f.size();
        if (size > (256ULL << 20)) return false;
        data.resize(static_cast<std::size_t>(size));
        if (f.read_at(data.data(), data.size(), 0) != data.size()) return false;
    } catch (const std::system_error&) {
        return false;
    }
    constexpr std::size_t fixed = 8 + 8 * 5 + 4 + 4;
    if (data.size() < fixed + 4 || data.substr(0, 8) != index_magic) return false;
    if (crc32c(std::string_view(data).substr(0, data.size() - 4)) !=
        get_u32(data.data() + data.size() - 4)) {
        return false;
    }
    const char* p = data.data();
    if (get_u64(p + 8) != seg.number || get_u64(p + 16) != seg.file_size) return false;
    Segment s;
    s.end = get_u64(p + 24);
    s.created = from_us(get_u64(p + 32));
    s.newest_at = from_us(get_u64(p + 40));
    const std::uint32_t n = get_u32(p + 48);
    s.has_snapshot = get_u32(p + 52) != 0;
    std::string_view rest = std::string_view(data).substr(fixed, data.size() - fixed - 4);
    for (std::uint32_t i = 0; i < n; ++i) {
        if (rest.empty()) return false;
        const std::size_t len = static_cast<unsigned char>(rest[0]);
        if (rest.size() < 1 + len + 36) return false;
        Extent e;
        const char* q = rest.data() + 1 + len;
        e.snapshot_newest = get_u64(q);
        e.first = get_u64(q + 8);
        e.last = get_u64(q + 16);
        e.readings = get_u64(q + 24);
        const std::uint32_t ncp = get_u32(q + 32);
        const std::string sensor(rest.substr(1, len));
        rest.remove_prefix(1 + len + 36);
        if (rest.size() / 16 < ncp) return false;
        for (std::uint32_t k = 0; k < ncp; ++k) {
            e.checkpoints.push_back({get_u64(rest.data()), get_u64(rest.data() + 8)});
            rest.remove_prefix(16);
        }
        s.sensors.emplace(sensor, std::move(e));
    }
    if (!rest.empty() || s.end > seg.file_size) return false;
    seg.end = s.end;
    seg.created = s.created;
    seg.newest_at = s.newest_at;
    seg.has_snapshot = s.has_snapshot;
    seg.sensors = std::move(s.sensors);
    return true;
}

std::string range_text(const std::string& sensor, std::uint64_t from, std::uint64_t to) {
    return "sensor " + sensor + " seq " + std::to_string(from) + ".." + std::to_string(to) + " (" +
           std::to_string(to - from + 1) + " readings)";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct Outbox::Impl {
    fs::path dir;
    OutboxOptions options;
    std::unique_ptr<File> lock;
    mutable std::mutex mu;
    std::deque<Segment> segments;  // oldest first; back() is the active segment
    std::map<std::string, SensorState, std::less<>> sensors;
    mutable OutboxMetrics m;
    std::uint64_t disk_bytes = 0;
    std::uint64_t synced_end = 0;  // of the active segment
    bool closed = false;
    // FsyncPolicy::batch: the group-commit thread.
    std::thread flusher;
    std::condition_variable flusher_cv;
    bool flusher_stop = false;

    ~Impl() { stop_flusher(); }
    void flush_loop();
    void stop_flusher() noexcept;
    std::string record;  // reused encoding buffer

    Timestamp clock() const { return options.clock ? options.clock() : now(); }
    Segment& active() { return segments.back(); }

    void open(std::vector<OutboxDrop>& drops);
    void new_segment(std::uint64_t number);
    void seal_active();
    void rotate();
    void write_index(Segment& seg);
    void drop_oldest(DropReason reason, std::vector<OutboxDrop>& drops);
    void enforce_bounds(std::uint64_t incoming, std::vector<OutboxDrop>& drops);
    void sync_active(bool force);
    std::string snapshot_payload(std::uint32_t& count) const;
    void report(const std::vector<OutboxDrop>& drops) const;
    std::uint64_t first_available_locked(std::string_view sensor) const;
};

void Outbox::Impl::report(const std::vector<OutboxDrop>& drops) const {
    if (!options.on_drop) return;
    for (const auto& d : drops)
        options.on_drop(d);
}

std::string Outbox::Impl::snapshot_payload(std::uint32_t& count) const {
    std::string out;
    count = 0;
    for (const auto& [sensor, st] : sensors) {
        put_u8(out, static_cast<std::uint8_t>(sensor.size()));
        out.append(sensor);
        put_u64(out, st.newest);
        ++count;
    }
    return out;
}

void Outbox::Impl::new_segment(std::uint64_t number) {
    Segment seg;
    seg.number = number;
    seg.path = dir / segment_name(number, ".seg");
    seg.created = clock();
    seg.newest_at = seg.created;
    seg.file = std::make_shared<File>(seg.path, O_RDWR | O_CREAT | O_TRUNC);
    std::string data = segment_header(number, seg.created);
    std::uint32_t count = 0;
    const std::string snap = snapshot_payload(count);
    std::string rec;
    begin_record(rec, kind_snapshot, {}, count, 0, seg.created);
    rec += snap;
    finish_record(rec);
    data += rec;
    seg.file->write_at(data, 0);
    seg.end = seg.file_size = data.size();
    seg.has_snapshot = true;
    for (const auto& [sensor, st] : sensors)
        seg.sensors[sensor].snapshot_newest = st.newest;
    if (options.fsync != FsyncPolicy::never) {
        seg.file->datasync();
        sync_directory(dir);
        m.fsyncs += 1;
    }
    disk_bytes += seg.disk_bytes();
    segments.push_back(std::move(seg));
    synced_end = options.fsync == FsyncPolicy::never ? 0 : active().end;
}

void Outbox::Impl::write_index(Segment& seg) {
    const fs::path path = dir / segment_name(seg.number, ".idx");
    const fs::path tmp = dir / segment_name(seg.number, ".idx.tmp");
    const std::string data = encode_index(seg);
    {
        const File f(tmp, O_WRONLY | O_CREAT | O_TRUNC);
        f.write_at(data, 0);
    }
    fs::rename(tmp, path);
    disk_bytes -= seg.index_bytes;
    seg.index_bytes = data.size();
    disk_bytes += seg.index_bytes;
}

void Outbox::Impl::seal_active() {
    Segment& seg = active();
    sync_active(options.fsync != FsyncPolicy::never);
    write_index(seg);
}

void Outbox::Impl::rotate() {
    seal_active();
    new_segment(active().number + 1);
    // Closed segments are opened per read; a read in progress keeps its own reference.
    segments[segments.size() - 2].file.reset();
}

// Every fsync_interval, fdatasyncs the active segment if anything was appended since the last
// fsync. The fdatasync runs without the mutex, so appends and reads go on meanwhile.
void Outbox::Impl::flush_loop() {
    const auto interval = std::max(options.fsync_interval, std::chrono::milliseconds(1));
    std::unique_lock lk(mu);
    while (!flusher_stop) {
        flusher_cv.wait_for(lk, interval);
        if (flusher_stop || closed || segments.empty()) continue;
        Segment& seg = active();
        if (seg.end == synced_end) continue;
        const std::shared_ptr<File> file = seg.file;
        const std::uint64_t end = seg.end;
        lk.unlock();
        bool ok = true;
        try {
            file->datasync();
        } catch (const std::exception& e) {
            ok = false;
            log_error(component, e.what());
        }
        lk.lock();
        if (!ok) continue;
        m.fsyncs += 1;
        if (!segments.empty() && active().file == file) synced_end = std::max(synced_end, end);
    }
}

void Outbox::Impl::stop_flusher() noexcept {
    if (!flusher.joinable()) return;
    {
        const std::lock_guard lk(mu);
        flusher_stop = true;
    }
    flusher_cv.notify_all();
    flusher.join();
}

void Outbox::Impl::sync_active(bool force) {
    Segment& seg = active();
    if (!force || synced_end == seg.end) return;
    seg.file->datasync();
    m.fsyncs += 1;
    synced_end = seg.end;
}

void Outbox::Impl::drop_oldest(DropReason reason, std::vector<OutboxDrop>& drops) {
    Segment& seg = segments.front();
    // One log line per segment: its ranges, the first few spelled out.
    constexpr std::size_t listed = 8;
    std::string ranges;
    std::size_t count = 0;
    std::uint64_t readings = 0;
    for (const auto& [sensor, e] : seg.sensors) {
        if (e.readings == 0) continue;
        drops.push_back({sensor, e.first, e.last, reason});
        auto it = sensors.find(sensor);
        if (it != sensors.end()) it->second.dropped += e.readings;
        readings += e.readings;
        if (count++ < listed) {
            ranges += (count == 1 ? "" : ", ") + sensor + " " + std::to_string(e.first) + ".." +
                      std::to_string(e.last);
        }
    }
    if (count > listed) ranges += ", and " + std::to_string(count - listed) + " more sensors";
    m.dropped_readings += readings;
    log_warn(component,
             "dropped segment " + seg.path.filename().string() + " (" +
                 (reason == DropReason::max_age ? "older than max_age" : "outbox full, max_bytes") +
                 "): " + std::to_string(readings) + " readings" +
                 (ranges.empty() ? "" : ": " + ranges));
    std::error_code ec;
    fs::remove(seg.path, ec);
    if (ec) log_warn(component, "cannot remove " + seg.path.string() + ": " + ec.message());
    fs::remove(dir / segment_name(seg.number, ".idx"), ec);
    disk_bytes -= seg.disk_bytes();
    m.dropped_segments += 1;
    segments.pop_front();
}

void Outbox::Impl::enforce_bounds(std::uint64_t incoming, std::vector<OutboxDrop>& drops) {
    if (options.max_age.count() > 0) {
        const Timestamp cutoff =
            clock() - std::chrono::duration_cast<std::chrono::microseconds>(options.max_age);
        while (segments.size() > 1 && segments.front().newest_at < cutoff &&
               segments.front().newest_at >= plausible_time) {
            drop_oldest(DropReason::max_age, drops);
        }
    }
    while (segments.size() > 1 && disk_bytes + incoming > options.max_bytes) {
        drop_oldest(DropReason::max_bytes, drops);
    }
}

std::uint64_t Outbox::Impl::first_available_locked(std::string_view sensor) const {
    for (const auto& seg : segments) {
        const auto it = seg.sensors.find(sensor);
        if (it != seg.sensors.end() && it->second.readings > 0) return it->second.first;
    }
    const auto it = sensors.find(sensor);
    return (it == sensors.end() ? 0 : it->second.newest) + 1;
}

void Outbox::Impl::open(std::vector<OutboxDrop>& drops) {
    fs::create_directories(dir);
    lock = std::make_unique<File>(dir / "LOCK", O_RDWR | O_CREAT);
    if (::flock(lock->fd(), LOCK_EX | LOCK_NB) != 0) {
        throw std::system_error(
            errno, std::generic_category(),
            "cannot lock outbox " + dir.string() + " (is another process using it?)");
    }

    std::vector<std::uint64_t> numbers;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const auto& p = entry.path();
        if (auto n = segment_number_of(p, ".seg")) {
            numbers.push_back(*n);
        } else if (p.extension() == ".tmp") {
            fs::remove(p);
        }
    }
    std::sort(numbers.begin(), numbers.end());
    // Index files of segments that are gone.
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (auto n = segment_number_of(entry.path(), ".idx")) {
            if (!std::binary_search(numbers.begin(), numbers.end(), *n)) fs::remove(entry.path());
        }
    }

    for (std::size_t i = 0; i < numbers.size(); ++i) {
        const std::uint64_t number = numbers[i];
        const bool newest = i + 1 == numbers.size();
        const fs::path path = dir / segment_name(number, ".seg");
        const fs::path idx = dir / segment_name(number, ".idx");
        if (!newest) {
            Segment seg;
            seg.number = number;
            seg.path = path;
            seg.file_size = fs::file_size(path);
            if (load_index(idx, seg)) {
                seg.index_bytes = fs::file_size(idx);
                segments.push_back(std::move(seg));
                continue;
            }
        }
        ScanResult s = scan_segment(path, number);
        Segment& seg = s.segment;
        if (newest) {
            std::error_code ec;
            fs::remove(idx, ec);  // it becomes the active segment again
            if (!s.header_ok) {
                log_warn(component,
                         "rewriting " + path.string() + ": " +
                             (seg.file_size == 0
                                  ? std::string("empty (interrupted while created)")
                                  : "damaged segment header (" + std::to_string(seg.file_size) +
                                        " bytes discarded)"));
                m.truncated_tails += 1;
                seg.file->truncate(0);
                seg.file_size = seg.end = 0;
            } else if (s.bad_offset) {
                log_warn(component, "truncating " + path.string() + " at offset " +
                                        std::to_string(*s.bad_offset) + ": " + s.problem + " (" +
                                        std::to_string(seg.file_size - *s.bad_offset) +
                                        " bytes discarded)");
                m.truncated_tails += 1;
                if (s.problem.find("checksum") != std::string::npos ||
                    s.problem.find("length") != std::string::npos) {
                    m.corrupt_records += 1;
                }
                seg.file->truncate(*s.bad_offset);
                seg.file_size = seg.end = *s.bad_offset;
            }
        } else {
            if (!s.header_ok) {
                log_warn(component, "ignoring " + path.string() + ": " + s.problem);
                m.corrupt_records += 1;
            } else if (s.bad_offset) {
                log_warn(component, "reading " + path.string() + " only up to offset " +
                                        std::to_string(*s.bad_offset) + ": " + s.problem);
                m.corrupt_records += 1;
            }
            if (s.header_ok) write_index(seg);
            seg.file.reset();  // closed segments are opened per read
        }
        segments.push_back(std::move(seg));
    }

    disk_bytes = 0;
    for (const auto& seg : segments)
        disk_bytes += seg.disk_bytes();

    // Newest seq per sensor: the largest snapshot value or record seq of any segment.
    for (const auto& seg : segments) {
        for (const auto& [sensor, e] : seg.sensors) {
            auto& st = sensors[sensor];
            st.newest = std::max({st.newest, e.snapshot_newest, e.readings > 0 ? e.last : 0});
        }
    }
    // Readings that should be here and are not: gaps between segments and a missing tail.
    for (const auto& [sensor, st] : sensors) {
        std::uint64_t prev_last = 0;
        for (const auto& seg : segments) {
            const auto it = seg.sensors.find(sensor);
            if (it == seg.sensors.end() || it->second.readings == 0) continue;
            if (prev_last != 0 && it->second.first > prev_last + 1) {
                drops.push_back({sensor, prev_last + 1, it->second.first - 1, DropReason::corrupt});
            }
            prev_last = it->second.last;
        }
        if (prev_last != 0 && prev_last < st.newest) {
            drops.push_back({sensor, prev_last + 1, st.newest, DropReason::corrupt});
        }
    }
    for (const auto& d : drops) {
        log_warn(component, "lost " + range_text(d.sensor, d.from_seq, d.to_seq) +
                                ": their records are damaged");
        m.lost_readings += d.to_seq - d.from_seq + 1;
        sensors[d.sensor].dropped += d.to_seq - d.from_seq + 1;
    }

    // The active segment: the newest one when it is intact and has room, else a new one.
    const bool reuse =
        !segments.empty() && segments.back().file && segments.back().end >= segment_header_bytes;
    if (reuse && !segments.back().has_snapshot) {
        // Its snapshot was torn away: write one again, from what the older segments say.
        Segment& seg = segments.back();
        std::uint32_t count = 0;
        const std::string snap = snapshot_payload(count);
        begin_record(record, kind_snapshot, {}, count, 0, clock());
        record += snap;
        finish_record(record);
        seg.file->write_at(record, seg.end);
        disk_bytes += record.size();
        seg.end += record.size();
        seg.file_size = seg.end;
        seg.has_snapshot = true;
        for (const auto& [sensor, st] : sensors)
            seg.sensors[sensor].snapshot_newest = st.newest;
    }
    if (reuse) {
        synced_end = 0;
        if (segments.back().end >= options.segment_bytes) rotate();
    } else {
        std::uint64_t number = 1;
        if (!segments.empty()) {
            number = segments.back().number + (segments.back().end == 0 ? 0 : 1);
            if (segments.back().end == 0) {
                disk_bytes -= segments.back().disk_bytes();
                segments.pop_back();
            }
        }
        new_segment(number);
    }
    std::vector<OutboxDrop> bounded;
    enforce_bounds(0, bounded);
    drops.insert(drops.end(), bounded.begin(), bounded.end());
    std::uint64_t readings = 0;
    for (const auto& seg : segments) {
        for (const auto& [s, e] : seg.sensors)
            readings += e.readings;
    }
    log_info(component, "opened " + dir.string() + ": " + std::to_string(segments.size()) +
                            " segments, " + std::to_string(disk_bytes) + " bytes, " +
                            std::to_string(sensors.size()) + " sensors, " +
                            std::to_string(readings) + " readings");
}

// ---------------------------------------------------------------------------------------------
Outbox::Outbox(std::filesystem::path dir, OutboxOptions options) : impl_(std::make_unique<Impl>()) {
    if (options.segment_bytes < 4096) {
        throw std::invalid_argument("outbox segment_bytes must be at least 4096");
    }
    if (options.max_bytes / 2 < options.segment_bytes) {
        throw std::invalid_argument("outbox max_bytes (" + std::to_string(options.max_bytes) +
                                    ") must be at least twice segment_bytes (" +
                                    std::to_string(options.segment_bytes) + ")");
    }
    if (options.max_age.count() < 0 || options.fsync_interval.count() < 0) {
        throw std::invalid_argument("outbox max_age and fsync_interval must not be negative");
    }
    impl_->dir = std::move(dir);
    impl_->options = std::move(options);
    std::vector<OutboxDrop> drops;
    impl_->open(drops);
    impl_->report(drops);
    if (impl_->options.fsync == FsyncPolicy::batch) {
        impl_->flusher = std::thread([d = impl_.get()] { d->flush_loop(); });
    }
}

Outbox::~Outbox() {
    if (!impl_) return;
    try {
        close();
    } catch (const std::exception& e) {
        log_error(component, std::string("closing the outbox failed: ") + e.what());
    }
}

Outbox::Outbox(Outbox&&) noexcept = default;

Outbox& Outbox::operator=(Outbox&& other) noexcept {
    if (this != &other) {
        if (impl_) {
            try {
                close();
            } catch (const std::exception& e) {
                log_error(component, std::string("closing the outbox failed: ") + e.what());
            }
        }
        impl_ = std::move(other.impl_);
    }
    return *this;
}

Outbox::SeqRange Outbox::append(Reading& reading) {
    return append(std::span<Reading>(&reading, 1));
}

Outbox::SeqRange Outbox::append(std::span<Reading> batch) {
    if (batch.empty()) throw std::invalid_argument("cannot append an empty batch to the outbox");
    if (batch.size() > limits::max_batch_readings) {
        throw std::invalid_argument("cannot append " + std::to_string(batch.size()) +
                                    " readings to the outbox in one batch; the limit is " +
                                    std::to_string(limits::max_batch_readings));
    }
    Impl& d = *impl_;
    std::vector<OutboxDrop> drops;  // reported whether the append succeeds or not
    const auto locked = [&]() -> SeqRange {
        const std::lock_guard lock(d.mu);
        if (d.closed) throw std::logic_error("append on a closed outbox " + d.dir.string());
        const std::string& sensor = batch.front().sensor;
        const auto it = d.sensors.find(sensor);
        const std::uint64_t newest = it == d.sensors.end() ? 0 : it->second.newest;
        for (std::size_t i = 0; i < batch.size(); ++i)
            batch[i].seq = newest + 1 + i;
        const Timestamp at = d.clock();
        begin_record(d.record, kind_readings, sensor, static_cast<std::uint32_t>(batch.size()),
                     newest + 1, at);
        encode_batch(batch, d.record);  // validates: one sensor, valid readings
        finish_record(d.record);
        const std::uint64_t size = d.record.size();

        if (d.active().end + size > d.options.segment_bytes && d.active().has_readings) {
            d.rotate();
        }
        d.enforce_bounds(size, drops);

        Segment& seg = d.active();
        try {
            seg.file->write_at(d.record, seg.end);
        } catch (...) {
            try {
                seg.file->truncate(seg.end);  // no partial record stays behind
            } catch (const std::exception& e) {
                log_error(component, e.what());
            }
            throw;
        }
        const std::uint64_t offset = seg.end;
        seg.end += size;
        seg.file_size = seg.end;
        d.disk_bytes += size;
        // The record is in the file: account for it before anything else can fail, so that its
        // seqs are never handed out twice.
        seg.add_readings(sensor, newest + 1, static_cast<std::uint32_t>(batch.size()), offset, at);
        d.sensors[sensor].newest = newest + batch.size();
        d.m.appended_readings += batch.size();
        d.m.appended_records += 1;
        d.m.appended_bytes += size;
        if (d.options.fsync == FsyncPolicy::always) d.sync_active(true);
        return {newest + 1, newest + batch.size()};
    };
    SeqRange range;
    try {
        range = locked();
    } catch (...) {
        d.report(drops);
        throw;
    }
    d.report(drops);
    return range;
}

void Outbox::sync() {
    Impl& d = *impl_;
    const std::lock_guard lock(d.mu);
    if (d.closed) return;
    d.sync_active(true);
}

void Outbox::close() {
    Impl& d = *impl_;
    d.stop_flusher();
    const std::lock_guard lock(d.mu);
    if (d.closed) return;
    d.closed = true;
    d.sync_active(d.options.fsync != FsyncPolicy::never);
    d.lock.reset();
    d.segments.clear();
}

OutboxRead Outbox::read(std::string_view sensor, std::uint64_t from_seq,
                        std::size_t max_count) const {
    const Impl& d = *impl_;
    struct Step {
        std::shared_ptr<File> file;  // the active segment's; null for a closed one
        fs::path path;
        std::uint64_t start;  // offset of a record of the sensor at or before from_seq
        std::uint64_t end;    // the segment's valid end when the plan was made
        std::uint64_t last;   // the sensor's last seq in the segment
    };
    std::vector<Step> plan;
    OutboxRead out;
    {
        const std::lock_guard lock(d.mu);
        const auto st = d.sensors.find(sensor);
        if (d.closed || st == d.sensors.end()) return out;
        out.newest = st->second.newest;
        out.first_available = d.first_available_locked(sensor);
        from_seq = std::max<std::uint64_t>(from_seq, 1);
        std::uint64_t want = max_count;
        for (const auto& seg : d.segments) {
            if (want == 0) break;
            const auto it = seg.sensors.find(sensor);
            if (it == seg.sensors.end() || it->second.readings == 0) continue;
            const Extent& e = it->second;
            if (e.last < from_seq) continue;
            const std::uint64_t start = std::max(from_seq, e.first);
            auto cp =
                std::upper_bound(e.checkpoints.begin(), e.checkpoints.end(), start,
                                 [](std::uint64_t s, const Checkpoint& c) { return s < c.seq; });
            if (cp != e.checkpoints.begin()) --cp;
            plan.push_back({seg.file, seg.path, cp->offset, seg.end, e.last});
            want -= std::min<std::uint64_t>(want, e.last - start + 1);
        }
    }
    for (const Step& step : plan) {
        if (out.readings.size() >= max_count) break;
        std::shared_ptr<File> file = step.file;
        if (!file) {
            try {
                file = std::make_shared<File>(step.path, O_RDONLY);
            } catch (const std::system_error& e) {
                if (e.code() == std::errc::no_such_file_or_directory) continue;  // just dropped
                throw;
            }
        }
        ChunkReader in(*file, step.end);
        std::uint64_t off = step.start;
        for (;;) {
            Parsed p = parse_record(in, off, step.end);
            if (p.status == RecordStatus::end) break;
            if (p.status != RecordStatus::ok) {
                log_warn(component, "cannot read " + file->path().string() + " at offset " +
                                        std::to_string(off) + ": " + p.problem +
                                        "; skipping the rest of the segment for sensor " +
                                        std::string(sensor));
                const std::lock_guard lock(d.mu);
                d.m.corrupt_records += 1;
                break;
            }
            const Record& r = p.record;
            off += r.size;
            if (r.kind != kind_readings || r.sensor != sensor) continue;
            if (r.first_seq > step.last) break;
            const std::uint64_t last = r.first_seq + r.count - 1;
            if (last < from_seq) continue;
            std::vector<Reading> batch;
            try {
                decode_batch(r.payload, batch);
                // The checksum only shows the record is as written; its payload must also agree
                // with its header, or a record could hand out readings of another sensor or seq.
                if (const std::string why = payload_mismatch(r, batch); !why.empty()) {
                    throw DecodeError(DecodeErrc::invalid_value, why);
                }
            } catch (const DecodeError& e) {
                log_warn(component, "cannot decode the record at offset " +
                                        std::to_string(r.offset) + " of " + file->path().string() +
                                        ": " + e.what());
                const std::lock_guard lock(d.mu);
                d.m.corrupt_records += 1;
                continue;
            }
            for (auto& reading : batch) {
                if (out.readings.size() >= max_count) break;
                if (reading.seq >= from_seq) out.readings.push_back(std::move(reading));
            }
            if (!out.readings.empty()) from_seq = out.readings.back().seq + 1;
            if (out.readings.size() >= max_count || last >= step.last) break;
        }
    }
    return out;
}

std::uint64_t Outbox::newest(std::string_view sensor) const {
    const std::lock_guard lock(impl_->mu);
    const auto it = impl_->sensors.find(sensor);
    return it == impl_->sensors.end() ? 0 : it->second.newest;
}

std::uint64_t Outbox::first_available(std::string_view sensor) const {
    const std::lock_guard lock(impl_->mu);
    return impl_->first_available_locked(sensor);
}

std::vector<std::pair<std::string, std::uint64_t>> Outbox::newest_all() const {
    const std::lock_guard lock(impl_->mu);
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (const auto& [sensor, st] : impl_->sensors)
        out.emplace_back(sensor, st.newest);
    return out;
}

std::uint64_t Outbox::dropped(std::string_view sensor) const {
    const std::lock_guard lock(impl_->mu);
    const auto it = impl_->sensors.find(sensor);
    return it == impl_->sensors.end() ? 0 : it->second.dropped;
}

OutboxMetrics Outbox::metrics() const {
    const std::lock_guard lock(impl_->mu);
    OutboxMetrics m = impl_->m;
    m.segments = impl_->segments.size();
    m.disk_bytes = impl_->disk_bytes;
    m.sensors = impl_->sensors.size();
    return m;
}

const std::filesystem::path& Outbox::dir() const noexcept {
    return impl_->dir;
}

}  // namespace rill
