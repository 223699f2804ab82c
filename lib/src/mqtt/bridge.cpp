#include "rill/mqtt_bridge.hpp"

#include <mosquitto.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "mqtt/redelivery.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"

namespace rill::mqtt {

using namespace std::chrono_literals;

BrokerAddress parse_broker_url(std::string_view url) {
    BrokerAddress a;
    std::string_view rest;
    if (url.starts_with("mqtt://")) {
        rest = url.substr(7);
        a.port = 1883;
    } else if (url.starts_with("mqtts://")) {
        rest = url.substr(8);
        a.port = 8883;
        a.tls = true;
    } else {
        throw std::invalid_argument("'" + std::string(url) +
                                    "' is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]");
    }
    std::string_view port;
    if (rest.starts_with("[")) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos)
            throw std::invalid_argument("'" + std::string(url) + "': no ']' after the IPv6 host");
        a.host = std::string(rest.substr(1, close - 1));
        rest = rest.substr(close + 1);
        if (rest.starts_with(":")) {
            port = rest.substr(1);
        } else if (!rest.empty()) {
            throw std::invalid_argument("'" + std::string(url) + "': junk after the host");
        }
    } else {
        const auto colon = rest.find(':');
        a.host = std::string(rest.substr(0, colon));
        if (colon != std::string_view::npos) port = rest.substr(colon + 1);
    }
    if (a.host.empty()) throw std::invalid_argument("'" + std::string(url) + "': no host");
    if (a.host.find('/') != std::string::npos)
        throw std::invalid_argument("'" + std::string(url) + "': a broker URL has no path");
    if (port.data() != nullptr) {
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value == 0 ||
            value > 65535)
            throw std::invalid_argument("'" + std::string(url) + "': port '" + std::string(port) +
                                        "' is not 1 to 65535");
        a.port = static_cast<std::uint16_t>(value);
    }
    return a;
}

namespace {

struct MosquittoDeleter {
    void operator()(mosquitto* m) const noexcept { mosquitto_destroy(m); }
};

void library_init() {
    static std::once_flag once;
    std::call_once(once, [] { mosquitto_lib_init(); });
}

std::string describe_rc(int rc) {
    if (rc == MOSQ_ERR_ERRNO) return std::system_category().message(errno);
    return mosquitto_strerror(rc);
}

// The reason label of a ParseResult error (rill_mqtt_messages_rejected_total).
std::string reject_reason(const std::string& error) {
    return error.starts_with("topic matches no rule") ? "unknown_topic" : "malformed";
}

}  // namespace

struct MqttBridge::Impl {
    MqttBridgeOptions o;
    ReliablePublisher& rp;
    MessageParser parser;
    BrokerAddress address;
    std::string broker_name;                           // for logs: the URL as given
    std::optional<detail::RedeliveryJournal> journal;  // none with redelivery_window 0
    std::unique_ptr<mosquitto, MosquittoDeleter> mosq;

    // Metrics.
    Counter& m_messages;
    Counter& m_readings;
    Counter& m_redelivered;
    Counter& m_reconnects;
    Counter& m_reads;
    Gauge& m_connected;
    std::map<std::string, Counter*> m_rejected;
    std::map<std::string, Counter*> m_ignored;
    std::atomic<std::uint64_t> messages{0}, readings{0}, rejected{0}, ignored{0}, redelivered{0},
        connects{0};
    std::atomic<bool> connected{false};

    RateLimitedLog rejected_log;
    Backoff backoff;
    bool attempted = false;           // a connection was attempted before
    bool was_connected = false;       // the socket that is down was connected
    std::string last_failure;         // the last failure logged, so each is logged once
    std::string library_error;        // the last error libmosquitto logged (TLS details)
    SteadyTime next_attempt{};        // when to connect again (while no socket)
    std::exception_ptr append_error;  // set by on_message; thrown by run() before any write
    bool held = false;                // the test hold was applied
    bool stopping = false;            // run() is disconnecting on request

