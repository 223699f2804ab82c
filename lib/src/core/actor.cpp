#include "core/actor.hpp"

#include <array>
#include <cerrno>
#include <chrono>
#include <stdexcept>

#include "rill/log.hpp"

namespace rill::detail {

void Actor::Context::ready() {
    if (ready_) return;
    ready_ = true;
    started_.set_value();
}

bool Actor::Context::wait(zmq::socket_ref socket) {
    return wait_for(socket, std::chrono::milliseconds{-1}) == Wake::message;
}

Actor::Context::Wake Actor::Context::wait_for(zmq::socket_ref socket,
                                              std::chrono::milliseconds timeout) {
    const bool limited = timeout.count() >= 0;
    const auto deadline = std::chrono::steady_clock::now() + (limited ? timeout : timeout.zero());
    for (;;) {
        std::array<zmq::pollitem_t, 2> items{
            {{socket.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, stop_.fd(), ZMQ_POLLIN, 0}}};
        auto left = std::chrono::milliseconds{-1};
        if (limited) {
            left = std::chrono::ceil<std::chrono::milliseconds>(deadline -
                                                                std::chrono::steady_clock::now());
            if (left.count() < 0) left = std::chrono::milliseconds{0};
        }
        try {
            zmq::poll(items.data(), items.size(), left);
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            throw;
        }
        if ((items[1].revents & ZMQ_POLLIN) || stop_.requested()) return Wake::stop;
        if (items[0].revents & ZMQ_POLLIN) return Wake::message;
        if (limited && std::chrono::steady_clock::now() >= deadline) return Wake::timeout;
    }
}

Actor::~Actor() {
    stop();
}

void Actor::start(std::string name, Body body) {
    if (started_) throw std::logic_error("actor " + name + " started twice");
    started_ = true;
    std::promise<void> started;
    auto initialised = started.get_future();
    thread_ = std::thread([this, name = std::move(name), body = std::move(body),
                           started = std::move(started)]() mutable {
        Context context(stop_, started);
        try {
            body(context);
            if (!context.ready_) {
                started.set_exception(std::make_exception_ptr(
                    std::logic_error("actor " + name + " returned without signalling ready")));
            }
        } catch (const std::exception& e) {
            if (!context.ready_) {
                started.set_exception(std::current_exception());
                return;
            }
            try {
                log_error(name, std::string("thread ended on an exception: ") + e.what());
            } catch (...) {
            }
        } catch (...) {
            if (!context.ready_) started.set_exception(std::current_exception());
        }
    });
    try {
        initialised.get();
    } catch (...) {
        thread_.join();
        throw;
    }
}

void Actor::stop() noexcept {
    if (!thread_.joinable()) return;
    stop_.request();
    thread_.join();
}

}  // namespace rill::detail
