// rill/replay.hpp: the replay protocol (proto/replay_v1.md): a subscriber asks a publisher for
// the readings of one sensor from a sequence number on, over rill/rpc.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "rill/outbox.hpp"
#include "rill/reading.hpp"
#include "rill/rpc.hpp"
#include "rill/seq_ranges.hpp"
#include "rill/socket.hpp"

namespace rill {

/// The RPC method name of a replay request. Used on the wire: never change it.
inline constexpr std::string_view replay_method = "replay.v1";

/// "Send me sensor `sensor` from seq `from_seq` on, at most `max_readings` readings."
struct ReplayRequest {
    std::string sensor;              ///< a valid sensor id
    std::uint64_t from_seq = 1;      ///< >= 1
    std::uint32_t max_readings = 0;  ///< 1 to limits::max_batch_readings
    /// Member-wise equality.
    bool operator==(const ReplayRequest&) const = default;
};

/// The publisher's answer.
struct ReplayReply {
    /// Readings of the requested sensor with seq >= from_seq in increasing order, at most
    /// max_readings of them (sent as one codec batch payload, or an empty bin when none).
    std::vector<Reading> readings;
    /// The oldest seq the outbox still holds for the sensor; newest + 1 when it holds none.
    std::uint64_t first_available = 1;
    /// The newest seq ever published for the sensor; 0 when none was.
    std::uint64_t newest = 0;
    /// [from_seq, first_available - 1] when from_seq < first_available: readings the outbox no
    /// longer has (dropped when it was full or too old), for the caller to count as lost.
    std::optional<SeqRange> lost;
    /// Readings the publisher sent that fail validation (proto/reading_v1.md, "One invalid
    /// reading"): found by decode_replay_reply, discarded alone, never delivered; their seqs
    /// interleave with `readings` in one increasing order. Not encoded: encode_replay_reply
    /// sends `readings` only.
    std::vector<InvalidReading> invalid;
    /// Seqs the publisher skipped (reserved before a crash, never durably written; see
    /// Outbox::skipped), sent as the reply's optional 5th element: within [max(from_seq,
    /// first_available), newest], above every reading of the reply, and only when every
    /// reading the publisher holds below it is in the reply. The caller counts them as skipped
    /// and continues from last + 1. Empty: none (the reply has 4 elements).
    std::optional<SeqRange> skipped;
    /// Member-wise equality.
    bool operator==(const ReplayReply&) const = default;
};

/// A reply whose readings are already one encoded readings payload, the outbox's stored bytes
/// (Outbox::read_payload): sent as it is, without decoding and re-encoding the readings. On
/// the wire the same as a ReplayReply of the same readings; `stored.skipped` is sent as
/// ReplayReply::skipped. A callback answers with
/// `ReplayPayloadReply{outbox.read_payload(req.sensor, req.from_seq, req.max_readings)}`.
struct ReplayPayloadReply {
    /// The readings (payload: empty, or a readings payload of the requested sensor holding
    /// `count` readings in increasing seq order from first_seq to last_seq), first_available
    /// and newest, as ReplayReply's.
    OutboxPayload stored;
    /// As ReplayReply::lost.
    std::optional<SeqRange> lost;
};

/// Sets `reply.lost` for `request`:
/// [from_seq, first_available - 1] when from_seq < first_available, else clears it.
void set_lost_range(const ReplayRequest& request, ReplayReply& reply);

/// Returns the msgpack params of a request: [sensor, from_seq, max_readings]. Throws
/// std::invalid_argument when a field is out of its domain.
[[nodiscard]] std::string encode_replay_request(const ReplayRequest& request);
/// Decodes request params. Strict and bounded; throws DecodeError.
[[nodiscard]] ReplayRequest decode_replay_request(std::string_view params);

/// Returns the msgpack result of a reply: [readings, first_available, newest, lost], and
/// skipped as a 5th element when there is one. Throws
/// std::invalid_argument when the reply is inconsistent (see check_replay_reply).
[[nodiscard]] std::string encode_replay_reply(const ReplayReply& reply);
/// As encode_replay_reply(ReplayReply), with the readings payload put in as it is: the same
/// bytes as encoding the decoded readings. Throws std::invalid_argument when the reply is
/// inconsistent (a payload that does not match count, or fields as above).
[[nodiscard]] std::string encode_replay_reply(const ReplayPayloadReply& reply);
/// Decodes a reply result of 4 or more elements (a 5th, `skipped`, is read when present; later
/// ones are ignored). Bounded; throws DecodeError for anything structurally wrong. Readings that
/// fail validation on their own are not an error: they land in ReplayReply::invalid, the valid
/// ones in ReplayReply::readings (decode_batch(payload, out, invalid)).
[[nodiscard]] ReplayReply decode_replay_reply(std::string_view result);

/// Returns why `reply` is not a valid answer to `request` (readings, valid or invalid, of another
/// sensor, below from_seq, not increasing, more than max_readings, a skipped range that is empty
/// or holds a reading, a lost range that does not match
/// first_available, first_available > newest + 1, ...), or nothing when it is valid.
[[nodiscard]] std::optional<std::string> replay_reply_problem(const ReplayRequest& request,
                                                              const ReplayReply& reply);

/// Returns why `reply` is not a valid answer to `request`, as the overload above, from the
/// payload's envelope (sensor, count) and first_seq, last_seq and count; the readings
/// themselves are not decoded.
[[nodiscard]] std::optional<std::string> replay_reply_problem(const ReplayRequest& request,
                                                              const ReplayPayloadReply& reply);

/// Answers replay requests on a background thread (an RpcServer with one method).
///
/// The callback runs on the server thread, one request at a time; it receives a validated
/// request and returns the reply; the server fills in `lost` from first_available (the callback
/// may leave it empty). A Callback's readings that would make a payload larger than
/// limits::max_payload_bytes are cut at the last reading that fits (and `skipped` is then
/// left out): the caller asks again from the next seq. Invalid requests are answered with an error
/// without calling it; an exception from it, or a reply that fails replay_reply_problem, becomes an
/// error response. Lifetime and threading as RpcServer: serving starts in the constructor and stops
/// in stop() or the destructor, after which the callback is never called again.
class ReplayServer {
  public:
    /// Answers one request; see the class comment.
    using Callback = std::function<ReplayReply(const ReplayRequest&)>;

