// ConnectionPool: a bounded set of Connections lent to threads one at a time.
#include <libpq-fe.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "rill/store_reader.hpp"

namespace rill::store {

namespace {

// Connection::open names its attempt; the pool's callers (an HTTP 503 body, a health reason)
// have always said "cannot connect to the database: <libpq's reason>".
std::string connect_reason(const StoreError& e) {
    constexpr std::string_view prefix = "cannot connect to PostgreSQL: ";
    std::string_view what = e.what();
    if (what.starts_with(prefix)) what.remove_prefix(prefix.size());
    return std::string(what);
}

std::string quoted_literal(std::string_view s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

}  // namespace

struct ConnectionPool::Shared {
    PoolOptions options;
    mutable std::mutex mutex;
    std::condition_variable cv;
    std::vector<Connection> idle;
    std::size_t open = 0;
    std::chrono::steady_clock::time_point retry_after{};
    std::string last_error;
    ErrorKind last_kind = ErrorKind::transient;

    // Takes a connection back (kept when reusable), or just its slot when `conn` is empty.
    void give_back(Connection conn) noexcept {
        {
            std::lock_guard lock(mutex);
            if (conn.connected() && PQtransactionStatus(conn.native()) == PQTRANS_IDLE) {
                idle.push_back(std::move(conn));
            } else {
                --open;
            }
        }
        cv.notify_one();
    }

    // The server went away: the idle connections are as dead as the one that noticed.
    void drop_idle() noexcept {
        std::vector<Connection> dead;
        {
            std::lock_guard lock(mutex);
            open -= idle.size();
            dead.swap(idle);
        }
        cv.notify_all();
    }

    // Opens and prepares one connection; the caller holds a slot in `open`.
    Connection connect() {
        try {
            Connection c = Connection::open(options.conninfo);
            // No JIT: the reader's statements are short index walks, for which compiling
            // (100s of ms per statement) costs many times what it could save.
            std::string set = "SET jit = off;";
            if (options.statement_timeout.count() > 0) {
                set += "SET statement_timeout = '" +
                       std::to_string(options.statement_timeout.count()) + "ms';";
            }
            if (!options.application_name.empty()) {
                set += "SET application_name = " + quoted_literal(options.application_name) + ";";
            }
            (void)c.exec(set, "set up a pooled connection");
            return c;
        } catch (const StoreError& e) {
            std::string why = connect_reason(e);
            {
                std::lock_guard lock(mutex);
                --open;
                last_error = why;
                last_kind = e.kind();
                retry_after = std::chrono::steady_clock::now() + options.connect_backoff;
            }
            cv.notify_one();
            throw StoreError(e.kind(), e.sqlstate(), "cannot connect to the database: " + why);
        }
    }
};

ConnectionPool::Lease::Lease(std::shared_ptr<Shared> pool, Connection conn) noexcept
    : pool_(std::move(pool)), conn_(std::move(conn)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::move(other.pool_)), conn_(std::move(other.conn_)) {}

ConnectionPool::Lease::~Lease() {
    if (pool_) pool_->give_back(std::move(conn_));
}

ConnectionPool::ConnectionPool(PoolOptions options) : shared_(std::make_shared<Shared>()) {
    shared_->options = std::move(options);
    shared_->options.max_connections = std::max<std::size_t>(shared_->options.max_connections, 1);
}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease ConnectionPool::acquire() {
    auto& s = *shared_;
    {
        std::unique_lock lock(s.mutex);
        const std::size_t max = s.options.max_connections;
        if (!s.cv.wait_for(lock, s.options.acquire_timeout,
                           [&] { return !s.idle.empty() || s.open < max; })) {
            throw StoreError(ErrorKind::transient, "",
                             "all " + std::to_string(max) + " database connections are busy");
        }
        if (!s.idle.empty()) {
            Connection c = std::move(s.idle.back());
            s.idle.pop_back();
            return Lease(shared_, std::move(c));
        }
        if (std::chrono::steady_clock::now() < s.retry_after) {
            throw StoreError(s.last_kind, "", "cannot connect to the database: " + s.last_error);
        }
        ++s.open;
    }
    // Connect outside the lock: it may take up to the connect timeout.
    return Lease(shared_, s.connect());
}

Result ConnectionPool::query(const std::string& sql, const std::vector<std::string>& params,
                             std::string_view what, ResultFormat format) {
    for (int attempt = 0;; ++attempt) {
        Lease lease = acquire();
        try {
            return lease->exec_params(sql, params, what, format);
        } catch (const StoreError&) {
            if (lease->connected()) throw;
            shared_->drop_idle();
            if (attempt > 0) throw;
            // A pooled connection died (e.g. the server restarted): one fresh try.
        }
    }
}

std::optional<std::string> ConnectionPool::ping() noexcept {
    try {
        (void)query("SELECT 1", {}, "ping the database");
        return std::nullopt;
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
}

std::size_t ConnectionPool::open_connections() const noexcept {
    std::lock_guard lock(shared_->mutex);
    return shared_->open;
}

std::size_t ConnectionPool::idle_connections() const noexcept {
    std::lock_guard lock(shared_->mutex);
    return shared_->idle.size();
}

}  // namespace rill::store
