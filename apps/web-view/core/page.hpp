// web-view: the dashboard page, rendered on the server (the table works without JavaScript).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "params.hpp"
#include "rill/store_reader.hpp"

namespace rill::web {

using Latest = rill::store::StoredReading;
using Page = rill::store::ReadingsPage;

/// How recent a sensor's last reading is.
enum class Freshness { fresh, stale, silent };

/// fresh while `age` <= stale_after, stale while <= silent_after, silent beyond.
[[nodiscard]] Freshness freshness(std::chrono::microseconds age, std::chrono::seconds stale_after,
                                  std::chrono::seconds silent_after) noexcept;
[[nodiscard]] std::string_view to_string(Freshness f) noexcept;

/// "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago".
[[nodiscard]] std::string format_ago(std::chrono::microseconds age);

/// "2026-11-21 10:00:00" (UTC, whole seconds).
[[nodiscard]] std::string format_table_time(Timestamp ts);

/// Everything the page shows.
struct PageModel {
    std::vector<Latest> sensors;
    Page table;
    std::optional<std::string> table_sensor;  ///< the table's sensor filter
    bool table_is_first_page = true;
    Timestamp now{};
    std::chrono::seconds stale_after{60};
    std::chrono::seconds silent_after{600};
    std::optional<std::string> problem;  ///< shown as a banner (database unavailable, ...)
    std::uint64_t last_event_id = 0;     ///< live events up to this one are in what is shown
};

/// The whole HTML document. Every piece of data is escaped for its context; the page loads
/// only its own assets/ (no inline script, nothing from other origins). Every URL in it is
/// relative (assets/app.js, api/sensors, ?sensor=...), so it also works under a reverse
/// proxy's path prefix.
[[nodiscard]] std::string render_page(const PageModel& m);

}  // namespace rill::web
