// The distinct sensors of a table by a loose index scan: one index probe per sensor instead of
// a scan of every row (PostgreSQL has no skip scan). Shared by PostgresSink and maintenance.
#pragma once

#include <string>
#include <string_view>

namespace rill::store::detail {

/// "WITH RECURSIVE s(sensor) AS (...)": a CTE `s` whose rows are the distinct sensors of
/// `table` (any relation with an index leading on sensor) in order, plus one NULL row that
/// ends the recursion (filter with `WHERE sensor IS NOT NULL`). `table` is spliced as is: pass
/// a trusted, quoted name.
inline std::string distinct_sensors_cte(std::string_view table) {
    const std::string t(table);
    return "WITH RECURSIVE s(sensor) AS (\n"
           "    SELECT min(sensor) FROM " +
           t +
           "\n  UNION ALL\n"
           "    SELECT (SELECT min(r.sensor) FROM " +
           t +
           " r WHERE r.sensor > s.sensor)\n"
           "    FROM s WHERE s.sensor IS NOT NULL\n)\n";
}

}  // namespace rill::store::detail
