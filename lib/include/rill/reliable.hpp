// rill/reliable.hpp: the delivery contract as two library objects.
//
// ReliablePublisher: every reading goes to a durable outbox (which assigns its seq) before it
// is published; a replay service answers from that outbox; heartbeats announce the newest seq
// of every sensor the outbox knows, so subscribers see loss even at the tail of a stream and
// across restarts.
#pragma once

#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "rill/outbox.hpp"
#include "rill/replay.hpp"
#include "rill/stream.hpp"

namespace rill {

struct ReliablePublisherOptions {
    std::filesystem::path outbox_dir;  ///< required
    OutboxOptions outbox;
    /// Where readings are published (entries without a prefix bind).
    std::string publish_endpoints = "@tcp://127.0.0.1:5556";
    /// Socket, batching, identity and heartbeat settings of the stream. Its replay_endpoint is
    /// overwritten with the announced replay endpoint.
    PublisherOptions publisher;
    /// Where the replay service binds (entries without a prefix bind); empty: no replay service.
    std::string replay_endpoints = "@tcp://127.0.0.1:5557";
    /// What heartbeats announce as the replay endpoint; empty: the first address the replay
    /// service bound (a wildcard host, "tcp://0.0.0.0:5557", is resolved by each subscriber to
    /// the host it reached the stream on).
    std::string announce_replay;
    SocketOptions replay_socket;       ///< e.g. CURVE server keys for the replay service
    zmq::context_t* context = nullptr; ///< nullptr = default_context()
};

/// Owns an Outbox, a Publisher and (unless disabled) a ReplayServer answering from the outbox.
///
/// Threads: publish(), flush(), service(), poll_once() and close() are for one owner thread
/// (the Publisher's socket is not thread-safe). The replay service runs on its own thread
/// (ReplayServer) and reads the outbox concurrently; the outbox is thread-safe.
class ReliablePublisher {
public:
    /// Opens the outbox (recovering it: see Outbox), binds the stream and the replay service,
    /// and seeds the heartbeat with the newest seq of every sensor in the outbox. Throws what
    /// Outbox, Publisher and ReplayServer throw (std::system_error, std::runtime_error naming
    /// the endpoint, std::invalid_argument).
    explicit ReliablePublisher(ReliablePublisherOptions options);
    /// close(), swallowing errors.
    ~ReliablePublisher();
    ReliablePublisher(const ReliablePublisher&) = delete;
    ReliablePublisher& operator=(const ReliablePublisher&) = delete;

    /// Appends `batch` (readings of one sensor; their seq fields are overwritten) to the outbox
    /// as one record, then publishes it. Blocks for the append (and its fsync, per policy).
    /// Returns the seqs assigned. Throws as Outbox::append (nothing is published then).
    Outbox::SeqRange publish(std::span<Reading> batch);

    /// Sends due batches and heartbeats; returns the next duty's time (Publisher::service).
    SteadyTime service();
    /// Waits up to `timeout` or the next duty, then service().
    void poll_once(std::chrono::milliseconds timeout);
    /// Sends every pending batch now.
    void flush();
    /// Flushes, syncs the outbox (unless its policy is never) and stops the replay service.
    /// Idempotent. Throws std::system_error when the final sync fails.
    void close();

    [[nodiscard]] Outbox& outbox() noexcept;
    [[nodiscard]] Publisher& publisher() noexcept;
    /// The replay endpoint heartbeats announce ("" without a replay service).
    [[nodiscard]] const std::string& replay_endpoint() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rill
