// rill/outbox.hpp: the publisher's durable, bounded, checksummed outbox log (docs/outbox.md).
//
// Every reading is appended here before it is published. The outbox assigns the sequence
// numbers (it is the source of truth for seq: seq of a sensor starts at 1 and grows by one per
// reading, across restarts; a seq is never handed out twice, even across a power cut, because
// the outbox durably reserves seqs ahead of use and skips what a crash left reserved), keeps
// readings on disk until a size or age bound, drops whole oldest segments when a bound is hit
// (counted, logged and reported, never silently), and answers "sensor S from seq N, at most K" for
// the replay service.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rill/metrics.hpp"
#include "rill/reading.hpp"
#include "rill/seq_ranges.hpp"

namespace rill {

/// When appended records are forced to stable storage (fdatasync).
enum class FsyncPolicy {
    always,  ///< before append() returns: nothing acknowledged is lost, even on power cut
    batch,   ///< group commit: a background thread fdatasyncs the active segment at most once
             ///< per fsync_interval, within fsync_interval of an append (it sleeps while nothing
             ///< is unsynced); also on sync() and close(). A power cut loses at most about
             ///< fsync_interval of readings; their seqs are skipped, never reused
    never,   ///< left to the kernel until close(); survives kill -9; a power cut loses what the
             ///< kernel had not written, and their seqs are skipped, never reused
};

/// Why readings left the outbox.
enum class DropReason {
    max_bytes,  ///< the outbox was full: the oldest segment was deleted
    max_age,    ///< the oldest segment was older than max_age
    corrupt,    ///< the records holding them failed their checksum and cannot be read
};

/// A short stable name for `r` ("max_bytes", "max_age", "corrupt"), usable as a metric label.
[[nodiscard]] std::string_view to_string(DropReason r) noexcept;

/// One consecutive range of readings of one sensor that the outbox can no longer replay.
struct OutboxDrop {
    /// The sensor whose readings were dropped.
    std::string sensor;
    std::uint64_t from_seq = 0;  ///< first dropped seq
    std::uint64_t to_seq = 0;    ///< last dropped seq (inclusive)
    /// Why they were dropped.
    DropReason reason = DropReason::max_bytes;
    /// Member-wise equality.
    bool operator==(const OutboxDrop&) const = default;
};

/// How an Outbox syncs, bounds and reports.
struct OutboxOptions {
    /// When appends reach stable storage (see FsyncPolicy).
    FsyncPolicy fsync = FsyncPolicy::batch;
    /// The group-commit interval of FsyncPolicy::batch (at least 1 ms is used).
    std::chrono::milliseconds fsync_interval{100};
    /// Bound on the files of the outbox (segments and their index files). Must be at least
    /// twice segment_bytes: the active segment is never deleted.
    std::uint64_t max_bytes = 256ULL << 20;
    /// Segments whose newest record is older than this are deleted; zero: no age bound.
    /// Records stamped before 2020 (written before the clock was set) never age out.
    std::chrono::seconds max_age = std::chrono::hours(24 * 7);
    /// A segment is closed and a new one started when the next record would pass this size
    /// (a single record larger than this gets a segment of its own).
    std::uint64_t segment_bytes = 16ULL << 20;
    /// The clock that stamps records and ages segments; empty: rill::now(). Tests inject one.
    std::function<Timestamp()> clock;
    /// Called once per dropped range, after the outbox released its lock, on the thread whose
    /// call caused the drop (the constructor, append()). It may call read() and the accessors,
    /// not append(). Every drop is also logged (warn, component "outbox") and counted.
    std::function<void(const OutboxDrop&)> on_drop;
    /// Where the outbox registers and updates its series (docs/operations.md):
    /// rill_outbox_dropped_readings_total, rill_outbox_corrupt_records_total,
    /// rill_outbox_truncated_tails_total and rill_outbox_fsyncs_total (counters, added to by every
    /// outbox on the registry), rill_outbox_disk_bytes and rill_outbox_segments (gauges, set after
    /// every change) and rill_outbox_max_bytes (gauge, max_bytes). One outbox per registry keeps
    /// the gauges meaningful. nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
    /// The file holding this boot's id, read once at open and kept in the seq reservations.
    /// After an unclean shutdown within the same boot (kill -9, a crash of the process) the
    /// page cache kept every record written, so nothing is skipped; after a reboot (power cut,
    /// kernel crash), or when either boot id is unknown (the file cannot be read), the
    /// unused reservation is skipped. Tests point it elsewhere to simulate a reboot.
    std::filesystem::path boot_id_path = "/proc/sys/kernel/random/boot_id";
};

/// Counters since the outbox was opened, and gauges of its current state. A plain snapshot.
struct OutboxMetrics {
    std::uint64_t appended_readings = 0;  ///< readings appended
    std::uint64_t appended_records = 0;   ///< records (one per append call) written
    std::uint64_t appended_bytes = 0;     ///< bytes written to segment files, headers included
    std::uint64_t fsyncs = 0;             ///< fdatasync calls on segment files
    std::uint64_t dropped_readings = 0;   ///< readings deleted by max_bytes or max_age
    std::uint64_t dropped_segments = 0;   ///< segments deleted by max_bytes or max_age
    std::uint64_t lost_readings = 0;      ///< readings found unreadable (checksum failures)
    std::uint64_t corrupt_records = 0;    ///< records that failed their checksum (open or read)
    std::uint64_t truncated_tails = 0;    ///< torn or corrupt tails cut from the newest segment
    std::uint64_t segments = 0;           ///< gauge: segment files
    std::uint64_t disk_bytes = 0;         ///< gauge: bytes of segment and index files
    std::uint64_t sensors = 0;            ///< gauge: sensors with a sequence number
    /// Seqs skipped at open: reserved before an unclean shutdown and not in the outbox.
    std::uint64_t skipped_seqs = 0;
    /// Seq reservations made durable (one fdatasync of a reservation file each).
    std::uint64_t reservations = 0;
    /// Times the FsyncPolicy::batch thread woke up (it sleeps while nothing is unsynced).
    std::uint64_t flusher_wakeups = 0;
};

/// What read() returns.
struct OutboxRead {
    /// Readings of the sensor with seq >= from_seq, in increasing seq order, at most max_count,
    /// all below the first skipped range at or after from_seq (a read stops there; see
    /// `skipped`). Seqs missing between from_seq and the last one returned are gone for good
    /// (dropped or corrupt); they are below first_available or were reported as corrupt.
    std::vector<Reading> readings;
    /// The oldest seq the outbox still holds for the sensor; newest + 1 when it holds none.
    std::uint64_t first_available = 1;
    /// The newest seq ever appended for the sensor (surviving restarts); 0 for an unknown one.
    std::uint64_t newest = 0;
    /// Seqs the outbox skipped (see Outbox::skipped): the first skipped range at or after
    /// max(from_seq, first_available), starting at from_seq or later, reported only when every
    /// reading the outbox holds in [from_seq, skipped->first - 1] is in `readings` (which then
    /// all lie below skipped->first). The caller continues from skipped->last + 1.
    std::optional<SeqRange> skipped;
};

/// What read_payload() returns: the readings read() would return, as the bytes they are stored
/// as.
struct OutboxPayload {
    /// A readings payload (proto/reading_v1.md) of the readings, byte for byte what
    /// encode_batch writes for them (the records' bodies, cut at reading boundaries, behind one
    /// envelope); empty when there are none.
    std::string payload;
    std::size_t count = 0;        ///< readings in `payload`
    std::uint64_t first_seq = 0;  ///< seq of the first reading in `payload`; 0 when none
    std::uint64_t last_seq = 0;   ///< seq of the last reading in `payload`; 0 when none
    /// The oldest seq the outbox still holds for the sensor; newest + 1 when it holds none.
    std::uint64_t first_available = 1;
    /// The newest seq ever appended for the sensor (surviving restarts); 0 for an unknown one.
    std::uint64_t newest = 0;
    /// As OutboxRead::skipped, for the readings in `payload`.
    std::optional<SeqRange> skipped;
};

/// A directory of segment files holding the readings of any number of sensors.
///
/// Threads: every member function is thread-safe. With FsyncPolicy::batch the outbox runs one
/// thread of its own, from construction to close(), that only calls fdatasync. append(), sync()
/// and the bound enforcement
/// run under one internal mutex (append holds it across its write and, with
/// FsyncPolicy::always, its fdatasync). read() holds that mutex only to look up where to read
/// (an in-memory index), then reads the files without it, so a replay thread and the appending
/// thread proceed in parallel; a segment deleted while being read stays readable through its
/// open descriptor. read() sees exactly the records whose append() has returned.
///
/// Owns: the files in its directory and an exclusive lock on it (flock on dir/LOCK), so a
/// second Outbox on the same directory, in this or another process, fails to open.
class Outbox {
  public:
    /// Opens (creating when missing) the outbox in `dir`: loads the index files of closed
    /// segments, verifies the newest segment record by record, truncates a torn or corrupt tail
    /// (logged with file and offset, counted), recovers the newest seq of every sensor, and
    /// applies the bounds. Blocks for the recovery: about the time to read the newest segment
    /// plus the index files (docs/outbox.md). Throws std::invalid_argument for inconsistent
    /// options, std::system_error when the directory cannot be created, locked or written.
    /// Damaged files never make it throw.
    explicit Outbox(std::filesystem::path dir, OutboxOptions options = {});
    /// Closes as close() does. Never throws.
    ~Outbox();
    /// Moving transfers the open outbox; a moved-from Outbox may only be destroyed or assigned.
    Outbox(Outbox&&) noexcept;
    /// Moves the open Outbox; the moved-from one may only be destroyed or assigned.
    Outbox& operator=(Outbox&&) noexcept;
    Outbox(const Outbox&) = delete;
    Outbox& operator=(const Outbox&) = delete;

