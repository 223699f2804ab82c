#include "rill/rpc.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <thread>

#include <msgpack.hpp>
#include <zmq_addon.hpp>

#include "support/msgpack.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;

namespace {

using rill::test::pack;

// A server with "echo" (returns its params), "add" ([a, b] -> a + b) and "fail" (throws).
std::unique_ptr<rill::RpcServer> make_server(zmq::context_t& ctx, std::string_view endpoint,
                                             std::atomic<int>* echo_calls = nullptr) {
    auto server = std::make_unique<rill::RpcServer>(ctx, endpoint);
    server->handle("echo", [echo_calls](std::string_view params) {
        if (echo_calls) ++*echo_calls;
        return std::string(params);
    });
    server->handle("add", [](std::string_view params) {
        auto oh = msgpack::unpack(params.data(), params.size());
        auto [a, b] = oh.get().as<std::tuple<std::int64_t, std::int64_t>>();
        return pack(a + b);
    });
    server->handle("fail", [](std::string_view) -> std::string {
        throw std::runtime_error("the sensor is on fire");
    });
    server->start();
    return server;
}

}  // namespace

TEST_CASE("rpc messages round trip through encode and decode") {
    const rill::RpcRequest req{42, "replay.v1", pack(std::make_tuple("greenhouse-07", 17, 100))};
    const auto req_bytes = rill::encode_rpc_request(req);
    CHECK(static_cast<unsigned char>(req_bytes[0]) == 0x94);
    CHECK(std::get<rill::RpcRequest>(rill::decode_rpc_message(req_bytes)) == req);

    const rill::RpcRequest no_params{7, "ping", ""};
    auto decoded =
        std::get<rill::RpcRequest>(rill::decode_rpc_message(rill::encode_rpc_request(no_params)));
    CHECK(decoded.params == rill::rpc_pack::empty_array());

    const rill::RpcResponse ok{0xffffffffu, std::nullopt, pack(std::vector<int>{1, 2, 3})};
    CHECK(std::get<rill::RpcResponse>(rill::decode_rpc_message(rill::encode_rpc_response(ok))) ==
          ok);
    const rill::RpcResponse err{9, std::string("unknown method 'x'"), ""};
    CHECK(std::get<rill::RpcResponse>(rill::decode_rpc_message(rill::encode_rpc_response(err))) ==
          err);

    CHECK(rill::rpc_pack::to_str(rill::rpc_pack::str("héllo")) == "héllo");
    CHECK(rill::rpc_pack::to_uint(rill::rpc_pack::uint(1ull << 40)) == 1ull << 40);
    CHECK(rill::rpc_pack::to_str_array(rill::rpc_pack::str_array({"a", "b"})) ==
          std::vector<std::string>{"a", "b"});
}

TEST_CASE("rpc encoding refuses bad method names and params that are not an array") {
    CHECK_THROWS_AS((void)rill::encode_rpc_request({1, "", ""}), std::invalid_argument);
    CHECK_THROWS_AS((void)rill::encode_rpc_request({1, std::string(65, 'm'), ""}),
                    std::invalid_argument);
    CHECK_THROWS_AS((void)rill::encode_rpc_request({1, "m", pack(5)}), std::invalid_argument);
    CHECK_THROWS_AS((void)rill::encode_rpc_request({1, "m", pack(5) + pack(6)}),
                    std::invalid_argument);
    CHECK_THROWS_AS((void)rill::encode_rpc_response({1, std::nullopt, std::string("\x92\x01", 2)}),
                    std::invalid_argument);
}

