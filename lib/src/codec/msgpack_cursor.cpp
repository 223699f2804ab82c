#include "codec/msgpack_cursor.hpp"

namespace rill::detail {

void fail(DecodeErrc code, const std::string& what) {
    throw DecodeError(code, what);
}

const char* type_name(Type t) noexcept {
    switch (t) {
        case Type::nil:
            return "nil";
        case Type::boolean:
            return "boolean";
        case Type::positive:
            return "positive integer";
        case Type::negative:
            return "negative integer";
        case Type::float32:
            return "float32";
        case Type::float64:
            return "float64";
        case Type::str:
            return "str";
        case Type::bin:
            return "bin";
        case Type::array:
            return "array";
        case Type::map:
            return "map";
        case Type::ext:
            return "ext";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Cursor

// The structural errors, worded as before (msgpack-c's parser names the limit it hit).
void Cursor::truncated() const {
    fail(DecodeErrc::malformed, std::string(what_) + " is truncated");
}

void Cursor::not_msgpack() const {
    fail(DecodeErrc::malformed, std::string(what_) + " is not msgpack (parse error)");
}

void Cursor::over_limit(const char* which) const {
    fail(DecodeErrc::too_large,
         std::string(what_) + " declares a size over its limit (" + which + " size overflow)");
}

Value Cursor::next(int level) {
    const unsigned b = *take(1);
    Value v;
    if (b <= 0x7f) {
        v.type = Type::positive;
        v.u = b;
    } else if (b >= 0xe0) {
        v.type = Type::negative;
        v.i = static_cast<std::int8_t>(b);
    } else if (b <= 0x8f) {
        container(v, Type::map, b & 0x0fu, level);
    } else if (b <= 0x9f) {
        container(v, Type::array, b & 0x0fu, level);
    } else if (b <= 0xbf) {
        blob(v, Type::str, b & 0x1fu);
    } else {
        switch (b) {
            case 0xc0:
                v.type = Type::nil;
                break;
            case 0xc2:
            case 0xc3:
                v.type = Type::boolean;
                break;
            case 0xc4:
                blob(v, Type::bin, take_be<std::uint8_t>());
                break;
            case 0xc5:
                blob(v, Type::bin, take_be<std::uint16_t>());
                break;
            case 0xc6:
                blob(v, Type::bin, take_be<std::uint32_t>());
                break;
            case 0xc7:  // ext: a type byte, then the data
                blob(v, Type::ext, std::uint64_t{take_be<std::uint8_t>()} + 1);
                break;
            case 0xc8:
                blob(v, Type::ext, std::uint64_t{take_be<std::uint16_t>()} + 1);
                break;
            case 0xc9:
                blob(v, Type::ext, std::uint64_t{take_be<std::uint32_t>()} + 1);
                break;
            case 0xca: {
                const auto bits = take_be<std::uint32_t>();
                float f;
                std::memcpy(&f, &bits, sizeof f);
                v.type = Type::float32;
                v.f = f;
                break;
            }
            case 0xcb: {
                const auto bits = take_be<std::uint64_t>();
                std::memcpy(&v.f, &bits, sizeof v.f);
                v.type = Type::float64;
                break;
            }
            case 0xcc:
                unsigned_value(v, take_be<std::uint8_t>());
                break;
            case 0xcd:
                unsigned_value(v, take_be<std::uint16_t>());
                break;
            case 0xce:
                unsigned_value(v, take_be<std::uint32_t>());
                break;
            case 0xcf:
                unsigned_value(v, take_be<std::uint64_t>());
                break;
            case 0xd0:
                signed_value(v, static_cast<std::int8_t>(take_be<std::uint8_t>()));
                break;
            case 0xd1:
                signed_value(v, static_cast<std::int16_t>(take_be<std::uint16_t>()));
                break;
            case 0xd2:
                signed_value(v, static_cast<std::int32_t>(take_be<std::uint32_t>()));
                break;
            case 0xd3:
                signed_value(v, static_cast<std::int64_t>(take_be<std::uint64_t>()));
                break;
            case 0xd4:  // fixext 1, 2, 4, 8, 16: a type byte, then the data
                blob(v, Type::ext, 2);
                break;
            case 0xd5:
                blob(v, Type::ext, 3);
                break;
            case 0xd6:
                blob(v, Type::ext, 5);
                break;
            case 0xd7:
                blob(v, Type::ext, 9);
                break;
            case 0xd8:
                blob(v, Type::ext, 17);
                break;
            case 0xd9:
                blob(v, Type::str, take_be<std::uint8_t>());
                break;
            case 0xda:
                blob(v, Type::str, take_be<std::uint16_t>());
                break;
            case 0xdb:
                blob(v, Type::str, take_be<std::uint32_t>());
                break;
            case 0xdc:
                container(v, Type::array, take_be<std::uint16_t>(), level);
                break;
            case 0xdd:
                container(v, Type::array, take_be<std::uint32_t>(), level);
                break;
            case 0xde:
                container(v, Type::map, take_be<std::uint16_t>(), level);
                break;
            case 0xdf:
                container(v, Type::map, take_be<std::uint32_t>(), level);
                break;
            default:  // 0xc1, never used
                not_msgpack();
        }
    }
    return v;
}

void Cursor::skip(int level) {
    const Value v = next(level);
    if (v.type == Type::array) {
        for (std::uint32_t k = 0; k < v.size; ++k)
            skip(level + 1);
    } else if (v.type == Type::map) {
        for (std::uint32_t k = 0; k < v.size; ++k) {
            skip(level + 1);
            skip(level + 1);
        }
    }
}

Value Cursor::next_whole(const char* what) {
    if (p_ == end_) fail(DecodeErrc::malformed, std::string(what) + " is missing");
    const char* const outer = what_;
    const unsigned char* const start = p_;
    what_ = what;
    skip(1);
    what_ = outer;
    // The header again, from a cursor that stops where the value does: it cannot fail now.
    Cursor header(std::string_view(reinterpret_cast<const char*>(start),
                                   static_cast<std::size_t>(p_ - start)),
                  *limits_, what);
    return header.next(1);
}

Value Cursor::whole(std::size_t max_bytes) {
    if (remaining() > max_bytes) {
        fail(DecodeErrc::too_large, std::string(what_) + " is " + std::to_string(remaining()) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    Cursor check = *this;
    (void)check.next_whole(what_);
    if (check.remaining() != 0) {
        fail(DecodeErrc::trailing_bytes,
             std::to_string(check.remaining()) + " bytes follow " + what_ + "'s msgpack object");
    }
    return next(1);
}

void Cursor::blob(Value& v, Type t, std::uint64_t n) {
    v.type = t;
    // Compared before narrowing: an ext 32 of 0xffffffff bytes is 2^32 with its type byte, which
    // a 32-bit size_t would wrap to 0 (armhf).
    if (n > remaining()) truncated();
    v.bytes = reinterpret_cast<const char*>(take(static_cast<std::size_t>(n)));
    if (t == Type::ext) {
        ++v.bytes;
        --n;
    }
    v.size = static_cast<std::uint32_t>(n);
}

void Cursor::container(Value& v, Type t, std::uint32_t n, int level) const {
    if (t == Type::array && n > limits_->max_array_elements) over_limit("array");
    if (t == Type::map && n > limits_->max_map_entries) over_limit("map");
    if (level > limits_->max_depth) {
        if (!limits_->depth_as_nesting) over_limit("depth");
        fail(DecodeErrc::too_large, std::string(what_) + " is nested deeper than " +
                                        std::to_string(limits_->max_depth) + " levels");
    }
    v.type = t;
    v.size = n;
}

// ---------------------------------------------------------------------------------------------
// Typed accessors

void expect_type(const Value& v, Type t, const char* field) {
    if (v.type != t) {
        fail(DecodeErrc::wrong_type,
             std::string(field) + " is a " + type_name(v.type) + ", expected " + type_name(t));
    }
}

std::uint64_t get_uint(const Value& v, const char* field) {
    expect_type(v, Type::positive, field);
    return v.u;
}

double get_number(const Value& v, const char* field) {
    switch (v.type) {
        case Type::float32:
        case Type::float64:
            return v.f;
        case Type::positive:
            return static_cast<double>(v.u);
        case Type::negative:
            return static_cast<double>(v.i);
        default:
            fail(DecodeErrc::wrong_type,
                 std::string(field) + " is a " + type_name(v.type) + ", expected a number");
    }
}

namespace {

std::string_view bytes_of(const Value& v, Type t, const char* field, std::size_t max_bytes) {
    expect_type(v, t, field);
    if (v.size > max_bytes) {
        fail(DecodeErrc::too_large, std::string(field) + " is " + std::to_string(v.size) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    return {v.bytes, v.size};
}

[[noreturn]] void wrong_size(std::uint32_t size, const char* field, std::size_t want,
                             const char* suffix) {
    fail(DecodeErrc::malformed, std::string(field) + " has " + std::to_string(size) +
                                    " elements, expected " + std::to_string(want) + suffix);
}

}  // namespace

std::string_view get_str(const Value& v, const char* field, std::size_t max_bytes) {
    return bytes_of(v, Type::str, field, max_bytes);
}

std::string_view get_bin(const Value& v, const char* field, std::size_t max_bytes) {
    return bytes_of(v, Type::bin, field, max_bytes);
}

void expect_min_size(std::uint32_t size, const char* field, std::size_t min_size) {
    if (size < min_size) wrong_size(size, field, min_size, " or more");
}

std::uint32_t get_array(const Value& v, const char* field, std::size_t min_size) {
    expect_type(v, Type::array, field);
    expect_min_size(v.size, field, min_size);
    return v.size;
}

void get_array_exact(const Value& v, const char* field, std::size_t size) {
    expect_type(v, Type::array, field);
    if (v.size != size) wrong_size(v.size, field, size, "");
}

}  // namespace rill::detail
