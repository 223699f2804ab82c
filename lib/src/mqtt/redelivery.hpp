// The redelivery journal of the MQTT bridge: which QoS 1 messages were appended to the outbox
// and may not have been acknowledged to the broker, so that the broker's redelivery after a
// connection loss or a kill is not stored twice. docs/integrations.md ("Delivery") states the
// reasoning; this file states the mechanics.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rill::mqtt::detail {

/// A digest of a message's topic and payload (64-bit FNV-1a over topic, a zero byte, payload).
[[nodiscard]] std::uint64_t message_digest(std::string_view topic, std::string_view payload);

/// Where a journalled message's readings went: the seq its (last) sensor's append was to get.
struct JournalEntry {
    std::string sensor;     ///< the sensor of the message's last append
    std::uint64_t seq = 0;  ///< outbox.newest(sensor) + 1 before that append
};

/// A file of `window` slots, each (counter, packet id, digest, epoch, sensor, seq), written in a
/// ring with one pwrite(2) per message BEFORE the message's append, so it survives a kill of the
/// process at any point (not a power cut unless `sync`). The epoch counts connections accepted
/// by the broker.
///
/// A message may be a redelivery when the slot of its packet id holds the same digest from an
/// earlier epoch: a broker resends a message only after a reconnect (MQTT 3.1.1 4.4), keeps the
/// packet id, and gives packet ids in turn (so one id returns only after 65535 others; window
/// stays below that). It is one when, besides, the outbox's newest seq of the entry's sensor
/// reached the entry's seq (the append happened: the bridge is the only writer of its outbox).
/// A broker without the session (session present = 0) redelivers nothing and may start ids
/// again: new_epoch(false) forgets every slot.
class RedeliveryJournal {
  public:
    /// Opens or creates `path`. A file of another window size or format is started afresh.
    /// Throws std::system_error naming the file.
    RedeliveryJournal(std::filesystem::path path, std::size_t window, bool sync);
    ~RedeliveryJournal();
    RedeliveryJournal(const RedeliveryJournal&) = delete;
    RedeliveryJournal& operator=(const RedeliveryJournal&) = delete;

    /// A new connection was accepted; `session_present` as its CONNACK says. Durable.
    void new_epoch(bool session_present);
    /// The entry of (mid, digest) when it was recorded in an earlier epoch (see the class
    /// comment); nothing otherwise.
    [[nodiscard]] std::optional<JournalEntry> find(int mid, std::uint64_t digest) const;
    /// Records a message about to be appended. Throws std::system_error when the write fails,
    /// std::invalid_argument for a sensor id longer than 64 bytes.
    void record(int mid, std::uint64_t digest, const JournalEntry& entry);
    /// The current epoch.
    [[nodiscard]] std::uint64_t epoch() const noexcept { return epoch_; }

  private:
    struct Slot {
        std::uint64_t counter = 0;  ///< 0: empty
        std::uint64_t mid = 0;
        std::uint64_t digest = 0;
        std::uint64_t epoch = 0;
        std::uint64_t seq = 0;
        std::string sensor;
    };
    void write_header();
    void write_slot(std::size_t index);
    void reset();

    std::filesystem::path path_;
    int fd_ = -1;
    std::size_t window_;
    bool sync_;
    std::uint64_t epoch_ = 0;
    std::uint64_t counter_ = 0;
    std::vector<Slot> slots_;
    std::unordered_map<std::uint64_t, std::size_t> by_mid_;  ///< newest slot of each mid
};

}  // namespace rill::mqtt::detail
