// Test helpers for the Prometheus side: promtool on a /metrics text, and a free loopback port for
// a Prometheus server.
#pragma once

#include <string>
#include "support/ports.hpp"

namespace rill::test {

/// What `promtool check metrics` said about a text.
struct PromtoolResult {
    int status = -1;     ///< its exit code (0: no problem found)
    std::string output;  ///< what it printed (its complaints)
};

/// Whether the `promtool` command is on PATH (Debian package prometheus).
[[nodiscard]] bool promtool_available();

/// Runs `promtool check metrics` with `text` on its standard input (at most 60 s).
[[nodiscard]] PromtoolResult promtool_check_metrics(const std::string& text);

}  // namespace rill::test
