// Internal: one small actor pattern for the library's own threads (RpcServer, ZapHandler).
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <zmq.hpp>

#include "rill/stop.hpp"

namespace rill::detail {

/// A library thread that serves a ZeroMQ socket until it is told to stop: czmq's zactor pattern,
/// with a StopFlag (an eventfd polled next to the socket) for its pipe.
///
/// From start to stop: start() runs the body on a new thread and blocks until the body has
/// signalled that it is initialised. The body MUST call ActorContext::ready() once initialised,
/// and MUST return soon after the stop request: it blocks only in ActorContext::wait(), which
/// wakes on the stop request, or for bounded times. stop() (and the destructor) requests the
/// stop, waits for the body to return and joins the thread; nothing of the body runs after stop()
/// returns. The body owns whatever sockets it serves from start() to stop(): the thread that
/// calls start() must not use them in between.
class Actor {
  public:
    /// What the body sees of its actor; valid while the body runs.
    class Context {
      public:
        /// Signals that the body is initialised: start() returns. Call it once.
        void ready();
        /// Blocks until `socket` has a message to receive (true) or the stop is requested
        /// (false; the stop wins when both hold). Retries when a signal interrupts the poll.
        /// Throws zmq::error_t when the poll fails.
        [[nodiscard]] bool wait(zmq::socket_ref socket);
        /// What wait_for() woke up for.
        enum class Wake { message, stop, timeout };
        /// As wait(), returning after `timeout` at the latest (Wake::timeout; a negative
        /// timeout waits without limit).
        [[nodiscard]] Wake wait_for(zmq::socket_ref socket, std::chrono::milliseconds timeout);
        /// True once the stop is requested. Does not block.
        [[nodiscard]] bool stop_requested() const noexcept { return stop_.requested(); }

      private:
        friend class Actor;
        Context(const StopFlag& stop, std::promise<void>& started) noexcept
            : stop_(stop), started_(started) {}
        const StopFlag& stop_;
        std::promise<void>& started_;
        bool ready_ = false;
    };

    /// The actor's work, run on its thread (see the class contract). An exception it throws
    /// before ready() is rethrown by start(); one it throws later is logged under `name`.
    using Body = std::function<void(Context&)>;

    /// An actor with no thread yet.
    Actor() = default;
    /// Stops and joins, as stop().
    ~Actor();
    Actor(const Actor&) = delete;
    Actor& operator=(const Actor&) = delete;

    /// Starts the thread running `body` and returns once the body called ready(). Throws
    /// std::logic_error when already started or when the body returned without calling ready(),
    /// and rethrows what the body threw before it (the thread is joined by then).
    void start(std::string name, Body body);
    /// Requests the stop, waits for the body to return and joins; idempotent; does not throw.
    void stop() noexcept;
    /// True between start() and stop().
    [[nodiscard]] bool running() const noexcept { return thread_.joinable(); }

  private:
    StopFlag stop_;
    std::thread thread_;
    bool started_ = false;
};

}  // namespace rill::detail
