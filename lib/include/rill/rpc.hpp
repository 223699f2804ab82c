// rill/rpc.hpp: request/reply with the msgpack-RPC message shape over DEALER/ROUTER
// (proto/rpc_v1.md).
//
// A request is the msgpack array [0, msgid, method, params] and a response is
// [1, msgid, error, result]. Params and results travel as msgpack-encoded bytes (std::string)
// so that this header stays free of msgpack-c; typed layers such as rill/replay.hpp encode and
// decode them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "rill/codec.hpp"
#include "rill/socket.hpp"

namespace rill {

/// Bounds of the RPC envelope; part of the wire contract (proto/rpc_v1.md).
namespace rpc_limits {
/// A whole request or response, as one ZeroMQ frame; larger frames are refused by the socket.
inline constexpr std::size_t max_message_bytes = limits::max_payload_bytes + 64 * 1024;
/// Bytes of a method name.
inline constexpr std::size_t max_method_bytes = 64;
/// Bytes of an error message.
inline constexpr std::size_t max_error_bytes = 4096;
/// Parser bounds for params and results: nesting depth, elements per array, pairs per map.
inline constexpr std::size_t max_depth = 8;
/// Elements of one array in params or results.
inline constexpr std::size_t max_array_elements = 16 * 1024;
/// Pairs of one map in params or results.
inline constexpr std::size_t max_map_pairs = 4096;
}  // namespace rpc_limits

/// A request: [0, msgid, method, params].
struct RpcRequest {
    /// Chosen by the client; the response carries it back.
    std::uint32_t msgid = 0;
    std::string method;  ///< 1 to 64 bytes of clean UTF-8
    /// One msgpack-encoded array (the positional arguments). Empty means `[]`.
    std::string params;
    /// Member-wise equality.
    bool operator==(const RpcRequest&) const = default;
};

/// A response: [1, msgid, error, result]. Exactly one of error and result is meaningful.
struct RpcResponse {
    /// The msgid of the request this answers.
    std::uint32_t msgid = 0;
    /// The remote error message; nothing when the call succeeded. Sent as a msgpack str.
    std::optional<std::string> error;
    /// One msgpack-encoded object; empty means nil. Always nil on the wire when error is set.
    std::string result;
    /// Member-wise equality.
    bool operator==(const RpcResponse&) const = default;
};

using RpcMessage = std::variant<RpcRequest, RpcResponse>;

/// Returns the wire bytes of a request. Throws std::invalid_argument when the method name is
/// not 1 to 64 bytes of clean UTF-8 or params is not exactly one msgpack array.
[[nodiscard]] std::string encode_rpc_request(const RpcRequest& request);

/// Returns the wire bytes of a response. Throws std::invalid_argument when the error message is
/// over rpc_limits::max_error_bytes or the result is not exactly one msgpack object.
[[nodiscard]] std::string encode_rpc_response(const RpcResponse& response);

/// Decodes one request or response. Strict and bounded: throws DecodeError (never crashes, never
/// allocates more than a small multiple of the input) for anything that is not a valid message:
/// wrong shape or types, msgid over 32 bits, a bad method name, params that are not an array,
/// an error that is neither nil nor str, trailing bytes, sizes over rpc_limits.
[[nodiscard]] RpcMessage decode_rpc_message(std::string_view bytes);

/// msgpack helpers for simple params and results without including msgpack-c.
namespace rpc_pack {
/// `[]`, `nil`, a str, an unsigned integer, and an array of strs.
[[nodiscard]] std::string empty_array();
/// `nil`.
[[nodiscard]] std::string nil();
/// A str holding `s`.
[[nodiscard]] std::string str(std::string_view s);
/// A non-negative integer.
[[nodiscard]] std::string uint(std::uint64_t v);
/// An array of strs.
[[nodiscard]] std::string str_array(const std::vector<std::string>& items);
/// Decode the same shapes; throw DecodeError when `bytes` is anything else.
[[nodiscard]] std::string to_str(std::string_view bytes);
/// The unsigned integer in `bytes`.
[[nodiscard]] std::uint64_t to_uint(std::string_view bytes);
/// The array of strs in `bytes`.
[[nodiscard]] std::vector<std::string> to_str_array(std::string_view bytes);
}  // namespace rpc_pack

/// The server answered with an error (unknown method, a handler's exception, a bad request).
/// Handlers may also throw it to choose the message sent back.
class RpcError : public std::runtime_error {
  public:
    /// An error response from `method` with the server's message.
    RpcError(std::string method, std::string remote_message)
        : std::runtime_error("rpc " + method + ": remote error: " + remote_message),
          method_(std::move(method)),
          remote_message_(std::move(remote_message)) {}
    /// The method that was called.
    [[nodiscard]] const std::string& method() const noexcept { return method_; }
    /// The error text exactly as the server sent it.
    [[nodiscard]] const std::string& remote_message() const noexcept { return remote_message_; }

