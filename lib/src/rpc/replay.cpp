#include "rill/replay.hpp"

#include <algorithm>

#include "codec/frame.hpp"
#include "codec/msgpack_cursor.hpp"
#include "codec/msgpack_write.hpp"
#include "rill/codec.hpp"
#include "rill/log.hpp"
#include "rpc/parse_limits.hpp"

namespace rill {

namespace {

using detail::Cursor;
using detail::fail;
using detail::Packer;
using detail::StringSink;

std::optional<std::string> request_problem(const ReplayRequest& r) {
    if (auto p = sensor_id_problem(r.sensor)) return "sensor: " + *p;
    if (r.from_seq == 0) return std::string("from_seq is 0; sequence numbers start at 1");
    if (r.max_readings == 0 || r.max_readings > limits::max_batch_readings) {
        return "max_readings is " + std::to_string(r.max_readings) + ", expected 1 to " +
               std::to_string(limits::max_batch_readings);
    }
    return std::nullopt;
}

// Checks first_available, newest and lost against each other.
std::optional<std::string> bounds_problem(std::uint64_t first_available, std::uint64_t newest,
                                          const std::optional<SeqRange>& lost) {
    if (first_available == 0) return std::string("first_available is 0");
    if (newest == UINT64_MAX || first_available > newest + 1) {
        return "first_available " + std::to_string(first_available) + " is above newest " +
               std::to_string(newest) + " + 1";
    }
    if (lost) {
        if (lost->first == 0 || lost->first > lost->last) {
            return "lost range [" + std::to_string(lost->first) + ", " +
                   std::to_string(lost->last) + "] is empty or starts at 0";
        }
        if (lost->last + 1 != first_available) {
            return "lost range ends at " + std::to_string(lost->last) +
                   ", expected first_available - 1 = " + std::to_string(first_available - 1);
        }
    }
    return std::nullopt;
}

std::optional<SeqRange> lost_range(const ReplayRequest& request, std::uint64_t first_available) {
    if (request.from_seq < first_available) return SeqRange{request.from_seq, first_available - 1};
    return std::nullopt;
}

// Checks what a reply can be checked for without its request.
std::optional<std::string> reply_shape_problem(const ReplayReply& r) {
    if (auto p = bounds_problem(r.first_available, r.newest, r.lost)) return p;
    if (r.readings.size() + r.invalid.size() > limits::max_batch_readings) {
        return std::to_string(r.readings.size() + r.invalid.size()) + " readings, more than " +
               std::to_string(limits::max_batch_readings);
    }
    const auto outside = [&](std::uint64_t seq) -> std::optional<std::string> {
        if (seq < r.first_available || seq > r.newest) {
            return "reading seq " + std::to_string(seq) + " is outside [first_available " +
                   std::to_string(r.first_available) + ", newest " + std::to_string(r.newest) + "]";
        }
        if (r.skipped && seq >= r.skipped->first && seq <= r.skipped->last) {
            return "reading seq " + std::to_string(seq) + " is in the skipped range [" +
                   std::to_string(r.skipped->first) + ", " + std::to_string(r.skipped->last) + "]";
        }
        return std::nullopt;
    };
    for (std::size_t i = 0; i < r.readings.size(); ++i) {
        const auto seq = r.readings[i].seq;
        if (auto p = outside(seq)) return p;
        if (i > 0 &&
            (seq <= r.readings[i - 1].seq || r.readings[i].sensor != r.readings[0].sensor)) {
            return std::string("readings are not of one sensor in increasing seq order");
        }
    }
    for (std::size_t i = 0; i < r.invalid.size(); ++i) {
        if (auto p = outside(r.invalid[i].seq)) return p;
        if ((i > 0 && r.invalid[i].seq <= r.invalid[i - 1].seq) ||
            (!r.readings.empty() && r.invalid[i].sensor != r.readings[0].sensor) ||
            r.invalid[i].sensor != r.invalid[0].sensor) {
            return std::string("invalid readings are not of one sensor in increasing seq order");
        }
    }
    if (r.skipped && (r.skipped->first == 0 || r.skipped->first > r.skipped->last ||
                      r.skipped->last > r.newest)) {
        return "skipped range [" + std::to_string(r.skipped->first) + ", " +
               std::to_string(r.skipped->last) + "] is empty, starts at 0 or ends above newest " +
               std::to_string(r.newest);
    }
    return std::nullopt;
}

void add_lost(std::vector<SeqRange>& lost, SeqRange r) {
    if (r.first > r.last) return;
    if (!lost.empty() && lost.back().last + 1 >= r.first) {
        lost.back().last = std::max(lost.back().last, r.last);
        return;
    }
    lost.push_back(r);
}

// Why `skipped` is not a valid skipped range of a reply whose readings end at `last_reading`
// (0: none), against `request` when there is one.
std::optional<std::string> skipped_problem(const std::optional<SeqRange>& skipped,
                                           std::uint64_t first_available, std::uint64_t newest,
                                           std::uint64_t last_reading,
                                           const ReplayRequest* request) {
    if (!skipped) return std::nullopt;
    const std::string range = "skipped range [" + std::to_string(skipped->first) + ", " +
                              std::to_string(skipped->last) + "]";
    if (skipped->first == 0 || skipped->first > skipped->last)
        return range + " is empty or starts at 0";
    if (skipped->first < first_available || skipped->last > newest) {
        return range + " is outside [first_available " + std::to_string(first_available) +
               ", newest " + std::to_string(newest) + "]";
    }
    if (last_reading >= skipped->first) {
        return range + " is not above the reply's last reading " + std::to_string(last_reading);
    }
    if (request != nullptr && skipped->first < request->from_seq) {
        return range + " starts below from_seq " + std::to_string(request->from_seq);
    }
    return std::nullopt;
}

// Cuts a reply's readings at the last one that keeps the payload within
// limits::max_payload_bytes; a cut reply says nothing of skipped seqs above it.
void cut_to_payload_limit(ReplayReply& reply) {
    if (reply.readings.empty()) return;
    const std::string payload = encode_batch(reply.readings);
    if (payload.size() <= limits::max_payload_bytes) return;
    const auto parts = detail::split_batch(payload);
    std::string_view rest = parts.readings;
    std::size_t body = 0;
    std::size_t keep = 0;
    while (keep < reply.readings.size()) {
        const std::size_t n = detail::object_bytes(rest);
        if (detail::batch_header_bytes(parts.sensor, keep + 1) + body + n >
            limits::max_payload_bytes) {
            break;
        }
        body += n;
        rest.remove_prefix(n);
        ++keep;
    }
    reply.readings.resize(keep);
    reply.skipped.reset();
}

// The result array around a readings payload (empty: none).
std::string encode_reply(std::string_view payload, std::uint64_t first_available,
                         std::uint64_t newest, const std::optional<SeqRange>& lost,
                         const std::optional<SeqRange>& skipped) {
    std::string out;
    out.reserve(payload.size() + 48);
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(skipped ? 5 : 4);
    detail::pack_bin(pk, payload);
    pk.pack_uint64(first_available);
    pk.pack_uint64(newest);
    if (lost) {
        pk.pack_array(2);
        pk.pack_uint64(lost->first);
        pk.pack_uint64(lost->last);
    } else {
        pk.pack_nil();
    }
    if (skipped) {
        pk.pack_array(2);
        pk.pack_uint64(skipped->first);
        pk.pack_uint64(skipped->last);
    }
    return out;
}

// Why `r`'s payload and the fields describing it disagree (checks its envelope only).
std::optional<std::string> payload_problem(const OutboxPayload& r) {
    if (r.count == 0) {
        if (!r.payload.empty()) return std::string("a payload with a count of 0");
        return std::nullopt;
    }
    if (r.count > limits::max_batch_readings) {
        return std::to_string(r.count) + " readings, more than " +
               std::to_string(limits::max_batch_readings);
    }
    if (r.payload.size() > limits::max_payload_bytes) {
        return "a payload of " + std::to_string(r.payload.size()) + " bytes, more than " +
               std::to_string(limits::max_payload_bytes);
    }
    if (r.first_seq == 0 || r.last_seq < r.first_seq || r.last_seq - r.first_seq + 1 < r.count) {
        return "seqs [" + std::to_string(r.first_seq) + ", " + std::to_string(r.last_seq) +
               "] cannot hold " + std::to_string(r.count) + " increasing readings";
    }
    if (r.first_seq < r.first_available || r.last_seq > r.newest) {
        return "reading seqs [" + std::to_string(r.first_seq) + ", " + std::to_string(r.last_seq) +
               "] are outside [first_available " + std::to_string(r.first_available) + ", newest " +
               std::to_string(r.newest) + "]";
    }
    try {
        if (detail::split_batch(r.payload).count != r.count) {
            return "the payload does not hold " + std::to_string(r.count) + " readings";
        }
    } catch (const DecodeError& e) {
        return std::string("the payload is not a readings payload: ") + e.what();
    }
    return std::nullopt;
}

[[noreturn]] void refuse_reply(const ReplayRequest& request, const std::string& problem) {
    log_error("replay", "the replay callback returned an invalid reply for sensor " +
                            request.sensor + ": " + problem);
    throw RpcError(std::string(replay_method), "internal error: invalid replay reply: " + problem);
}

}  // namespace

void set_lost_range(const ReplayRequest& request, ReplayReply& reply) {
    reply.lost = lost_range(request, reply.first_available);
}

std::string encode_replay_request(const ReplayRequest& request) {
    if (auto p = request_problem(request)) {
        throw std::invalid_argument("cannot encode replay request: " + *p);
    }
    std::string out;
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(3);
    detail::pack_str(pk, request.sensor);
    pk.pack_uint64(request.from_seq);
    pk.pack_uint32(request.max_readings);
    return out;
}

ReplayRequest decode_replay_request(std::string_view params) {
    Cursor c(params, detail::rpc_parse_limits, "replay request");
    (void)detail::get_array(c.whole(rpc_limits::max_message_bytes), "replay request", 3);
    ReplayRequest r;
    r.sensor.assign(detail::get_str(c.next(2), "sensor", limits::max_sensor_id_bytes));
    r.from_seq = detail::get_uint(c.next(2), "from_seq");
    const auto max = detail::get_uint(c.next(2), "max_readings");
    if (max > limits::max_batch_readings) {
        fail(DecodeErrc::too_large, "max_readings is " + std::to_string(max) + ", more than " +
                                        std::to_string(limits::max_batch_readings));
    }
    r.max_readings = static_cast<std::uint32_t>(max);
    if (auto p = request_problem(r)) fail(DecodeErrc::invalid_value, "replay request " + *p);
    return r;
}

std::string encode_replay_reply(const ReplayReply& reply) {
    if (auto p = reply_shape_problem(reply)) {
        throw std::invalid_argument("cannot encode replay reply: " + *p);
    }
    const std::uint64_t last = reply.readings.empty() ? 0 : reply.readings.back().seq;
    if (auto p =
            skipped_problem(reply.skipped, reply.first_available, reply.newest, last, nullptr)) {
        throw std::invalid_argument("cannot encode replay reply: " + *p);
    }
    const std::string payload =
        reply.readings.empty() ? std::string() : encode_batch(reply.readings);
    return encode_reply(payload, reply.first_available, reply.newest, reply.lost, reply.skipped);
}

std::string encode_replay_reply(const ReplayPayloadReply& reply) {
    const OutboxPayload& r = reply.stored;
    if (auto p = bounds_problem(r.first_available, r.newest, reply.lost)) {
        throw std::invalid_argument("cannot encode replay reply: " + *p);
    }
    if (auto p = payload_problem(r))
        throw std::invalid_argument("cannot encode replay reply: " + *p);
    if (auto p = skipped_problem(r.skipped, r.first_available, r.newest, r.last_seq, nullptr)) {
        throw std::invalid_argument("cannot encode replay reply: " + *p);
    }
    return encode_reply(r.payload, r.first_available, r.newest, reply.lost, r.skipped);
}

ReplayReply decode_replay_reply(std::string_view result) {
    Cursor c(result, detail::rpc_parse_limits, "replay reply");
    const auto elements =
        detail::get_array(c.whole(rpc_limits::max_message_bytes), "replay reply", 4);
    ReplayReply r;
    const auto payload = detail::get_bin(c.next(2), "readings", limits::max_payload_bytes);
    if (!payload.empty()) {
        try {
            decode_batch(payload, r.readings, r.invalid);
        } catch (const DecodeError& e) {
            throw DecodeError(e.code(), std::string("replay reply readings: ") + e.what());
        }
    }
    r.first_available = detail::get_uint(c.next(2), "first_available");
    r.newest = detail::get_uint(c.next(2), "newest");
    if (const auto lost = c.next(2); lost.type != detail::Type::nil) {
        detail::get_array_exact(lost, "lost", 2);
        const auto first = detail::get_uint(c.next(3), "lost.first");
        r.lost = SeqRange{first, detail::get_uint(c.next(3), "lost.last")};
    }
    if (elements >= 5) {
        if (const auto skipped = c.next(2); skipped.type != detail::Type::nil) {
            detail::get_array_exact(skipped, "skipped", 2);
            const auto first = detail::get_uint(c.next(3), "skipped.first");
            r.skipped = SeqRange{first, detail::get_uint(c.next(3), "skipped.last")};
        }
    }
    if (auto p = reply_shape_problem(r)) fail(DecodeErrc::invalid_value, "replay reply " + *p);
    return r;
}

std::optional<std::string> replay_reply_problem(const ReplayRequest& request,
                                                const ReplayReply& reply) {
    if (auto p = reply_shape_problem(reply)) return p;
    if (reply.readings.size() + reply.invalid.size() > request.max_readings) {
        return std::to_string(reply.readings.size() + reply.invalid.size()) +
               " readings, more than the " + std::to_string(request.max_readings) + " asked for";
    }
    const auto problem = [&](const std::string& sensor,
                             std::uint64_t seq) -> std::optional<std::string> {
        if (sensor != request.sensor) {
            return "a reading of sensor '" + sensor + "', expected '" + request.sensor + "'";
        }
        if (seq < request.from_seq) {
            return "reading seq " + std::to_string(seq) + " is below from_seq " +
                   std::to_string(request.from_seq);
        }
        return std::nullopt;
    };
    for (const auto& r : reply.readings) {
        if (auto p = problem(r.sensor, r.seq)) return p;
    }
    for (const auto& r : reply.invalid) {
        if (auto p = problem(r.sensor, r.seq)) return p;
    }
    if (lost_range(request, reply.first_available) != reply.lost) {
        return std::string("the lost range does not match from_seq and first_available");
    }
    return std::nullopt;
}

std::optional<std::string> replay_reply_problem(const ReplayRequest& request,
                                                const ReplayPayloadReply& reply) {
    const OutboxPayload& r = reply.stored;
    if (auto p = bounds_problem(r.first_available, r.newest, reply.lost)) return p;
    if (auto p = payload_problem(r)) return p;
    if (r.count > request.max_readings) {
        return std::to_string(r.count) + " readings, more than the " +
               std::to_string(request.max_readings) + " asked for";
    }
    if (r.count > 0) {
        if (detail::split_batch(r.payload).sensor != request.sensor) {
            return "readings of another sensor than '" + request.sensor + "'";
        }
        if (r.first_seq < request.from_seq) {
            return "reading seq " + std::to_string(r.first_seq) + " is below from_seq " +
                   std::to_string(request.from_seq);
        }
    }
    if (lost_range(request, r.first_available) != reply.lost) {
        return std::string("the lost range does not match from_seq and first_available");
    }
    return std::nullopt;
}

// -------------------------------------------------------------------------------------------
// ReplayServer

ReplayServer::ReplayServer(zmq::context_t& ctx, std::string_view endpoints, Callback callback,
                           const SocketOptions& options)
    : server_(ctx, endpoints, options) {
    serve([cb = std::move(callback)](const ReplayRequest& request) {
        auto reply = cb(request);
        cut_to_payload_limit(reply);
        set_lost_range(request, reply);
        if (auto p = replay_reply_problem(request, reply)) refuse_reply(request, *p);
        const std::uint64_t last = reply.readings.empty() ? 0 : reply.readings.back().seq;
        if (auto p = skipped_problem(reply.skipped, reply.first_available, reply.newest, last,
                                     &request)) {
            refuse_reply(request, *p);
        }
        return encode_replay_reply(reply);
    });
}

ReplayServer::ReplayServer(zmq::context_t& ctx, std::string_view endpoints,
                           PayloadCallback callback, const SocketOptions& options)
    : server_(ctx, endpoints, options) {
    serve([cb = std::move(callback)](const ReplayRequest& request) {
        auto reply = cb(request);
        reply.lost = lost_range(request, reply.stored.first_available);
        if (auto p = replay_reply_problem(request, reply)) refuse_reply(request, *p);
        const OutboxPayload& r = reply.stored;
        if (auto p =
                skipped_problem(r.skipped, r.first_available, r.newest, r.last_seq, &request)) {
            refuse_reply(request, *p);
        }
        return encode_replay_reply(reply);
    });
}

void ReplayServer::serve(std::function<std::string(const ReplayRequest&)> answer) {
    server_.handle(std::string(replay_method),
                   [answer = std::move(answer)](std::string_view params) -> std::string {
                       ReplayRequest request;
                       try {
                           request = decode_replay_request(params);
                       } catch (const DecodeError& e) {
                           throw RpcError(std::string(replay_method),
                                          std::string("invalid replay request: ") + e.what());
                       }
                       return answer(request);
                   });
    server_.start();
}

// -------------------------------------------------------------------------------------------
// ReplayClient

ReplayClient::ReplayClient(zmq::context_t& ctx, std::string_view endpoints,
                           const SocketOptions& options)
    : client_(ctx, endpoints, options) {}

ReplayReply ReplayClient::request(const ReplayRequest& request, const CallOptions& options) {
    auto result = client_.call(replay_method, encode_replay_request(request), options);
    auto reply = decode_replay_reply(result);
    if (auto p = replay_reply_problem(request, reply)) {
        throw DecodeError(DecodeErrc::invalid_value,
                          "replay reply for sensor " + request.sensor + ": " + *p);
    }
    return reply;
}

ReplayResult ReplayClient::fetch(std::string_view sensor, std::uint64_t from, std::uint64_t to,
                                 const ReplayFetchOptions& options) {
    if (from == 0 || to < from) {
        throw std::invalid_argument("ReplayClient::fetch: bad range [" + std::to_string(from) +
                                    ", " + std::to_string(to) + "]");
    }
    if (options.chunk == 0 || options.chunk > limits::max_batch_readings) {
        throw std::invalid_argument("ReplayClient::fetch: chunk must be 1 to " +
                                    std::to_string(limits::max_batch_readings));
    }
    ReplayResult out;
    std::uint64_t next = from;
    while (next <= to) {
        const auto want = std::min<std::uint64_t>(options.chunk, to - next + 1);
        auto reply =
            request(ReplayRequest{std::string(sensor), next, static_cast<std::uint32_t>(want)},
                    options.call);
        ++out.requests;
        out.newest = reply.newest;
        if (reply.lost) add_lost(out.lost, {reply.lost->first, std::min(reply.lost->last, to)});
        // What the answer accounts for, in seq order: valid and invalid readings and the
        // skipped range. The seqs between them that it does not account for are holes.
        std::uint64_t expected = std::max(next, reply.first_available);
        bool got = false;
        const auto account = [&](std::uint64_t first, std::uint64_t last) {
            // A hole inside the answer: the publisher skipped readings it no longer has.
            if (first > expected) add_lost(out.lost, {expected, first - 1});
            expected = std::max(expected, last + 1);
            got = true;
        };
        auto invalid = reply.invalid.begin();
        // A skipped range after the answer's last reading counts only when the answer is not
        // cut by max_readings (else the seqs between are still to be asked for).
        std::uint64_t last_item = 0;
        if (!reply.readings.empty()) last_item = reply.readings.back().seq;
        if (!reply.invalid.empty()) last_item = std::max(last_item, reply.invalid.back().seq);
        const bool full = reply.readings.size() + reply.invalid.size() >= want;
        const auto skipped_first = reply.skipped ? std::max(reply.skipped->first, next) : 0;
        bool skipped_pending = reply.skipped && reply.skipped->last >= next &&
                               (!full || reply.skipped->first < last_item);
        const auto account_before = [&](std::uint64_t seq) {
            for (;;) {
                const std::uint64_t inv =
                    invalid != reply.invalid.end() ? invalid->seq : UINT64_MAX;
                const std::uint64_t skp = skipped_pending ? skipped_first : UINT64_MAX;
                if (std::min(inv, skp) >= seq || std::min(inv, skp) > to) return;
                if (inv < skp) {
                    account(inv, inv);
                    out.invalid.push_back(std::move(*invalid++));
                } else {
                    const SeqRange skipped{skp, std::min(reply.skipped->last, to)};
                    account(skipped.first, skipped.last);
                    add_lost(out.skipped, skipped);
                    skipped_pending = false;
                }
            }
        };
        for (auto& r : reply.readings) {
            if (r.seq > to) break;
            account_before(r.seq);
            account(r.seq, r.seq);
            out.readings.push_back(std::move(r));
        }
        account_before(UINT64_MAX);
        const auto end = std::min(reply.newest, to);
        if (!got) {
            if (expected > next && expected <= end) {
                next = expected;  // skip past what the outbox dropped
                continue;
            }
            // Nothing at or after `next` although the publisher has published up to newest.
            if (expected <= end) add_lost(out.lost, {expected, end});
            break;
        }
        next = expected;
        if (next > reply.newest) break;
    }
    return out;
}

}  // namespace rill
