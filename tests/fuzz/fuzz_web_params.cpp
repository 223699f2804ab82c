// fuzz-web-params: web-view's query parameter parsing (apps/web-view/core/params.hpp) on
// arbitrary query strings. The parsers may only throw ParamError (answered with 400); a
// cursor that decodes re-encodes to a token that decodes to the same cursor.
//
// Input: a query string, split at '&' into name=value pairs (no percent-decoding: cpp-httplib
// hands over decoded bytes, so any byte can reach the parsers). The whole input is also tried
// as a cursor token and as a listen address (the apps' one parser, apps/common).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/http_admin.hpp"
#include "fuzz_input.hpp"
#include "params.hpp"
#include "rill/store_reader.hpp"

namespace {

rill::web::Params split_query(std::string_view query) {
    rill::web::Params params;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        const std::size_t eq = pair.find('=');
        if (eq == std::string_view::npos) {
            params.emplace(std::string(pair), std::string());
        } else {
            params.emplace(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
        }
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
    }
    return params;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const rill::web::Params params = split_query(input);
    const rill::Timestamp now{std::chrono::microseconds(1'763'719'200'000'000)};

    try {
        const auto q = rill::web::parse_readings_query(params);
        if (q.limit < 1 || q.limit > rill::web::param_limits::max_limit)
            rill::fuzz::fail("limit in 1..max_limit");
        if (q.from && q.to && *q.from >= *q.to) rill::fuzz::fail("from < to");
    } catch (const rill::web::ParamError&) {
    }
    try {
        const auto q =
            rill::web::parse_readings_query(params, rill::web::param_limits::default_csv_limit,
                                            rill::web::param_limits::max_csv_limit);
        if (q.limit < 1 || q.limit > rill::web::param_limits::max_csv_limit)
            rill::fuzz::fail("csv limit in 1..max_csv_limit");
    } catch (const rill::web::ParamError&) {
    }
    try {
        const auto q = rill::web::parse_series_query(params, now);
        if (q.points < 1 || q.points > rill::web::param_limits::max_points)
            rill::fuzz::fail("points in 1..max_points");
        if (q.from >= q.to) rill::fuzz::fail("series from < to");
        const auto width = rill::store::series_bucket_width(
            std::chrono::duration_cast<std::chrono::microseconds>(q.to - q.from),
            static_cast<std::size_t>(q.points));
        if (width.count() <= 0) rill::fuzz::fail("series bucket width > 0");
    } catch (const rill::web::ParamError&) {
    }

    if (const auto cursor = rill::web::decode_cursor(input)) {
        if (rill::web::decode_cursor(rill::web::encode_cursor(*cursor)) != cursor) {
            rill::fuzz::fail("cursor round trip");
        }
    }
    try {
        (void)rill::app::parse_listen(std::string(input));
    } catch (const std::invalid_argument&) {
    }
    return 0;
}
