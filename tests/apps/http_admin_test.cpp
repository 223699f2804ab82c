#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "common/http_admin.hpp"

using rill::app::Health;
using rill::app::HttpAdmin;
using rill::app::parse_listen;

TEST_CASE("listen addresses parse with or without the bind prefix, IPv6 in brackets") {
    CHECK(parse_listen("@127.0.0.1:9101") == std::pair<std::string, int>{"127.0.0.1", 9101});
    CHECK(parse_listen("http://localhost:0/") == std::pair<std::string, int>{"localhost", 0});
    CHECK(parse_listen("[::1]:80") == std::pair<std::string, int>{"::1", 80});
    CHECK_THROWS_AS(parse_listen("9101"), std::invalid_argument);
    CHECK_THROWS_AS(parse_listen("host:port"), std::invalid_argument);
    CHECK_THROWS_AS(parse_listen("host:99999"), std::invalid_argument);
}

TEST_CASE("the admin endpoint serves metrics and answers health with 200 or 503") {
    std::atomic<bool> healthy{true};
    HttpAdmin admin(
        "127.0.0.1:0", [] { return std::string("rill_up 1\n"); },
        [&] {
            return healthy ? Health{} : Health{false, "database unreachable"};
        });
    httplib::Client client(admin.url());
    auto res = client.Get("/metrics");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body == "rill_up 1\n");
    res = client.Get("/healthz");
    REQUIRE(res);
    CHECK(res->status == 200);
    healthy = false;
    res = client.Get("/healthz");
    REQUIRE(res);
    CHECK(res->status == 503);
    CHECK(res->body == "database unreachable\n");
}

TEST_CASE("the admin endpoint answers 404 elsewhere, 405 to other methods, HEAD without a body") {
    HttpAdmin admin(
        "127.0.0.1:0", [] { return std::string("rill_up 1\n"); }, [] { return Health{}; });
    httplib::Client client(admin.url());
    auto res = client.Get("/metrics?name=rill_up");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
    res = client.Get("/nothing");
    REQUIRE(res);
    CHECK(res->status == 404);
    res = client.Post("/metrics", "x", "text/plain");
    REQUIRE(res);
    CHECK(res->status == 405);
    res = client.Head("/healthz");
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body.empty());
}

TEST_CASE("a client that never finishes its request does not stop the admin endpoint") {
    HttpAdmin admin(
        "127.0.0.1:0", [] { return std::string("rill_up 1\n"); }, [] { return Health{}; });
    // A raw connection that sends half a request and then waits.
    const auto port = admin.url().substr(admin.url().rfind(':') + 1);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    const std::string partial = "GET /metrics HTTP/1.1\r\n";
    REQUIRE(::send(fd, partial.data(), partial.size(), 0) > 0);
    httplib::Client client(admin.url());
    client.set_read_timeout(20, 0);
    const auto res = client.Get("/healthz");
    ::close(fd);
    REQUIRE(res);
    CHECK(res->status == 200);
}
