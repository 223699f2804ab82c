#include <doctest/doctest.h>

#include "rill/endpoint.hpp"
#include "rill/socket.hpp"

using namespace rill;

TEST_CASE("endpoint prefixes say bind or connect, and a bare endpoint takes the default") {
    const auto eps = parse_endpoints("@tcp://*:5556,>tcp://host:1, ipc:///tmp/x", Attach::bind);
    REQUIRE(eps.size() == 3);
    CHECK(eps[0] == Endpoint{Attach::bind, "tcp://*:5556"});
    CHECK(eps[1] == Endpoint{Attach::connect, "tcp://host:1"});
    CHECK(eps[2] == Endpoint{Attach::bind, "ipc:///tmp/x"});
    CHECK(to_string(eps) == "@tcp://*:5556,>tcp://host:1,@ipc:///tmp/x");
    CHECK(parse_endpoints("tcp://h:2", Attach::connect).front().attach == Attach::connect);
}

TEST_CASE("malformed endpoints are rejected naming the entry") {
    CHECK_THROWS_AS((void)parse_endpoints("", Attach::bind), std::invalid_argument);
    CHECK_THROWS_AS((void)parse_endpoints("tcp://a:1,,tcp://b:2", Attach::bind),
                    std::invalid_argument);
    CHECK_THROWS_AS((void)parse_endpoints("@", Attach::bind), std::invalid_argument);
    CHECK_THROWS_AS((void)parse_endpoints("localhost:5556", Attach::bind), std::invalid_argument);
    try {
        (void)parse_endpoints("udp://x:1", Attach::bind);
        FAIL("udp accepted");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()).find("udp") != std::string::npos);
    }
}

TEST_CASE("an announced wildcard endpoint resolves to the host the stream was reached on") {
    CHECK(resolve_announced("tcp://*:5557", "10.0.0.5") == "tcp://10.0.0.5:5557");
    CHECK(resolve_announced("tcp://0.0.0.0:5557", "pi.local") == "tcp://pi.local:5557");
    CHECK(resolve_announced("tcp://192.0.2.1:5557", "10.0.0.5") == "tcp://192.0.2.1:5557");
    CHECK(resolve_announced("ipc:///run/rill/replay", "10.0.0.5") == "ipc:///run/rill/replay");
    CHECK(tcp_host("tcp://[::1]:5556") == "[::1]");
    CHECK(tcp_host("tcp://h:1") == "h");
}

TEST_CASE("an announced IPv6 wildcard resolves to the peer's address, bracketed when IPv6") {
    // ZeroMQ gives a peer's address without brackets.
    CHECK(resolve_announced("tcp://[::]:5557", "10.0.0.5") == "tcp://10.0.0.5:5557");
    CHECK(resolve_announced("tcp://[::]:5557", "::1") == "tcp://[::1]:5557");
    CHECK(resolve_announced("tcp://*:5557", "fd00::7") == "tcp://[fd00::7]:5557");
    CHECK(resolve_announced("tcp://0.0.0.0:5557", "2001:db8::1") == "tcp://[2001:db8::1]:5557");
    // An IPv4 peer seen through a dual-stack socket connects as plain IPv4.
    CHECK(resolve_announced("tcp://[::]:5557", "::ffff:10.0.0.5") == "tcp://10.0.0.5:5557");
    // A specific IPv6 address is kept as announced.
    CHECK(resolve_announced("tcp://[::1]:5557", "10.0.0.5") == "tcp://[::1]:5557");
    CHECK(resolve_announced("tcp://[fd00::7]:5557", "::1") == "tcp://[fd00::7]:5557");
    // No peer address known (ipc://, inproc://): kept as announced.
    CHECK(resolve_announced("tcp://[::]:5557", "") == "tcp://[::]:5557");
}

TEST_CASE("a socket bound to port 0 reports the port it got, and a bad endpoint names itself") {
    Socket s(default_context(), zmq::socket_type::pub);
    s.attach("@tcp://127.0.0.1:0", Attach::bind);
    const auto ep = s.last_endpoint();
    CHECK(ep.starts_with("tcp://127.0.0.1:"));
    CHECK(ep != "tcp://127.0.0.1:0");
    REQUIRE(s.bound().size() == 1);
    CHECK(s.bound()[0] == ep);

    Socket other(default_context(), zmq::socket_type::pub);
    try {
        other.attach("@" + ep, Attach::bind);
        FAIL("second bind succeeded");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("cannot bind " + ep) == 0);
    }
}
