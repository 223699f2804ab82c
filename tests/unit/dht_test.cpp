#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <deque>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "rill/dht.hpp"
#include "support/source_stop.hpp"

using namespace rill;
using namespace std::chrono_literals;
using std::chrono::nanoseconds;

namespace {

using Frame = std::array<std::uint8_t, 5>;

Frame with_checksum(std::uint8_t b0, std::uint8_t b1, std::uint8_t b2, std::uint8_t b3) {
    return {b0, b1, b2, b3, static_cast<std::uint8_t>((b0 + b1 + b2 + b3) & 0xFF)};
}

struct TraceShape {
    bool extremes_only = false;  // high pulses exactly 22/30 us (0) and 68/75 us (1)
    int leading_noise = 3;       // spurious edges before the sensor's response
};

// Falling-edge timestamps of a full exchange: `leading_noise` stray edges, the response edge
// (80 us low + 80 us high follow), then 40 bits (low 50 +- 10 us, high by bit value) and the
// final falling edge that starts the 50 us end-of-frame low.
std::vector<nanoseconds> make_trace(const Frame& frame, std::mt19937& rng, TraceShape shape = {}) {
    std::uniform_int_distribution<int> low_jitter(-10, 10);
    std::uniform_int_distribution<int> zero_high(22, 30), one_high(68, 75);
    std::bernoulli_distribution pick(0.5);
    std::vector<nanoseconds> edges;
    nanoseconds t = 5ms;
    for (int i = shape.leading_noise; i > 0; --i)
        edges.push_back(t - i * 300us);
    edges.push_back(t);  // response: sensor pulls low
    t += 160us;
    edges.push_back(t);  // start of bit 1
    for (int bit = 0; bit < 40; ++bit) {
        const bool one = (frame[static_cast<std::size_t>(bit / 8)] >> (7 - bit % 8)) & 1;
        int high;
        if (shape.extremes_only) {
            high = one ? (pick(rng) ? 68 : 75) : (pick(rng) ? 22 : 30);
        } else {
            high = one ? one_high(rng) : zero_high(rng);
        }
        t += std::chrono::microseconds(50 + low_jitter(rng) + high);
        edges.push_back(t);
    }
    return edges;
}

constexpr int preamble_edges = 3 + 2;  // noise + response + (bit 1 start is part of the frame)

Frame random_frame(std::mt19937& rng) {
    std::uniform_int_distribution<int> byte(0, 255);
    return with_checksum(static_cast<std::uint8_t>(byte(rng)), static_cast<std::uint8_t>(byte(rng)),
                         static_cast<std::uint8_t>(byte(rng)),
                         static_cast<std::uint8_t>(byte(rng)));
}

}  // namespace

TEST_CASE("DHT decoder reads frames with jitter and extreme pulse widths") {
    std::mt19937 rng(42);
    for (int i = 0; i < 400; ++i) {
        const Frame frame = random_frame(rng);
        const auto edges = make_trace(frame, rng, {.extremes_only = i % 2 == 0});
        const auto r = decode_dht_falling_edges(edges, DhtModel::dht22);
        CAPTURE(i);
        REQUIRE(r.status == DhtStatus::ok);
        CHECK(r.bytes == frame);
    }
}

TEST_CASE("DHT decoder still decodes with 1 to 3 missing leading edges") {
    std::mt19937 rng(7);
    const Frame frame = with_checksum(0x02, 0x8C, 0x00, 0xE6);  // 65.2 %, 23.0 C
    for (int missing = 1; missing <= preamble_edges - 1; ++missing) {
        auto edges = make_trace(frame, rng);
        edges.erase(edges.begin(), edges.begin() + missing);
        const auto r = decode_dht_falling_edges(edges, DhtModel::dht22);
        CAPTURE(missing);
        REQUIRE(r.ok());
        CHECK(r.humidity == doctest::Approx(65.2));
        CHECK(r.temperature == doctest::Approx(23.0));
    }
    // Without any leading edge at all (response edge missed too) the 41 frame edges suffice.
    auto edges = make_trace(frame, rng, {.leading_noise = 0});
    edges.erase(edges.begin());
    CHECK(decode_dht_falling_edges(edges, DhtModel::dht22).ok());
    // One more missing edge and the frame is incomplete.
    edges.erase(edges.begin());
    CHECK(decode_dht_falling_edges(edges, DhtModel::dht22).status == DhtStatus::timeout);
}

