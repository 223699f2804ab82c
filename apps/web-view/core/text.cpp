#include "text.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace rill::web {

void append_html_escaped(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
}

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    append_html_escaped(out, s);
    return out;
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

void append_csv_cell(std::string& out, std::string_view cell) {
    const bool formula = !cell.empty() && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' ||
                                           cell[0] == '@' || cell[0] == '\t' || cell[0] == '\r');
    const bool quote = formula || cell.find_first_of(",\"\r\n") != std::string_view::npos;
    if (!quote) {
        out += cell;
        return;
    }
    out += '"';
    if (formula) out += '\'';
    for (char c : cell) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

std::string format_value(double v) {
    if (!std::isfinite(v)) return {};
    auto f = static_cast<float>(v);
    if (!std::isfinite(f)) return {};
    if (f == 0) f = 0;  // "0", never "-0"
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, f);
    return std::string(buf, res.ptr);
}

std::string format_fixed1(double v) {
    const auto text = format_value(v);
    if (text.empty()) return "—";
    const double d = std::strtod(text.c_str(), nullptr);  // what the browser's JSON.parse reads
    // glibc prints the exact decimal expansion; 80 places are far more than a value of a
    // reading needs to decide the rounding of its first decimal.
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.80f", std::fabs(d));
    const std::string exact(buf);
    const auto dot = exact.find('.');
    std::string digits = exact.substr(0, dot) + exact[dot + 1];  // tenths, as an integer
    if (exact[dot + 2] >= '5') {                                 // half up, on the magnitude
        auto i = digits.size();
        while (i > 0 && digits[i - 1] == '9')
            digits[--i] = '0';
        if (i == 0) {
            digits.insert(digits.begin(), '1');
        } else {
            ++digits[i - 1];
        }
    }
    std::string out = digits.substr(0, digits.size() - 1) + "." + digits.back();
    if (d < 0 && out != "0.0") out.insert(out.begin(), '-');
    return out;
}

void append_json_value(std::string& out, double v) {
    const auto s = format_value(v);
    out += s.empty() ? std::string("null") : s;
}

void append_json_string(std::string& out, std::string_view s) {
    out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

long long unix_ms(std::chrono::sys_time<std::chrono::microseconds> ts) noexcept {
    return std::chrono::floor<std::chrono::milliseconds>(ts).time_since_epoch().count();
}

std::string without_coding(std::string_view accept_encoding, std::string_view coding) {
    auto trim = [](std::string_view t) {
        while (!t.empty() && (t.front() == ' ' || t.front() == '\t'))
            t.remove_prefix(1);
        while (!t.empty() && (t.back() == ' ' || t.back() == '\t'))
            t.remove_suffix(1);
        return t;
    };
    auto same = [](std::string_view a, std::string_view b) {
        return a.size() == b.size() &&
               std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) ==
                          std::tolower(static_cast<unsigned char>(y));
               });
    };
    std::string out;
    while (!accept_encoding.empty()) {
        const auto comma = accept_encoding.find(',');
        const auto item = trim(accept_encoding.substr(0, comma));
        accept_encoding.remove_prefix(comma == std::string_view::npos ? accept_encoding.size()
                                                                      : comma + 1);
        if (item.empty() || same(trim(item.substr(0, item.find(';'))), coding)) continue;
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

}  // namespace rill::web
