// Test helper: what this process logs (rill logs to stderr), captured into a file.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "support/process.hpp"

namespace rill::test {

/// Redirects this process's stderr to a file in a temporary directory while alive; finish()
/// restores it and returns what was written.
class StderrCapture {
  public:
    StderrCapture() : path_(dir_.path() / "stderr.log") {
        std::fflush(stderr);
        saved_ = ::dup(2);
        const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(fd, 2);
        ::close(fd);
    }
    StderrCapture(const StderrCapture&) = delete;
    StderrCapture& operator=(const StderrCapture&) = delete;
    ~StderrCapture() { restore(); }

    /// Restores stderr and returns what was written to it since the constructor.
    std::string finish() {
        restore();
        return read_file(path_);
    }

    /// What was written so far, stderr still captured.
    std::string so_far() {
        std::fflush(stderr);
        return read_file(path_);
    }

  private:
    void restore() {
        if (saved_ < 0) return;
        std::fflush(stderr);
        ::dup2(saved_, 2);
        ::close(saved_);
        saved_ = -1;
    }
    TempDir dir_{"rill-stderr"};
    std::filesystem::path path_;
    int saved_ = -1;
};

}  // namespace rill::test
