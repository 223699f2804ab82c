// fuzz-rpc: the RPC envelope decoder and the replay request/reply decoders on arbitrary bytes.
// Each must either decode or throw DecodeError; whatever decodes must re-encode and decode to
// the same value.
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
    if (rill::decode_replay_reply(rill::encode_replay_reply(reply)) != reply) {
        rill::fuzz::fail("replay reply round trip");
    }
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