    Impl(MqttBridgeOptions options, ReliablePublisher& publisher)
        : o(std::move(options)),
          rp(publisher),
          parser(o.rules),
          address(parse_broker_url(o.broker)),
          broker_name(o.broker),
          m_messages(default_registry().counter("rill_mqtt_messages_received_total",
                                                "MQTT messages received from the broker")),
          m_readings(default_registry().counter(
              "rill_mqtt_readings_published_total",
              "Readings made from MQTT messages, appended to the outbox and published")),
          m_redelivered(default_registry().counter(
              "rill_mqtt_redeliveries_total",
              "QoS 1 messages the broker sent again that were already in the outbox (not "
              "stored twice)")),
          m_reconnects(default_registry().counter(
              "rill_mqtt_reconnects_total", "Connection attempts to the broker after the first")),
          m_reads(default_registry().counter(
              "rill_mqtt_socket_reads_total",
              "Wake-ups that read the broker's socket (each takes every message waiting; at "
              "least --read-interval apart)")),
          m_connected(default_registry().gauge("rill_mqtt_broker_connected",
                                               "1 while connected to the MQTT broker, else 0")),
          rejected_log(o.log_component, "rejected MQTT messages"),
          backoff(o.reconnect) {
        for (const char* reason : {"unknown_topic", "malformed", "invalid_reading"}) {
            m_rejected[reason] = &default_registry().counter(
                "rill_mqtt_messages_rejected_total",
                "MQTT messages that made no reading: topic matching no rule, malformed payload, "
                "invalid reading",
                {{"reason", reason}});
        }
        for (const char* reason : {"retained", "no_reading"}) {
            m_ignored[reason] = &default_registry().counter(
                "rill_mqtt_messages_ignored_total",
                "MQTT messages known to carry no reading, and retained copies sent on subscribing",
                {{"reason", reason}});
        }
        if (o.redelivery_window > 0) {
            journal.emplace(publisher.outbox().dir() / "mqtt-redelivery", o.redelivery_window,
                            false);
        }
        library_init();
        mosq.reset(mosquitto_new(o.client_id.c_str(), false, this));
        if (!mosq) throw std::runtime_error("cannot create the MQTT client " + o.client_id);
        // Threaded mode: see on_message for why the acknowledgement order depends on it.
        check(mosquitto_threaded_set(mosq.get(), true), "threaded mode");
        check(mosquitto_int_option(mosq.get(), MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311),
              "protocol version");
        if (!o.username.empty()) {
            check(mosquitto_username_pw_set(mosq.get(), o.username.c_str(),
                                            o.password.empty() ? nullptr : o.password.c_str()),
                  "username and password");
        }
        if (address.tls) {
            const auto& t = o.tls;
            const std::string ca = t.ca_file.string(), cert = t.cert_file.string(),
                              key = t.key_file.string();
            check(mosquitto_tls_set(mosq.get(), ca.empty() ? nullptr : ca.c_str(),
                                    ca.empty() ? "/etc/ssl/certs" : nullptr,
                                    cert.empty() ? nullptr : cert.c_str(),
                                    key.empty() ? nullptr : key.c_str(), nullptr),
                  "TLS files (--tls-ca, --tls-cert, --tls-key)");
        }
        mosquitto_connect_with_flags_callback_set(mosq.get(), &Impl::on_connect);
        mosquitto_disconnect_callback_set(mosq.get(), &Impl::on_disconnect);
        mosquitto_subscribe_callback_set(mosq.get(), &Impl::on_subscribe);
        mosquitto_message_callback_set(mosq.get(), &Impl::on_message);
        mosquitto_log_callback_set(mosq.get(), &Impl::on_log);
    }

    void check(int rc, const std::string& what) const {
        if (rc != MOSQ_ERR_SUCCESS) {
            throw std::invalid_argument("MQTT client " + o.client_id + ": " + what + ": " +
                                        describe_rc(rc));
        }
    }

    static Impl& self(void* obj) { return *static_cast<Impl*>(obj); }

    static void on_log(mosquitto*, void* obj, int level, const char* text) {
        if ((level & MOSQ_LOG_ERR) != 0 && text != nullptr) self(obj).library_error = text;
    }

