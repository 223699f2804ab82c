#include "rill/rpc.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>

#include <zmq_addon.hpp>

#include "codec/msgpack_cursor.hpp"
#include "codec/msgpack_write.hpp"
#include "core/actor.hpp"
#include "rill/log.hpp"
#include "rpc/parse_limits.hpp"

namespace rill {

namespace {

using detail::Cursor;
using detail::fail;
using detail::Packer;
using detail::StringSink;
using detail::Type;

constexpr std::uint64_t type_request = 0;
constexpr std::uint64_t type_response = 1;
constexpr std::string_view nil_bytes{"\xc0", 1};
constexpr std::string_view empty_array_bytes{"\x90", 1};

std::optional<std::string> method_problem(std::string_view method) {
    if (method.empty()) return "method name is empty";
    if (method.size() > rpc_limits::max_method_bytes) {
        return "method name is " + std::to_string(method.size()) + " bytes, more than " +
               std::to_string(rpc_limits::max_method_bytes);
    }
    if (!is_clean_utf8(method)) return "method name is not clean UTF-8";
    return std::nullopt;
}

// Checks that `bytes` is exactly one msgpack object (an array when `want_array`).
void check_object(std::string_view bytes, bool want_array, const char* what) {
    try {
        Cursor c(bytes, detail::rpc_parse_limits, what);
        const auto v = c.whole(rpc_limits::max_message_bytes);
        if (want_array && v.type != Type::array) {
            throw std::invalid_argument(std::string(what) + " is a " + detail::type_name(v.type) +
                                        ", expected an array");
        }
    } catch (const DecodeError& e) {
        throw std::invalid_argument(std::string("cannot encode RPC message: ") + e.what());
    }
}

// Reads the header of the outer array; returns the offset of its first element and sets
// `count` to its element count.
std::size_t read_array_header(std::string_view b, std::uint64_t& count) {
    if (b.empty()) fail(DecodeErrc::malformed, "RPC message is empty");
    const auto c = static_cast<unsigned char>(b[0]);
    std::size_t header = 1;
    if ((c & 0xf0u) == 0x90u) {
        count = c & 0x0fu;
    } else if (c == 0xdc && b.size() >= 3) {
        count = (std::uint64_t{static_cast<unsigned char>(b[1])} << 8) |
                static_cast<unsigned char>(b[2]);
        header = 3;
    } else if (c == 0xdd && b.size() >= 5) {
        for (std::size_t i = 1; i < 5; ++i)
            count = (count << 8) | static_cast<unsigned char>(b[i]);
        header = 5;
    } else if (c == 0xdc || c == 0xdd) {
        fail(DecodeErrc::malformed, "RPC message is truncated");
    } else {
        fail(DecodeErrc::wrong_type, "RPC message is not an array");
    }
    return header;
}

// Reads the header of the outer 4-element array; returns the offset of its first element.
std::size_t read_envelope_header(std::string_view b) {
    std::uint64_t count = 0;
    const auto header = read_array_header(b, count);
    if (count != 4) {
        fail(DecodeErrc::malformed,
             "RPC message has " + std::to_string(count) + " elements, expected 4");
    }
    return header;
}

// Cuts `s` to at most max_error_bytes without splitting a UTF-8 sequence.
void truncate_error(std::string& s) {
    if (s.size() <= rpc_limits::max_error_bytes) return;
    std::size_t n = rpc_limits::max_error_bytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0u) == 0x80u)
        --n;
    s.resize(n);
}

// A cursor at the first element of the envelope `b`, after its 4-element array header.
Cursor envelope_elements(std::string_view b) {
    return Cursor(b.substr(read_envelope_header(b)), detail::rpc_parse_limits, "RPC message");
}

