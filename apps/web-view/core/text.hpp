// web-view: escaping for each output context (HTML, URLs, CSV) and number formatting.
#pragma once

#include <chrono>
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

/// The one text of a temperature or humidity on every interface (JSON, CSV, /events,
/// /api/series and its CSV): the shortest decimal that reads back as the same float32, as
/// std::to_chars(float) writes it and `tap` prints it ("21.903713", "64.278", "21"). The table
/// stores these values as real (float32), so this is exactly the stored value, without the
/// float64 widening's noise (64.27800750732422) and without rounding away digits. A float64
/// (an average of a series) is first rounded to the nearest float32. "" when `v` is not finite.
[[nodiscard]] std::string format_value(double v);

/// A reading's value as the page shows it, one decimal: exactly what the page's script shows for
/// the same value from the JSON API (`Number(format_value(v)).toFixed(1)`, i.e. the double the
/// browser parses, rounded half away from zero on its exact decimal value), so that a card
/// rendered by the server and one updated live never disagree. "-0.0" is shown as "0.0"; "—"
/// (an em dash) for a value not measured (NaN, NULL in the table) or infinite.
[[nodiscard]] std::string format_fixed1(double v);

/// Appends format_value(v), or `null` when `v` is not finite: a JSON number.
void append_json_value(std::string& out, double v);

/// Appends `s` as a JSON string: quoted, escaped, invalid UTF-8 replaced by U+FFFD.
void append_json_string(std::string& out, std::string_view s);

/// An Accept-Encoding header value without the content coding `coding` (compared without
/// case, parameters such as `;q=0.8` ignored): the other codings, as they were, joined by ", ".
/// "" when none is left.
[[nodiscard]] std::string without_coding(std::string_view accept_encoding, std::string_view coding);

/// Milliseconds since the Unix epoch, rounded down to a whole number: every `ts_ms`.
[[nodiscard]] long long unix_ms(std::chrono::sys_time<std::chrono::microseconds> ts) noexcept;

}  // namespace rill::web