    static void on_connect(mosquitto* m, void* obj, int rc, int flags) {
        auto& s = self(obj);
        if (rc != 0) {
            s.failed(std::string("refused: ") + mosquitto_connack_string(rc));
            return;
        }
        const bool session_present = (flags & 1) != 0;
        try {
            if (s.journal) s.journal->new_epoch(session_present);
        } catch (...) {
            s.append_error = std::current_exception();
            return;
        }
        s.connected = true;
        s.was_connected = true;
        s.connects.fetch_add(1, std::memory_order_relaxed);
        s.m_connected.set(1);
        s.backoff.reset();
        s.last_failure.clear();
        log_info(s.o.log_component,
                 "connected to " + s.broker_name + " as " + s.o.client_id +
                     (session_present ? " (session resumed)"
                                      : " (new session: nothing held by the broker before)"));
        // Every connect subscribes again (a new session has none; a resumed one may lack a rule
        // added since): retained copies this sends are ignored in on_message.
        const auto filters = s.parser.subscriptions();
        std::vector<char*> c_filters;
        for (const auto& f : filters)
            c_filters.push_back(const_cast<char*>(f.c_str()));
        const int src = mosquitto_subscribe_multiple(m, nullptr, static_cast<int>(c_filters.size()),
                                                     c_filters.data(), 1, 0, nullptr);
        if (src != MOSQ_ERR_SUCCESS) {
            log_error(s.o.log_component, "cannot subscribe: " + describe_rc(src));
        }
    }

    static void on_subscribe(mosquitto*, void* obj, int, int count, const int* granted) {
        auto& s = self(obj);
        const auto filters = s.parser.subscriptions();
        std::string ok;
        for (int i = 0; i < count && i < static_cast<int>(filters.size()); ++i) {
            if (granted[i] > 2) {
                log_error(s.o.log_component, "the broker refused the subscription to " +
                                                 filters[static_cast<std::size_t>(i)]);
            } else {
                ok += (ok.empty() ? "" : ", ") + filters[static_cast<std::size_t>(i)] + " (QoS " +
                      std::to_string(granted[i]) + ")";
            }
        }
        if (!ok.empty()) log_info(s.o.log_component, "subscribed to " + ok);
    }

    static void on_disconnect(mosquitto*, void* obj, int rc) {
        auto& s = self(obj);
        s.lost(rc == 0 ? std::string("disconnected") : describe_rc(rc));
    }

    // The connection went down after it was accepted.
    void lost(const std::string& reason) {
        if (!connected) return;
        connected = false;
        m_connected.set(0);
        if (stopping) return;
        log_warn(o.log_component,
                 "lost the connection to " + broker_name + ": " + reason + "; reconnecting");
        last_failure.clear();
        next_attempt = std::chrono::steady_clock::now() + backoff.next_delay();
    }

    // A connection attempt failed (or the connection dropped before being accepted).
    void failed(std::string reason) {
        if (connected) {
            lost(reason);
            return;
        }
        if (!library_error.empty()) {
            reason += " (" + library_error + ")";
            library_error.clear();
        }
        const auto delay = backoff.next_delay();
        if (reason != last_failure) {
            log_warn(o.log_component, "cannot connect to " + broker_name + ": " + reason +
                                          "; retrying (backoff up to " +
                                          std::to_string(o.reconnect.max.count()) + " ms)");
            last_failure = reason;
        }
        next_attempt = std::chrono::steady_clock::now() + delay;
    }

    void hold(TestHold where, const mosquitto_message& msg) {
        if (o.test_hold != where || held) return;
        held = true;
        log_info(o.log_component,
                 std::string("test hold: message ") + msg.topic + " (mid " +
                     std::to_string(msg.mid) + ") held for " +
                     std::to_string(o.test_hold_for.count()) + " ms " +
                     (where == TestHold::before_append ? "before its append" : "after its append"));
        std::this_thread::sleep_for(o.test_hold_for);
    }

    void reject(const std::string& reason, const std::string& message) {
        rejected.fetch_add(1, std::memory_order_relaxed);
        m_rejected.at(reason)->inc();
        rejected_log.log(message);
    }