TEST_CASE("DHT decoder reports a timeout when the sensor does not answer") {
    CHECK(decode_dht_falling_edges({}, DhtModel::dht11).status == DhtStatus::timeout);
    std::mt19937 rng(3);
    auto edges = make_trace(with_checksum(1, 2, 3, 4), rng, {.leading_noise = 0});
    edges.resize(30);
    CHECK(decode_dht_falling_edges(edges, DhtModel::dht11).status == DhtStatus::timeout);
}

TEST_CASE("a missing mid-frame edge gives an error, never a wrong value") {
    std::mt19937 rng(11);
    for (int trial = 0; trial < 40; ++trial) {
        const Frame frame = random_frame(rng);
        const int noise = trial % 4;  // 0..3 leading edges before the response
        const auto full = make_trace(frame, rng, {.leading_noise = noise});
        const auto first_frame_edge = static_cast<std::size_t>(noise + 2);  // start of bit 2
        for (std::size_t drop = first_frame_edge; drop < full.size(); ++drop) {
            auto edges = full;
            edges.erase(edges.begin() + static_cast<std::ptrdiff_t>(drop));
            const auto r = decode_dht_falling_edges(edges, DhtModel::dht22);
            CAPTURE(trial);
            CAPTURE(drop);
            CHECK_FALSE(r.ok());
            CHECK(r.status != DhtStatus::ok);
        }
    }
}

TEST_CASE("a flipped bit gives a checksum error") {
    std::mt19937 rng(5);
    const Frame frame = with_checksum(0x01, 0x90, 0x00, 0xFA);
    for (int bit = 0; bit < 40; ++bit) {
        Frame flipped = frame;
        flipped[static_cast<std::size_t>(bit / 8)] ^= static_cast<std::uint8_t>(0x80 >> (bit % 8));
        const auto r = decode_dht_falling_edges(make_trace(flipped, rng), DhtModel::dht22);
        CAPTURE(bit);
        CHECK(r.status == DhtStatus::checksum);
    }
}

TEST_CASE("DHT22 negative temperatures are sign-magnitude tenths") {
    std::mt19937 rng(9);
    // -10.1 C: magnitude 101 = 0x0065 with bit 7 of b2 set; 65.2 % = 652 = 0x028C.
    const auto r = decode_dht_falling_edges(make_trace(with_checksum(0x02, 0x8C, 0x80, 0x65), rng),
                                            DhtModel::dht22);
    REQUIRE(r.ok());
    CHECK(r.temperature == doctest::Approx(-10.1));
    CHECK(r.humidity == doctest::Approx(65.2));
    // -0.5 C and +0.5 C differ only in the sign bit.
    CHECK(convert_dht_frame(with_checksum(0, 0, 0x80, 5), DhtModel::dht22).temperature ==
          doctest::Approx(-0.5));
    CHECK(convert_dht_frame(with_checksum(0, 0, 0x00, 5), DhtModel::dht22).temperature ==
          doctest::Approx(0.5));
    // 0xFF9B is -10.1 in two's complement but -3266.7 in sign-magnitude, which the sensor uses.
    CHECK(convert_dht_frame(with_checksum(0, 0, 0xFF, 0x9B), DhtModel::dht22).temperature ==
          doctest::Approx(-3266.7));
}

TEST_CASE("DHT11 frames carry integer and decimal bytes") {
    std::mt19937 rng(13);
    const auto r =
        decode_dht_falling_edges(make_trace(with_checksum(45, 0, 23, 4), rng), DhtModel::dht11);
    REQUIRE(r.ok());
    CHECK(r.humidity == doctest::Approx(45.0));
    CHECK(r.temperature == doctest::Approx(23.4));
    const auto d = convert_dht_frame(with_checksum(38, 7, 19, 0), DhtModel::dht11);
    CHECK(d.humidity == doctest::Approx(38.7));
    CHECK(d.temperature == doctest::Approx(19.0));
    CHECK(convert_dht_frame({45, 0, 23, 4, 0}, DhtModel::dht11).status == DhtStatus::checksum);
}

