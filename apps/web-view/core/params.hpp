// web-view: query-string parameters of the data routes, parsed and bounded.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "rill/reading.hpp"
#include "rill/store_reader.hpp"

namespace rill::web {

/// Query-string parameters as cpp-httplib hands them over (name -> value, repeats allowed).
using Params = std::multimap<std::string, std::string>;

/// Thrown when a request parameter is missing, malformed or out of its bounds. The HTTP layer
/// answers 400 with {"error": what(), "parameter": param()}.
class ParamError : public std::runtime_error {
  public:
    ParamError(std::string param, const std::string& what)
        : std::runtime_error(what), param_(std::move(param)) {}
    [[nodiscard]] const std::string& param() const noexcept { return param_; }

  private:
    std::string param_;
};

/// Bounds on every parameter.
namespace param_limits {
inline constexpr std::size_t max_value_bytes = 512;
inline constexpr int default_limit = 100;
inline constexpr int max_limit = 1000;
inline constexpr long long default_csv_limit = 100'000;
inline constexpr long long max_csv_limit = 1'000'000;
inline constexpr int default_points = 1000;
inline constexpr int max_points = 5000;
inline constexpr std::chrono::hours max_range{24 * 366};
inline constexpr std::chrono::hours default_series_range{24};
}  // namespace param_limits

/// A keyset position in the newest-first order (ts desc, sensor desc, seq desc): the last row
/// of the previous page. Encoded as an opaque URL-safe token.
using Cursor = rill::store::ReadingsCursor;

/// Returns the opaque URL-safe token of `c` (base64url, no padding). Does not throw.
[[nodiscard]] std::string encode_cursor(const Cursor& c);
/// Decodes a token made by encode_cursor; nothing when `token` is not a valid cursor.
[[nodiscard]] std::optional<Cursor> decode_cursor(std::string_view token);

/// Filters of /api/readings, /api/readings.csv and the page's table.
using ReadingsQuery = rill::store::ReadingsQuery;

/// Parses sensor, from, to, limit and cursor. `max_limit`/`default_limit` differ between the
/// JSON route and the CSV export. Throws ParamError naming the parameter: a repeated
/// parameter, a value above param_limits::max_value_bytes, an invalid sensor id
/// (rill::sensor_id_problem), a time that is neither RFC 3339 nor Unix seconds, from >= to, a
/// range above param_limits::max_range, a limit outside 1..max_limit, an invalid cursor.
[[nodiscard]] ReadingsQuery parse_readings_query(
    const Params& params, long long default_limit = param_limits::default_limit,
    long long max_limit = param_limits::max_limit);

/// Filters of /api/series and /api/series.csv: a time range split into at most about `points`
/// buckets (rill::store::Reader::series chooses the width and the source).
using SeriesQuery = rill::store::SeriesQuery;

/// Parses sensor, from (default: to - 24 h), to (default: `now`) and points (1..5000).
/// Throws ParamError as parse_readings_query does.
[[nodiscard]] SeriesQuery parse_series_query(const Params& params, Timestamp now);

/// The value of parameter `name`, nothing when absent. Throws ParamError when it is repeated
/// or longer than param_limits::max_value_bytes.
[[nodiscard]] std::optional<std::string> single_param(const Params& params,
                                                      const std::string& name);

/// Parses an optional sensor filter (valid sensor id). Throws ParamError.
[[nodiscard]] std::optional<std::string> parse_sensor_param(const Params& params,
                                                            const std::string& name = "sensor");

}  // namespace rill::web
