// The outbox's on-disk format: see format.hpp and docs/outbox.md.
#include "outbox/format.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "codec/frame.hpp"
#include "rill/codec.hpp"
#include "rill/crc32c.hpp"

namespace rill::outbox_format {

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

void sync_directory(const fs::path& dir) {
    const File d(dir, O_RDONLY | O_DIRECTORY);
    if (::fsync(d.fd()) != 0) throw_errno("cannot fsync outbox directory", dir);
}

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

std::vector<RecordReading> frame_record(const Record& r) {
    const detail::BatchParts parts = detail::split_batch(r.payload);
    if (parts.sensor != r.sensor) {
        throw DecodeError(DecodeErrc::invalid_value,
                          "payload reading of another sensor than the header");
    }
    if (parts.count != r.count) {
        throw DecodeError(DecodeErrc::invalid_value,
                          "payload holds " + std::to_string(parts.count) +
                              " readings, the header " + std::to_string(r.count));
    }
    std::vector<RecordReading> out;
    out.reserve(parts.count);
    std::string_view rest = parts.readings;
    for (std::size_t i = 0; i < parts.count; ++i) {
        const std::string_view bytes = rest.substr(0, detail::object_bytes(rest));
        const std::uint64_t seq = detail::reading_seq(bytes);
        if (seq != r.first_seq + i) {
            throw DecodeError(DecodeErrc::invalid_value, "payload seqs disagree with the header");
        }
        out.push_back({seq, bytes});
        rest.remove_prefix(bytes.size());
    }
    if (!rest.empty()) {
        throw DecodeError(DecodeErrc::malformed,
                          std::to_string(rest.size()) + " bytes after the payload's readings");
    }
    return out;
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

std::string encode_reservations(const Reservations& r) {
    std::string out(reservation_magic);
    put_u64(out, r.generation);
    put_u8(out, r.released ? 1 : 0);
    const std::string_view boot = std::string_view(r.boot_id).substr(0, max_boot_id_bytes);
    put_u8(out, static_cast<std::uint8_t>(boot.size()));
    out.append(boot);
    put_u32(out, static_cast<std::uint32_t>(r.states.size()));
    for (const auto& [sensor, st] : r.states) {
        put_u8(out, static_cast<std::uint8_t>(sensor.size()));
        out.append(sensor);
        put_u64(out, st.reserved);
        put_u32(out, static_cast<std::uint32_t>(st.skipped.size()));
        for (const auto& range : st.skipped) {
            put_u64(out, range.first);
            put_u64(out, range.last);
        }
    }
    put_u32(out, crc32c(out));
    return out;
}

std::optional<Reservations> decode_reservations(std::string_view data) {
    constexpr std::size_t head = 8 + 8 + 1 + 1;
    if (data.size() < head + 4 + 4 || data.substr(0, 8) != reservation_magic) return std::nullopt;
    if (crc32c(data.substr(0, data.size() - 4)) != get_u32(data.data() + data.size() - 4)) {
        return std::nullopt;
    }
    Reservations out;
    out.generation = get_u64(data.data() + 8);
    const auto flags = static_cast<unsigned char>(data[16]);
    if (flags > 1) return std::nullopt;
    out.released = flags == 1;
    const std::size_t boot_len = static_cast<unsigned char>(data[17]);
    if (boot_len > max_boot_id_bytes || data.size() < head + boot_len + 4 + 4) return std::nullopt;
    out.boot_id = std::string(data.substr(head, boot_len));
    const std::uint32_t n = get_u32(data.data() + head + boot_len);
    const std::size_t fixed = head + boot_len + 4;
    std::string_view rest = data.substr(fixed, data.size() - fixed - 4);
    for (std::uint32_t i = 0; i < n; ++i) {
        if (rest.empty()) return std::nullopt;
        const std::size_t len = static_cast<unsigned char>(rest[0]);
        if (len == 0 || rest.size() < 1 + len + 12) return std::nullopt;
        std::string sensor(rest.substr(1, len));
        SeqState st;
        st.reserved = get_u64(rest.data() + 1 + len);
        const std::uint32_t k = get_u32(rest.data() + 1 + len + 8);
        rest.remove_prefix(1 + len + 12);
        if (k > max_skipped_ranges || rest.size() / 16 < k) return std::nullopt;
        for (std::uint32_t j = 0; j < k; ++j) {
            const SeqRange r{get_u64(rest.data()), get_u64(rest.data() + 8)};
            rest.remove_prefix(16);
            if (r.first == 0 || r.first > r.last || r.last > limits::max_seq ||
                (!st.skipped.empty() && r.first <= st.skipped.back().last + 1)) {
                return std::nullopt;
            }
            st.skipped.push_back(r);
        }
        if (st.reserved > limits::max_seq) return std::nullopt;
        out.states.emplace(std::move(sensor), std::move(st));
    }
    if (!rest.empty()) return std::nullopt;
    return out;
}

std::string read_boot_id(const fs::path& path) {
    std::ifstream in(path);
    std::string line;
    if (!in || !std::getline(in, line)) return {};
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
        line.pop_back();
    if (line.size() > max_boot_id_bytes) return {};
    return line;
}

void add_range(std::vector<SeqRange>& ranges, SeqRange r) {
    auto it =
        std::lower_bound(ranges.begin(), ranges.end(), r,
                         [](const SeqRange& a, const SeqRange& b) { return a.last + 1 < b.first; });
    // `it` is the first range that touches or follows r; merge every range touching r.
    while (it != ranges.end() && it->first <= r.last + 1) {
        r.first = std::min(r.first, it->first);
        r.last = std::max(r.last, it->last);
        it = ranges.erase(it);
    }
    ranges.insert(it, r);
}

std::vector<SeqRange> subtract_ranges(SeqRange r, const std::vector<SeqRange>& ranges) {
    std::vector<SeqRange> out;
    std::uint64_t next = r.first;
    for (const auto& s : ranges) {
        if (s.last < next) continue;
        if (s.first > r.last) break;
        if (s.first > next) out.push_back({next, s.first - 1});
        if (s.last >= r.last) return out;
        next = s.last + 1;
    }
    if (next <= r.last) out.push_back({next, r.last});
    return out;
}

}  // namespace rill::outbox_format
