// Internal: the bounded msgpack reading cursor and the typed accessors the decoders share
// (codec.cpp for reading_v1, rpc.cpp for the RPC envelope, replay.cpp for replay_v1).
//
// A Cursor reads msgpack front to back, one value header at a time, checking every read against
// the bytes that remain; nothing is allocated. Its structural errors are the ones msgpack-c's
// parser reports under the same limits, worded as rill always worded them (the codec's
// differential test compares it with msgpack-c: tests/unit/codec_differential_test.cpp):
//   "<what> is truncated", "<what> is not msgpack (parse error)" (DecodeErrc::malformed),
//   "<what> declares a size over its limit (array size overflow)" (DecodeErrc::too_large).
// Like msgpack-c with a string reference callback, it sets no limit on str, bin and ext sizes
// other than the bytes that remain.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "rill/codec.hpp"

namespace rill::detail {

/// Throws DecodeError(code, what).
[[noreturn]] void fail(DecodeErrc code, const std::string& what);

/// The msgpack type of a value; names as msgpack-c's object types.
enum class Type : std::uint8_t {
    nil,
    boolean,
    positive,  ///< any integer >= 0, whatever its encoding (int8..int64 too)
    negative,
    float32,
    float64,
    str,
    bin,
    array,
    map,
    ext,
};

/// "nil", "positive integer", "str", ... as msgpack-c names them.
[[nodiscard]] const char* type_name(Type t) noexcept;

/// One value's header. Scalars carry their value; str, bin and ext their bytes, which the cursor
/// has moved past; array and map their element count, whose elements follow.
struct Value {
    Type type = Type::nil;        ///< the value's type
    std::uint32_t size = 0;       ///< str/bin/ext bytes, array elements, map entries
    std::uint64_t u = 0;          ///< the value of a positive integer
    std::int64_t i = 0;           ///< the value of a negative integer
    double f = 0;                 ///< the value of a float32 or float64
    const char* bytes = nullptr;  ///< str, bin, ext: the bytes (ext: after its type byte)
};

/// The parser limits a cursor applies to every value, known or not. An array or map, even an
/// empty one, may sit at most max_depth levels deep (the outermost value is level 1).
struct CursorLimits {
    std::size_t max_array_elements;  ///< elements of one array
    std::size_t max_map_entries;     ///< entries of one map
    int max_depth;                   ///< nesting levels
    /// How nesting over max_depth is worded: false, as a size over its limit ("depth size
    /// overflow", DecodeErrc::too_large; the codec); true, "<what> is nested deeper than N
    /// levels" (DecodeErrc::too_large; RPC).
    bool depth_as_nesting = false;
};

/// Reads `T` big-endian from `p`.
template <typename T>
[[nodiscard]] T load_be(const unsigned char* p) noexcept {
    T v;
    std::memcpy(&v, p, sizeof v);
    if constexpr (sizeof(T) > 1 && std::endian::native == std::endian::little) {
        if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
        if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
        if constexpr (sizeof(T) == 8) v = __builtin_bswap64(v);
    }
    return v;
}

/// A read position in a buffer; every read is bounds-checked. Does not own the bytes, which
/// must outlive it and every Value it returns. Errors name the input `what` ("payload",
/// "params", ...): a string literal or one that outlives the cursor.
class Cursor {
  public:
    /// A cursor at the start of `bytes`.
    Cursor(std::string_view bytes, const CursorLimits& limits,
           const char* what = "payload") noexcept
        : p_(reinterpret_cast<const unsigned char*>(bytes.data())),
          end_(p_ + bytes.size()),
          limits_(&limits),
          what_(what) {}

