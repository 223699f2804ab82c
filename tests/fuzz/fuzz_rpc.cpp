// fuzz-rpc: the RPC envelope decoder and the replay request/reply decoders on arbitrary bytes.
// Each must either decode or throw DecodeError; whatever decodes must re-encode and decode to
// the same value.
//
// Replay replies may have 4 or 5 (or more) elements, the 5th being the skipped range; invalid
// readings in them are kept apart (ReplayReply::invalid) and checked.
//
// Input: the whole input goes to decode_rpc_message, decode_replay_request and
// decode_replay_reply; a decoded request's params and a decoded response's result go on to
// the replay decoders too, so the corpus can hold whole RPC messages.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_input.hpp"
#include "rill/codec.hpp"
#include "rill/replay.hpp"
#include "rill/rpc.hpp"

namespace {

void replay_request(std::string_view bytes) {
    rill::ReplayRequest request;
    try {
        request = rill::decode_replay_request(bytes);
    } catch (const rill::DecodeError&) {
        return;
    }
    if (rill::decode_replay_request(rill::encode_replay_request(request)) != request) {
        rill::fuzz::fail("replay request round trip");
    }
}

void replay_reply(std::string_view bytes) {
    rill::ReplayReply reply;
    try {
        reply = rill::decode_replay_reply(bytes);
    } catch (const rill::DecodeError&) {
        return;
    }
    // Invalid readings are decoded, never encoded: what the reply holds of them is checked, and
    // the round trip compares the rest. The skipped range (the optional 5th element) is compared
    // when the encoder writes it.
    std::uint64_t prev = 0;
    auto valid = reply.readings.begin();
    for (const auto& r : reply.invalid) {
        while (valid != reply.readings.end() && valid->seq < r.seq)
            ++valid;
        if (r.problem.empty() || r.seq <= prev || r.seq < reply.first_available ||
            r.seq > reply.newest || (valid != reply.readings.end() && valid->seq == r.seq)) {
            rill::fuzz::fail("an invalid reading out of order, out of bounds or unexplained");
        }
        prev = r.seq;
    }
    for (const auto& r : reply.readings) {
        if (rill::reading_problem(r)) rill::fuzz::fail("a replayed reading is invalid");
    }
    // A decoder takes a skipped range anywhere outside the readings (a foreign publisher may
    // send one below a later reading); rill's encoder writes it only above every reading and at
    // or above first_available (proto/replay_v1.md). Round-trip what the encoder would write.
    auto expected = reply;
    if (expected.skipped &&
        ((!expected.readings.empty() && expected.readings.back().seq >= expected.skipped->first) ||
         expected.skipped->first < expected.first_available)) {
        expected.skipped.reset();
    }
    auto again = rill::decode_replay_reply(rill::encode_replay_reply(expected));
    expected.invalid.clear();
    if (!again.skipped) expected.skipped.reset();
    if (again != expected) rill::fuzz::fail("replay reply round trip");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    replay_request(bytes);
    replay_reply(bytes);
    rill::RpcMessage message;
    try {
        message = rill::decode_rpc_message(bytes);
    } catch (const rill::DecodeError&) {
        return 0;
    }
    std::string again;
    if (const auto* request = std::get_if<rill::RpcRequest>(&message)) {
        replay_request(request->params);
        again = rill::encode_rpc_request(*request);
    } else {
        const auto& response = std::get<rill::RpcResponse>(message);
        if (!response.error) replay_reply(response.result);
        again = rill::encode_rpc_response(response);
    }
    if (rill::decode_rpc_message(again) != message) rill::fuzz::fail("rpc message round trip");
    return 0;
}
