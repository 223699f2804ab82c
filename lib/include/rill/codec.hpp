// rill/codec.hpp: the msgpack encoding of readings and heartbeats (proto/reading_v1.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "rill/reading.hpp"

namespace rill {

/// The wire format version this library writes. Decoders accept every version listed in
/// proto/ (today: 1) and reject others with DecodeErrc::unknown_version.
inline constexpr std::uint64_t wire_version = 1;

/// The kind of a payload, its second field. Values are used on the wire: never change them.
enum class PayloadKind : std::uint8_t { readings = 0, heartbeat = 1 };

/// Topics starting with a zero byte are reserved for control messages; sensor ids never do.
inline constexpr std::string_view heartbeat_topic{"\0hb", 3};

/// Why a payload was rejected.
enum class DecodeErrc {
    malformed,        ///< not msgpack, or truncated
    trailing_bytes,   ///< bytes after the payload's msgpack object
    too_large,        ///< a size or count above its limit
    wrong_type,       ///< a field of the wrong msgpack type
    unknown_version,  ///< a version this decoder does not know
    unknown_kind,     ///< a payload kind this decoder does not know
    invalid_value,    ///< a value outside its domain (seq 0, NaN, bad sensor id, ...)
    topic_mismatch,   ///< the topic frame disagrees with the payload
};

/// A short stable name for `e` ("malformed", "too_large", ...), usable as a metric label.
[[nodiscard]] std::string_view to_string(DecodeErrc e) noexcept;

/// Thrown by every decode function. what() names the problem and the field it was found in.
class DecodeError : public std::runtime_error {
  public:
    /// Thrown with the reason and a message naming the problem and the field.
    DecodeError(DecodeErrc code, const std::string& what) : std::runtime_error(what), code_(code) {}
    /// Why the input was rejected.
    [[nodiscard]] DecodeErrc code() const noexcept { return code_; }

  private:
    DecodeErrc code_;
};

/// A reading that was readable (its sensor and seq decoded) but failed validation
/// (reading_problem): it is discarded alone, the rest of its batch is kept.
struct InvalidReading {
    std::string sensor;     ///< the sensor of the batch it came in
    std::uint64_t seq = 0;  ///< its seq
    std::string problem;    ///< why it was rejected (reading_problem's text)
    /// Member-wise equality.
    bool operator==(const InvalidReading&) const = default;
};

/// What a publisher announces at a fixed interval.
struct Heartbeat {
    std::string publisher;                     ///< the publisher's identity, stable across restarts
    Timestamp sent_at{};                       ///< when the heartbeat was sent
    std::chrono::milliseconds interval{1000};  ///< the promised heartbeat interval
    std::string replay_endpoint;  ///< where to ask for replays; empty when there is none
    /// For every sensor the publisher's outbox holds, the newest seq the outbox has assigned.
    std::vector<std::pair<std::string, std::uint64_t>> newest;
    /// Member-wise equality.
    bool operator==(const Heartbeat&) const = default;
};

/// Appends the payload of a batch of readings to `out`. The batch must be non-empty, hold at
/// most limits::max_batch_readings readings of one sensor with strictly increasing seq, and
/// each reading must be valid (reading_problem). Throws std::invalid_argument otherwise.
void encode_batch(std::span<const Reading> batch, std::string& out);

/// Returns the payload of a batch (see the overload above).
[[nodiscard]] std::string encode_batch(std::span<const Reading> batch);

/// Returns the payload of a batch of one reading.
[[nodiscard]] std::string encode(const Reading& reading);

/// Returns the payload of a heartbeat. Throws std::invalid_argument when a field is out of its
/// limits.
[[nodiscard]] std::string encode_heartbeat(const Heartbeat& hb);

/// Decodes a readings payload and appends its readings to `out`. Strict and bounded: throws
/// DecodeError for anything that is not a valid v1 readings payload, in which case `out` is
/// left as it was. Never allocates more than a small multiple of the payload size.
void decode_batch(std::string_view payload, std::vector<Reading>& out);

/// Decodes a readings payload, keeping its valid readings (proto/reading_v1.md, "One invalid
/// reading"): the payload's structure (envelope, sensor id, each reading an array of at least 4
/// elements whose seq is an unsigned integer in 1..limits::max_seq, strictly increasing, all of
/// it well-formed msgpack within the limits) must hold, else this throws DecodeError as the
/// strict overload and leaves `out` and `invalid` as they were. A reading whose other fields
/// fail (a timestamp, temperature, humidity or extras of the wrong type or outside its domain)
/// is not appended to `out` but to `invalid`, with its seq and the problem; the others are
/// appended to `out` in payload order.
void decode_batch(std::string_view payload, std::vector<Reading>& out,
                  std::vector<InvalidReading>& invalid);

/// Decodes a readings payload into a new vector (see the strict overload above).
[[nodiscard]] std::vector<Reading> decode_batch(std::string_view payload);

/// Decodes a heartbeat payload. Throws DecodeError.
[[nodiscard]] Heartbeat decode_heartbeat(std::string_view payload);

/// A decoded two-frame message: either a batch of readings of one sensor or a heartbeat.
using Message = std::variant<std::vector<Reading>, Heartbeat>;

/// Decodes a [topic, payload] message and checks that they agree: a readings payload must
/// travel under its sensor id, a heartbeat under heartbeat_topic. Throws DecodeError.
[[nodiscard]] Message decode_message(std::string_view topic, std::string_view payload);

/// As decode_message(topic, payload), keeping the valid readings of a readings payload as
/// decode_batch(payload, out, invalid) does: invalid ones are appended to `invalid` (which is
/// left as it was when this throws). The batch may then be empty (every reading invalid).
[[nodiscard]] Message decode_message(std::string_view topic, std::string_view payload,
                                     std::vector<InvalidReading>& invalid);

}  // namespace rill
