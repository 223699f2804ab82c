#include "mqtt/redelivery.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace rill::mqtt::detail {

namespace {

constexpr std::array<char, 8> magic{'R', 'I', 'L', 'L', 'M', 'Q', 'R', '2'};
constexpr std::size_t header_bytes = 32;
// counter, mid, digest, epoch, seq (8 bytes each), sensor length (1), sensor (64), padding.
constexpr std::size_t slot_bytes = 128;
constexpr std::size_t max_sensor = 64;

void put64(unsigned char* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get64(const unsigned char* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path) {
    throw std::system_error(errno, std::generic_category(), what + " " + path.string());
}

}  // namespace

std::uint64_t message_digest(std::string_view topic, std::string_view payload) {
    std::uint64_t h = 14695981039346656037ULL;
    auto mix = [&h](unsigned char c) {
        h ^= c;
        h *= 1099511628211ULL;
    };
    for (char c : topic)
        mix(static_cast<unsigned char>(c));
    mix(0);
    for (char c : payload)
        mix(static_cast<unsigned char>(c));
    return h;
}

RedeliveryJournal::RedeliveryJournal(std::filesystem::path path, std::size_t window, bool sync)
    : path_(std::move(path)), window_(window), sync_(sync), slots_(window) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open the redelivery journal", path_);
    std::vector<unsigned char> bytes(header_bytes + window_ * slot_bytes);
    const auto got = ::pread(fd_, bytes.data(), bytes.size(), 0);
    if (got < 0) fail("cannot read the redelivery journal", path_);
    if (static_cast<std::size_t>(got) != bytes.size() ||
        std::memcmp(bytes.data(), magic.data(), magic.size()) != 0 ||
        get64(bytes.data() + 16) != window_) {
        reset();
        return;
    }
    epoch_ = get64(bytes.data() + 8);
    for (std::size_t i = 0; i < window_; ++i) {
        const unsigned char* p = bytes.data() + header_bytes + i * slot_bytes;
        Slot s{get64(p), get64(p + 8), get64(p + 16), get64(p + 24), get64(p + 32), {}};
        const std::size_t len = std::min<std::size_t>(p[40], max_sensor);
        s.sensor.assign(reinterpret_cast<const char*>(p + 41), len);
        slots_[i] = s;
        if (s.counter == 0) continue;
        counter_ = std::max(counter_, s.counter);
        auto [it, inserted] = by_mid_.try_emplace(s.mid, i);
        if (!inserted && slots_[it->second].counter < s.counter) it->second = i;
    }
}

RedeliveryJournal::~RedeliveryJournal() {
    if (fd_ >= 0) ::close(fd_);
}

void RedeliveryJournal::reset() {
    slots_.assign(window_, Slot{});
    by_mid_.clear();
    counter_ = 0;
    std::vector<unsigned char> zeros(window_ * slot_bytes);
    if (::ftruncate(fd_, 0) != 0) fail("cannot truncate the redelivery journal", path_);
    if (::pwrite(fd_, zeros.data(), zeros.size(), header_bytes) !=
        static_cast<ssize_t>(zeros.size()))
        fail("cannot write the redelivery journal", path_);
    write_header();
}

void RedeliveryJournal::write_header() {
    std::array<unsigned char, header_bytes> h{};
    std::memcpy(h.data(), magic.data(), magic.size());
    put64(h.data() + 8, epoch_);
    put64(h.data() + 16, window_);
    if (::pwrite(fd_, h.data(), h.size(), 0) != static_cast<ssize_t>(h.size()))
        fail("cannot write the redelivery journal", path_);
    if (sync_ && ::fdatasync(fd_) != 0) fail("cannot sync the redelivery journal", path_);
}

void RedeliveryJournal::write_slot(std::size_t index) {
    std::array<unsigned char, slot_bytes> b{};
    const Slot& s = slots_[index];
    put64(b.data(), s.counter);
    put64(b.data() + 8, s.mid);
    put64(b.data() + 16, s.digest);
    put64(b.data() + 24, s.epoch);
    put64(b.data() + 32, s.seq);
    b[40] = static_cast<unsigned char>(s.sensor.size());
    std::memcpy(b.data() + 41, s.sensor.data(), s.sensor.size());
    const auto offset = static_cast<off_t>(header_bytes + index * slot_bytes);
    if (::pwrite(fd_, b.data(), b.size(), offset) != static_cast<ssize_t>(b.size()))
        fail("cannot write the redelivery journal", path_);
    if (sync_ && ::fdatasync(fd_) != 0) fail("cannot sync the redelivery journal", path_);
}

void RedeliveryJournal::new_epoch(bool session_present) {
    ++epoch_;
    if (!session_present && counter_ != 0) {
        reset();  // writes the header with the new epoch
        return;
    }
    write_header();
}

std::optional<JournalEntry> RedeliveryJournal::find(int mid, std::uint64_t digest) const {
    const auto it = by_mid_.find(static_cast<std::uint64_t>(mid));
    if (it == by_mid_.end()) return std::nullopt;
    const Slot& s = slots_[it->second];
    if (s.digest != digest || s.epoch >= epoch_) return std::nullopt;
    return JournalEntry{s.sensor, s.seq};
}

void RedeliveryJournal::record(int mid, std::uint64_t digest, const JournalEntry& entry) {
    if (entry.sensor.size() > max_sensor)
        throw std::invalid_argument("redelivery journal: sensor id longer than 64 bytes");
    const auto index = static_cast<std::size_t>(counter_ % window_);
    Slot& old = slots_[index];
    if (old.counter != 0) {
        const auto it = by_mid_.find(old.mid);
        if (it != by_mid_.end() && it->second == index) by_mid_.erase(it);
    }
    old =
        Slot{++counter_, static_cast<std::uint64_t>(mid), digest, epoch_, entry.seq, entry.sensor};
    by_mid_[static_cast<std::uint64_t>(mid)] = index;
    write_slot(index);
}

}  // namespace rill::mqtt::detail
