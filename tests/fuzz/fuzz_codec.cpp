// fuzz-codec: rill::decode_message(topic, payload) on arbitrary frames, and the round trip:
// whatever decodes re-encodes to a payload that decodes to the same message.
//
// Input: one byte n, then n bytes of topic, then the payload (see fuzz_input.hpp).
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "fuzz_input.hpp"
#include "rill/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto [topic, payload] = rill::fuzz::split_two(data, size);
    rill::Message decoded;
    try {
        decoded = rill::decode_message(topic, payload);
    } catch (const rill::DecodeError&) {
        return 0;  // the documented way to refuse
    }
    // Anything accepted must be encodable again and decode to the same value.
    std::string again;
    if (const auto* batch = std::get_if<std::vector<rill::Reading>>(&decoded)) {
        if (batch->empty()) rill::fuzz::fail("a decoded batch is not empty");
        again = rill::encode_batch(*batch);
    } else {
        again = rill::encode_heartbeat(std::get<rill::Heartbeat>(decoded));
    }
    if (rill::decode_message(topic, again) != decoded) {
        rill::fuzz::fail("decode(encode(decoded)) == decoded");
    }
    return 0;
}
