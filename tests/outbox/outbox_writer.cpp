// outbox-writer DIR POLICY SENSORS BATCH [ACK_FILE]
//
// Opens the outbox in DIR with fsync POLICY (always, batch, never) and 64 KiB segments, then
// appends batches of BATCH readings for sensors s0 .. s<SENSORS-1>, round robin, until killed.
// With ACK_FILE, writes "<sensor> <last seq>\n" to it (one unbuffered write) after each append
// returns: what the outbox has acknowledged.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "rill/outbox.hpp"

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: outbox-writer DIR POLICY SENSORS BATCH [ACK_FILE]\n");
        return 2;
    }
    try {
        rill::OutboxOptions options;
        const std::string policy = argv[2];
        options.fsync = policy == "always"  ? rill::FsyncPolicy::always
                        : policy == "never" ? rill::FsyncPolicy::never
                                            : rill::FsyncPolicy::batch;
        options.segment_bytes = 64 * 1024;
        options.max_bytes = 1ULL << 30;
        options.max_age = std::chrono::seconds(0);
        rill::Outbox outbox(argv[1], options);
        const int sensors = std::atoi(argv[3]);
        const auto batch_size = static_cast<std::size_t>(std::atoi(argv[4]));
        int ack = -1;
        if (argc > 5) {
            ack = ::open(argv[5], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (ack < 0) {
                std::perror("open ack file");
                return 1;
            }
        }
        std::vector<rill::Reading> batch(batch_size);
        for (std::uint64_t round = 0;; ++round) {
            for (int s = 0; s < sensors; ++s) {
                for (std::size_t i = 0; i < batch_size; ++i) {
                    auto& r = batch[i];
                    r.sensor = "s" + std::to_string(s);
                    r.ts = rill::now();
                    r.temperature = 20.0f + static_cast<float>(round % 100) * 0.1f;
                    r.humidity = 50.0f;
                }
                const auto range = outbox.append(batch);
                if (ack >= 0) {
                    const std::string line =
                        batch.front().sensor + " " + std::to_string(range.last) + "\n";
                    if (::write(ack, line.data(), line.size()) !=
                        static_cast<ssize_t>(line.size())) {
                        std::perror("write ack file");
                        return 1;
                    }
                }
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "outbox-writer: %s\n", e.what());
        return 1;
    }
}
