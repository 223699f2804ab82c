// The outbox log: segments, bounds, the fsync thread and recovery. The on-disk format is in
// format.hpp (docs/outbox.md).
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

#include "codec/frame.hpp"
#include "outbox/format.hpp"
#include "rill/codec.hpp"
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

using namespace outbox_format;
constexpr std::string_view component = "outbox";

// Seq reservations: a block starts at min_block seqs and doubles while blocks last less than
// block_fast, halves when one lasted longer than block_slow.
constexpr std::uint64_t min_block = 64;
constexpr std::uint64_t max_block = 1ULL << 24;
constexpr auto block_fast = std::chrono::seconds(10);
constexpr auto block_slow = std::chrono::minutes(10);

struct SensorState {
    std::uint64_t newest = 0;
    std::uint64_t dropped = 0;
    // No seq above this was handed out; made durable before any is (FsyncPolicy batch, never).
    std::uint64_t reserved = 0;
    std::uint64_t block = min_block;
    std::chrono::steady_clock::time_point reserved_at{};
    std::vector<SeqRange> skipped;  // sorted, disjoint
};

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
    // The seq reservation files, written in turn (format.hpp), and the last generation written.
    std::unique_ptr<File> rsv_files[2];
    std::uint64_t rsv_generation = 0;
    // The newest reservation file was written by close(): every reservation was released.
    bool rsv_released = false;
    // This boot's id (OutboxOptions::boot_id_path, read at open); empty when unknown.
    std::string boot_id;
    // The number of the active segment at open: segments from it on were written by this
    // outbox (close() syncs them under FsyncPolicy::never).
    std::uint64_t first_written_segment = 0;

    ~Impl() { stop_flusher(); }
    void flush_loop();
    void stop_flusher() noexcept;
    std::string record;  // reused encoding buffer

    // The registry series (OutboxOptions::metrics), updated with `m`.
    struct Series {
        Counter* dropped = nullptr;
        Counter* corrupt = nullptr;
        Counter* truncated = nullptr;
        Counter* fsyncs = nullptr;
        Gauge* disk_bytes = nullptr;
        Gauge* segments = nullptr;
        Counter* skipped = nullptr;
        Counter* reservations = nullptr;
    } series;
    void register_series(MetricsRegistry& reg);
    // The active segment holds records not yet fdatasynced.
    bool dirty() const { return !closed && !segments.empty() && segments.back().end != synced_end; }
    Reservations load_reservations();
    void write_reservations(bool released = false);
    void reserve(SensorState& st, std::uint64_t need);
    void count_fsync() {
        m.fsyncs += 1;
        series.fsyncs->inc();
    }
    void count_corrupt() const {
        m.corrupt_records += 1;
        series.corrupt->inc();
    }
    void count_truncated() {
        m.truncated_tails += 1;
        series.truncated->inc();
    }
    void count_dropped(std::uint64_t readings) {
        m.dropped_readings += readings;
        series.dropped->inc(readings);
    }
    void set_gauges() {
        series.disk_bytes->set(static_cast<double>(disk_bytes));
        series.segments->set(static_cast<double>(segments.size()));
    }

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

    // Called by scan() for each readings record of the sensor that holds a seq >= from_seq, in
    // seq order; returns true when the read has what it wants. A DecodeError it throws refuses
    // the record: logged, counted as corrupt, skipped.
    using RecordVisitor = std::function<bool(const Record&)>;
    // The part of a read shared by read() and read_payload(): plans under the lock which records
    // to read (an in-memory index), then reads them without it. Sets first_available and newest
    // (left as they are for an unknown sensor).
    // Sets `skipped` to the first skipped range at or after max(from_seq, first_available),
    // clipped to start at from_seq or later, and then visits only records below it.
    void scan(std::string_view sensor, std::uint64_t from_seq, std::size_t max_count,
              std::uint64_t& first_available, std::uint64_t& newest,
              std::optional<SeqRange>& skipped, const RecordVisitor& visit) const;
};