TEST_CASE("decoding rejects malformed rpc messages with the right error") {
    using E = rill::DecodeErrc;
    const std::vector<std::pair<std::string, E>> cases{
        {"", E::malformed},
        {"\xc1", E::wrong_type},
        {pack(5), E::wrong_type},
        {pack(std::make_tuple(0, 1, "m")), E::malformed},
        {pack(std::make_tuple(0, 1, "m", std::vector<int>{}, 5)), E::malformed},
        {pack(std::make_tuple(2, 1, "m", std::vector<int>{})), E::unknown_kind},
        {pack(std::make_tuple(0, -1, "m", std::vector<int>{})), E::wrong_type},
        {pack(std::make_tuple(0, 1ull << 32, "m", std::vector<int>{})), E::invalid_value},
        {pack(std::make_tuple(0, 1, 5, std::vector<int>{})), E::wrong_type},
        {pack(std::make_tuple(0, 1, "", std::vector<int>{})), E::invalid_value},
        {pack(std::make_tuple(0, 1, std::string(65, 'm'), std::vector<int>{})), E::too_large},
        {pack(std::make_tuple(0, 1, "m\n", std::vector<int>{})), E::invalid_value},
        {pack(std::make_tuple(0, 1, "m", 5)), E::wrong_type},
        {pack(std::make_tuple(0, 1, "m", std::vector<int>{})) + "x", E::trailing_bytes},
        {pack(std::make_tuple(1, 1, 5, msgpack::type::nil_t{})), E::wrong_type},
        {pack(std::make_tuple(1, 1, "boom", 5)), E::invalid_value},
        // Truncated in the middle of params.
        {pack(std::make_tuple(0, 1, "m", std::vector<int>{1, 2, 300})).substr(0, 9), E::malformed},
        // An array header that claims 2^32-1 elements in a few bytes.
        {std::string("\x94\x00\x01\xa1m\xdd\xff\xff\xff\xff", 10), E::too_large},
        // Nested deeper than the limit.
        {std::string("\x94\x00\x01\xa1m", 5) + std::string(20, '\x91') + std::string(1, '\0'),
         E::too_large},
        {std::string(rill::rpc_limits::max_message_bytes + 1, '\x90'), E::too_large},
    };
    for (const auto& [bytes, code] : cases) {
        CAPTURE(bytes.size());
        try {
            (void)rill::decode_rpc_message(bytes);
            FAIL("decoded a malformed message");
        } catch (const rill::DecodeError& e) {
            CHECK(e.code() == code);
        }
    }
}

TEST_CASE("an rpc call round trips its params and result over tcp") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "@tcp://127.0.0.1:0");
    rill::RpcClient client(ctx, ">" + server->last_endpoint());
    const auto params = pack(std::make_tuple("greenhouse-07", 21.5, std::vector<int>{1, 2}));
    CHECK(client.call("echo", params, {5s, 0}) == params);
    CHECK(client.call("add", pack(std::make_tuple(40, 2)), {5s, 0}) == pack(42));
    CHECK(client.pending() == 0);
    CHECK(server->stats().requests == 2);
}

TEST_CASE("an unknown method is answered with an RpcError naming it") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    rill::RpcClient client(ctx, server->last_endpoint());
    try {
        (void)client.call("no.such.method", {}, {5s, 0});
        FAIL("the call succeeded");
    } catch (const rill::RpcError& e) {
        CHECK(e.method() == "no.such.method");
        CHECK(e.remote_message() == "unknown method 'no.such.method'");
    }
    CHECK(server->stats().errors == 1);
}

TEST_CASE("a handler exception becomes an error response and the server keeps serving") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    rill::RpcClient client(ctx, server->last_endpoint());
    try {
        (void)client.call("fail", {}, {5s, 0});
        FAIL("the call succeeded");
    } catch (const rill::RpcError& e) {
        CHECK(e.remote_message() == "the sensor is on fire");
    }
    // A handler that cannot decode its params fails the same way.
    CHECK_THROWS_AS((void)client.call("add", pack(std::make_tuple("x")), {5s, 0}), rill::RpcError);
    CHECK(client.call("add", pack(std::make_tuple(1, 2)), {5s, 0}) == pack(3));
}

TEST_CASE("a call times out after its retries when no server is there") {
    zmq::context_t ctx;
    rill::test::TempDir dir;
    rill::RpcClient client(ctx, "ipc://" + (dir.path() / "nobody").string());
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS((void)client.call("echo", {}, {100ms, 2}), rill::RpcTimeout);
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    CHECK(client.stats().resent == 2);
    CHECK(client.pending() == 0);
}

TEST_CASE("a retried call succeeds when the server starts late") {
    zmq::context_t ctx;
    rill::test::TempDir dir;
    const auto endpoint = "ipc://" + (dir.path() / "late").string();
    rill::RpcClient client(ctx, endpoint);
    std::atomic<int> echo_calls{0};
    std::unique_ptr<rill::RpcServer> server;
    std::thread starter([&] {
        std::this_thread::sleep_for(400ms);
        server = make_server(ctx, "@" + endpoint, &echo_calls);
    });
    const auto params = pack(std::make_tuple(7));
    std::string result;
    CHECK_NOTHROW(result = client.call("echo", params, {150ms, 60}));
    starter.join();
    CHECK(result == params);
    CHECK(client.stats().resent >= 1);  // the first attempt timed out before the server existed
    CHECK(echo_calls.load() >= 1);
    // Duplicates of the retried request are answered too; the client discards them as stale.
    CHECK(client.call("echo", pack(std::make_tuple(8)), {5s, 0}) == pack(std::make_tuple(8)));
}

