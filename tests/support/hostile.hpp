// Hostile stream peers for the "bad input" tests of every subscriber (store-sub in tests/e2e,
// web-view in tests/web-view): a catalogue of malformed messages a PUB socket can send, and a
// raw ZMTP 3.0 publisher over plain TCP that sends what libzmq itself never would (a message cut
// off by a dropped connection, a frame declaring a huge size).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "rill/reading.hpp"

namespace rill::test {

/// A valid reading of `sensor` with seq `seq` at a fixed time (2026-11-21T10:00:00Z).
[[nodiscard]] Reading hostile_reading(const std::string& sensor, std::uint64_t seq = 1);

/// One multipart message a hostile publisher sends, and the DecodeErrc name (to_string) under
/// which a rill subscriber must count it in rill_stream_malformed_frames_total{reason=...}.
struct HostileMessage {
    std::string what;  ///< what is wrong with it, for test messages
    std::vector<std::string> frames;
    std::string reason;
};

/// Malformed messages on topic `sensor` (a valid sensor id): bytes that are not msgpack, one
/// frame, three frames, a topic that disagrees with the payload, version 2, envelopes, strings,
/// arrays, maps and binaries declaring 2^32-1 elements or bytes without sending them, a
/// payload above the size limit, a megabyte of nested arrays. None is a valid message; each
/// names the reason the codec gives for it.
[[nodiscard]] std::vector<HostileMessage> hostile_messages(const std::string& sensor);

/// Sends `frames` as one multipart message (the last without ZMQ_SNDMORE). Never blocks: a PUB
/// socket drops what it cannot queue.
void send_message(zmq::socket_t& socket, const std::vector<std::string>& frames);

/// A ZMTP 3.0 PUB peer written by hand over a TCP socket listening on 127.0.0.1:0 (NULL
/// security). Subscribers connect to endpoint(); accept() takes one connection and completes
/// the handshake; the send functions then write frames as bytes. Owns its sockets; the
/// destructor closes them. Not thread-safe.
class RawZmtpPublisher {
  public:
    /// Listens on 127.0.0.1 on a free port. Throws std::system_error.
    RawZmtpPublisher();
    ~RawZmtpPublisher();
    RawZmtpPublisher(const RawZmtpPublisher&) = delete;
    RawZmtpPublisher& operator=(const RawZmtpPublisher&) = delete;

    /// "tcp://127.0.0.1:PORT".
    [[nodiscard]] std::string endpoint() const;
    /// Accepts one subscriber connection (closing the previous one) and exchanges greetings
    /// and READY commands, waiting at most `timeout` in all. False when no subscriber came or
    /// the handshake failed in time.
    [[nodiscard]] bool accept(std::chrono::milliseconds timeout);
    /// Writes one message frame (ZMTP "more" flag when `more`). Throws std::system_error when
    /// the connection is gone.
    void send_frame(std::string_view body, bool more);
    /// Writes only the header of a long frame declaring `size` bytes of body, and none of it.
    void send_frame_header(std::uint64_t size, bool more);
    /// Closes the connection (not the listening socket).
    void drop();
    /// Waits up to `timeout` for the subscriber to close the connection, discarding whatever it
    /// sends (subscriptions). True when it closed it.
    [[nodiscard]] bool closed_by_peer(std::chrono::milliseconds timeout);

  private:
    void write_all(std::string_view bytes);
    bool read_exact(std::string& out, std::size_t n, std::chrono::steady_clock::time_point until);

    int listener_ = -1;
    int connection_ = -1;
    int port_ = 0;
};

}  // namespace rill::test