namespace {

struct FakeTime {
    std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
    std::vector<std::chrono::steady_clock::time_point> sleeps;
    SourceClock clock() {
        return SourceClock{
            [this] { return now; },
            [this] {
                return Timestamp{
                    std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch())};
            },
            [this](std::chrono::steady_clock::time_point t) {
                sleeps.push_back(t);
                if (t > now) now = t;
            }};
    }
};

// Replays scripted captures: a trace, or an exception when the script says so.
class FakeEdgeSource final : public EdgeSource {
  public:
    struct Step {
        std::vector<nanoseconds> edges;
        bool throw_io = false;
        int error = EIO;
    };
    FakeEdgeSource(FakeTime& time, std::deque<Step> script, std::vector<Step> repeat = {})
        : time_(time), script_(std::move(script)), repeat_(std::move(repeat)) {}

    std::vector<nanoseconds> capture(std::chrono::microseconds start_pulse,
                                     std::chrono::microseconds window) override {
        captures.push_back(time_.now);
        time_.now += start_pulse + window;
        Step s;
        if (!script_.empty()) {
            s = script_.front();
            script_.pop_front();
        } else if (!repeat_.empty()) {
            s = repeat_[captures.size() % repeat_.size()];
        }
        if (s.throw_io) throw std::system_error(s.error, std::generic_category(), "capture");
        return s.edges;
    }
    std::string describe() const override { return "fake line"; }

    std::vector<std::chrono::steady_clock::time_point> captures;

  private:
    FakeTime& time_;
    std::deque<Step> script_;
    std::vector<Step> repeat_;
};

std::vector<nanoseconds> good_trace(const Frame& frame) {
    static std::mt19937 rng(99);
    return make_trace(frame, rng);
}

std::vector<nanoseconds> sync_trace() {
    auto e = good_trace(with_checksum(1, 2, 3, 4));
    e.erase(e.begin() + 20);
    return e;
}

std::vector<nanoseconds> checksum_trace() {
    return good_trace({0x02, 0x8C, 0x00, 0xE6, 0x00});
}

}  // namespace

TEST_CASE("DhtSource retries bad reads with backoff and counts them by reason") {
    FakeTime time;
    auto fake = std::make_unique<FakeEdgeSource>(
        time, std::deque<FakeEdgeSource::Step>{
                  {{}, false},
                  {sync_trace(), false},
                  {checksum_trace(), false},
                  {{}, true},
                  {good_trace(with_checksum(0x02, 0x8C, 0x00, 0xE6)), false}});
    auto* edges = fake.get();
    DhtOptions options;
    options.model = DhtModel::dht22;
    options.clock = time.clock();
    DhtSource source(std::move(fake), options);

    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(m->humidity == doctest::Approx(65.2));
    CHECK(m->temperature == doctest::Approx(23.0));
    const auto c = source.counters();
    CHECK(c.reads == 5);
    CHECK(c.failed_timeout == 1);
    CHECK(c.failed_sync == 1);
    CHECK(c.failed_checksum == 1);
    CHECK(c.failed_io == 1);
    CHECK(c.retries == 4);
    CHECK(c.measurements == 1);
    CHECK(c.missed == 0);
    // Backoff: 2 s, 4 s, 8 s, 16 s between attempts (retry_backoff 2 s, doubling, cap 16 s).
    REQUIRE(edges->captures.size() == 5);
    CHECK(edges->captures[1] - edges->captures[0] == 2s);
    CHECK(edges->captures[2] - edges->captures[1] == 4s);
    CHECK(edges->captures[3] - edges->captures[2] == 8s);
    CHECK(edges->captures[4] - edges->captures[3] == 16s);
}