void Outbox::Impl::register_series(MetricsRegistry& reg) {
    series.dropped = &reg.counter(
        "rill_outbox_dropped_readings_total",
        "Readings dropped from the outbox (full or too old); replays report them lost");
    series.corrupt = &reg.counter("rill_outbox_corrupt_records_total",
                                  "Outbox records that failed their checksum");
    series.truncated = &reg.counter("rill_outbox_truncated_tails_total",
                                    "Torn tails cut from the newest segment at open");
    series.fsyncs = &reg.counter("rill_outbox_fsyncs_total", "fdatasync calls on outbox segments");
    series.disk_bytes = &reg.gauge("rill_outbox_disk_bytes", "Bytes of outbox files on disk");
    series.segments = &reg.gauge("rill_outbox_segments", "Outbox segment files");
    series.skipped = &reg.counter(
        "rill_outbox_skipped_seqs_total",
        "Seqs skipped at open: reserved before an unclean shutdown and not in the outbox");
    series.reservations = &reg.counter("rill_outbox_seq_reservations_total",
                                       "Seq reservations made durable (one fdatasync each)");
    reg.gauge("rill_outbox_max_bytes", "The outbox size bound (--outbox-max-bytes)")
        .set(static_cast<double>(options.max_bytes));
}

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
        count_fsync();
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

// Sleeps until something is appended that is not synced, waits one fsync_interval for more
// (group commit), then fdatasyncs the active segment. Idle, it never wakes. The fdatasync runs
// without the mutex, so appends and reads go on meanwhile.
void Outbox::Impl::flush_loop() {
    const auto interval = std::max(options.fsync_interval, std::chrono::milliseconds(1));
    std::unique_lock lk(mu);
    while (!flusher_stop) {
        flusher_cv.wait(lk, [&] { return flusher_stop || dirty(); });
        m.flusher_wakeups += 1;
        if (flusher_stop) break;
        flusher_cv.wait_until(lk, std::chrono::steady_clock::now() + interval,
                              [&] { return flusher_stop; });
        m.flusher_wakeups += 1;
        if (flusher_stop || !dirty()) continue;
        Segment& seg = active();
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
        count_fsync();
        if (!segments.empty() && active().file == file) synced_end = std::max(synced_end, end);
    }
}

// Reads both reservation files (creating them when missing) and returns the valid one with the
// higher generation; an empty one when neither is valid.
Reservations Outbox::Impl::load_reservations() {
    bool created = false;
    std::optional<Reservations> best;
    bool damaged = false;
    for (int i = 0; i < 2; ++i) {
        const fs::path path = dir / reservation_files[i];
        created = created || !fs::exists(path);
        rsv_files[i] = std::make_unique<File>(path, O_RDWR | O_CREAT);
        const auto size = rsv_files[i]->size();
        if (size == 0) continue;
        std::string data(static_cast<std::size_t>(std::min<std::uint64_t>(size, 64ULL << 20)),
                         '\0');
        data.resize(rsv_files[i]->read_at(data.data(), data.size(), 0));
        auto got = decode_reservations(data);
        if (!got) {
            damaged = true;
            continue;
        }
        if (!best || got->generation > best->generation) best = std::move(got);
    }
    if (created) sync_directory(dir);
    if (!best) {
        if (damaged) {
            // Both copies damaged: what was reserved is unknown. Written in turn, with an
            // fdatasync between, this takes damage beyond a power cut.
            log_error(component, "cannot read the seq reservations in " + dir.string() +
                                     ": seqs handed out before an unclean shutdown may be used "
                                     "again");
            count_corrupt();
        }
        return {};
    }
    rsv_generation = best->generation;
    rsv_released = best->released;
    return std::move(*best);
}

// Writes every sensor's reservation and skipped ranges, with this boot's id, to the older of the
// two files and fdatasyncs it: when this returns, the reservations are durable. `released`:
// written by close(), every reservation is the newest seq handed out.
void Outbox::Impl::write_reservations(bool released) {
    Reservations r{rsv_generation + 1, released, boot_id, {}};
    for (const auto& [sensor, st] : sensors) {
        r.states.emplace(sensor, SeqState{std::max(st.reserved, st.newest), st.skipped});
    }
    const std::string data = encode_reservations(r);
    const File& f = *rsv_files[(rsv_generation + 1) % 2];
    f.write_at(data, 0);
    f.truncate(data.size());
    f.datasync();
    rsv_generation += 1;
    rsv_released = released;
    m.reservations += 1;
    series.reservations->inc();
}

