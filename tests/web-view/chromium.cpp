#include "chromium.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace rill::test {

namespace {

using json = nlohmann::json;

std::string base64_decode(const std::string& in) {
    static const std::string chars =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned acc = 0;
    int bits = 0;
    for (char c : in) {
        const auto p = chars.find(c);
        if (p == std::string::npos) continue;  // '=' and whitespace
        acc = (acc << 6) | static_cast<unsigned>(p);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return out;
}

}  // namespace

bool Chromium::available() {
    return ::access(path, X_OK) == 0;
}

Chromium::Chromium(const std::string& url, int width, int height, bool dark) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> args = {path,
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--no-first-run",
                                     "--disable-background-networking",
                                     "--disable-component-update",
                                     "--disable-sync",
                                     "--disable-quic",
                                     "--hide-scrollbars",
                                     "--remote-debugging-pipe",
                                     "--user-data-dir=" + profile_.path().string(),
                                     "about:blank"};
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        // Chromium reads commands on fd 3 and writes answers on fd 4.
        dup2(in[0], 3);
        dup2(out[1], 4);
        const int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, STDOUT_FILENO);
        dup2(devnull, STDERR_FILENO);
        for (int fd = 5; fd < 1024; ++fd)
            close(fd);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(path, argv.data());
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_browser_ = in[1];
    from_browser_ = out[0];

    const auto target = call("Target.createTarget", {{"url", "about:blank"}}, false);
    const auto attached =
        call("Target.attachToTarget", {{"targetId", target["targetId"]}, {"flatten", true}}, false);
    session_ = attached["sessionId"].get<std::string>();
    call("Emulation.setDeviceMetricsOverride",
         {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", width < 600}});
    call("Emulation.setEmulatedMedia",
         {{"features",
           json::array({{{"name", "prefers-color-scheme"}, {"value", dark ? "dark" : "light"}}})}});
    call("Page.enable", json::object());
    call("Page.navigate", {{"url", url}});
}

Chromium::~Chromium() {
    if (pid_ > 0) {
        try {
            call("Browser.close", json::object(), false);
        } catch (...) {
        }
        for (int i = 0; i < 50; ++i) {
            if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    if (to_browser_ >= 0) close(to_browser_);
    if (from_browser_ >= 0) close(from_browser_);
}

json Chromium::call(const std::string& method, const json& params, bool in_page) {
    const int id = next_id_++;
    json msg = {{"id", id}, {"method", method}, {"params", params}};
    if (in_page) msg["sessionId"] = session_;
    std::string text = msg.dump();
    text += '\0';
    for (std::size_t at = 0; at < text.size();) {
        const auto n = write(to_browser_, text.data() + at, text.size() - at);
        if (n <= 0) throw std::runtime_error("cannot write to chromium");
        at += static_cast<std::size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (true) {
        for (auto nul = buffer_.find('\0'); nul != std::string::npos; nul = buffer_.find('\0')) {
            const auto reply = json::parse(buffer_.substr(0, nul), nullptr, false);
            buffer_.erase(0, nul + 1);
            if (reply.is_object() && reply.value("id", -1) == id) {
                if (reply.contains("error")) {
                    throw std::runtime_error(method + " failed: " + reply["error"].dump());
                }
                return reply["result"];
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw std::runtime_error(method + ": chromium did not answer");
        pollfd p{from_browser_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buf[65536];
        const auto n = read(from_browser_, buf, sizeof buf);
        if (n <= 0) throw std::runtime_error(method + ": chromium went away");
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

json Chromium::eval(const std::string& expression) {
    const auto r = call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}});
    if (r.contains("exceptionDetails")) {
        throw std::runtime_error("script failed: " + r["exceptionDetails"].dump());
    }
    return r["result"].value("value", json());
}

bool Chromium::wait_for(const std::string& expression, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            if (eval("!!(" + expression + ")") == true) return true;
        } catch (const std::runtime_error&) {
            // The page may be between documents while it loads.
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

void Chromium::drag(double x0, double y0, double x1, double y1) {
    const auto mouse = [&](const char* type, double x, double y, int buttons) {
        call("Input.dispatchMouseEvent", {{"type", type},
                                          {"x", x},
                                          {"y", y},
                                          {"button", "left"},
                                          {"buttons", buttons},
                                          {"clickCount", 1}});
    };
    mouse("mouseMoved", x0, y0, 0);
    mouse("mousePressed", x0, y0, 1);
    constexpr int steps = 8;
    for (int i = 1; i <= steps; ++i) {
        mouse("mouseMoved", x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps, 1);
    }
    mouse("mouseReleased", x1, y1, 0);
}

void Chromium::screenshot(const std::filesystem::path& file, bool full_page) {
    json params = {{"format", "png"}, {"captureBeyondViewport", full_page}};
    if (full_page) {
        const auto size =
            eval("[document.documentElement.clientWidth, document.documentElement.scrollHeight]");
        params["clip"] = {
            {"x", 0}, {"y", 0}, {"width", size[0]}, {"height", size[1]}, {"scale", 1}};
    }
    const auto r = call("Page.captureScreenshot", params);
    std::ofstream out(file, std::ios::binary);
    const auto png = base64_decode(r["data"].get<std::string>());
    out.write(png.data(), static_cast<std::streamsize>(png.size()));
}

}  // namespace rill::test