    /// Appends one batch of readings of one sensor as one record. The outbox assigns the seqs:
    /// batch[i].seq is overwritten with newest + 1 + i (whatever it held), so the caller fills
    /// sensor, ts and values and publishes the readings once this returns. Blocks for the
    /// write, for fdatasync under FsyncPolicy::always, and under batch or never, when the
    /// seqs pass the sensor's durable reservation, for writing a new reservation (one
    /// fdatasync of a small file per block of seqs; the block doubles while blocks last less
    /// than 10 s, from 64 up to 2^24 seqs).
    /// May delete oldest segments to stay within the bounds (see OutboxOptions::on_drop).
    /// Throws std::invalid_argument when the batch is empty, larger than
    /// limits::max_batch_readings, mixes sensors or holds an invalid reading (the seqs are then
    /// left unspecified and nothing is appended); std::system_error when the write fails (the seq
    /// reservation cannot be written, or disk full: the partial record is cut off again and
    /// nothing is appended; a failed fdatasync
    /// under FsyncPolicy::always: the record stays, its seqs are used, its durability is
    /// unknown); std::logic_error
    /// after close().
    SeqRange append(std::span<Reading> batch);
    /// As append(batch), and also appends to `payload` the record's body: the wire payload of
    /// the batch (proto/reading_v1.md, what encode_batch writes), with the assigned seqs. The
    /// batch is validated and encoded once, for the file and for the caller: what
    /// ReliablePublisher hands to Publisher::publish_payload. `payload` is left as it was when
    /// this throws.
    SeqRange append(std::span<Reading> batch, std::string& payload);
    /// Appends one reading (see above); sets reading.seq.
    SeqRange append(Reading& reading);