  private:
    std::string method_;
    std::string remote_message_;
};

/// No response arrived within the timeout of the last attempt.
class RpcTimeout : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Counters of a server or client; each only grows.
struct RpcStats {
    std::uint64_t requests = 0;   ///< server: valid requests answered
    std::uint64_t errors = 0;     ///< server: requests answered with an error
    std::uint64_t malformed = 0;  ///< frames dropped because they were not a valid message
    std::uint64_t stale = 0;      ///< client: responses to no pending call (late or duplicate)
    std::uint64_t resent = 0;     ///< client: retries sent
};

/// Handles one request: receives the msgpack-encoded params array and returns the
/// msgpack-encoded result (empty means nil). Exceptions become an error response carrying
/// what() (RpcError: its remote_message()).
using RpcHandler = std::function<std::string(std::string_view params)>;

/// A ROUTER that answers msgpack-RPC requests on a background thread.
///
/// Threading: the constructor creates and binds the socket; handle() registers handlers and must
/// be called before start(); start() launches one server thread that owns the socket until
/// stop(). Handlers run on that thread, one request at a time, in arrival order across all
/// clients; a slow handler delays the others (keep them short or hand work off). stop() (and the
/// destructor) wakes the thread, waits for the request in progress to finish and joins; no
/// handler runs after stop() returns. Many clients may connect at once; each response goes back
/// to the client that sent the request. Malformed frames are dropped, counted and logged (rate
/// limited); a request whose msgid can be read but whose method or params are bad gets an error
/// response. The thread never exits on bad input.
class RpcServer {
  public:
    /// Creates a ROUTER on `ctx` with `options` and attaches `endpoints` (entries without a prefix
    /// bind). Throws std::runtime_error naming an endpoint that cannot be bound.
    RpcServer(zmq::context_t& ctx, std::string_view endpoints, const SocketOptions& options = {});
    ~RpcServer();
    RpcServer(const RpcServer&) = delete;
    RpcServer& operator=(const RpcServer&) = delete;

    /// Registers `handler` for `method`, replacing an earlier one. Throws std::logic_error after
    /// start(), std::invalid_argument for a method name the wire cannot carry.
    void handle(std::string method, RpcHandler handler);
    /// Starts the server thread. Throws std::logic_error when already started.
    void start();
    /// Stops and joins the server thread; idempotent; does not throw.
    void stop() noexcept;

    /// Every address bound, resolved ("tcp://127.0.0.1:41234").
    [[nodiscard]] const std::vector<std::string>& bound() const noexcept;
    /// The last bound address, resolved.
    [[nodiscard]] std::string last_endpoint() const;
    /// A snapshot of the counters; callable from any thread.
    [[nodiscard]] RpcStats stats() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// How long to wait for a response and how often to resend.
struct CallOptions {
    /// How long each attempt waits for its response.
    std::chrono::milliseconds timeout{1000};
    /// Extra attempts after the first; each resends the same request with the same msgid, so the
    /// first response to any attempt completes the call and later duplicates are discarded.
    /// Only retry idempotent methods: the server may run the request once per attempt.
    int retries = 0;
};

/// A DEALER that calls msgpack-RPC methods, with several calls in flight at once.
///
/// Not thread-safe: one thread at a time uses a client (use one client per thread). Responses
/// are matched to calls by msgid; responses to calls that already completed or gave up are
/// discarded and counted as stale.
class RpcClient {
  public:
    /// Identifies a call sent by send(), for wait() and cancel().
    using CallId = std::uint32_t;

    /// Creates a DEALER on `ctx` with `options` and attaches `endpoints` (entries without a
    /// prefix connect). Connecting never waits for the server. Throws std::runtime_error naming a
    /// bad endpoint.
    RpcClient(zmq::context_t& ctx, std::string_view endpoints, const SocketOptions& options = {});
    ~RpcClient();
    /// Takes over the socket and the pending calls; `other` may only be destroyed or assigned.
    RpcClient(RpcClient&& other) noexcept;
    /// Takes over the socket and the pending calls; `other` may only be destroyed or assigned.
    RpcClient& operator=(RpcClient&& other) noexcept;

    /// Sends a request without waiting and returns its id, which wait() takes. `params` is one
    /// msgpack array (empty means `[]`). Throws std::invalid_argument for a bad method or params.
    /// When the socket cannot take the message (no peer yet and the queue is full) the attempt
    /// counts as sent and is retried at its deadline.
    [[nodiscard]] CallId send(std::string_view method, std::string params,
                              const CallOptions& options = {});

    /// Blocks until call `id` completes and returns its result (msgpack bytes; nil is "\xc0").
    /// While waiting, it receives responses to every pending call and resends any pending call
    /// whose attempt timed out and has retries left. Throws RpcError for an error response,
    /// RpcTimeout when the last attempt timed out, std::invalid_argument for an unknown id.
    /// The call is forgotten once wait() returns or throws.
    [[nodiscard]] std::string wait(CallId id);

    /// send() then wait().
    [[nodiscard]] std::string call(std::string_view method, std::string params = {},
                                   const CallOptions& options = {});

    /// Forgets a pending call; its response, if any arrives, is discarded. No-op for unknown ids.
    void cancel(CallId id) noexcept;
    /// Calls sent and not yet waited for.
    [[nodiscard]] std::size_t pending() const noexcept;
    /// The client's counters.
    [[nodiscard]] RpcStats stats() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
