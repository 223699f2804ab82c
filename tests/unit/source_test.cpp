#include <doctest/doctest.h>

#include <fstream>
#include <limits>
#include <stdexcept>

#include "rill/dht.hpp"
#include "rill/source.hpp"
#include "support/process.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("source specs parse into kinds and arguments") {
    CHECK(parse_source_spec("sim") == SourceSpec{SourceKind::sim, ""});
    CHECK(parse_source_spec("dht11") == SourceSpec{SourceKind::dht11, ""});
    CHECK(parse_source_spec("dht22") == SourceSpec{SourceKind::dht22, ""});
    CHECK(parse_source_spec("iio") == SourceSpec{SourceKind::iio, ""});
    CHECK(parse_source_spec("iio:iio:device2") == SourceSpec{SourceKind::iio, "iio:device2"});
    CHECK(parse_source_spec("iio:dht11@0") == SourceSpec{SourceKind::iio, "dht11@0"});
    CHECK(parse_source_spec("csv:/tmp/a:b.csv") == SourceSpec{SourceKind::csv, "/tmp/a:b.csv"});
}

TEST_CASE("bad source specs are rejected with a message naming the problem") {
    CHECK(error_of([] { (void)parse_source_spec(""); }).find("empty source") != std::string::npos);
    CHECK(error_of([] { (void)parse_source_spec("bme280"); }).find("unknown source 'bme280'") !=
          std::string::npos);
    CHECK(error_of([] { (void)parse_source_spec("csv"); }).find("csv needs a file") !=
          std::string::npos);
    CHECK(error_of([] { (void)parse_source_spec("csv:"); }).find("csv needs a file") !=
          std::string::npos);
    CHECK(error_of([] { (void)parse_source_spec("sim:fast"); }).find("sim takes no argument") !=
          std::string::npos);
    CHECK(error_of([] { (void)parse_source_spec("dht22:4"); }).find("dht22 takes no argument") !=
          std::string::npos);
    CHECK(error_of([] { (void)parse_source_spec("iio:"); }).find("iio") != std::string::npos);
}

TEST_CASE("source intervals come from an interval, a rate or the 5 s default") {
    CHECK(resolve_interval({}) == 5s);
    CHECK(resolve_interval({.interval = 250ms}) == 250ms);
    CHECK(resolve_interval({.rate_hz = 1e6}) == 1us);
    CHECK(resolve_interval({.rate_hz = 3}) == 333'333'333ns);
    CHECK(error_of([] {
              (void)resolve_interval({.interval = 1s, .rate_hz = 2});
          }).find("not both") != std::string::npos);
    CHECK(error_of([] { (void)resolve_interval({.interval = 0s}); }).find("interval") !=
          std::string::npos);
    CHECK(error_of([] { (void)resolve_interval({.rate_hz = -1}); }).find("rate") !=
          std::string::npos);
    CHECK(error_of([] {
              (void)resolve_interval({.rate_hz = std::numeric_limits<double>::infinity()});
          }).find("rate") != std::string::npos);
}

TEST_CASE("make_source builds sim and csv sources from their specs") {
    const auto start = *parse_time("2026-11-21T00:00:00Z");
    auto sim = make_source("sim", {.rate_hz = 1000, .seed = 4, .start = start});
    CHECK(sim->describe() == "sim every 1ms, seed 4");
    const auto first = sim->next();
    REQUIRE(first.has_value());
    CHECK(first->ts == start);
    CHECK(sim->next()->ts == start + 1ms);

    test::TempDir dir("rill-source");
    std::ofstream(dir.path() / "r.csv") << "1763719200,20,50\n";
    auto csv = make_source("csv:" + (dir.path() / "r.csv").string());
    REQUIRE(csv->next().has_value());
    CHECK_FALSE(csv->next().has_value());
    CHECK_THROWS_AS((void)make_source("csv:" + (dir.path() / "none.csv").string()),
                    std::system_error);
}

TEST_CASE("a DHT spec without a GPIO edge source is rejected naming rill::gpio") {
    CHECK(error_of([] { (void)make_source("dht22"); }).find("rill::gpio::make_source") !=
          std::string::npos);
}

namespace {

class ScriptedEdges final : public EdgeSource {
  public:
    explicit ScriptedEdges(std::vector<std::chrono::nanoseconds> edges)
        : edges_(std::move(edges)) {}
    std::vector<std::chrono::nanoseconds> capture(std::chrono::microseconds,
                                                  std::chrono::microseconds) override {
        return edges_;
    }
    std::string describe() const override { return "scripted line"; }

  private:
    std::vector<std::chrono::nanoseconds> edges_;
};

}  // namespace

TEST_CASE("make_source drives a DHT through the edge source factory it is given") {
    // DHT11 frame 55 % / 24 C: gaps of 76 us (0) and 120 us (1) after a 160 us response.
    const std::array<std::uint8_t, 5> frame{55, 0, 24, 0, 79};
    std::vector<std::chrono::nanoseconds> edges{0us, 160us};
    auto t = 160us;
    for (int bit = 0; bit < 40; ++bit) {
        t += ((frame[static_cast<std::size_t>(bit / 8)] >> (7 - bit % 8)) & 1) ? 120us : 76us;
        edges.push_back(t);
    }
    SourceOptions options;
    options.gpio_line = 17;
    unsigned seen_line = 0;
    options.edge_source_factory = [&](const SourceOptions& o) -> std::unique_ptr<EdgeSource> {
        seen_line = o.gpio_line;
        return std::make_unique<ScriptedEdges>(edges);
    };
    auto source = make_source("dht11", options);
    CHECK(seen_line == 17);
    CHECK(source->describe() == "dht11 on scripted line");
    const auto m = source->next();
    REQUIRE(m.has_value());
    CHECK(m->humidity == doctest::Approx(55.0));
    CHECK(m->temperature == doctest::Approx(24.0));
}
