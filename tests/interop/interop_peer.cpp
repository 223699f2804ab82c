// interop-peer: publishes a fixed set of readings and a heartbeat for tests/interop/interop.py.
// Binds an XPUB on tcp://127.0.0.1:0, prints the endpoint on stdout, waits (at most 20 s) for a
// subscriber's subscription so that nothing is lost to the slow-joiner effect, publishes, exits.
// The fixture below is repeated in interop.py; keep the two in step.
#include <iostream>

#include "rill/codec.hpp"
#include "rill/socket.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

int publish_fixture() {
    Socket pub(default_context(), zmq::socket_type::xpub, SocketOptions{.linger = 5000ms});
    pub.attach("@tcp://127.0.0.1:0", Attach::bind);
    std::cout << pub.last_endpoint() << std::endl;

    zmq::pollitem_t item{pub.raw().handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 20s) == 0) {
        std::cerr << "interop-peer: no subscriber within 20 s\n";
        return 1;
    }
    zmq::message_t sub;
    (void)pub.raw().recv(sub);

    const std::vector<Reading> kitchen{
        {"kitchen", 1, Timestamp{1'763'719'200'000'000us}, 21.5f, 40.25f, {}},
        {"kitchen",
         2,
         Timestamp{1'763'719'205'000'000us},
         21.75f,
         40.0f,
         {{"pressure_hpa", 1013.25}, {"battery_v", 3.3}}},
        {"kitchen", 3, Timestamp{1'763'719'210'000'000us}, -12.5f, 100.0f, {}}};
    const std::vector<Reading> cellar{{"cellar-\xc3\xa9\xf0\x9f\x8c\xa1",
                                       9223372036854775806ULL,  // limits::max_seq - 1
                                       Timestamp{1'763'719'200'123'456us},
                                       -40.0f,
                                       0.0f,
                                       {}}};
    const Heartbeat hb{"interop-peer",
                       Timestamp{1'763'719'211'000'000us},
                       1000ms,
                       "tcp://*:5557",
                       {{"kitchen", 3}}};

    auto send = [&](std::string_view topic, const std::string& payload) {
        pub.raw().send(zmq::buffer(topic), zmq::send_flags::sndmore);
        pub.raw().send(zmq::buffer(payload), zmq::send_flags::none);
    };
    send("kitchen", encode_batch(kitchen));
    send(cellar.front().sensor, encode_batch(cellar));
    send(heartbeat_topic, encode_heartbeat(hb));
    return 0;
}

}  // namespace

int main() {
    const int code = publish_fixture();
    // Flush what is queued before exiting (the socket's linger applies here).
    rill::close_default_context(std::chrono::seconds(10));
    return code;
}