// The msgid of `b` when it starts like a request: an array of at least 2 elements whose first
// is the integer 0 and whose second an integer in [0, 2^32 - 1], whatever follows (its element
// count, the types of method and params, truncation, trailing bytes).
std::optional<std::uint32_t> peek_request_msgid(std::string_view b) noexcept {
    try {
        std::uint64_t count = 0;
        const auto header = read_array_header(b, count);
        if (count < 2) return std::nullopt;
        Cursor c(b.substr(header), detail::rpc_parse_limits, "RPC message");
        if (detail::get_uint(c.next_whole("type"), "type") != type_request) return std::nullopt;
        const auto id = detail::get_uint(c.next_whole("msgid"), "msgid");
        if (id > 0xffffffffu) return std::nullopt;
        return static_cast<std::uint32_t>(id);
    } catch (...) {
        return std::nullopt;
    }
}

// The bytes from `start` to the cursor's position.
std::string_view consumed(const char* start, const Cursor& c) noexcept {
    return {start, static_cast<std::size_t>(c.position() - start)};
}

void expect_end(const Cursor& c) {
    if (c.remaining() != 0) {
        fail(DecodeErrc::trailing_bytes,
             std::to_string(c.remaining()) + " bytes follow the RPC message");
    }
}

}  // namespace

// -------------------------------------------------------------------------------------------
// The envelope

std::string encode_rpc_request(const RpcRequest& request) {
    if (auto p = method_problem(request.method)) {
        throw std::invalid_argument("cannot encode RPC request: " + *p);
    }
    if (!request.params.empty()) check_object(request.params, true, "params");
    std::string out;
    out.reserve(16 + request.method.size() + request.params.size());
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(4);
    pk.pack_uint8(0);
    pk.pack_uint32(request.msgid);
    detail::pack_str(pk, request.method);
    out.append(request.params.empty() ? empty_array_bytes : std::string_view(request.params));
    return out;
}

std::string encode_rpc_response(const RpcResponse& response) {
    if (response.error && response.error->size() > rpc_limits::max_error_bytes) {
        throw std::invalid_argument("cannot encode RPC response: error message is " +
                                    std::to_string(response.error->size()) + " bytes, more than " +
                                    std::to_string(rpc_limits::max_error_bytes));
    }
    if (!response.error && !response.result.empty()) {
        check_object(response.result, false, "result");
    }
    std::string out;
    out.reserve(16 + response.result.size());
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(4);
    pk.pack_uint8(1);
    pk.pack_uint32(response.msgid);
    if (response.error) {
        detail::pack_str(pk, *response.error);
        pk.pack_nil();
    } else {
        pk.pack_nil();
        out.append(response.result.empty() ? nil_bytes : std::string_view(response.result));
    }
    return out;
}

RpcMessage decode_rpc_message(std::string_view b) {
    if (b.size() > rpc_limits::max_message_bytes) {
        fail(DecodeErrc::too_large, "RPC message is " + std::to_string(b.size()) +
                                        " bytes, more than " +
                                        std::to_string(rpc_limits::max_message_bytes));
    }
    auto c = envelope_elements(b);
    const auto type = detail::get_uint(c.next_whole("message type"), "message type");
    if (type != type_request && type != type_response) {
        fail(DecodeErrc::unknown_kind,
             "message type " + std::to_string(type) + " is not a request (0) or response (1)");
    }
    const auto msgid = detail::get_uint(c.next_whole("msgid"), "msgid");
    if (msgid > 0xffffffffu) {
        fail(DecodeErrc::invalid_value, "msgid " + std::to_string(msgid) + " is over 32 bits");
    }
    if (type == type_request) {
        RpcRequest req;
        req.msgid = static_cast<std::uint32_t>(msgid);
        const auto name =
            detail::get_str(c.next_whole("method"), "method", rpc_limits::max_method_bytes);
        if (auto p = method_problem(name)) fail(DecodeErrc::invalid_value, *p);
        req.method.assign(name);
        const char* const start = c.position();
        detail::expect_type(c.next_whole("params"), Type::array, "params");
        expect_end(c);
        req.params.assign(consumed(start, c));
        return req;
    }
    RpcResponse resp;
    resp.msgid = static_cast<std::uint32_t>(msgid);
    if (const auto e = c.next_whole("error"); e.type != Type::nil) {
        resp.error.emplace(detail::get_str(e, "error", rpc_limits::max_error_bytes));
    }
    const char* const start = c.position();
    const auto r = c.next_whole("result");
    expect_end(c);
    if (resp.error && r.type != Type::nil) {
        fail(DecodeErrc::invalid_value, "an error response carries a non-nil result");
    }
    if (!resp.error) resp.result.assign(consumed(start, c));
    return resp;
}