TEST_CASE("eight calls in flight are matched to their own replies") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    rill::RpcClient client(ctx, server->last_endpoint());
    std::vector<rill::RpcClient::CallId> ids;
    for (int i = 0; i < 8; ++i) {
        ids.push_back(client.send("add", pack(std::make_tuple(i, 1000)), {5s, 0}));
    }
    CHECK(client.pending() == 8);
    // Collect in reverse order: replies that arrive first wait for their caller.
    for (int i = 7; i >= 0; --i) {
        CHECK(client.wait(ids[static_cast<std::size_t>(i)]) == pack(i + 1000));
    }
    CHECK(client.pending() == 0);
    CHECK_THROWS_AS((void)client.wait(ids[0]), std::invalid_argument);
}

TEST_CASE("several clients share one server and each gets its own replies") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    const auto endpoint = server->last_endpoint();
    std::atomic<int> correct{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            rill::RpcClient client(ctx, endpoint);
            for (int i = 0; i < 50; ++i) {
                try {
                    if (client.call("add", pack(std::make_tuple(t * 1000, i)), {5s, 1}) ==
                        pack(t * 1000 + i)) {
                        ++correct;
                    }
                } catch (const std::exception&) {
                }
            }
        });
    }
    for (auto& th : threads)
        th.join();
    CHECK(correct.load() == 200);
}

TEST_CASE("garbage frames are counted and leave the server serving") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(server->last_endpoint());
    const std::vector<std::vector<std::string>> garbage{
        {""},
        {"\xc1\xc1\xc1"},
        {"hello, server"},
        {pack(std::make_tuple(1, 5, msgpack::type::nil_t{}, 1))},  // a response
        {std::string("\x94\x00\x01\xa1m\xdd\xff\xff\xff\xff", 10)},
        {std::string("\x94\x00\x02\xa1m", 5) + std::string(40, '\x91')},
        {"frame one", "frame two"},
        {"", "frame", "three"},
    };
    for (const auto& msg : garbage) {
        std::vector<zmq::const_buffer> frames;
        for (const auto& f : msg)
            frames.emplace_back(f.data(), f.size());
        CHECK(zmq::send_multipart(raw, frames));
    }
    // A request whose msgid is readable but whose params are not an array gets an error reply.
    const auto bad = pack(std::make_tuple(0, 77, "echo", "not an array"));
    CHECK(raw.send(zmq::buffer(bad)));
    // Of the garbage, the oversized array (msgid 1) and the deep nesting (msgid 2) have readable
    // msgids too, so they are answered first, in order.
    raw.set(zmq::sockopt::rcvtimeo, 5000);
    const std::vector<std::pair<std::uint32_t, std::string>> expected{
        {1, "over its limit"}, {2, "deeper"}, {77, "params is a str"}};
    for (const auto& [msgid, text] : expected) {
        zmq::message_t reply;
        REQUIRE(raw.recv(reply));
        const auto decoded =
            std::get<rill::RpcResponse>(rill::decode_rpc_message(reply.to_string()));
        CHECK(decoded.msgid == msgid);
        REQUIRE(decoded.error);
        CHECK(decoded.error->find(text) != std::string::npos);
    }

    rill::RpcClient client(ctx, server->last_endpoint());
    CHECK(client.call("add", pack(std::make_tuple(2, 2)), {5s, 0}) == pack(4));
    CHECK(server->stats().malformed == garbage.size() + 1);
}

TEST_CASE("a server stops promptly and can be stopped twice") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    const auto start = std::chrono::steady_clock::now();
    server->stop();
    server->stop();
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    CHECK_THROWS_AS(server->handle("late", [](std::string_view) { return std::string(); }),
                    std::logic_error);
}

TEST_CASE("stop waits for the request in progress and no handler runs after it returns") {
    zmq::context_t ctx;
    rill::RpcServer server(ctx, "tcp://127.0.0.1:0");
    std::atomic<bool> entered{false};
    std::atomic<bool> finished{false};
    std::atomic<int> calls{0};
    server.handle("slow", [&](std::string_view) {
        ++calls;
        entered = true;
        std::this_thread::sleep_for(300ms);
        finished = true;
        return pack(1);
    });
    server.start();
    rill::RpcClient client(ctx, server.last_endpoint());
    (void)client.send("slow", {}, {5s, 0});
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!entered && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    REQUIRE(entered);
    server.stop();
    CHECK(finished);
    (void)client.send("slow", {}, {5s, 0});
    std::this_thread::sleep_for(200ms);
    CHECK(calls == 1);
}

TEST_CASE("a moved client keeps its pending calls") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    rill::RpcClient first(ctx, server->last_endpoint());
    const auto id = first.send("add", pack(std::make_tuple(1, 2)), {5s, 0});
    rill::RpcClient second(std::move(first));
    CHECK(second.pending() == 1);
    CHECK(second.wait(id) == pack(3));
    rill::RpcClient third(ctx, server->last_endpoint());
    const auto next = second.send("add", pack(std::make_tuple(2, 3)), {5s, 0});
    third = std::move(second);
    CHECK(third.wait(next) == pack(5));
    CHECK(third.pending() == 0);
}

