#include "codec/msgpack_walk.hpp"

namespace rill::detail {

namespace {

const msgpack::unpack_limit rpc_parse_limits(rpc_limits::max_array_elements,
                                             rpc_limits::max_map_pairs,
                                             rpc_limits::max_message_bytes,
                                             rpc_limits::max_message_bytes,
                                             rpc_limits::max_message_bytes, rpc_limits::max_depth);

bool reference_strings(msgpack::type::object_type, std::size_t, void*) {
    return true;
}

}  // namespace

msgpack::object_handle parse_next(std::string_view bytes, std::size_t& off, const char* what) {
    if (off >= bytes.size()) fail(DecodeErrc::malformed, std::string(what) + " is missing");
    try {
        return msgpack::unpack(bytes.data(), bytes.size(), off, reference_strings, nullptr,
                               rpc_parse_limits);
    } catch (const msgpack::depth_size_overflow&) {
        fail(DecodeErrc::too_large, std::string(what) + " is nested deeper than " +
                                        std::to_string(rpc_limits::max_depth) + " levels");
    } catch (const msgpack::size_overflow& e) {
        fail(DecodeErrc::too_large,
             std::string(what) + " declares a size over its limit (" + e.what() + ")");
    } catch (const msgpack::insufficient_bytes&) {
        fail(DecodeErrc::malformed, std::string(what) + " is truncated");
    } catch (const msgpack::unpack_error& e) {
        fail(DecodeErrc::malformed, std::string(what) + " is not msgpack (" + e.what() + ")");
    }
}

msgpack::object_handle parse_whole(std::string_view bytes, const char* what) {
    if (bytes.size() > rpc_limits::max_message_bytes) {
        fail(DecodeErrc::too_large, std::string(what) + " is " + std::to_string(bytes.size()) +
                                        " bytes, more than " +
                                        std::to_string(rpc_limits::max_message_bytes));
    }
    std::size_t off = 0;
    auto oh = parse_next(bytes, off, what);
    if (off != bytes.size()) {
        fail(DecodeErrc::trailing_bytes,
             std::to_string(bytes.size() - off) + " bytes follow " + what + "'s msgpack object");
    }
    return oh;
}

const char* type_name(msgpack::type::object_type t) noexcept {
    using namespace msgpack::type;
    switch (t) {
        case NIL:
            return "nil";
        case BOOLEAN:
            return "boolean";
        case POSITIVE_INTEGER:
            return "positive integer";
        case NEGATIVE_INTEGER:
            return "negative integer";
        case FLOAT32:
            return "float32";
        case FLOAT64:
            return "float64";
        case STR:
            return "str";
        case BIN:
            return "bin";
        case ARRAY:
            return "array";
        case MAP:
            return "map";
        case EXT:
            return "ext";
    }
    return "unknown";
}

void expect_type(const msgpack::object& o, msgpack::type::object_type t, const char* field) {
    if (o.type != t) {
        fail(DecodeErrc::wrong_type,
             std::string(field) + " is a " + type_name(o.type) + ", expected " + type_name(t));
    }
}

std::uint64_t get_uint(const msgpack::object& o, const char* field) {
    expect_type(o, msgpack::type::POSITIVE_INTEGER, field);
    return o.via.u64;
}

std::string_view get_str(const msgpack::object& o, const char* field, std::size_t max_bytes) {
    expect_type(o, msgpack::type::STR, field);
    if (o.via.str.size > max_bytes) {
        fail(DecodeErrc::too_large, std::string(field) + " is " + std::to_string(o.via.str.size) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    return {o.via.str.ptr, o.via.str.size};
}

std::string_view get_bin(const msgpack::object& o, const char* field, std::size_t max_bytes) {
    expect_type(o, msgpack::type::BIN, field);
    if (o.via.bin.size > max_bytes) {
        fail(DecodeErrc::too_large, std::string(field) + " is " + std::to_string(o.via.bin.size) +
                                        " bytes, more than " + std::to_string(max_bytes));
    }
    return {o.via.bin.ptr, o.via.bin.size};
}

const msgpack::object_array& get_array(const msgpack::object& o, const char* field,
                                       std::size_t size) {
    expect_type(o, msgpack::type::ARRAY, field);
    if (o.via.array.size != size) {
        fail(DecodeErrc::malformed, std::string(field) + " has " +
                                        std::to_string(o.via.array.size) + " elements, expected " +
                                        std::to_string(size));
    }
    return o.via.array;
}

const msgpack::object_array& get_array_min(const msgpack::object& o, const char* field,
                                           std::size_t min_size) {
    expect_type(o, msgpack::type::ARRAY, field);
    if (o.via.array.size < min_size) {
        fail(DecodeErrc::malformed, std::string(field) + " has " +
                                        std::to_string(o.via.array.size) + " elements, expected " +
                                        std::to_string(min_size) + " or more");
    }
    return o.via.array;
}

}  // namespace rill::detail