    // ACK AFTER APPEND. libmosquitto 2.0.11 in threaded mode (mosquitto_threaded_set, set in the
    // constructor) queues the PUBACK of a QoS 1 message when on_message returns and writes it in
    // the next mosquitto_loop_write of run()'s loop; without threaded mode it writes the PUBACK
    // BEFORE calling on_message (measured: the broker had the PUBACK 2 s before a sleeping
    // callback returned). So every reading of the message is appended to the outbox here, before
    // returning, and a kill before the append leaves the message unacknowledged: the broker sends
    // it again to the next run. Pinned by tests/mqtt ("a message held before its append ...").
    //
    // errno is 0 on return: read_available() tells an emptied socket by the EAGAIN of
    // libmosquitto's last read, which must not be faked by an append, nor by libmosquitto's
    // write to its internal socketpair when it queued the PUBACK before calling this (that
    // socketpair is never read in this loop, so the write fails with EAGAIN once it is full).
    static void on_message(mosquitto*, void* obj, const mosquitto_message* msg) {
        auto& s = self(obj);
        if (s.append_error) return;  // run() throws before anything more is written
        try {
            s.handle(*msg);
        } catch (...) {
            s.append_error = std::current_exception();
        }
        errno = 0;
    }

    void handle(const mosquitto_message& msg) {
        messages.fetch_add(1, std::memory_order_relaxed);
        m_messages.inc();
        const std::string_view topic(msg.topic);
        const std::string_view payload(static_cast<const char*>(msg.payload),
                                       static_cast<std::size_t>(std::max(0, msg.payloadlen)));
        if (msg.retain) {  // a stored copy sent on subscribing, not a new measurement
            ignored.fetch_add(1, std::memory_order_relaxed);
            m_ignored.at("retained")->inc();
            return;
        }
        const bool journalled = msg.qos > 0 && journal.has_value();
        const auto digest = detail::message_digest(topic, payload);
        if (journalled) {
            if (auto entry = journal->find(msg.mid, digest);
                entry && rp.outbox().newest(entry->sensor) >= entry->seq) {
                redelivered.fetch_add(1, std::memory_order_relaxed);
                m_redelivered.inc();
                log_debug(o.log_component, "redelivery of " + std::string(topic) + " (mid " +
                                               std::to_string(msg.mid) +
                                               ") is in the outbox already");
                return;
            }
        }
        hold(TestHold::before_append, msg);
        // rill::now(): 64-bit time on every target (armhf's libstdc++ system_clock is 32-bit).
        auto parsed = parser.parse(topic, payload, rill::now());
        if (!parsed.error.empty()) {
            reject(reject_reason(parsed.error), std::string(topic) + ": " + parsed.error);
            return;
        }
        if (parsed.readings.empty()) {
            ignored.fetch_add(1, std::memory_order_relaxed);
            m_ignored.at("no_reading")->inc();
            return;
        }
        // One outbox record per sensor (a device message may name several).
        std::stable_sort(parsed.readings.begin(), parsed.readings.end(),
                         [](const Reading& a, const Reading& b) { return a.sensor < b.sensor; });
        // Journalled BEFORE the append, with the seq the last sensor's append is to reach: a kill
        // anywhere after this line is told apart at the redelivery by the outbox's newest seq.
        if (journalled) {
            const auto& last = parsed.readings.back().sensor;
            journal->record(msg.mid, digest, {last, rp.outbox().newest(last) + 1});
        }
        std::size_t published = 0;
        for (std::size_t i = 0; i < parsed.readings.size();) {
            std::size_t j = i;
            while (j < parsed.readings.size() &&
                   parsed.readings[j].sensor == parsed.readings[i].sensor)
                ++j;
            std::span<Reading> batch(parsed.readings.data() + i, j - i);
            try {
                (void)rp.publish(batch);
                published += batch.size();
            } catch (const std::invalid_argument& e) {
                reject("invalid_reading", std::string(topic) + ": " + e.what());
            } catch (const zmq::error_t& e) {
                // Appended: subscribers get it by replay.
                log_warn(o.log_component, std::string("cannot send on the stream: ") + e.what());
                published += batch.size();
            }
            i = j;
        }
        readings.fetch_add(published, std::memory_order_relaxed);
        m_readings.inc(published);
        hold(TestHold::after_append, msg);
    }

