#include <rill/rill.hpp>

#include <iostream>

int main() {
    rill::Reading r{"consumer", 1, rill::now(), 20.5f, 45.0f, {}};
    const auto back = rill::decode_batch(rill::encode(r));
    if (back.size() != 1 || !(back.front() == r)) return 1;
    rill::Socket s(rill::default_context(), zmq::socket_type::pub);
    s.attach("@tcp://127.0.0.1:0", rill::Attach::bind);
    std::cout << "consumer ok " << back.front().sensor << " " << s.last_endpoint() << "\n";
    return 0;
}