    /// Answers one request with readings already encoded (see ReplayPayloadReply); checked
    /// with replay_reply_problem(const ReplayRequest&, const ReplayPayloadReply&).
    using PayloadCallback = std::function<ReplayPayloadReply(const ReplayRequest&)>;

    /// Binds `endpoints` (entries without a prefix bind) and starts serving. Throws
    /// std::runtime_error naming an endpoint that cannot be bound.
    ReplayServer(zmq::context_t& ctx, std::string_view endpoints, Callback callback,
                 const SocketOptions& options = {});
    /// As above, with a callback that answers with an encoded readings payload, sent as it is.
    ReplayServer(zmq::context_t& ctx, std::string_view endpoints, PayloadCallback callback,
                 const SocketOptions& options = {});
    ReplayServer(const ReplayServer&) = delete;
    ReplayServer& operator=(const ReplayServer&) = delete;
    ~ReplayServer() = default;

    /// Stops serving and joins the thread; idempotent.
    void stop() noexcept { server_.stop(); }
    /// The last address bound, resolved ("tcp://127.0.0.1:41234").
    [[nodiscard]] std::string last_endpoint() const { return server_.last_endpoint(); }
    /// Every address bound, resolved.
    [[nodiscard]] const std::vector<std::string>& bound() const noexcept { return server_.bound(); }
    /// The server's counters; callable from any thread.
    [[nodiscard]] RpcStats stats() const noexcept { return server_.stats(); }

  private:
    // Registers the method: decodes requests, refuses invalid ones, answers the others with
    // `answer` (the encoded result) and starts serving.
    void serve(std::function<std::string(const ReplayRequest&)> answer);
    RpcServer server_;
};

/// How ReplayClient::fetch asks.
struct ReplayFetchOptions {
    std::uint32_t chunk = 1000;  ///< readings per request, 1 to limits::max_batch_readings
    CallOptions call{std::chrono::milliseconds{2000}, 2};  ///< per request: timeout, retries
};

/// What a fetch of [from, to] got.
struct ReplayResult {
    /// Readings in increasing seq order, all within [from, to], without duplicates.
    std::vector<Reading> readings;
    /// Ranges within [from, to] the publisher no longer has (from lost ranges and from holes in
    /// its answers), merged and in order.
    std::vector<SeqRange> lost;
    /// Readings within [from, to] the publisher holds but that fail validation: never
    /// delivered, for the caller to count as lost (they will never become valid).
    std::vector<InvalidReading> invalid;
    /// Ranges within [from, to] the publisher says it skipped: seqs it reserved before a crash
    /// and never durably wrote (proto/replay_v1.md), for the caller to count as skipped.
    std::vector<SeqRange> skipped;
    /// The newest seq the publisher reported; readings above it do not exist yet and are
    /// neither returned nor counted as lost.
    std::uint64_t newest = 0;
    /// The number of requests sent.
    std::size_t requests = 0;
};

/// Fetches ranges of readings from a ReplayServer. Not thread-safe (one thread uses it).
class ReplayClient {
  public:
    /// Connects to `endpoints` (entries without a prefix connect); never waits for the server.
    ReplayClient(zmq::context_t& ctx, std::string_view endpoints,
                 const SocketOptions& options = {});

    /// One request. Returns the validated reply. Throws RpcTimeout, RpcError (the server refused
    /// or failed), DecodeError (the reply is not a valid answer to `request`),
    /// std::invalid_argument (a bad request).
    [[nodiscard]] ReplayReply request(const ReplayRequest& request,
                                      const CallOptions& options = {});

    /// Fetches sensor `sensor`'s readings [from, to] (to >= from >= 1) in chunks of
    /// options.chunk, stopping early when the publisher has nothing newer. Invalid readings in
    /// the answers go to ReplayResult::invalid and skipped ranges (clipped to [from, to]) to
    /// ReplayResult::skipped; neither is counted in ReplayResult::lost. Blocks for up to the
    /// sum of the requests' timeouts. Throws as request(); readings fetched before a failure are
    /// lost to the caller, who retries from its own position.
    [[nodiscard]] ReplayResult fetch(std::string_view sensor, std::uint64_t from, std::uint64_t to,
                                     const ReplayFetchOptions& options = {});

    /// The client's counters (requests resent, stale responses).
    [[nodiscard]] RpcStats stats() const noexcept { return client_.stats(); }

  private:
    RpcClient client_;
};

}  // namespace rill