    /// Forces everything appended so far to stable storage (fdatasync), whatever the policy.
    /// Throws std::system_error.
    void sync();

    /// Syncs the segments written since open (under every policy, FsyncPolicy::never
    /// included: once, so that the unused seq reservations can be released and a clean restart
    /// skips no seq), releases the reservations and the directory; later appends throw, reads
    /// return nothing. Throws std::system_error.
    void close();

    /// Returns up to `max_count` readings of `sensor` from `from_seq` on (see OutboxRead), with
    /// first_available, newest and the next skipped range. Blocks for the file reads (about the
    /// size of the readings returned, plus up to 64 KiB to find the first). Never throws for
    /// damaged data: a record that fails its checksum is logged, counted and skipped. Throws
    /// std::system_error when a file cannot be read.
    [[nodiscard]] OutboxRead read(std::string_view sensor, std::uint64_t from_seq,
                                  std::size_t max_count) const;

    /// As read(), but returns the readings as one readings payload spliced from the stored
    /// record bodies, without decoding them (what a replay sends; see OutboxPayload), and stops
    /// before the payload would pass `max_bytes` (at least one reading's worth is needed to
    /// return any). A record is framed reading by reading: one whose payload disagrees with its
    /// header (sensor, count, seqs) or is not a readings payload is refused as read() refuses
    /// it (logged, counted, skipped). Unlike read(), the readings' values are not checked: they
    /// are as they were appended, under the record's checksum.
    [[nodiscard]] OutboxPayload read_payload(
        std::string_view sensor, std::uint64_t from_seq, std::size_t max_count,
        std::size_t max_bytes = limits::max_payload_bytes) const;

    /// The newest seq appended for `sensor` (0 when unknown).
    [[nodiscard]] std::uint64_t newest(std::string_view sensor) const;
    /// The oldest seq still held for `sensor`; newest(sensor) + 1 when none is.
    [[nodiscard]] std::uint64_t first_available(std::string_view sensor) const;
    /// Ranges of seqs of `sensor` the outbox skipped, in order: after a reboot that followed an
    /// unclean shutdown (power cut, kernel crash) under FsyncPolicy::batch or never, the seqs
    /// between the newest one it durably held and its durable reservation (a kill -9 or crash
    /// of the process within one boot skips nothing: see OutboxOptions::boot_id_path); after a
    /// clean close, seqs missing since (damaged files). They may have been handed out
    /// and published before the shutdown; the outbox does not hold them and never hands them
    /// out again. Kept across restarts: at most the newest 64 ranges; those below
    /// first_available(sensor) are forgotten at open except the newest one (a replay reports
    /// them as lost).
    [[nodiscard]] std::vector<SeqRange> skipped(std::string_view sensor) const;
    /// Every known sensor with its newest seq, sorted by sensor (the content of a heartbeat).
    [[nodiscard]] std::vector<std::pair<std::string, std::uint64_t>> newest_all() const;
    /// Readings of `sensor` dropped or lost since this outbox was opened.
    [[nodiscard]] std::uint64_t dropped(std::string_view sensor) const;
    /// Counters and gauges since this outbox was opened (a snapshot).
    [[nodiscard]] OutboxMetrics metrics() const;
    /// The outbox directory.
    [[nodiscard]] const std::filesystem::path& dir() const noexcept;

    struct Impl;

  private:
    SeqRange append_record(std::span<Reading> batch, std::string* payload);
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
