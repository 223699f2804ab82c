// bench-rpc: msgpack-RPC round trips over TCP loopback (server thread and client in one
// process, each with its own ZeroMQ context so that nothing is shared but the TCP connection).
//   bench-rpc [CALLS [REPEATS]]   (defaults 1000 and 5)
// Runs each measurement REPEATS times and prints the best and the median run: total seconds for
// CALLS calls and µs per call. Measured: bare cppzmq DEALER/ROUTER ping-pong of the same bytes
// (the floor on this machine), sequential rill RPC calls, and rill RPC with 8 calls in flight.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "rill/replay.hpp"
#include "rill/rpc.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// Runs `run` (which times CALLS calls and returns the duration) `repeats` times and reports.
void measure(const char* what, int calls, int repeats,
             const std::function<Clock::duration()>& run) {
    std::vector<double> seconds;
    for (int i = 0; i < repeats; ++i)
        seconds.push_back(std::chrono::duration<double>(run()).count());
    std::sort(seconds.begin(), seconds.end());
    const double best = seconds.front();
    const double median = seconds[seconds.size() / 2];
    std::printf("%-24s %6d calls  best %8.4f s %8.2f us/call   median %8.4f s %8.2f us/call\n",
                what, calls, best, best * 1e6 / calls, median, median * 1e6 / calls);
}

}  // namespace

int main(int argc, char** argv) {
    const int calls = argc > 1 ? std::atoi(argv[1]) : 1000;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
    if (calls <= 0 || repeats <= 0) {
        std::fprintf(stderr, "usage: bench-rpc [CALLS [REPEATS]]\n");
        return 2;
    }
    // Params the size of a replay request.
    const auto params = rill::encode_replay_request({"greenhouse-07", 123456, 1000});
    const auto wire = rill::encode_rpc_request({1, "echo", params});

    {
        zmq::context_t server_ctx(1);
        zmq::context_t client_ctx(1);
        zmq::socket_t router(server_ctx, zmq::socket_type::router);
        router.set(zmq::sockopt::linger, 0);
        router.bind("tcp://127.0.0.1:0");
        const auto endpoint = router.get(zmq::sockopt::last_endpoint);
        const int total = 100 + calls * repeats;
        std::thread echo([&] {
            for (int i = 0; i < total; ++i) {
                zmq::message_t id;
                zmq::message_t body;
                if (!router.recv(id) || !router.recv(body)) return;
                (void)router.send(id, zmq::send_flags::sndmore);
                (void)router.send(body, zmq::send_flags::none);
            }
        });
        zmq::socket_t dealer(client_ctx, zmq::socket_type::dealer);
        dealer.set(zmq::sockopt::linger, 0);
        dealer.connect(endpoint);
        const auto once = [&] {
            (void)dealer.send(zmq::buffer(wire), zmq::send_flags::none);
            zmq::message_t reply;
            (void)dealer.recv(reply);
        };
        for (int i = 0; i < 100; ++i)
            once();
        measure("raw zmq (floor)", calls, repeats, [&] {
            const auto start = Clock::now();
            for (int i = 0; i < calls; ++i)
                once();
            return Clock::now() - start;
        });
        echo.join();
    }

    zmq::context_t server_ctx(1);
    zmq::context_t client_ctx(1);
    rill::RpcServer server(server_ctx, "@tcp://127.0.0.1:0");
    server.handle("echo", [](std::string_view p) { return std::string(p); });
    server.start();
    rill::RpcClient client(client_ctx, ">" + server.last_endpoint());
    const rill::CallOptions options{std::chrono::seconds{5}, 0};
    for (int i = 0; i < 100; ++i)
        (void)client.call("echo", params, options);  // connect, warm up

    bool ok = true;
    measure("rpc sequential", calls, repeats, [&] {
        const auto start = Clock::now();
        for (int i = 0; i < calls; ++i)
            ok = ok && client.call("echo", params, options) == params;
        return Clock::now() - start;
    });
    measure("rpc 8 in flight", calls, repeats, [&] {
        const auto start = Clock::now();
        std::deque<rill::RpcClient::CallId> in_flight;
        int sent = 0;
        while (sent < 8 && sent < calls) {
            in_flight.push_back(client.send("echo", params, options));
            ++sent;
        }
        while (!in_flight.empty()) {
            ok = ok && client.wait(in_flight.front()) == params;
            in_flight.pop_front();
            if (sent < calls) {
                in_flight.push_back(client.send("echo", params, options));
                ++sent;
            }
        }
        return Clock::now() - start;
    });
    if (!ok) {
        std::fprintf(stderr, "bench-rpc: a reply did not match its request\n");
        return 1;
    }
    return 0;
}
