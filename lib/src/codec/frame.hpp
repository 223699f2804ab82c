// Readings payloads as bytes: splitting a payload that encode_batch wrote into its envelope and
// its encoded readings, and writing an envelope in front of encoded readings. What lets a
// reading be encoded once and its bytes be batched, stored (the outbox) and sent as they are.
// Internal: the wire format is proto/reading_v1.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rill::detail {

/// A readings payload split into its parts; views into the payload.
struct BatchParts {
    std::string_view sensor;    ///< the payload's sensor id
    std::size_t count = 0;      ///< readings in the payload
    std::string_view readings;  ///< the `count` encoded readings (msgpack arrays), back to back
};

/// Splits a readings payload into its sensor, count and the bytes of its readings. Checks the
/// envelope only ([1, 0, sensor str, readings array header]), not the readings. Throws
/// DecodeError (DecodeErrc::malformed or wrong_type) when the bytes are not such an envelope.
[[nodiscard]] BatchParts split_batch(std::string_view payload);

/// The size of the msgpack object at the start of `bytes` (e.g. one encoded reading). Throws
/// DecodeError (DecodeErrc::malformed) when it is truncated, nested too deep or not a msgpack
/// object.
[[nodiscard]] std::size_t object_bytes(std::string_view bytes);

/// The seq of the encoded reading at the start of `reading` (its first element, a msgpack
/// unsigned integer). Throws DecodeError when it is not a reading array starting with one.
[[nodiscard]] std::uint64_t reading_seq(std::string_view reading);

/// The size of the envelope append_batch_header writes for `count` readings of `sensor`.
[[nodiscard]] std::size_t batch_header_bytes(std::string_view sensor, std::size_t count) noexcept;

/// Appends the envelope of a readings payload of `count` readings of `sensor` (encode_batch
/// writes its envelope with it too); the caller appends the `count` encoded readings after it.
void append_batch_header(std::string& out, std::string_view sensor, std::size_t count);

}  // namespace rill::detail
