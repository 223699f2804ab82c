// web-view: escaping for each output context (HTML, URLs, CSV) and number formatting.
#pragma once

#include <string>
#include <string_view>

namespace rill::web {

/// Appends `s` escaped for HTML text and double- or single-quoted attribute values
/// (& < > " ' become entities).
void append_html_escaped(std::string& out, std::string_view s);
[[nodiscard]] std::string html_escape(std::string_view s);

/// Percent-encodes `s` for a URL query component (RFC 3986 unreserved characters pass).
[[nodiscard]] std::string url_encode(std::string_view s);

/// Appends one CSV cell (RFC 4180): quoted when it holds a comma, quote, CR or LF, and made
/// safe against formula injection: a cell starting with = + - @ TAB or CR is prefixed with a
/// single quote (OWASP's recommendation), so a spreadsheet shows it as text.
void append_csv_cell(std::string& out, std::string_view cell);

/// Formats a sensor value with at most `decimals` decimals, trailing zeros trimmed ("21.5").
[[nodiscard]] std::string format_value(double v, int decimals = 2);

}  // namespace rill::web
