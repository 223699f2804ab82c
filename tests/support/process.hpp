// Test helpers: child processes, temporary directories and bounded waiting.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rill::test {

/// A directory under $TMPDIR (or /tmp) removed with everything in it on destruction.
class TempDir {
  public:
    explicit TempDir(const std::string& prefix = "rill-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  private:
    std::filesystem::path path_;
};

struct ProcessOptions {
    std::vector<std::string> env;  ///< extra "NAME=value" entries added to the environment
    std::string stdout_path;       ///< file to write stdout to; empty: inherit
    std::string stderr_path;       ///< file to write stderr to; empty: inherit
    /// SIGKILL the child when the thread that started it ends (PR_SET_PDEATHSIG), so that a
    /// test killed by a timeout does not leave it running. Only for children started from a
    /// thread that lives as long as they should.
    bool die_with_parent = false;
};

/// A child process started with execvp. The destructor kills it (SIGKILL) if it still runs and
/// reaps it, so a failing test never leaves processes behind. In a cross build (RILL_EMULATOR
/// defined, see emulated()) a program of this tree is started under the emulator, so the pid is
/// the emulator's, which runs the program in its own process: signals reach the program.
class Process {
  public:
    explicit Process(std::vector<std::string> argv, ProcessOptions options = {});
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// Sends `sig` to the child if it still runs.
    void signal(int sig);
    /// Waits up to `timeout` for the child to exit. Returns its exit code, 128 + signal number
    /// when a signal ended it, or nothing when it still runs.
    std::optional<int> wait_for(std::chrono::milliseconds timeout);
    /// True while the child has not exited.
    [[nodiscard]] bool running();

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

/// Runs `argv` to completion (at most `timeout`, then SIGKILL and an exception) and returns
/// its exit code; stdout and stderr go to `output` when given.
int run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                std::string* output = nullptr);

/// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns
/// whether it held.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// Reads a whole file; empty when it does not exist.
std::string read_file(const std::filesystem::path& path);

/// The path of a rill executable built in this tree (build/bin/NAME).
std::string bin(const std::string& name);

/// `argv` as it must be executed on this machine: in a cross build (the compile definition
/// RILL_EMULATOR, CMAKE_CROSSCOMPILING_EMULATOR's words joined by spaces) a program of this tree
/// (under RILL_BIN_DIR) is prefixed with the emulator, e.g. `qemu-aarch64-static -L /
/// build-arm64/bin/sensor-pub ...`; anything else (a host program such as
/// initdb or ip, or a native build) is returned unchanged.
std::vector<std::string> emulated(std::vector<std::string> argv);

/// One process's memory (kB) and CPU time from /proc, for benches and footprint checks.
struct ProcStat {
    long hwm_kb = 0;   ///< VmHWM: peak resident set
    long rss_kb = 0;   ///< VmRSS: resident set now
    long threads = 0;  ///< Threads
    double cpu_s = 0;  ///< utime + stime, seconds
};

/// /proc/PID/status and /proc/PID/stat of `pid`; zeros for what cannot be read (it exited).
ProcStat proc_stat(pid_t pid);

}  // namespace rill::test
