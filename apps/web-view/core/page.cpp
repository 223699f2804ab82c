#include "page.hpp"

#include <cstdio>

#include "text.hpp"

namespace rill::web {

namespace {

std::string fixed1(double v) {
    return format_fixed1(v);
}

// A table cell's value with its unit; "—" alone for a value not measured.
std::string with_unit(double v, const char* unit) {
    const auto text = format_fixed1(v);
    return text == "—" ? text : text + " " + unit;
}

void esc(std::string& out, std::string_view s) {
    append_html_escaped(out, s);
}

std::string table_href(const std::optional<std::string>& sensor,
                       const std::optional<Cursor>& cursor) {
    std::string q;
    if (sensor) q += "sensor=" + url_encode(*sensor);
    if (cursor) q += (q.empty() ? "" : "&") + std::string("cursor=") + encode_cursor(*cursor);
    // Relative to the page, so that it also works under a reverse proxy's path prefix.
    return q.empty() ? "./#table" : "?" + q + "#table";
}

void render_card(std::string& out, const Latest& l, const PageModel& m) {
    const auto age = std::chrono::duration_cast<std::chrono::microseconds>(m.now - l.ts);
    const auto f = freshness(age, m.stale_after, m.silent_after);
    out += "<article class=\"card\" data-sensor=\"";
    esc(out, l.sensor);
    out += "\" data-ts=\"" + std::to_string(l.ts.time_since_epoch().count() / 1000) +
           "\" data-seq=\"" + std::to_string(l.seq) + "\">\n<header><h3 class=\"sensor\" title=\"";
    esc(out, l.sensor);
    out += "\">";
    esc(out, l.sensor);
    out += "</h3><span class=\"status status-";
    out += to_string(f);
    out += "\">";
    out += to_string(f);
    out +=
        "</span></header>\n<div class=\"values\"><div class=\"value temp\"><span class=\"num\">" +
        fixed1(l.temperature) +
        "</span><span class=\"unit\">°C</span><span class=\"label\">temperature</span></div>"
        "<div class=\"value hum\"><span class=\"num\">" +
        fixed1(l.humidity) +
        "</span><span class=\"unit\">%</span><span class=\"label\">humidity</span></div></div>\n"
        "<footer><time class=\"ago\" datetime=\"" +
        to_iso8601(l.ts) + "\">" + format_ago(age) +
        "</time><span class=\"seq\" title=\"sequence number of this reading: the sensor counts "
        "its readings 1, 2, 3, ... (a gap means readings not received yet)\">seq " +
        std::to_string(l.seq) + "</span></footer>\n</article>\n";
}

}  // namespace

Freshness freshness(std::chrono::microseconds age, std::chrono::seconds stale_after,
                    std::chrono::seconds silent_after) noexcept {
    if (age <= stale_after) return Freshness::fresh;
    if (age <= silent_after) return Freshness::stale;
    return Freshness::silent;
}

std::string_view to_string(Freshness f) noexcept {
    switch (f) {
        case Freshness::fresh:
            return "fresh";
        case Freshness::stale:
            return "stale";
        case Freshness::silent:
            return "silent";
    }
    return "silent";
}

std::string format_ago(std::chrono::microseconds age) {
    using namespace std::chrono;
    const auto s = duration_cast<seconds>(age).count();
    if (s < 2) return "just now";
    if (s < 120) return std::to_string(s) + " s ago";
    if (s < 2 * 3600) return std::to_string(s / 60) + " min ago";
    if (s < 2 * 86400) return std::to_string(s / 3600) + " h ago";
    return std::to_string(s / 86400) + " d ago";
}

std::string format_table_time(Timestamp ts) {
    std::string iso = to_iso8601(ts);  // 2026-11-21T10:00:00.000000Z
    iso[10] = ' ';
    return iso.substr(0, 19);
}

namespace {

// The document head, the body's data attributes for app.js, the top bar and the problem banner.
void render_top(std::string& out, const PageModel& m) {
    out +=
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"color-scheme\" content=\"light dark\">\n"
        "<title>rill · weather</title>\n"
        "<link rel=\"icon\" href=\"assets/favicon.svg\" type=\"image/svg+xml\">\n"
        "<link rel=\"stylesheet\" href=\"assets/dygraph.min.css\">\n"
        "<link rel=\"stylesheet\" href=\"assets/app.css\">\n"
        "<script src=\"assets/dygraph.min.js\" defer></script>\n"
        "<script src=\"assets/app.js\" defer></script>\n</head>\n";
    out += "<body data-stale-after=\"" + std::to_string(m.stale_after.count()) +
           "\" data-silent-after=\"" + std::to_string(m.silent_after.count()) + "\" data-now=\"" +
           std::to_string(m.now.time_since_epoch().count() / 1000) + "\" data-first-page=\"" +
           (m.table_is_first_page ? "1" : "0") + "\" data-event-id=\"" +
           std::to_string(m.last_event_id) + "\" data-filter=\"";
    if (m.table_sensor) esc(out, *m.table_sensor);
    out += "\">\n";
    out +=
        "<header class=\"top\"><div class=\"brand\"><svg class=\"logo\" width=\"28\" height=\"28\" "
        "viewBox=\"0 0 24 24\" "
        "aria-hidden=\"true\"><path d=\"M2 8c3-3 5-3 8 0s5 3 8 0 M2 14c3-3 5-3 8 0s5 3 8 0\" "
        "fill=\"none\" stroke=\"currentColor\" stroke-width=\"2.2\" stroke-linecap=\"round\"/>"
        "</svg><span>rill</span><span class=\"sub\">weather</span></div>"
        "<div id=\"live\" class=\"live\" data-state=\"off\" title=\"live updates\"><span "
        "class=\"dot\"></span><span class=\"live-text\">static</span></div></header>\n<main>\n";
    if (m.problem) {
        out += "<div class=\"banner\" role=\"alert\">";
        esc(out, *m.problem);
        out += "</div>\n";
    }
}

// The latest-reading card of each sensor.
void render_cards(std::string& out, const PageModel& m) {
    out += "<section class=\"cards\" id=\"cards\" aria-label=\"sensors\">\n";
    for (const auto& l : m.sensors)
        render_card(out, l, m);
    out += "<p class=\"empty\"";
    if (!m.sensors.empty()) out += " hidden";
    out += ">No readings yet. Cards appear here as soon as a sensor publishes.</p>\n</section>\n";
}

// The history chart with its sensor choice and range buttons (drawn by app.js).
void render_chart_panel(std::string& out, const PageModel& m) {
    out +=
        "<section class=\"panel chart-panel\" aria-label=\"history\">\n<div class=\"panel-head\">"
        "<h2>History</h2><div class=\"controls\"><label class=\"visually-hidden\" "
        "for=\"chart-sensor\">sensor</label><select id=\"chart-sensor\">";
    for (const auto& l : m.sensors) {
        out += "<option value=\"";
        esc(out, l.sensor);
        out += "\">";
        esc(out, l.sensor);
        out += "</option>";
    }
    out +=
        "</select><div class=\"ranges\" role=\"group\" aria-label=\"range\">"
        "<button type=\"button\" data-range=\"1h\" class=\"active\" title=\"the last hour\">1 "
        "h</button><button type=\"button\" data-range=\"24h\" title=\"the last 24 hours\">24 "
        "h</button><button type=\"button\" data-range=\"7d\" title=\"the last 7 days\">7 "
        "d</button><button type=\"button\" data-range=\"30d\" title=\"the last 30 days\">30 "
        "d</button><button type=\"button\" data-range=\"1y\" title=\"the last 365 days\">1 "
        "y</button><button type=\"button\" data-range=\"custom\">Custom</button></div>"
        "<button type=\"button\" id=\"zoom-reset\" hidden>Reset zoom</button>"
        "<a class=\"button\" id=\"chart-csv\" href=\"api/series.csv\" download>Export "
        "CSV</a></div></div>\n"
        "<form id=\"custom-range\" class=\"custom-range\" hidden><label>From <input "
        "type=\"datetime-local\" id=\"range-from\" required></label><label>To <input "
        "type=\"datetime-local\" id=\"range-to\" required></label><button "
        "type=\"submit\">Show</button></form>\n"
        "<div class=\"chart-wrap\"><div id=\"chart\" class=\"chart\" role=\"img\" "
        "aria-label=\"temperature and humidity over time\"></div><div id=\"chart-legend\" "
        "class=\"chart-legend\"></div><p id=\"chart-note\" class=\"chart-note\">"
        "The chart needs JavaScript; the table below works without it.</p><p id=\"chart-tz\" "
        "class=\"chart-tz\"></p></div>\n</section>\n";
}

// The table of stored readings with its filter, CSV link and pager; works without JavaScript.
void render_table_panel(std::string& out, const PageModel& m) {
    out +=
        "<section class=\"panel table-panel\" id=\"table\" aria-label=\"registered weather "
        "data\">\n<div class=\"panel-head\"><h2>Registered weather data</h2><div "
        "class=\"controls\"><form method=\"get\" action=\"./#table\" class=\"filter\"><label "
        "class=\"visually-hidden\" for=\"table-sensor\">sensor</label><select name=\"sensor\" "
        "id=\"table-sensor\"><option value=\"\">All sensors</option>";
    for (const auto& l : m.sensors) {
        out += "<option value=\"";
        esc(out, l.sensor);
        out += "\"";
        if (m.table_sensor && *m.table_sensor == l.sensor) out += " selected";
        out += ">";
        esc(out, l.sensor);
        out += "</option>";
    }
    out += "</select><button type=\"submit\">Filter</button></form><a class=\"button\" href=\"";
    esc(out, "api/readings.csv" +
                 (m.table_sensor ? "?sensor=" + url_encode(*m.table_sensor) : std::string()));
    out +=
        "\" download>CSV</a></div></div>\n<div class=\"table-wrap\"><table "
        "id=\"readings\"><thead><tr><th scope=\"col\">Time <span class=\"tz\" title=\"the time "
        "zone of this column\">UTC</span></th><th scope=\"col\">Sensor</th><th scope=\"col\" "
        "class=\"num\"><span class=\"full\">Temperature</span><span class=\"short\" "
        "aria-hidden=\"true\">Temp</span></th><th scope=\"col\" class=\"num\"><span "
        "class=\"full\">Humidity</span><span class=\"short\" "
        "aria-hidden=\"true\">Hum</span></th></tr></thead>\n<tbody>\n";
    for (const auto& r : m.table.rows) {
        out += "<tr data-key=\"";
        esc(out, r.sensor + "/" + std::to_string(r.seq));
        // Date and time in two spans: on a phone the date goes on a line of its own.
        const std::string when = format_table_time(r.ts);
        out += "\"><td><time datetime=\"" + to_iso8601(r.ts) + "\"><span class=\"d\">" +
               when.substr(0, 10) + "</span> <span class=\"t\">" + when.substr(11) +
               "</span></time></td><td class=\"sensor\">";
        esc(out, r.sensor);
        out += "</td><td class=\"num\">" + with_unit(r.temperature, "°C") +
               "</td><td class=\"num\">" + with_unit(r.humidity, "%") + "</td></tr>\n";
    }
    out += "</tbody></table></div>\n";
    if (m.table.rows.empty()) out += "<p class=\"empty\">No readings to show.</p>\n";
    out += "<nav class=\"pager\" aria-label=\"pages\">";
    if (!m.table_is_first_page) {
        out += "<a class=\"button\" href=\"";
        esc(out, table_href(m.table_sensor, std::nullopt));
        out += "\">← Newest</a>";
    }
    if (m.table.next) {
        out += "<a class=\"button\" rel=\"next\" href=\"";
        esc(out, table_href(m.table_sensor, m.table.next));
        out += "\">Older →</a>";
    }
    out +=
        "</nav>\n</section>\n</main>\n<footer class=\"foot\">rill web-view · <a "
        "href=\"api/sensors\">JSON API</a> · <a href=\"metrics\">metrics</a></footer>\n"
        "</body>\n</html>\n";
}

}  // namespace

std::string render_page(const PageModel& m) {
    std::string out;
    out.reserve(16384 + m.table.rows.size() * 200);
    render_top(out, m);
    render_cards(out, m);
    render_chart_panel(out, m);
    render_table_panel(out, m);
    return out;
}

}  // namespace rill::web