    void throw_if_append_failed() {
        if (append_error) {
            // Nothing more is written to the broker: the message's PUBACK, queued when
            // on_message returned, dies with the client, and the broker sends it again.
            auto e = append_error;
            append_error = nullptr;
            std::rethrow_exception(e);
        }
    }

    void connect_now() {
        if (attempted) m_reconnects.inc();
        const int rc = attempted
                           ? mosquitto_reconnect_async(mosq.get())
                           : mosquitto_connect_async(mosq.get(), address.host.c_str(), address.port,
                                                     static_cast<int>(o.keepalive.count()));
        attempted = true;
        was_connected = false;
        if (rc != MOSQ_ERR_SUCCESS) failed(describe_rc(rc));
    }

    // After a loop call failed: the socket is closed by libmosquitto.
    void loop_failed(int rc) {
        if (rc == MOSQ_ERR_SUCCESS) return;
        if (connected) {
            lost(describe_rc(rc));
        } else {
            failed(describe_rc(rc));
        }
    }

    // Writes what is queued (PUBACKs, DISCONNECT) for at most `limit`.
    void drain_writes(std::chrono::milliseconds limit) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (mosquitto_socket(mosq.get()) >= 0 && mosquitto_want_write(mosq.get()) &&
               std::chrono::steady_clock::now() < end) {
            pollfd p{mosquitto_socket(mosq.get()), POLLOUT, 0};
            (void)::poll(&p, 1, 100);
            if (mosquitto_loop_write(mosq.get(), 1) != MOSQ_ERR_SUCCESS) return;
        }
    }

    // Reads every packet the socket holds, at most max_reads_per_wake. libmosquitto 2.0.11's
    // mosquitto_loop_read ignores its max_packets (it reads as many packets as it has QoS 1/2
    // messages in flight, usually one) and returns after the read that found the socket empty
    // (errno EAGAIN, also when a packet is only partly there), so it is called until errno says
    // so. The PUBACKs these messages queued are written afterwards, by run()'s
    // mosquitto_loop_write: after every append (see on_message).
    void read_available(int sock) {
        m_reads.inc();
        constexpr int max_reads_per_wake = 1024;
        for (int i = 0; i < max_reads_per_wake; ++i) {
            const bool was_connected_now = connected;
            errno = 0;
            const int rc = mosquitto_loop_read(mosq.get(), 1);
            const int read_errno = errno;
            throw_if_append_failed();
            if (rc != MOSQ_ERR_SUCCESS) {
                loop_failed(rc);
                return;
            }
            // Before the CONNACK (e.g. a TLS handshake in steps) one read per wake-up.
            if (read_errno == EAGAIN || read_errno == EWOULDBLOCK || !was_connected_now ||
                mosquitto_socket(mosq.get()) != sock)
                return;
        }
    }

    void run(const StopFlag& stop, const MqttBridgeHooks& hooks) {
        auto next_status = std::chrono::steady_clock::now();
        next_attempt = next_status;
        SteadyTime next_read = next_status;  // the socket is not read before (read_interval)
        while (!stop.requested()) {
            auto now = std::chrono::steady_clock::now();
            int sock = mosquitto_socket(mosq.get());
            if (sock < 0 && now >= next_attempt) {
                connect_now();
                sock = mosquitto_socket(mosq.get());
            }
            const SteadyTime duty = rp.service();
            now = std::chrono::steady_clock::now();
            SteadyTime wake = std::min({duty, now + 1s, rejected_log.flush_due()});
            if (hooks.keep_alive) wake = std::min(wake, hooks.keep_alive());
            if (sock < 0) wake = std::min(wake, next_attempt);
            const bool read_due = now >= next_read;
            if (sock >= 0 && !read_due) wake = std::min(wake, next_read);
            const auto timeout = std::max<std::int64_t>(
                0,
                std::chrono::duration_cast<std::chrono::milliseconds>(wake - now + 999us).count());
            std::array<pollfd, 2> fds{};
            fds[0] = {stop.fd(), POLLIN, 0};
            nfds_t n = 1;
            if (sock >= 0) {
                // Not POLLIN before next_read: what arrives meanwhile is read in one go then.
                // POLLERR and POLLHUP are reported regardless and read at once.
                fds[1] = {sock,
                          static_cast<short>((read_due ? POLLIN : 0) |
                                             (mosquitto_want_write(mosq.get()) ? POLLOUT : 0)),
                          0};
                n = 2;
            }
            const int ready = ::poll(fds.data(), n, static_cast<int>(timeout));
            if (ready < 0 && errno != EINTR)
                throw std::system_error(errno, std::system_category(), "poll");
            if (sock >= 0 && mosquitto_socket(mosq.get()) == sock) {
                if (ready > 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
                    read_available(sock);
                    next_read = std::chrono::steady_clock::now() + o.read_interval;
                }
                if (mosquitto_socket(mosq.get()) >= 0 && mosquitto_want_write(mosq.get())) {
                    loop_failed(mosquitto_loop_write(mosq.get(), 1));
                }
                if (mosquitto_socket(mosq.get()) >= 0) loop_failed(mosquitto_loop_misc(mosq.get()));
                if (mosquitto_socket(mosq.get()) < 0 && !connected &&
                    next_attempt <= std::chrono::steady_clock::now()) {
                    // Closed without a callback (a failed TCP or TLS handshake).
                    failed(library_error.empty() ? "connection closed" : "TLS or socket error");
                }
            }
            rejected_log.flush();
            now = std::chrono::steady_clock::now();
            if (now >= next_status) {
                if (hooks.status) hooks.status(stats());
                next_status = now + 1s;
            }
        }
        // Clean stop: the PUBACKs due, then DISCONNECT (the session stays: clean session off).
        if (mosquitto_socket(mosq.get()) >= 0) {
            drain_writes(2s);
            if (connected) {
                stopping = true;
                (void)mosquitto_disconnect(mosq.get());
                drain_writes(2s);
            }
        }
        connected = false;
        m_connected.set(0);
        rp.flush();
        log_info(o.log_component, "disconnected from " + broker_name);
    }

    MqttBridgeStats stats() const noexcept {
        MqttBridgeStats s;
        s.messages = messages.load(std::memory_order_relaxed);
        s.readings = readings.load(std::memory_order_relaxed);
        s.rejected = rejected.load(std::memory_order_relaxed);
        s.ignored = ignored.load(std::memory_order_relaxed);
        s.redelivered = redelivered.load(std::memory_order_relaxed);
        s.connects = connects.load(std::memory_order_relaxed);
        s.connected = connected.load(std::memory_order_relaxed);
        return s;
    }
};

