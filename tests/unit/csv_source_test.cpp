#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <system_error>
#include <thread>

#include "rill/csv_source.hpp"
#include "support/process.hpp"
#include "support/source_stop.hpp"
#include "support/stderr_capture.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

std::filesystem::path write_csv(const test::TempDir& dir, const std::string& name,
                                const std::string& text) {
    const auto p = dir.path() / name;
    std::ofstream(p) << text;
    return p;
}

std::vector<Measurement> drain(Source& s) {
    std::vector<Measurement> out;
    while (auto m = s.next())
        out.push_back(*m);
    return out;
}

}  // namespace

TEST_CASE("csv source reads rows with a header, RFC 3339 and Unix seconds") {
    test::TempDir dir("rill-csv");
    const auto path = write_csv(dir, "in.csv",
                                "ts,temperature,humidity\r\n"
                                "2026-11-21T10:00:00Z,21.5,40\r\n"
                                "\n"
                                "# a comment\n"
                                "1763719260, -3.25 , 99.5\n");
    CsvSource source(path);
    const auto rows = drain(source);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].ts == *parse_time("2026-11-21T10:00:00Z"));
    CHECK(rows[0].temperature == doctest::Approx(21.5));
    CHECK(rows[0].humidity == doctest::Approx(40.0));
    CHECK(rows[1].ts == Timestamp{1'763'719'260'000'000us});
    CHECK(rows[1].temperature == doctest::Approx(-3.25));
    CHECK(source.counters().measurements == 2);
    CHECK(source.counters().failed_parse == 0);
    CHECK_FALSE(source.next().has_value());  // stays at the end
}

TEST_CASE("csv source works without a header and turns named extra columns into extras") {
    test::TempDir dir("rill-csv");
    CsvSource plain(write_csv(dir, "plain.csv", "1763719200,20,50\n1763719201,20.5,51\n"));
    CHECK(drain(plain).size() == 2);

    CsvSource extras(write_csv(dir, "extras.csv",
                               "ts,temperature,humidity,pressure,battery\n"
                               "1763719200,20,50,1013.2,3.7\n"));
    const auto rows = drain(extras);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].extras == std::vector<Extra>{{"pressure", 1013.2}, {"battery", 3.7}});
}

TEST_CASE("csv source skips bad rows, counts them and logs their line numbers") {
    test::TempDir dir("rill-csv");
    const auto path = write_csv(dir, "bad.csv",
                                "ts,temperature,humidity\n"
                                "1763719200,20,50\n"
                                "yesterday,20,50\n"
                                "1763719201,warm,50\n"
                                "1763719202,20,101\n"
                                "1763719203,20\n"
                                "1763719204,nan,50\n"
                                "1763719205,-300,50\n"
                                "1763719206,21,52\n");
    test::StderrCapture capture;
    CsvSource source(path);
    const auto rows = drain(source);
    const std::string log = capture.finish();
    REQUIRE(rows.size() == 2);
    CHECK(rows[1].temperature == doctest::Approx(21.0));
    CHECK(source.counters().failed_parse == 6);
    CHECK(source.counters().reads == 8);
    for (int line = 3; line <= 8; ++line) {
        CAPTURE(line);
        CHECK(log.find("bad.csv:" + std::to_string(line) + ":") != std::string::npos);
    }
    CHECK(log.find("bad.csv:2:") == std::string::npos);
    CHECK(log.find("bad timestamp 'yesterday'") != std::string::npos);
}

TEST_CASE("csv source logs a bounded number of bad rows but counts them all") {
    test::TempDir dir("rill-csv");
    std::string text = "ts,temperature,humidity\n";
    for (int i = 0; i < 50; ++i)
        text += "junk\n";
    text += "1763719200,20,50\n";
    test::StderrCapture capture;
    CsvSource source(write_csv(dir, "junk.csv", text), {.max_logged_bad_rows = 5});
    CHECK(drain(source).size() == 1);
    const std::string log = capture.finish();
    CHECK(source.counters().failed_parse == 50);
    CHECK(log.find("junk.csv:6:") != std::string::npos);  // lines 2 to 6
    CHECK(log.find("junk.csv:7:") == std::string::npos);
    CHECK(log.find("counted, not logged") != std::string::npos);
}

TEST_CASE("csv source paced waits the gaps between timestamps") {
    test::TempDir dir("rill-csv");
    const auto path = write_csv(dir, "paced.csv",
                                "2026-11-21T10:00:00.000Z,20,50\n"
                                "2026-11-21T10:00:00.200Z,20,50\n"
                                "2026-11-21T10:00:00.150Z,20,50\n"  // out of order: no wait
                                "2026-11-21T10:00:00.400Z,20,50\n");
    CsvSource source(path, {.paced = true});
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(drain(source).size() == 4);
    CHECK(std::chrono::steady_clock::now() - t0 >= 350ms);
}

TEST_CASE("stop interrupts a paced csv source") {
    test::TempDir dir("rill-csv");
    CsvSource source(write_csv(dir, "slow.csv", "1763719200,20,50\n1763722800,20,50\n"),
                     {.paced = true});
    REQUIRE(source.next().has_value());
    test::check_stop_interrupts_next(source);
}

TEST_CASE("a missing csv file is an error naming the file") {
    try {
        CsvSource source("/nonexistent/rill-readings.csv");
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).find("/nonexistent/rill-readings.csv") != std::string::npos);
    }
}

TEST_CASE("csv source skips overlong lines and reads a last line without a newline") {
    test::TempDir dir("rill-csv");
    const std::string huge(100'000, '9');
    test::StderrCapture capture;
    CsvSource source(write_csv(dir, "long.csv",
                               "ts,temperature,humidity\n1763719200,20," + huge +
                                   "\n1763719201,21,50\n" + std::string("1763719202,2\0,50\n", 17) +
                                   "1763719203,22,51"));
    const auto rows = drain(source);
    const std::string log = capture.finish();
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].temperature == doctest::Approx(21.0));
    CHECK(rows[1].temperature == doctest::Approx(22.0));
    CHECK(rows[1].humidity == doctest::Approx(51.0));
    CHECK(source.counters().failed_parse == 2);  // the overlong line and the NUL byte
    CHECK(log.find("long.csv:2: skipped bad row (line longer than 4096 bytes)") !=
          std::string::npos);
}

TEST_CASE("a source counts its failed reads in the metrics registry it is given") {
    test::TempDir dir("rill-csv");
    const auto path =
        write_csv(dir, "bad.csv", "1763719200,20,50\nyesterday,20,50\n1763719201,x,1\n");
    MetricsRegistry registry;
    CsvSource source(path, {.metrics = &registry});
    (void)drain(source);
    CHECK(registry.value("rill_source_failed_reads_total", {{"reason", "parse"}}) == 2.0);
    for (const char* reason : {"timeout", "sync", "checksum", "io", "range"}) {
        CAPTURE(reason);
        CHECK(registry.value("rill_source_failed_reads_total", {{"reason", reason}}) == 0.0);
    }
    CHECK(registry.value("rill_source_missed_total") == 0.0);
    CHECK(source.counters().failed_parse == 2);
}
