#include "support/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rill::test {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
        throw std::runtime_error("cannot create a temporary directory " + pattern + ": " +
                                 std::strerror(errno));
    }
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

Process::Process(std::vector<std::string> argv, ProcessOptions options) {
    if (argv.empty()) throw std::invalid_argument("Process needs a program");
    argv = emulated(std::move(argv));
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    if (pid_ == 0) {
        // Own process group, so that killing it reaches its children too.
        setpgid(0, 0);
        if (options.die_with_parent) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1) _exit(127);  // the parent is already gone
        }
        auto redirect = [](const std::string& path, int fd) {
            if (path.empty()) return;
            const int f = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (f >= 0) {
                dup2(f, fd);
                close(f);
            }
        };
        redirect(options.stdout_path, STDOUT_FILENO);
        redirect(options.stderr_path, STDERR_FILENO);
        for (auto& e : options.env)
            putenv(e.data());
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        execvp(args[0], args.data());
        std::fprintf(stderr, "exec %s failed: %s\n", args[0], std::strerror(errno));
        _exit(127);
    }
}

Process::~Process() {
    if (pid_ > 0 && !status_) {
        kill(-pid_, SIGKILL);
        kill(pid_, SIGKILL);
        int st = 0;
        waitpid(pid_, &st, 0);
    }
}

void Process::signal(int sig) {
    if (pid_ > 0 && running()) kill(pid_, sig);
}

bool Process::running() {
    if (status_) return false;
    int st = 0;
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        return false;
    }
    return true;
}

std::optional<int> Process::wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status_;
}

int run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                std::string* output) {
    std::optional<TempDir> dir;
    ProcessOptions options;
    if (output) {
        dir.emplace("rill-cmd");
        options.stdout_path = options.stderr_path = (dir->path() / "out").string();
    }
    Process p(argv, options);
    const auto code = p.wait_for(timeout);
    if (output) *output = read_file(dir->path() / "out");
    if (!code) throw std::runtime_error("command timed out: " + argv.front());
    return *code;
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string bin(const std::string& name) {
    return std::string(RILL_BIN_DIR) + "/" + name;
}

std::vector<std::string> emulated(std::vector<std::string> argv) {
#ifdef RILL_EMULATOR
    const std::string bin_dir = std::string(RILL_BIN_DIR) + "/";
    if (argv.empty() || argv.front().compare(0, bin_dir.size(), bin_dir) != 0) return argv;
    std::vector<std::string> out;
    std::istringstream words(RILL_EMULATOR);
    for (std::string w; words >> w;)
        out.push_back(w);
    out.insert(out.end(), std::make_move_iterator(argv.begin()),
               std::make_move_iterator(argv.end()));
    return out;
#else
    return argv;
#endif
}

ProcStat proc_stat(pid_t pid) {
    ProcStat s;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        std::istringstream in(line);
        std::string key;
        in >> key;
        if (key == "VmRSS:") in >> s.rss_kb;
        if (key == "VmHWM:") in >> s.hwm_kb;
        if (key == "Threads:") in >> s.threads;
    }
    const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return s;
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    s.cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    return s;
}

}  // namespace rill::test
