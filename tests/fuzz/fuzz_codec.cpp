// fuzz-codec: rill::decode_message(topic, payload) on arbitrary frames, both the strict decode
// and the one that discards invalid readings alone (proto/reading_v1.md, "One invalid reading"),
// and the round trip: whatever decodes re-encodes to a payload that decodes to the same message.
//
// Input: one byte n, then n bytes of topic, then the payload (see fuzz_input.hpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "fuzz_input.hpp"
#include "rill/codec.hpp"

namespace {

// The lenient decode: what it keeps is valid and re-encodes; what it discards is named; it
// agrees with the strict decode wherever that accepts, and fails wherever the structure is bad
// (then the strict one fails too).
void lenient(std::string_view topic, std::string_view payload,
             const std::optional<rill::Message>& strict) {
    std::vector<rill::InvalidReading> invalid;
    rill::Message decoded;
    try {
        decoded = rill::decode_message(topic, payload, invalid);
    } catch (const rill::DecodeError&) {
        if (strict) rill::fuzz::fail("the lenient decode refuses what the strict one accepts");
        if (!invalid.empty()) rill::fuzz::fail("a failed lenient decode left invalid readings");
        return;
    }
    if (strict) {
        if (decoded != *strict || !invalid.empty()) {
            rill::fuzz::fail("the lenient decode differs where the strict one accepts");
        }
        return;
    }
    const auto* batch = std::get_if<std::vector<rill::Reading>>(&decoded);
    if (batch == nullptr) rill::fuzz::fail("a heartbeat the strict decode refused was accepted");
    if (invalid.empty()) rill::fuzz::fail("the strict decode refused a batch with nothing invalid");
    std::vector<std::uint64_t> seqs;
    for (const auto& r : *batch) {
        if (rill::reading_problem(r)) rill::fuzz::fail("a kept reading is invalid");
        if (r.sensor != topic) rill::fuzz::fail("a kept reading of another sensor");
        seqs.push_back(r.seq);
    }
    for (const auto& r : invalid) {
        if (r.problem.empty() || r.sensor != topic || r.seq == 0 || r.seq > rill::limits::max_seq) {
            rill::fuzz::fail("an invalid reading without a problem, sensor or seq in range");
        }
        seqs.push_back(r.seq);
    }
    std::sort(seqs.begin(), seqs.end());
    if (std::adjacent_find(seqs.begin(), seqs.end()) != seqs.end()) {
        rill::fuzz::fail("kept and invalid readings share a seq");
    }
    if (!batch->empty()) {
        const auto again = rill::encode_batch(*batch);
        if (rill::decode_batch(again) != *batch) rill::fuzz::fail("kept readings round trip");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto [topic, payload] = rill::fuzz::split_two(data, size);
    std::optional<rill::Message> strict;
    try {
        strict = rill::decode_message(topic, payload);
    } catch (const rill::DecodeError&) {
        // the documented way to refuse
    }
    lenient(topic, payload, strict);
    if (!strict) return 0;
    const rill::Message& decoded = *strict;
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
