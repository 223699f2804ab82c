// rill/csv_source.hpp: measurements replayed from a CSV file.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rill/source.hpp"

namespace rill {

/// How CsvSource reads its file.
struct CsvOptions {
    /// Wait the gap between consecutive row timestamps (capped at `max_gap`) before returning
    /// a row; otherwise rows come at full speed.
    bool paced = false;
    /// The longest pause between two rows when `paced` (gaps in the data beyond it are shortened).
    std::chrono::nanoseconds max_gap = std::chrono::hours(1);
    /// Bad rows are logged one line each up to this many; all are counted.
    std::size_t max_logged_bad_rows = 100;
    /// Where the source registers its metrics (see rill::Source); nullptr = default_registry().
    MetricsRegistry* metrics = nullptr;
};

/// Rows `ts,temperature,humidity[,extra...]`. ts is RFC 3339 or Unix seconds (rill::parse_time).
/// An optional first-line header names the columns; columns after the third become extras
/// named by the header (without a header, extra columns make a row bad). Blank lines and lines
/// starting with '#' are skipped. A bad row (wrong field count, unparsable time or number,
/// non-finite value, humidity outside [0, 100], temperature outside the Reading limits, a line
/// over 4096 bytes) is
/// counted in failed_parse, logged with its line number and skipped. next() returns nothing at
/// the end of the file.
class CsvSource final : public Source {
  public:
    /// Opens `path`. Throws std::system_error naming the file when it cannot be opened.
    CsvSource(std::filesystem::path path, CsvOptions options = {});

    [[nodiscard]] std::optional<Measurement> next() override;
    [[nodiscard]] std::string describe() const override;

  private:
    static constexpr std::size_t max_line_bytes = 4096;
    std::optional<std::string_view> read_line();
    std::optional<Measurement> parse_row(std::string_view line);
    void bad_row(std::string_view why);

    std::filesystem::path path_;
    CsvOptions options_;
    std::ifstream in_;
    std::vector<char> line_buf_ = std::vector<char>(max_line_bytes + 1);
    bool line_too_long_ = false;
    std::uint64_t line_no_ = 0;
    bool first_line_ = true;
    std::vector<std::string> extra_names_;
    std::optional<Timestamp> previous_ts_;
    std::chrono::steady_clock::time_point paced_due_{};
    std::uint64_t bad_rows_ = 0;
};

}  // namespace rill