// -------------------------------------------------------------------------------------------
// rpc_pack

namespace rpc_pack {

std::string empty_array() {
    return std::string(empty_array_bytes);
}
std::string nil() {
    return std::string(nil_bytes);
}

std::string str(std::string_view s) {
    std::string out;
    StringSink sink{out};
    Packer pk(sink);
    detail::pack_str(pk, s);
    return out;
}

std::string uint(std::uint64_t v) {
    std::string out;
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_uint64(v);
    return out;
}

std::string str_array(const std::vector<std::string>& items) {
    std::string out;
    StringSink sink{out};
    Packer pk(sink);
    pk.pack_array(static_cast<std::uint32_t>(items.size()));
    for (const auto& s : items)
        detail::pack_str(pk, s);
    return out;
}

std::string to_str(std::string_view bytes) {
    Cursor c(bytes, detail::rpc_parse_limits, "value");
    return std::string(detail::get_str(c.whole(rpc_limits::max_message_bytes), "value",
                                       rpc_limits::max_message_bytes));
}

std::uint64_t to_uint(std::string_view bytes) {
    Cursor c(bytes, detail::rpc_parse_limits, "value");
    return detail::get_uint(c.whole(rpc_limits::max_message_bytes), "value");
}

std::vector<std::string> to_str_array(std::string_view bytes) {
    Cursor c(bytes, detail::rpc_parse_limits, "value");
    const auto a = c.whole(rpc_limits::max_message_bytes);
    detail::expect_type(a, Type::array, "value");
    std::vector<std::string> out;
    out.reserve(a.size);
    for (std::uint32_t i = 0; i < a.size; ++i) {
        out.emplace_back(detail::get_str(c.next(2), "element", rpc_limits::max_message_bytes));
    }
    return out;
}

}  // namespace rpc_pack

// -------------------------------------------------------------------------------------------
// RpcServer

struct RpcServer::Impl {
    Impl(zmq::context_t& ctx, const SocketOptions& options)
        : socket(ctx, zmq::socket_type::router, options) {}

    void run(detail::Actor::Context& thread) noexcept;
    void serve_frames(std::vector<zmq::message_t>& frames);
    [[nodiscard]] std::string dispatch(const RpcRequest& request);
    void count_malformed(std::string_view why) noexcept;

    Socket socket;  // the server thread's between start() and stop()
    std::string last_endpoint;
    std::map<std::string, RpcHandler, std::less<>> handlers;
    detail::Actor actor;
    bool started = false;
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> malformed{0};
    // The server thread's: at most one line per 10 s, the rest counted and reported.
    RateLimitedLog malformed_log{"rpc", "malformed requests"};
};

RpcServer::RpcServer(zmq::context_t& ctx, std::string_view endpoints, const SocketOptions& options)
    : impl_(std::make_unique<Impl>(ctx, options)) {
    auto& socket = impl_->socket;
    socket.raw().set(zmq::sockopt::maxmsgsize,
                     static_cast<std::int64_t>(rpc_limits::max_message_bytes));
    socket.attach(endpoints, Attach::bind);
    impl_->last_endpoint = socket.last_endpoint();
}

RpcServer::~RpcServer() {
    stop();
}

void RpcServer::handle(std::string method, RpcHandler handler) {
    if (impl_->started) throw std::logic_error("RpcServer::handle called after start()");
    if (auto p = method_problem(method)) {
        throw std::invalid_argument("cannot register RPC method: " + *p);
    }
    impl_->handlers.insert_or_assign(std::move(method), std::move(handler));
}

