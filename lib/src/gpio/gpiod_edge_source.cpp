// The only place that includes gpiod.hpp: libgpiod 1.6 (v1 API) capture of DHT falling edges.
#include <pthread.h>
#include <sched.h>
#include <gpiod.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

#include "rill/gpio.hpp"
#include "rill/log.hpp"

namespace rill::gpio {

namespace {

using namespace std::chrono_literals;

// Releases a requested line on scope exit.
class LineRequest {
  public:
    explicit LineRequest(const ::gpiod::line& line) : line_(line) {}
    ~LineRequest() {
        try {
            if (line_.is_requested()) line_.release();
        } catch (...) {
        }
    }
    LineRequest(const LineRequest&) = delete;
    LineRequest& operator=(const LineRequest&) = delete;

  private:
    const ::gpiod::line& line_;
};

// Raises the calling thread to SCHED_FIFO while alive (when priority > 0 and permitted).
class RealtimeScope {
  public:
    explicit RealtimeScope(int priority) {
        if (priority <= 0) return;
        const pthread_t self = pthread_self();
        if (pthread_getschedparam(self, &old_policy_, &old_param_) != 0) return;
        sched_param param{};
        param.sched_priority = std::min(priority, sched_get_priority_max(SCHED_FIFO));
        const int rc = pthread_setschedparam(self, SCHED_FIFO, &param);
        if (rc == 0) {
            active_ = true;
        } else if (!warned_.exchange(true)) {
            log_warn("gpio", std::string("cannot run DHT captures at SCHED_FIFO: ") +
                                 std::strerror(rc) + " (needs CAP_SYS_NICE); continuing without");
        }
    }
    ~RealtimeScope() {
        if (active_) pthread_setschedparam(pthread_self(), old_policy_, &old_param_);
    }
    RealtimeScope(const RealtimeScope&) = delete;
    RealtimeScope& operator=(const RealtimeScope&) = delete;

  private:
    static inline std::atomic<bool> warned_{false};
    bool active_ = false;
    int old_policy_ = SCHED_OTHER;
    sched_param old_param_{};
};

int error_code_of(const std::exception& e) {
    if (const auto* se = dynamic_cast<const std::system_error*>(&e)) return se->code().value();
    return EIO;
}

class GpiodEdgeSource final : public EdgeSource {
  public:
    explicit GpiodEdgeSource(GpiodEdgeSourceOptions options) : options_(std::move(options)) {
        try {
            chip_.open(options_.chip, ::gpiod::chip::OPEN_LOOKUP);
        } catch (const std::exception& e) {
            throw std::system_error(error_code_of(e), std::generic_category(),
                                    "cannot open GPIO chip '" + options_.chip + "': " + e.what());
        }
        if (!chip_) {
            throw std::system_error(ENODEV, std::generic_category(),
                                    "cannot open GPIO chip '" + options_.chip + "'");
        }
        try {
            line_ = chip_.get_line(options_.line);
        } catch (const std::exception& e) {
            throw std::system_error(error_code_of(e), std::generic_category(),
                                    "cannot get line " + std::to_string(options_.line) +
                                        " of GPIO chip '" + options_.chip + "': " + e.what());
        }
    }

    std::vector<std::chrono::nanoseconds> capture(std::chrono::microseconds start_pulse,
                                                  std::chrono::microseconds window) override {
        std::vector<std::chrono::nanoseconds> edges;
        edges.reserve(64);
        const RealtimeScope realtime(options_.realtime_priority);
        LineRequest guard(line_);
        try {
            // Start pulse: output low, then release (v1 cannot switch a request to events).
            line_.request({options_.consumer, ::gpiod::line_request::DIRECTION_OUTPUT, {}}, 0);
            std::this_thread::sleep_for(start_pulse);
            line_.release();
            line_.request(
                {options_.consumer, ::gpiod::line_request::EVENT_FALLING_EDGE,
                 options_.pull_up ? ::gpiod::line_request::FLAG_BIAS_PULL_UP : std::bitset<32>{}});
            const auto deadline = std::chrono::steady_clock::now() + window;
            for (auto now = std::chrono::steady_clock::now(); now < deadline;
                 now = std::chrono::steady_clock::now()) {
                const auto wait = std::min<std::chrono::nanoseconds>(1ms, deadline - now);
                if (line_.event_wait(wait)) {
                    for (const auto& ev : line_.event_read_multiple()) {
                        edges.push_back(ev.timestamp);
                    }
                } else if (edges.size() >= 41) {
                    break;  // quiet for 1 ms after a full frame
                }
            }
        } catch (const std::system_error& e) {
            throw std::system_error(e.code(), "DHT capture on " + describe() + ": " + e.what());
        }
        return edges;
    }

    std::string describe() const override {
        return "GPIO chip '" + options_.chip + "' line " + std::to_string(options_.line);
    }

  private:
    GpiodEdgeSourceOptions options_;
    ::gpiod::chip chip_;
    ::gpiod::line line_;
};

}  // namespace

std::unique_ptr<EdgeSource> make_gpiod_edge_source(const GpiodEdgeSourceOptions& options) {
    return std::make_unique<GpiodEdgeSource>(options);
}

std::unique_ptr<Source> make_source(std::string_view spec, SourceOptions options) {
    if (!options.edge_source_factory) {
        options.edge_source_factory = [](const SourceOptions& o) {
            GpiodEdgeSourceOptions g;
            g.chip = o.gpio_chip;
            g.line = o.gpio_line;
            g.pull_up = o.gpio_pull_up;
            g.realtime_priority = o.gpio_realtime_priority;
            return make_gpiod_edge_source(g);
        };
    }
    return rill::make_source(spec, options);
}

}  // namespace rill::gpio
