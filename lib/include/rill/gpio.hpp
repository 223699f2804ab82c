// rill/gpio.hpp: DHT sensors on a GPIO line through libgpiod 1.6 (library rill::gpio).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "rill/dht.hpp"
#include "rill/source.hpp"

namespace rill::gpio {

/// Where the DHT sensor is wired and how the line is requested.
struct GpiodEdgeSourceOptions {
    /// The chip by name ("gpiochip0"), path ("/dev/gpiochip0"), label or number.
    std::string chip = "gpiochip0";
    /// The line offset on the chip (for a Raspberry Pi: the BCM GPIO number).
    unsigned line = 4;
    /// Request the internal pull-up while listening; turn off when an external pull-up is
    /// fitted (or the kernel/driver does not support bias flags).
    bool pull_up = true;
    /// The consumer name shown by gpioinfo while the line is requested.
    std::string consumer = "rill-dht";
    /// When > 0, the thread calling capture() runs SCHED_FIFO at this priority (1-99) for the
    /// duration of a capture, so it drains the kernel's 16-event queue before it overflows.
    /// Needs CAP_SYS_NICE; when refused, a warning is logged once and captures run as before.
    int realtime_priority = 0;
};

/// Opens the chip and looks up the line; the line itself is requested only during a capture
/// (output low for the start pulse, released, then falling-edge events). Throws
/// std::system_error naming the chip (and line) when either cannot be opened.
[[nodiscard]] std::unique_ptr<EdgeSource> make_gpiod_edge_source(
    const GpiodEdgeSourceOptions& options);

/// rill::make_source() with DHT specs served by libgpiod on options.gpio_chip /
/// options.gpio_line (unless options.edge_source_factory is already set). Throws what
/// rill::make_source() and make_gpiod_edge_source() throw.
[[nodiscard]] std::unique_ptr<Source> make_source(std::string_view spec,
                                                  SourceOptions options = {});

}  // namespace rill::gpio