void RpcServer::start() {
    if (impl_->started) throw std::logic_error("RpcServer::start called twice");
    impl_->started = true;
    impl_->actor.start("rpc", [impl = impl_.get()](detail::Actor::Context& thread) {
        thread.ready();
        impl->run(thread);
    });
}

void RpcServer::stop() noexcept {
    if (!impl_->actor.running()) return;
    impl_->actor.stop();
    impl_->socket.close();
}

const std::vector<std::string>& RpcServer::bound() const noexcept {
    return impl_->socket.bound();
}

std::string RpcServer::last_endpoint() const {
    return impl_->last_endpoint;
}

RpcStats RpcServer::stats() const noexcept {
    RpcStats s;
    s.requests = impl_->requests.load();
    s.errors = impl_->errors.load();
    s.malformed = impl_->malformed.load();
    return s;
}

void RpcServer::Impl::count_malformed(std::string_view why) noexcept {
    const auto n = ++malformed;
    // A flood cannot flood the log; what is held back is reported (run() flushes).
    try {
        malformed_log.log("dropped a malformed request (" + std::to_string(n) +
                          " so far): " + std::string(why));
    } catch (...) {
    }
}

void RpcServer::Impl::run(detail::Actor::Context& thread) noexcept {
    std::vector<zmq::message_t> frames;
    for (;;) {
        try {
            // Wakes up to report malformed requests held back once their window has passed.
            const auto now = RateLimitedLog::Clock::now();
            malformed_log.flush(now);
            const auto due = malformed_log.flush_due();
            const auto timeout =
                due == RateLimitedLog::Clock::time_point::max()
                    ? std::chrono::milliseconds{-1}
                    : std::max(std::chrono::milliseconds{0},
                               std::chrono::ceil<std::chrono::milliseconds>(due - now));
            const auto wake = thread.wait_for(socket.raw(), timeout);
            if (wake == detail::Actor::Context::Wake::stop) return;
            if (wake == detail::Actor::Context::Wake::timeout) continue;
        } catch (const zmq::error_t& e) {
            log_error("rpc", std::string("server poll failed, stopping: ") + e.what());
            return;
        }
        // Serve a bounded number of requests before looking at the stop request again.
        for (int i = 0; i < 256; ++i) {
            frames.clear();
            try {
                if (!zmq::recv_multipart(socket.raw(), std::back_inserter(frames),
                                         zmq::recv_flags::dontwait)) {
                    break;
                }
                serve_frames(frames);
            } catch (const zmq::error_t& e) {
                if (e.num() == EINTR) continue;
                log_error("rpc", std::string("server receive failed: ") + e.what());
                break;
            } catch (const std::exception& e) {
                count_malformed(e.what());
            }
        }
    }
}

void RpcServer::Impl::serve_frames(std::vector<zmq::message_t>& frames) {
    // [identity, body] from a DEALER, [identity, "", body] from a REQ.
    const bool delimited = frames.size() == 3 && frames[1].size() == 0;
    if (frames.size() != 2 && !delimited) {
        count_malformed("expected 1 body frame, got " + std::to_string(frames.size() - 1));
        return;
    }
    const auto& body = frames.back();
    RpcRequest request;
    std::string reply;
    try {
        auto msg = decode_rpc_message(body.to_string_view());
        auto* req = std::get_if<RpcRequest>(&msg);
        if (!req) {
            count_malformed("a response was sent to the server");
            return;
        }
        request = std::move(*req);
    } catch (const DecodeError& e) {
        count_malformed(e.what());
        // Tell the caller why when it can be told: the request's msgid is readable.
        const auto msgid = peek_request_msgid(body.to_string_view());
        if (!msgid) return;
        ++errors;
        RpcResponse resp;
        resp.msgid = *msgid;
        resp.error = std::string("invalid request: ") + e.what();
        truncate_error(*resp.error);
        reply = encode_rpc_response(resp);
    }
    if (reply.empty()) {
        ++requests;
        reply = dispatch(request);
    }
    frames.back().rebuild(reply.data(), reply.size());
    const auto n = frames.size();
    for (std::size_t i = 0; i < n; ++i) {
        (void)socket.raw().send(frames[i],
                                i + 1 < n ? zmq::send_flags::sndmore : zmq::send_flags::dontwait);
    }
}

