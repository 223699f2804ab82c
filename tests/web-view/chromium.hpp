// A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
// no WebSocket client needed, real time (not virtual time, which an open SSE stream stalls).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/process.hpp"

namespace rill::test {

class Chromium {
  public:
    static constexpr const char* path = "/usr/bin/chromium";
    [[nodiscard]] static bool available();

    /// Starts Chromium headless with a fresh profile and opens `url` in a page of
    /// `width` x `height` CSS pixels. Throws when it does not answer within 60 s.
    Chromium(const std::string& url, int width, int height, bool dark = false);
    ~Chromium();
    Chromium(const Chromium&) = delete;
    Chromium& operator=(const Chromium&) = delete;

    /// Evaluates `expression` in the page and returns its value (JSON). Throws on a script
    /// exception or when Chromium does not answer within 30 s.
    nlohmann::json eval(const std::string& expression);
    /// Polls `expression` until it is true or `timeout` passes; returns whether it became true.
    bool wait_for(const std::string& expression, std::chrono::milliseconds timeout);
    /// Drags the mouse with the left button held from (x0, y0) to (x1, y1), in CSS pixels of
    /// the viewport, in a few steps, as a person selecting a range does.
    void drag(double x0, double y0, double x1, double y1);
    /// Saves a PNG of the viewport, or of the whole page's height when `full_page`.
    void screenshot(const std::filesystem::path& file, bool full_page = false);

  private:
    nlohmann::json call(const std::string& method, const nlohmann::json& params,
                        bool in_page = true);

    TempDir profile_{"rill-chromium"};
    pid_t pid_ = -1;
    int to_browser_ = -1;
    int from_browser_ = -1;
    int next_id_ = 1;
    std::string buffer_;
    std::string session_;
};

}  // namespace rill::test
