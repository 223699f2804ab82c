#include "support/hostile.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "rill/codec.hpp"
#include "support/readings.hpp"

namespace rill::test {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

std::string bytes(std::initializer_list<unsigned> values) {
    std::string out;
    for (const auto v : values)
        out.push_back(static_cast<char>(v));
    return out;
}

// A msgpack str header + body for a short string (fixstr, < 32 bytes).
std::string fixstr(const std::string& s) {
    return static_cast<char>(0xa0 | s.size()) + s;
}

int milliseconds_left(Clock::time_point until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

}  // namespace

Reading hostile_reading(const std::string& sensor, std::uint64_t seq) {
    return test::reading(sensor, seq, 21.5f, 40.0f);
}

std::vector<HostileMessage> hostile_messages(const std::string& sensor) {
    const auto valid = encode(hostile_reading(sensor));
    auto version2 = valid;
    version2[1] = 2;  // [array header, version, kind, ...]; proto/reading_v1.md section 2
    // The envelope of a readings payload up to its readings array (version 1, kind 0, sensor).
    const std::string envelope = bytes({0x94, 0x01, 0x00}) + fixstr(sensor);
    const std::string huge32 = bytes({0xff, 0xff, 0xff, 0xff});  // 2^32-1 in a 32-bit length
    // The valid payload after its envelope is [[seq, ts, temperature, humidity]]; as an array
    // of five elements it is followed by the reading's extras map.
    std::string reading_head = valid.substr(envelope.size());
    reading_head[1] = static_cast<char>(0x95);
    return {
        {"bytes that are not msgpack", {sensor, "\xc1 never used in msgpack"}, "malformed"},
        {"a msgpack integer followed by text",
         {sensor, "\xff\xfe not msgpack at all"},
         "trailing_bytes"},
        {"an empty payload", {sensor, ""}, "malformed"},
        {"a message of one frame", {sensor}, "malformed"},
        {"a message of three frames", {sensor, valid, "a third frame"}, "malformed"},
        {"a topic that disagrees with the payload", {"zz", valid}, "topic_mismatch"},
        {"wire format version 2", {sensor, version2}, "unknown_version"},
        {"an envelope declaring 2^32-1 elements",
         {sensor, bytes({0xdd}) + huge32 + bytes({0x01, 0x00})},
         "too_large"},
        {"a sensor id declaring a 4 GiB string",
         {sensor, bytes({0x94, 0x01, 0x00, 0xdb}) + huge32 + sensor},
         "malformed"},
        {"a readings array declaring 2^32-1 readings",
         {sensor, envelope + bytes({0xdd}) + huge32},
         "too_large"},
        {"an extras map declaring 2^32-1 entries",
         {sensor, envelope + reading_head + bytes({0xdf}) + huge32},
         "too_large"},
        {"an extras map holding a 4 GiB binary",
         {sensor, envelope + reading_head + bytes({0x81, 0xa1, 'x', 0xc6}) + huge32},
         "malformed"},
        {"a payload one byte above the 4 MiB limit",
         {sensor, valid + std::string(limits::max_payload_bytes + 1 - valid.size(), '\0')},
         "too_large"},
        {"a megabyte of nested one-element arrays",
         {sensor, std::string(1024 * 1024, static_cast<char>(0x91))},
         "too_large"},
    };
}

void send_message(zmq::socket_t& socket, const std::vector<std::string>& frames) {
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const auto flags = i + 1 < frames.size()
                               ? zmq::send_flags::sndmore | zmq::send_flags::dontwait
                               : zmq::send_flags::dontwait;
        (void)socket.send(zmq::buffer(frames[i]), flags);
    }
}

// --- RawZmtpPublisher -----------------------------------------------------------------------

RawZmtpPublisher::RawZmtpPublisher() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) throw_errno("cannot create a TCP socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::listen(listener_, 4) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        const int e = errno;
        ::close(listener_);
        errno = e;
        throw_errno("cannot listen on 127.0.0.1:0");
    }
    port_ = ntohs(address.sin_port);
}