namespace {
MqttBridgeOptions checked(MqttBridgeOptions o) {
    if (o.client_id.empty()) throw std::invalid_argument("MQTT bridge: client_id is required");
    if (o.client_id.size() > 65535)
        throw std::invalid_argument("MQTT bridge: client_id is longer than 65535 bytes");
    if (o.rules.empty()) throw std::invalid_argument("MQTT bridge: no topic rules");
    if (o.redelivery_window > 32768)
        throw std::invalid_argument("MQTT bridge: redelivery_window must be 0 to 32768");
    if (o.keepalive < 5s || o.keepalive > 65535s)
        throw std::invalid_argument("MQTT bridge: keepalive must be 5 s to 65535 s");
    if (o.read_interval < 0ms || o.read_interval > 1s)
        throw std::invalid_argument("MQTT bridge: read_interval must be 0 to 1 s");
    (void)parse_broker_url(o.broker);
    return o;
}
}  // namespace

MqttBridge::MqttBridge(MqttBridgeOptions options, ReliablePublisher& publisher)
    : impl_(std::make_unique<Impl>(checked(std::move(options)), publisher)) {}

MqttBridge::~MqttBridge() = default;

void MqttBridge::run(const StopFlag& stop, const MqttBridgeHooks& hooks) {
    impl_->run(stop, hooks);
}

MqttBridgeStats MqttBridge::stats() const noexcept {
    return impl_->stats();
}

}  // namespace rill::mqtt
