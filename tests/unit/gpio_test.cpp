#include <doctest/doctest.h>

#include <system_error>

#include "rill/gpio.hpp"

using namespace rill;

TEST_CASE("opening a missing GPIO chip throws an error naming the chip") {
    try {
        (void)gpio::make_gpiod_edge_source({.chip = "rill-no-such-gpiochip"});
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("rill-no-such-gpiochip") != std::string::npos);
        CHECK(e.code().value() != 0);
    }
}

TEST_CASE("gpio make_source opens the configured chip for DHT specs") {
    SourceOptions options;
    options.gpio_chip = "/dev/rill-missing-gpiochip";
    try {
        (void)gpio::make_source("dht22", options);
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("/dev/rill-missing-gpiochip") != std::string::npos);
    }
}

TEST_CASE("gpio make_source passes other specs to rill::make_source") {
    auto sim = gpio::make_source("sim", {.interval = std::chrono::seconds(1)});
    CHECK(sim->describe() == "sim every 1s, seed 1");
    CHECK_THROWS_AS((void)gpio::make_source("nonsense"), std::invalid_argument);
}