RawZmtpPublisher::~RawZmtpPublisher() {
    drop();
    ::close(listener_);
}

std::string RawZmtpPublisher::endpoint() const {
    return "tcp://127.0.0.1:" + std::to_string(port_);
}

bool RawZmtpPublisher::accept(std::chrono::milliseconds timeout) {
    drop();
    const auto until = Clock::now() + timeout;
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, milliseconds_left(until)) != 1) return false;
    connection_ = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection_ < 0) return false;
    // Greeting (ZMTP 3.0, RFC 23): signature, version 3.0, mechanism NULL, as-server 0, filler.
    std::string greeting = bytes({0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0});
    greeting += std::string("NULL") + std::string(16, '\0');
    greeting += std::string(1 + 31, '\0');
    write_all(greeting);
    std::string theirs;
    if (!read_exact(theirs, 64, until)) return false;
    // READY with the property Socket-Type = PUB.
    const std::string ready =
        "\x05READY" + std::string("\x0bSocket-Type") + bytes({0, 0, 0, 3}) + "PUB";
    write_all(bytes({0x04, static_cast<unsigned>(ready.size())}) + ready);
    // The subscriber's READY: a short or long command frame.
    std::string flags;
    if (!read_exact(flags, 1, until)) return false;
    std::string size;
    const bool long_frame = (static_cast<unsigned char>(flags[0]) & 0x02) != 0;
    if (!read_exact(size, long_frame ? 8 : 1, until)) return false;
    std::uint64_t n = 0;
    for (const char c : size)
        n = (n << 8) | static_cast<unsigned char>(c);
    std::string body;
    return n < 4096 && read_exact(body, static_cast<std::size_t>(n), until) &&
           body.rfind("\x05READY", 0) == 0;
}

void RawZmtpPublisher::send_frame(std::string_view body, bool more) {
    std::string frame;
    const unsigned flag = more ? 0x01 : 0x00;
    if (body.size() <= 255) {
        frame = bytes({flag, static_cast<unsigned>(body.size())});
    } else {
        frame = bytes({flag | 0x02});
        for (int shift = 56; shift >= 0; shift -= 8)
            frame.push_back(static_cast<char>((body.size() >> shift) & 0xff));
    }
    frame.append(body);
    write_all(frame);
}

void RawZmtpPublisher::send_frame_header(std::uint64_t size, bool more) {
    std::string header = bytes({(more ? 0x01u : 0x00u) | 0x02u});
    for (int shift = 56; shift >= 0; shift -= 8)
        header.push_back(static_cast<char>((size >> shift) & 0xff));
    write_all(header);
}

void RawZmtpPublisher::drop() {
    if (connection_ >= 0) ::close(connection_);
    connection_ = -1;
}

bool RawZmtpPublisher::closed_by_peer(std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    std::array<char, 4096> buffer{};
    while (connection_ >= 0) {
        pollfd p{connection_, POLLIN, 0};
        if (::poll(&p, 1, milliseconds_left(until)) != 1) return false;
        const auto n = ::recv(connection_, buffer.data(), buffer.size(), 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return true;
    }
    return false;
}

void RawZmtpPublisher::write_all(std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(connection_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_errno("cannot write to the subscriber at " + endpoint());
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool RawZmtpPublisher::read_exact(std::string& out, std::size_t n, Clock::time_point until) {
    out.assign(n, '\0');
    std::size_t have = 0;
    while (have < n) {
        pollfd p{connection_, POLLIN, 0};
        if (::poll(&p, 1, milliseconds_left(until)) != 1) return false;
        const auto got = ::recv(connection_, out.data() + have, n - have, 0);
        if (got == 0) return false;
        if (got < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        have += static_cast<std::size_t>(got);
    }
    return true;
}

}  // namespace rill::test