// Reserves seqs up to at least `need` for `st` (durably) before they are handed out.
void Outbox::Impl::reserve(SensorState& st, std::uint64_t need) {
    const auto now = std::chrono::steady_clock::now();
    const std::uint64_t block = st.block;
    if (st.reserved_at != std::chrono::steady_clock::time_point{}) {
        if (now - st.reserved_at < block_fast) {
            st.block = std::min(st.block * 2, max_block);
        } else if (now - st.reserved_at > block_slow) {
            st.block = std::max(st.block / 2, min_block);
        }
    }
    // The write costs one fdatasync whatever it holds: it also tops up every other sensor that
    // has used half its block, so that many slow sensors share their reservation writes.
    std::vector<std::pair<SensorState*, std::uint64_t>> before{{&st, st.reserved}};
    for (auto& [sensor, other] : sensors) {
        if (&other == &st || other.reserved - other.newest >= other.block / 2) continue;
        before.emplace_back(&other, other.reserved);
        other.reserved = std::min(other.newest + other.block, limits::max_seq);
    }
    st.reserved = std::max(need, std::min(need + st.block, limits::max_seq));
    try {
        write_reservations();
    } catch (...) {
        for (const auto& [state, reserved] : before)
            state->reserved = reserved;
        st.block = block;
        throw;
    }
    st.reserved_at = now;
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
    count_fsync();
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
    count_dropped(readings);
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
                count_truncated();
                seg.file->truncate(0);
                seg.file_size = seg.end = 0;
            } else if (s.bad_offset) {
                log_warn(component, "truncating " + path.string() + " at offset " +
                                        std::to_string(*s.bad_offset) + ": " + s.problem + " (" +
                                        std::to_string(seg.file_size - *s.bad_offset) +
                                        " bytes discarded)");
                count_truncated();
                if (s.problem.find("checksum") != std::string::npos ||
                    s.problem.find("length") != std::string::npos) {
                    count_corrupt();
                }
                seg.file->truncate(*s.bad_offset);
                seg.file_size = seg.end = *s.bad_offset;
            }
        } else {
            if (!s.header_ok) {
                log_warn(component, "ignoring " + path.string() + ": " + s.problem);
                count_corrupt();
            } else if (s.bad_offset) {
                log_warn(component, "reading " + path.string() + " only up to offset " +
                                        std::to_string(*s.bad_offset) + ": " + s.problem);
                count_corrupt();
            }
            if (s.header_ok) write_index(seg);
            seg.file.reset();  // closed segments are opened per read
        }
        segments.push_back(std::move(seg));
    }

    disk_bytes = 0;
    for (const auto& seg : segments)
        disk_bytes += seg.disk_bytes();

    // What was reserved and skipped before: the skipped ranges are not gaps.
    boot_id = read_boot_id(options.boot_id_path);
    const Reservations loaded = load_reservations();
    const SeqStates& saved = loaded.states;
    for (const auto& [sensor, ss] : saved)
        sensors[sensor].skipped = ss.skipped;
    // Newest seq per sensor: the largest snapshot value or record seq of any segment.
    for (const auto& seg : segments) {
        for (const auto& [sensor, e] : seg.sensors) {
            auto& st = sensors[sensor];
            st.newest = std::max({st.newest, e.snapshot_newest, e.readings > 0 ? e.last : 0});
        }
    }
    // A skipped range is durable in the reservation files: its seqs were used up.
    for (auto& [sensor, st] : sensors) {
        if (!st.skipped.empty()) st.newest = std::max(st.newest, st.skipped.back().last);
    }
    // Readings that should be here and are not: gaps between segments and a missing tail.
    for (const auto& [sensor, st] : sensors) {
        std::uint64_t prev_last = 0;
        for (const auto& seg : segments) {
            const auto it = seg.sensors.find(sensor);
            if (it == seg.sensors.end() || it->second.readings == 0) continue;
            if (prev_last != 0 && it->second.first > prev_last + 1) {
                for (const SeqRange& r :
                     subtract_ranges({prev_last + 1, it->second.first - 1}, st.skipped)) {
                    drops.push_back({sensor, r.first, r.last, DropReason::corrupt});
                }
            }
            prev_last = it->second.last;
        }
        if (prev_last != 0 && prev_last < st.newest) {
            for (const SeqRange& r : subtract_ranges({prev_last + 1, st.newest}, st.skipped)) {
                drops.push_back({sensor, r.first, r.last, DropReason::corrupt});
            }
        }
    }
    for (const auto& d : drops) {
        log_warn(component, "lost " + range_text(d.sensor, d.from_seq, d.to_seq) +
                                ": their records are damaged");
        m.lost_readings += d.to_seq - d.from_seq + 1;
        sensors[d.sensor].dropped += d.to_seq - d.from_seq + 1;
    }
    // Seqs reserved before an unclean shutdown and not held: they may have been handed out, so
    // they are skipped, never handed out again. Unless the shutdown was a kill -9 or crash of
    // the process within this boot: the page cache then kept every record whose write()
    // completed, and a seq is handed out only after its record was written, so none above the
    // newest held was ever handed out. Only a reboot (power cut, kernel crash) loses written
    // records. After a clean close (released) the reservation is exactly the newest seq handed
    // out: seqs missing below it went missing after the close and are skipped on any boot.
    const bool same_boot = !loaded.released && !boot_id.empty() && loaded.boot_id == boot_id;
    bool skipped_any = false;
    std::size_t released = 0;
    std::uint64_t released_seqs = 0;
    for (const auto& [sensor, ss] : saved) {
        SensorState& st = sensors[sensor];
        if (ss.reserved <= st.newest) continue;
        if (same_boot) {
            released += 1;
            released_seqs += ss.reserved - st.newest;
            continue;
        }
        const SeqRange r{st.newest + 1, ss.reserved};
        log_warn(component, "skipping " + range_text(sensor, r.first, r.last) +
                                ": reserved before an unclean shutdown and not in the outbox; "
                                "they are never used again and replays report them skipped");
        m.skipped_seqs += r.size();
        series.skipped->inc(r.size());
        add_range(st.skipped, r);
        st.newest = ss.reserved;
        skipped_any = true;
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
        // After a skip the next record would not follow the segment's last one (which open
        // takes for damage): records after the skip go to a new segment.
        if (segments.back().end >= options.segment_bytes || skipped_any) rotate();
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
    first_written_segment = active().number;
    bool pruned = false;
    for (auto& [sensor, st] : sensors) {
        st.reserved = st.newest;
        const std::size_t before = st.skipped.size();
        // Ranges below first_available are not reported (a replay counts them in `lost`), but
        // the newest one is kept: it is what says the sensor's seqs got that far.
        const std::uint64_t first = first_available_locked(sensor);
        const std::uint64_t kept = st.skipped.empty() ? 0 : st.skipped.back().last;
        std::erase_if(st.skipped,
                      [&](const SeqRange& r) { return r.last < first && r.last != kept; });
        if (st.skipped.size() > max_skipped_ranges) {
            st.skipped.erase(st.skipped.begin(),
                             st.skipped.end() - static_cast<std::ptrdiff_t>(max_skipped_ranges));
        }
        pruned = pruned || st.skipped.size() != before;
    }
    if (released > 0) {
        log_info(component, "unclean shutdown within this boot (boot id " + boot_id +
                                "): released the unused seq reservations of " +
                                std::to_string(released) + " sensors (" +
                                std::to_string(released_seqs) +
                                " seqs never handed out); nothing skipped");
    }
    if (skipped_any || pruned || released > 0) write_reservations();
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
    impl_->register_series(impl_->options.metrics != nullptr ? *impl_->options.metrics
                                                             : default_registry());
    std::vector<OutboxDrop> drops;
    impl_->open(drops);
    impl_->set_gauges();
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

SeqRange Outbox::append(Reading& reading) {
    return append(std::span<Reading>(&reading, 1));
}

SeqRange Outbox::append(std::span<Reading> batch) {
    return append_record(batch, nullptr);
}

SeqRange Outbox::append(std::span<Reading> batch, std::string& payload) {
    return append_record(batch, &payload);
}

SeqRange Outbox::append_record(std::span<Reading> batch, std::string* payload) {
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
        if (d.options.fsync != FsyncPolicy::always) {
            // The seqs must be durably reserved before they are handed out (a power cut must
            // not let them be used again).
            const bool known = it != d.sensors.end();
            SensorState& st = known ? it->second : d.sensors[sensor];
            if (newest + batch.size() > st.reserved) {
                try {
                    d.reserve(st, newest + batch.size());
                } catch (...) {
                    if (!known) d.sensors.erase(sensor);
                    throw;
                }
            }
        }

        if (d.active().end + size > d.options.segment_bytes && d.active().has_readings) {
            d.rotate();
        }
        d.enforce_bounds(size, drops);
        d.set_gauges();

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
        const bool was_synced = seg.end == d.synced_end;
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
        d.set_gauges();
        if (payload != nullptr) {
            payload->append(std::string_view(d.record).substr(record_header_bytes + sensor.size()));
        }
        if (d.options.fsync == FsyncPolicy::always) d.sync_active(true);
        if (d.options.fsync == FsyncPolicy::batch && was_synced) d.flusher_cv.notify_one();
        return {newest + 1, newest + batch.size()};
    };
    SeqRange range;
    const std::size_t payload_size = payload != nullptr ? payload->size() : 0;
    try {
        range = locked();
    } catch (...) {
        if (payload != nullptr) payload->resize(payload_size);
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
    if (d.options.fsync == FsyncPolicy::never) {
        // Once, so that the reservations can be released: the segments written since open.
        for (const auto& seg : d.segments) {
            if (seg.number < d.first_written_segment || seg.file) continue;
            const File f(seg.path, O_RDONLY);
            f.datasync();
            d.count_fsync();
        }
    }
    d.sync_active(true);
    // Everything handed out is durable: release what was reserved beyond it, so that a clean
    // restart skips nothing.
    // Written as released: at the next open a seq missing below a reservation went missing
    // after this close and is skipped, whatever the boot.
    bool reserved = false;
    for (auto& [sensor, st] : d.sensors) {
        reserved = reserved || st.reserved > st.newest;
        st.reserved = st.newest;
    }
    if (reserved || (d.options.fsync != FsyncPolicy::always && !d.rsv_released)) {
        d.write_reservations(true);
    }
    d.lock.reset();
    d.segments.clear();
}

void Outbox::Impl::scan(std::string_view sensor, std::uint64_t from_seq, std::size_t max_count,
                        std::uint64_t& first_available, std::uint64_t& newest,
                        std::optional<SeqRange>& skipped, const RecordVisitor& visit) const {
    struct Step {
        std::shared_ptr<File> file;  // the active segment's; null for a closed one
        fs::path path;
        std::uint64_t start;  // offset of a record of the sensor at or before from_seq
        std::uint64_t end;    // the segment's valid end when the plan was made
        std::uint64_t last;   // the sensor's last seq in the segment
    };
    std::vector<Step> plan;
    {
        const std::lock_guard guard(mu);
        const auto st = sensors.find(sensor);
        if (closed || st == sensors.end()) return;
        newest = st->second.newest;
        first_available = first_available_locked(sensor);
        from_seq = std::max<std::uint64_t>(from_seq, 1);
        // Records are read only below the first skipped range at or after the start.
        std::uint64_t limit = newest;
        for (const SeqRange& r : st->second.skipped) {
            if (r.last < std::max(from_seq, first_available)) continue;
            skipped = SeqRange{std::max(r.first, from_seq), r.last};
            limit = r.first - 1;
            break;
        }
        std::uint64_t want = max_count;
        for (const auto& seg : segments) {
            if (want == 0) break;
            const auto it = seg.sensors.find(sensor);
            if (it == seg.sensors.end() || it->second.readings == 0) continue;
            const Extent& e = it->second;
            if (e.last < from_seq) continue;
            const std::uint64_t start = std::max(from_seq, e.first);
            if (start > limit) break;
            auto cp =
                std::upper_bound(e.checkpoints.begin(), e.checkpoints.end(), start,
                                 [](std::uint64_t s, const Checkpoint& c) { return s < c.seq; });
            if (cp != e.checkpoints.begin()) --cp;
            const std::uint64_t last = std::min(e.last, limit);
            plan.push_back({seg.file, seg.path, cp->offset, seg.end, last});
            want -= std::min<std::uint64_t>(want, last - start + 1);
        }
    }
    if (max_count == 0) return;
    for (const Step& step : plan) {
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
                const std::lock_guard guard(mu);
                count_corrupt();
                break;
            }
            const Record& r = p.record;
            off += r.size;
            if (r.kind != kind_readings || r.sensor != sensor) continue;
            if (r.first_seq > step.last) break;
            const std::uint64_t last = r.first_seq + r.count - 1;
            if (last < from_seq) continue;
            try {
                if (visit(r)) return;
            } catch (const DecodeError& e) {
                log_warn(component, "cannot decode the record at offset " +
                                        std::to_string(r.offset) + " of " + file->path().string() +
                                        ": " + e.what());
                const std::lock_guard guard(mu);
                count_corrupt();
                continue;
            }
            if (last >= step.last) break;
        }
    }
}

