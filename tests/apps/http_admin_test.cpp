#include <doctest/doctest.h>
#include <httplib.h>

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