std::string RpcServer::Impl::dispatch(const RpcRequest& request) {
    RpcResponse resp;
    resp.msgid = request.msgid;
    const auto it = handlers.find(request.method);
    if (it == handlers.end()) {
        resp.error = "unknown method '" + request.method + "'";
    } else {
        try {
            resp.result = it->second(request.params);
            if (!resp.result.empty()) check_object(resp.result, false, "result");
        } catch (const RpcError& e) {
            resp.error = e.remote_message();
        } catch (const std::exception& e) {
            resp.error = e.what();
        } catch (...) {
            resp.error = "internal error";
        }
    }
    if (resp.error) {
        ++errors;
        truncate_error(*resp.error);
        resp.result.clear();
        log_debug("rpc", "request " + request.method + " failed: " + *resp.error);
    }
    return encode_rpc_response(resp);
}

// -------------------------------------------------------------------------------------------
// RpcClient

struct RpcClient::Impl {
    enum class State { waiting, answered, timed_out };
    struct Pending {
        std::string method;
        std::string wire;  // the encoded request, kept for retries
        CallOptions options;
        std::chrono::steady_clock::time_point deadline;
        int attempts_left = 0;
        State state = State::waiting;
        RpcResponse response;
    };

    Impl(zmq::context_t& ctx, std::string_view attach, const SocketOptions& options)
        : socket(ctx, zmq::socket_type::dealer, options), endpoints(attach) {
        socket.raw().set(zmq::sockopt::maxmsgsize,
                         static_cast<std::int64_t>(rpc_limits::max_message_bytes));
        socket.attach(attach, Attach::connect);
    }

    [[nodiscard]] CallId send(std::string_view method, std::string params,
                              const CallOptions& options);
    [[nodiscard]] std::string wait(CallId id);
    void transmit(Pending& call);
    void receive_until(std::chrono::steady_clock::time_point until);
    std::size_t drain();  // receives every queued response; returns how many
    void expire(std::chrono::steady_clock::time_point now);

    Socket socket;
    std::string endpoints;
    std::uint32_t next_msgid = 1;
    std::map<CallId, Pending> pending;
    RpcStats stats;
};

void RpcClient::Impl::transmit(Pending& call) {
    zmq::message_t msg(call.wire.data(), call.wire.size());
    (void)socket.raw().send(msg, zmq::send_flags::dontwait);
    call.deadline = std::chrono::steady_clock::now() + call.options.timeout;
}

RpcClient::CallId RpcClient::Impl::send(std::string_view method, std::string params,
                                        const CallOptions& options) {
    if (options.retries < 0) throw std::invalid_argument("CallOptions::retries is negative");
    // Skip ids still pending after a wrap-around.
    while (next_msgid == 0 || pending.count(next_msgid))
        ++next_msgid;
    const CallId id = next_msgid++;
    Pending call;
    call.method.assign(method);
    call.wire = encode_rpc_request(RpcRequest{id, std::string(method), std::move(params)});
    call.options = options;
    call.attempts_left = options.retries;
    auto& stored = pending.emplace(id, std::move(call)).first->second;
    transmit(stored);
    return id;
}

void RpcClient::Impl::expire(std::chrono::steady_clock::time_point now) {
    for (auto& [id, call] : pending) {
        if (call.state != State::waiting || call.deadline > now) continue;
        if (call.attempts_left > 0) {
            --call.attempts_left;
            ++stats.resent;
            transmit(call);
        } else {
            call.state = State::timed_out;
        }
    }
}

void RpcClient::Impl::receive_until(std::chrono::steady_clock::time_point until) {
    // Responses often arrive while the caller is busy: take those without a poll.
    if (drain() > 0) return;
    const auto now = std::chrono::steady_clock::now();
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(
        std::max(until - now, std::chrono::steady_clock::duration::zero()));
    std::array<zmq::pollitem_t, 1> items{{{socket.raw().handle(), 0, ZMQ_POLLIN, 0}}};
    try {
        zmq::poll(items.data(), items.size(), wait);
    } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) return;
        throw;
    }
    if (items[0].revents & ZMQ_POLLIN) (void)drain();
}

