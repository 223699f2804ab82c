// The one file that knows how web-view receives the stream. Today a raw SUB socket; to be
// switched to rill::Subscriber when it lands.
#include "live_feed.hpp"

#include <memory>
#include <stdexcept>
#include <variant>

#include "rill/codec.hpp"
#include "rill/endpoint.hpp"
#include "rill/socket.hpp"

namespace rill::web {

struct LiveFeed::Impl {
    Socket socket;
    OnReading on_reading;
    OnError on_error;
    std::atomic<bool> stopping{false};
    std::thread thread;

    void run() {
        std::vector<Reading> batch;
        while (!stopping.load()) {
            zmq::pollitem_t item{socket.raw().handle(), 0, ZMQ_POLLIN, 0};
            try {
                if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
                zmq::message_t topic, payload;
                if (!socket.raw().recv(topic, zmq::recv_flags::dontwait)) continue;
                if (!topic.more()) {
                    on_error("a message of one frame (expected topic and payload)");
                    continue;
                }
                (void)socket.raw().recv(payload);
                bool extra = false;
                while (payload.more()) {  // drain unexpected frames
                    zmq::message_t more;
                    (void)socket.raw().recv(more);
                    payload.swap(more);
                    extra = true;
                }
                if (extra) {
                    on_error("a message of more than two frames");
                    continue;
                }
                auto msg = decode_message(topic.to_string_view(), payload.to_string_view());
                if (auto* readings = std::get_if<std::vector<Reading>>(&msg)) {
                    for (const auto& r : *readings)
                        on_reading(r);
                }
            } catch (const DecodeError& e) {
                on_error(std::string(to_string(e.code())) + ": " + e.what());
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) return;
                on_error(std::string("receive failed: ") + e.what());
            }
        }
    }
};

LiveFeed::LiveFeed(const std::vector<std::string>& endpoints, OnReading on_reading,
                   OnError on_error)
    : impl_(std::make_unique<Impl>()) {
    Impl* impl = impl_.get();
    SocketOptions options;
    options.reconnect_interval = std::chrono::milliseconds(200);
    options.reconnect_interval_max = std::chrono::milliseconds(5000);
    impl->socket = Socket(default_context(), zmq::socket_type::sub, options);
    impl->socket.raw().set(zmq::sockopt::subscribe, "");
    for (const auto& e : endpoints)
        impl->socket.attach(e, Attach::connect);
    impl->on_reading = std::move(on_reading);
    impl->on_error = std::move(on_error);
    impl->thread = std::thread([impl] { impl->run(); });
}

LiveFeed::~LiveFeed() {
    stop();
}

void LiveFeed::stop() {
    impl_->stopping = true;
    if (impl_->thread.joinable()) impl_->thread.join();
    impl_->socket.close();
}

}  // namespace rill::web