    /// Bytes not read yet.
    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - p_);
    }
    /// The read position.
    [[nodiscard]] const char* position() const noexcept {
        return reinterpret_cast<const char*>(p_);
    }

    /// The next `n` bytes, moved past; throws (truncated) when fewer remain.
    const unsigned char* take(std::size_t n) {
        if (remaining() < n) truncated();
        const unsigned char* q = p_;
        p_ += n;
        return q;
    }

    /// A big-endian T, moved past; throws (truncated) when fewer bytes remain.
    template <typename T>
    T take_be() {
        return load_be<T>(take(sizeof(T)));
    }

    /// Reads the header of the value at `level` (the outermost is 1) and, for str, bin and ext,
    /// moves past its bytes. Throws DecodeError for bytes that are not msgpack, truncation and
    /// containers over the limits.
    Value next(int level);

    /// Moves past the value at `level`, whatever it is. Throws as next() for any value inside.
    /// Recursion is bounded by max_depth, and the loops by the bytes that remain: each element
    /// takes at least one, or throws.
    void skip(int level);

    /// Moves past the next whole value, checked as one msgpack object of its own named `what`
    /// (as msgpack-c parses one object at an offset: errors name `what`, and the depth limit
    /// counts from this value), and returns its header; the cursor is then past its elements
    /// too. Throws DecodeError; malformed "<what> is missing" when no bytes remain.
    Value next_whole(const char* what);

    /// Checks that the bytes from the read position to the end are exactly one msgpack object
    /// of at most `max_bytes`, and returns its header, leaving the cursor after the header so
    /// that a container's elements can be read in order. Throws DecodeError: too_large "<what>
    /// is N bytes, more than M", the structural errors, malformed "<what> is missing" when no
    /// bytes remain, trailing_bytes "N bytes follow <what>'s msgpack object".
    Value whole(std::size_t max_bytes);

    // Fast paths for the forms rill's encoder writes, at levels where the depth limit cannot
    // apply. Each reads what next() would, or returns false and reads nothing; callers then use
    // next(), which handles every form and every error.

    /// An unsigned integer (positive fixint, uint8..uint64).
    bool fast_uint(std::uint64_t& u) noexcept {
        if (p_ == end_) return false;
        const unsigned b = *p_;
        if (b <= 0x7f) {
            u = b;
            ++p_;
            return true;
        }
        switch (b) {
            case 0xcc:
                return fast_load<std::uint8_t>(u);
            case 0xcd:
                return fast_load<std::uint16_t>(u);
            case 0xce:
                return fast_load<std::uint32_t>(u);
            case 0xcf:
                return fast_load<std::uint64_t>(u);
            default:
                return false;
        }
    }
    /// A float32 or float64.
    bool fast_float(double& f) noexcept {
        if (remaining() >= 5 && *p_ == 0xca) {
            const auto bits = load_be<std::uint32_t>(p_ + 1);
            float x;
            std::memcpy(&x, &bits, sizeof x);
            f = x;
            p_ += 5;
            return true;
        }
        if (remaining() >= 9 && *p_ == 0xcb) {
            const auto bits = load_be<std::uint64_t>(p_ + 1);
            std::memcpy(&f, &bits, sizeof f);
            p_ += 9;
            return true;
        }
        return false;
    }
    /// A fixarray header.
    bool fast_fixarray(std::uint32_t& n) noexcept {
        if (p_ == end_ || (*p_ & 0xf0) != 0x90) return false;
        n = *p_++ & 0x0fu;
        return true;
    }
    /// A fixstr and its bytes.
    bool fast_fixstr(std::string_view& s) noexcept {
        if (p_ == end_ || (*p_ & 0xe0) != 0xa0) return false;
        const std::size_t n = *p_ & 0x1fu;
        if (remaining() < 1 + n) return false;
        s = {reinterpret_cast<const char*>(p_ + 1), n};
        p_ += 1 + n;
        return true;
    }

  private:
    [[noreturn]] void truncated() const;
    [[noreturn]] void not_msgpack() const;
    [[noreturn]] void over_limit(const char* which) const;

    // Reads the header byte and a big-endian T after it into `u`, if they are all there.
    template <typename T>
    bool fast_load(std::uint64_t& u) noexcept {
        if (remaining() < 1 + sizeof(T)) return false;
        u = load_be<T>(p_ + 1);
        p_ += 1 + sizeof(T);
        return true;
    }
    static void unsigned_value(Value& v, std::uint64_t u) noexcept {
        v.type = Type::positive;
        v.u = u;
    }
    static void signed_value(Value& v, std::int64_t i) noexcept {
        if (i >= 0) {
            unsigned_value(v, static_cast<std::uint64_t>(i));
        } else {
            v.type = Type::negative;
            v.i = i;
        }
    }
    void blob(Value& v, Type t, std::uint64_t n);
    void container(Value& v, Type t, std::uint32_t n, int level) const;

    const unsigned char* p_;
    const unsigned char* end_;
    const CursorLimits* limits_;
    const char* what_;
};

// Typed accessors: each checks a value's type (DecodeErrc::wrong_type "<field> is a <type>,
// expected <type>") and its size where one is given (too_large "<field> is N bytes, more than
// M"; malformed "<field> has N elements, expected M [or more]").

/// Throws wrong_type unless `v` is of type `t`.
void expect_type(const Value& v, Type t, const char* field);
/// The value of a positive integer.
[[nodiscard]] std::uint64_t get_uint(const Value& v, const char* field);
/// Any integer or float as a double (wrong_type "... expected a number" otherwise).
[[nodiscard]] double get_number(const Value& v, const char* field);
/// A str of at most `max_bytes`.
[[nodiscard]] std::string_view get_str(const Value& v, const char* field, std::size_t max_bytes);
/// A bin of at most `max_bytes`.
[[nodiscard]] std::string_view get_bin(const Value& v, const char* field, std::size_t max_bytes);
/// Throws malformed when `size` is under `min_size`.
void expect_min_size(std::uint32_t size, const char* field, std::size_t min_size);
/// An array of at least `min_size` elements (later revisions may append fields); its size.
std::uint32_t get_array(const Value& v, const char* field, std::size_t min_size);
/// An array of exactly `size` elements.
void get_array_exact(const Value& v, const char* field, std::size_t size);

}  // namespace rill::detail