std::size_t RpcClient::Impl::drain() {
    std::size_t received = 0;
    std::vector<zmq::message_t> frames;
    for (;;) {
        frames.clear();
        if (!zmq::recv_multipart(socket.raw(), std::back_inserter(frames),
                                 zmq::recv_flags::dontwait)) {
            return received;
        }
        ++received;
        // A REP-style peer may prefix an empty delimiter.
        if (frames.size() == 2 && frames[0].size() == 0) frames.erase(frames.begin());
        if (frames.size() != 1) {
            ++stats.malformed;
            log_warn("rpc", "dropped a response of " + std::to_string(frames.size()) + " frames");
            continue;
        }
        RpcResponse resp;
        try {
            auto msg = decode_rpc_message(frames[0].to_string_view());
            auto* r = std::get_if<RpcResponse>(&msg);
            if (!r) {
                ++stats.malformed;
                log_warn("rpc", "dropped a request sent to a client");
                continue;
            }
            resp = std::move(*r);
        } catch (const DecodeError& e) {
            ++stats.malformed;
            log_warn("rpc", std::string("dropped a malformed response: ") + e.what());
            continue;
        }
        const auto it = pending.find(resp.msgid);
        if (it == pending.end() || it->second.state != State::waiting) {
            ++stats.stale;
            continue;
        }
        it->second.state = State::answered;
        it->second.response = std::move(resp);
    }
}

std::string RpcClient::Impl::wait(CallId id) {
    const auto it = pending.find(id);
    if (it == pending.end()) {
        throw std::invalid_argument("RpcClient::wait: no pending call " + std::to_string(id));
    }
    auto& call = it->second;
    for (;;) {
        expire(std::chrono::steady_clock::now());
        if (call.state == State::answered) {
            auto resp = std::move(call.response);
            auto method = std::move(call.method);
            pending.erase(it);
            if (resp.error) throw RpcError(std::move(method), std::move(*resp.error));
            return resp.result;
        }
        if (call.state == State::timed_out) {
            const auto attempts = call.options.retries + 1;
            const auto ms = call.options.timeout.count();
            auto method = std::move(call.method);
            pending.erase(it);
            throw RpcTimeout("rpc " + method + " to " + endpoints + ": no response after " +
                             std::to_string(attempts) + " attempt(s) of " + std::to_string(ms) +
                             " ms");
        }
        // Wake at the earliest deadline of any waiting call, so retries of other calls go out
        // on time too.
        auto until = call.deadline;
        for (const auto& [other_id, other] : pending) {
            if (other.state == State::waiting) until = std::min(until, other.deadline);
        }
        receive_until(until);
    }
}

RpcClient::RpcClient(zmq::context_t& ctx, std::string_view endpoints, const SocketOptions& options)
    : impl_(std::make_unique<Impl>(ctx, endpoints, options)) {}

RpcClient::~RpcClient() = default;
RpcClient::RpcClient(RpcClient&&) noexcept = default;
RpcClient& RpcClient::operator=(RpcClient&&) noexcept = default;

RpcClient::CallId RpcClient::send(std::string_view method, std::string params,
                                  const CallOptions& options) {
    return impl_->send(method, std::move(params), options);
}

std::string RpcClient::wait(CallId id) {
    return impl_->wait(id);
}

std::string RpcClient::call(std::string_view method, std::string params,
                            const CallOptions& options) {
    return wait(send(method, std::move(params), options));
}

void RpcClient::cancel(CallId id) noexcept {
    impl_->pending.erase(id);
}

std::size_t RpcClient::pending() const noexcept {
    return impl_->pending.size();
}

RpcStats RpcClient::stats() const noexcept {
    return impl_->stats;
}

}  // namespace rill