TEST_CASE("mutated rpc messages decode or throw DecodeError, never anything else") {
    const std::vector<std::string> seeds{
        rill::encode_rpc_request({1, "replay.v1", pack(std::make_tuple("s", 17, 500))}),
        rill::encode_rpc_response({2, std::nullopt, pack(std::vector<std::string>{"a", "b"})}),
        rill::encode_rpc_response({3, std::string("boom"), ""}),
    };
    std::uint64_t state = 0x9e3779b97f4a7c15ull;
    const auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    int decoded = 0;
    int rejected = 0;
    for (int i = 0; i < 20000; ++i) {
        auto bytes = seeds[static_cast<std::size_t>(next() % seeds.size())];
        switch (next() % 3) {
            case 0:
                bytes[static_cast<std::size_t>(next() % bytes.size())] =
                    static_cast<char>(next() & 0xff);
                break;
            case 1:
                bytes.resize(static_cast<std::size_t>(next() % bytes.size()));
                break;
            default:
                bytes.insert(static_cast<std::size_t>(next() % bytes.size()), 1,
                             static_cast<char>(next() & 0xff));
        }
        try {
            (void)rill::decode_rpc_message(bytes);
            ++decoded;
        } catch (const rill::DecodeError&) {
            ++rejected;
        }
    }
    CHECK(decoded + rejected == 20000);
    CHECK(rejected > 1000);
}

TEST_CASE("every request whose msgid is readable gets an error answer with that msgid") {
    zmq::context_t ctx;
    auto server = make_server(ctx, "tcp://127.0.0.1:0");
    zmq::socket_t raw(ctx, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(server->last_endpoint());
    const auto nil = msgpack::type::nil_t{};
    const auto no_params = std::vector<int>{};
    // Requests with a readable msgid, each malformed in another way: all answered.
    const std::vector<std::pair<std::uint32_t, std::string>> answered{
        {12, pack(std::make_tuple(0, 12))},                                    // 2 elements
        {13, pack(std::make_tuple(0, 13, "echo"))},                            // 3 elements
        {14, pack(std::make_tuple(0, 14, "echo", no_params, nil))},            // 5 elements
        {15, pack(std::make_tuple(0, 15, "echo", no_params, 1, 2))},           // 6 elements
        {16, pack(std::make_tuple(0, 16, 5, no_params))},                      // method an int
        {17, pack(std::make_tuple(0, 17, "echo", "str"))},                     // params a str
        {18, pack(std::make_tuple(0, 18, "echo", 7))},                         // params an int
        {19, pack(std::make_tuple(0, 19, "echo", no_params)) + "\x01"},        // trailing byte
        {20, pack(std::make_tuple(0, 20, "echo", no_params)).substr(0, 5)},    // truncated
        {0xffffffffu, pack(std::make_tuple(0, 0xffffffffu, nil, no_params))},  // method nil
    };
    // Messages whose msgid cannot be read: not answered.
    const std::vector<std::string> dropped{
        pack(std::make_tuple(0)),                                     // no msgid
        pack(std::make_tuple(0, -1, "echo", no_params)),              // negative msgid
        pack(std::make_tuple(0, 0x100000000ULL, "echo", no_params)),  // over 32 bits
        pack(std::make_tuple(0, "12", "echo", no_params)),            // msgid a str
        pack(std::make_tuple(1, 21, nil, nil, 5)),                    // a 5-element response
        pack(std::make_tuple(2, 22, "echo", no_params)),              // type 2
        pack(std::make_tuple("0", 23)),                               // type a str
    };
    for (const auto& [msgid, bytes] : answered)
        CHECK(raw.send(zmq::buffer(bytes)));
    for (const auto& bytes : dropped)
        CHECK(raw.send(zmq::buffer(bytes)));
    // A valid request last: its answer comes after every answer to the ones before it.
    CHECK(raw.send(zmq::buffer(rill::encode_rpc_request({99, "echo", pack(std::make_tuple(1))}))));
    raw.set(zmq::sockopt::rcvtimeo, 5000);
    std::vector<std::uint32_t> ids;
    for (;;) {
        zmq::message_t reply;
        REQUIRE(raw.recv(reply));
        const auto decoded =
            std::get<rill::RpcResponse>(rill::decode_rpc_message(reply.to_string()));
        if (decoded.msgid == 99) {
            CHECK_FALSE(decoded.error);
            break;
        }
        REQUIRE(decoded.error);
        CHECK(decoded.error->starts_with("invalid request: "));
        ids.push_back(decoded.msgid);
    }
    std::vector<std::uint32_t> want;
    for (const auto& [msgid, bytes] : answered)
        want.push_back(msgid);
    CHECK(ids == want);
    CHECK(server->stats().malformed == answered.size() + dropped.size());
}