OutboxRead Outbox::read(std::string_view sensor, std::uint64_t from_seq,
                        std::size_t max_count) const {
    OutboxRead out;
    std::uint64_t next = std::max<std::uint64_t>(from_seq, 1);
    impl_->scan(sensor, from_seq, max_count, out.first_available, out.newest, out.skipped,
                [&](const Record& r) {
                    std::vector<Reading> batch;
                    decode_batch(r.payload, batch);
                    // The checksum only shows the record is as written; its payload must also
                    // agree with its header, or a record could hand out readings of another
                    // sensor or seq.
                    if (const std::string why = payload_mismatch(r, batch); !why.empty()) {
                        throw DecodeError(DecodeErrc::invalid_value, why);
                    }
                    for (auto& reading : batch) {
                        if (out.readings.size() >= max_count ||
                            (out.skipped && reading.seq >= out.skipped->first)) {
                            break;
                        }
                        if (reading.seq >= next) out.readings.push_back(std::move(reading));
                    }
                    if (!out.readings.empty()) next = out.readings.back().seq + 1;
                    return out.readings.size() >= max_count;
                });
    // A skipped range is reported only when every held reading before it was returned.
    if (out.skipped && out.readings.size() >= max_count &&
        (out.readings.empty() || out.readings.back().seq + 1 != out.skipped->first)) {
        out.skipped.reset();
    }
    return out;
}