TEST_CASE("DhtSource never reads faster than the sensor allows") {
    for (const auto model : {DhtModel::dht11, DhtModel::dht22}) {
        FakeTime time;
        // 40 % and 21 C in each model's encoding.
        const auto good = good_trace(model == DhtModel::dht11 ? with_checksum(40, 0, 21, 0)
                                                              : with_checksum(1, 0x90, 0, 0xD2));
        auto fake = std::make_unique<FakeEdgeSource>(time, std::deque<FakeEdgeSource::Step>{},
                                                     std::vector<FakeEdgeSource::Step>{{good}});
        auto* edges = fake.get();
        DhtOptions options;
        options.model = model;
        options.interval = 100ms;
        options.clock = time.clock();
        DhtSource source(std::move(fake), options);
        for (int i = 0; i < 4; ++i)
            REQUIRE(source.next().has_value());
        const auto spacing = model == DhtModel::dht11 ? 1s : 2s;
        REQUIRE(edges->captures.size() == 4);
        for (std::size_t i = 1; i < edges->captures.size(); ++i) {
            CHECK(edges->captures[i] - edges->captures[i - 1] >= spacing);
        }
    }
}

TEST_CASE("DhtSource gives up a measurement after its retries and tries at the next interval") {
    FakeTime time;
    std::deque<FakeEdgeSource::Step> script;
    for (int i = 0; i < 3; ++i)
        script.push_back({checksum_trace(), false});
    script.push_back({good_trace(with_checksum(50, 0, 20, 5)), false});
    auto fake = std::make_unique<FakeEdgeSource>(time, script);
    auto* edges = fake.get();
    DhtOptions options;
    options.model = DhtModel::dht11;
    options.max_retries = 2;
    options.interval = 60s;
    options.clock = time.clock();
    DhtSource source(std::move(fake), options);
    const auto start = time.now;
    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(m->temperature == doctest::Approx(20.5));
    const auto c = source.counters();
    CHECK(c.missed == 1);
    CHECK(c.failed_checksum == 3);
    CHECK(c.retries == 2);
    REQUIRE(edges->captures.size() == 4);
    CHECK(edges->captures[3] == start + 60s);  // the next interval, not another retry
}

TEST_CASE("DhtSource never returns implausible DHT11 frames") {
    FakeTime time;
    auto fake = std::make_unique<FakeEdgeSource>(
        time, std::deque<FakeEdgeSource::Step>{
                  {good_trace(with_checksum(120, 0, 20, 0)), false},  // humidity 120 %
                  {good_trace(with_checksum(40, 0, 20, 0)), false}});
    DhtOptions options;
    options.model = DhtModel::dht11;
    options.clock = time.clock();
    DhtSource source(std::move(fake), options);
    const auto m = source.next();
    REQUIRE(m.has_value());
    CHECK(m->humidity == doctest::Approx(40.0));
    CHECK(source.counters().failed_range == 1);
}

TEST_CASE("stop interrupts a DhtSource waiting for its next read") {
    FakeTime unused;
    const auto good = good_trace(with_checksum(40, 0, 21, 0));
    auto fake = std::make_unique<FakeEdgeSource>(unused, std::deque<FakeEdgeSource::Step>{},
                                                 std::vector<FakeEdgeSource::Step>{{good}});
    DhtOptions options;
    options.model = DhtModel::dht11;
    options.interval = 1h;
    options.start_pulse = 0us;
    options.capture_window = 0us;
    DhtSource source(std::move(fake), options);  // real clock
    REQUIRE(source.next().has_value());
    test::check_stop_interrupts_next(source);
}

TEST_CASE("DhtSource reports a GPIO configuration error instead of retrying it") {
    FakeTime time;
    FakeEdgeSource::Step busy;
    busy.throw_io = true;
    busy.error = EBUSY;  // the pin is owned by the dht11 overlay
    auto fake = std::make_unique<FakeEdgeSource>(time, std::deque<FakeEdgeSource::Step>{busy});
    DhtOptions options;
    options.clock = time.clock();
    DhtSource source(std::move(fake), options);
    CHECK_THROWS_AS((void)source.next(), std::system_error);
    CHECK(source.counters().retries == 0);
    CHECK(source.counters().failed_io == 0);
}
