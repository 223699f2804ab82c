#include "text.hpp"

#include <charconv>
#include <cmath>
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

}  // namespace rill::web