OutboxPayload Outbox::read_payload(std::string_view sensor, std::uint64_t from_seq,
                                   std::size_t max_count, std::size_t max_bytes) const {
    OutboxPayload out;
    std::string body;  // the encoded readings taken, back to back
    std::uint64_t next = std::max<std::uint64_t>(from_seq, 1);
    bool full = false;
    impl_->scan(sensor, from_seq, max_count, out.first_available, out.newest, out.skipped,
                [&](const Record& r) {
                    // Framed, not decoded: the record's readings are taken as the bytes they
                    // are. Every reading of the record is framed first, so that a record whose
                    // content disagrees with its header gives nothing (as read() refuses it).
                    const std::vector<RecordReading> framed = frame_record(r);
                    for (const RecordReading& f : framed) {
                        if (out.count >= max_count || (out.skipped && f.seq >= out.skipped->first))
                            break;
                        if (f.seq < next) continue;
                        if (detail::batch_header_bytes(sensor, out.count + 1) + body.size() +
                                f.bytes.size() >
                            max_bytes) {
                            full = true;
                            break;
                        }
                        if (out.count == 0) out.first_seq = f.seq;
                        out.last_seq = f.seq;
                        ++out.count;
                        body.append(f.bytes);
                    }
                    if (out.count > 0) next = out.last_seq + 1;
                    return full || out.count >= max_count;
                });
    // A skipped range is reported only when every held reading before it is in the payload.
    if (out.skipped && (full || out.count >= max_count) &&
        (out.count == 0 || out.last_seq + 1 != out.skipped->first)) {
        out.skipped.reset();
    }
    if (out.count > 0) {
        out.payload.reserve(detail::batch_header_bytes(sensor, out.count) + body.size());
        detail::append_batch_header(out.payload, sensor, out.count);
        out.payload.append(body);
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
    for (const auto& [sensor, st] : impl_->sensors) {
        if (st.newest > 0) out.emplace_back(sensor, st.newest);
    }
    return out;
}

std::vector<SeqRange> Outbox::skipped(std::string_view sensor) const {
    const std::lock_guard lock(impl_->mu);
    const auto it = impl_->sensors.find(sensor);
    return it == impl_->sensors.end() ? std::vector<SeqRange>{} : it->second.skipped;
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
