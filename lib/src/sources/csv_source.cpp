#include "rill/csv_source.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

#include "core/text.hpp"
#include "rill/log.hpp"

namespace rill {

namespace {

using detail::trim;

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    while (true) {
        const auto comma = line.find(',');
        fields.push_back(trim(line.substr(0, comma)));
        if (comma == std::string_view::npos) break;
        line.remove_prefix(comma + 1);
    }
    return fields;
}

std::optional<double> parse_number(std::string_view s) {
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    double v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

}  // namespace

CsvSource::CsvSource(std::filesystem::path path, CsvOptions options)
    : Source(options.metrics), path_(std::move(path)), options_(options), in_(path_) {
    if (!in_) {
        throw std::system_error(errno, std::generic_category(),
                                "cannot open CSV file " + path_.string());
    }
}

std::string CsvSource::describe() const {
    return "csv " + path_.string() + (options_.paced ? " (paced)" : "");
}

void CsvSource::bad_row(std::string_view why) {
    counters_.failed_parse.add();
    ++bad_rows_;
    if (bad_rows_ <= options_.max_logged_bad_rows) {
        log_warn("source", path_.string() + ":" + std::to_string(line_no_) + ": skipped bad row (" +
                               std::string(why) + ")");
        if (bad_rows_ == options_.max_logged_bad_rows) {
            log_warn("source", path_.string() + ": further bad rows are counted, not logged");
        }
    }
}

std::optional<Measurement> CsvSource::parse_row(std::string_view line) {
    const auto fields = split_fields(line);
    const bool first = first_line_;
    first_line_ = false;
    const auto ts = fields.size() >= 1 ? parse_time(fields[0]) : std::nullopt;
    if (first && !ts && (fields.size() < 2 || !parse_number(fields[1]))) {
        // A header: remember the names of extra columns.
        for (std::size_t i = 3; i < fields.size(); ++i) {
            const std::string name(fields[i]);
            if (name.empty() || name.size() > limits::max_extra_name_bytes ||
                !is_clean_utf8(name) || extra_names_.size() >= limits::max_extras) {
                log_warn("source", path_.string() + ":" + std::to_string(line_no_) +
                                       ": ignoring column " + std::to_string(i + 1) +
                                       " (not a usable extra name)");
                extra_names_.emplace_back();  // keeps positions; empty = ignored
                continue;
            }
            extra_names_.push_back(name);
        }
        return std::nullopt;
    }
    counters_.reads.add();
    const std::size_t expected = 3 + extra_names_.size();
    if (fields.size() != expected) {
        bad_row("expected " + std::to_string(expected) + " fields, found " +
                std::to_string(fields.size()));
        return std::nullopt;
    }
    if (!ts) {
        bad_row("bad timestamp '" + std::string(fields[0]) + "'");
        return std::nullopt;
    }
    const auto t = parse_number(fields[1]);
    const auto h = parse_number(fields[2]);
    if (!t || !std::isfinite(*t) || *t < limits::min_temperature || *t > limits::max_temperature) {
        bad_row("bad temperature '" + std::string(fields[1]) + "'");
        return std::nullopt;
    }
    if (!h || !std::isfinite(*h) || *h < 0 || *h > 100) {
        bad_row("bad humidity '" + std::string(fields[2]) + "'");
        return std::nullopt;
    }
    Measurement m;
    m.ts = *ts;
    m.temperature = static_cast<float>(*t);
    m.humidity = static_cast<float>(*h);
    for (std::size_t i = 0; i < extra_names_.size(); ++i) {
        if (extra_names_[i].empty()) continue;
        const auto v = parse_number(fields[3 + i]);
        if (!v || !std::isfinite(*v)) {
            bad_row("bad " + extra_names_[i] + " '" + std::string(fields[3 + i]) + "'");
            return std::nullopt;
        }
        m.extras.push_back(Extra{extra_names_[i], *v});
    }
    return m;
}

std::optional<std::string_view> CsvSource::read_line() {
    // Bounded: a line that does not fit is skipped up to its newline, never buffered whole.
    line_too_long_ = false;
    in_.getline(line_buf_.data(), static_cast<std::streamsize>(line_buf_.size()));
    const auto got = static_cast<std::size_t>(in_.gcount());
    if (in_.eof() && got == 0) return std::nullopt;
    if (in_.fail() && !in_.eof()) {
        if (got == 0 && in_.bad()) return std::nullopt;
        in_.clear();
        in_.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
        line_too_long_ = true;
        return std::string_view();
    }
    // gcount counts the newline, which getline consumes but does not store; a last line
    // without a newline ends at EOF instead.
    const std::size_t len = in_.eof() ? got : got - 1;
    return std::string_view(line_buf_.data(), len);
}

std::optional<Measurement> CsvSource::next() {
    while (!stop_requested()) {
        const auto line = read_line();
        if (!line) break;
        ++line_no_;
        if (line_too_long_) {
            counters_.reads.add();
            bad_row("line longer than " + std::to_string(max_line_bytes) + " bytes");
            continue;
        }
        const std::string_view text = trim(*line);
        if (text.empty() || text.front() == '#') continue;
        auto m = parse_row(text);
        if (!m) continue;
        if (options_.paced) {
            const auto now = std::chrono::steady_clock::now();
            if (!previous_ts_) {
                paced_due_ = now;
            } else {
                const std::chrono::nanoseconds gap = m->ts - *previous_ts_;
                paced_due_ += std::clamp(gap, std::chrono::nanoseconds(0), options_.max_gap);
                if (paced_due_ < now - options_.max_gap) paced_due_ = now;  // far behind
                if (!wait_until(paced_due_)) return std::nullopt;
            }
            previous_ts_ = m->ts;
        }
        counters_.measurements.add();
        return m;
    }
    return std::nullopt;
}

}  // namespace rill
