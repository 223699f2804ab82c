// BatchWriter: batches by size and time, one binary COPY per batch, exactly-once by
// (sensor, seq), reconnect with backoff.
#include <algorithm>
#include <charconv>
#include <deque>
#include <limits>
#include <thread>
#include <unordered_map>

#include "rill/log.hpp"
#include "rill/store.hpp"

namespace rill::store {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t max_seq =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

const std::string copy_readings_sql =
    "COPY readings (" + std::string(copy_columns) + ") FROM STDIN (FORMAT binary)";
const std::string copy_staging_sql =
    "COPY rill_staging (" + std::string(copy_columns) + ") FROM STDIN (FORMAT binary)";
const std::string insert_from_staging_sql = "INSERT INTO readings (" + std::string(copy_columns) +
                                            ") SELECT " + std::string(copy_columns) +
                                            " FROM rill_staging ON CONFLICT DO NOTHING";
// Session-private, emptied at every commit; created once per connection, outside any batch
// transaction so that a rolled-back batch doesn't take it along.
const std::string create_staging_sql =
    "CREATE TEMP TABLE IF NOT EXISTS rill_staging (LIKE readings INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS";

// The sensors that have rows, by a loose index scan on the primary key: one index probe per
// distinct sensor instead of a scan of the whole table.
const std::string sensors_sql = R"sql(
WITH RECURSIVE s(sensor) AS (
    SELECT min(sensor) FROM readings
  UNION ALL
    SELECT (SELECT min(r.sensor) FROM readings r WHERE r.sensor > s.sensor)
    FROM s WHERE s.sensor IS NOT NULL
)
SELECT sensor FROM s WHERE sensor IS NOT NULL)sql";

// Gaps and islands for one sensor: within an island seq - row_number() is constant, so
// grouping by it yields one row per island. Cost: one ordered index(-only) scan of that
// sensor's part of the primary key, i.e. O(rows of the sensor), plus a sort-free aggregate;
// roughly a second per 5-10 million rows on a small machine. See docs/storage.md.
const std::string islands_sql = R"sql(
SELECT min(seq), max(seq)
FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS island
      FROM readings WHERE sensor = $1 AND seq > 0) t
GROUP BY island ORDER BY 1)sql";

struct SensorState {
    SeqRanges stored;   // known committed
    SeqRanges pending;  // queued, not yet committed
    // A run of consecutive seqs committed by the batch being booked (see book_commit).
    bool has_run = false;
    SeqRange run{};
};

struct Pending {
    Reading reading;
    SensorState* state;  // stable: unordered_map nodes don't move
};

std::uint64_t to_u64(std::string_view text) {
    std::uint64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

}  // namespace

struct BatchWriter::Impl {
    WriterOptions options;
    Connection conn;
    bool staging_ready = false;
    Backoff backoff;
    Clock::time_point retry_at{};
    unsigned attempts = 0;  // reconnect attempts since the last failure
    std::unordered_map<std::string, SensorState> sensors;
    std::deque<Pending> pending;
    Clock::time_point oldest{};  // when pending last went from empty to non-empty
    std::string buffer;
    WriterStats stats;
    std::function<void(const ReconnectEvent&)> observer;

    explicit Impl(WriterOptions o) : options(std::move(o)), backoff(options.backoff) {
        if (options.batch_max == 0) options.batch_max = 1;
        if (options.pending_max < options.batch_max) options.pending_max = options.batch_max;
    }

    void load_stored_ranges() {
        Result names;
        try {
            names = conn.exec(sensors_sql, "list the sensors in readings");
        } catch (const StoreError& e) {
            // Citus does not run recursive CTEs over distributed tables (0A000); there a plain
            // DISTINCT is pushed down to the shards in parallel anyway.
            if (e.sqlstate() != "0A000") throw;
            names = conn.exec("SELECT DISTINCT sensor FROM readings ORDER BY 1",
                              "list the sensors in readings");
        }
        for (int i = 0; i < names.rows(); ++i) {
            std::string name(names.value(i, 0));
            if (!name.starts_with(options.sensor_prefix)) continue;
            const Result islands =
                conn.exec_params(islands_sql, {name}, "load the stored ranges of " + name);
            auto& state = sensors[name];
            for (int j = 0; j < islands.rows(); ++j) {
                state.stored.insert(
                    SeqRange{to_u64(islands.value(j, 0)), to_u64(islands.value(j, 1))});
            }
        }
    }

    void notify(const ReconnectEvent& e) {
        if (observer) observer(e);
    }

    // After a failure: drop the connection and schedule the next attempt. Returns the delay.
    // Logs the failure unless `quiet` (a failed reconnect that an observer reports itself).
    std::chrono::milliseconds schedule_retry(const StoreError& e, bool quiet = false) {
        conn.close();
        staging_ready = false;
        const auto delay = backoff.next_delay();
        retry_at = Clock::now() + delay;
        if (!quiet) {
            log_warn("store", std::string(e.what()) + "; retrying in " +
                                  std::to_string(delay.count()) + " ms");
        }
        return delay;
    }

    // One reconnect attempt. Returns whether it worked; throws on a permanent failure.
    bool reconnect() {
        ++attempts;
        try {
            conn = Connection::open(options.conninfo);
        } catch (const StoreError& e) {
            ++stats.database_errors;
            if (!e.transient()) throw;
            // An observer reports reconnect attempts itself: one log line per event, not two.
            const auto delay = schedule_retry(e, static_cast<bool>(observer));
            notify({attempts, false, delay, e.what()});
            return false;
        }
        ++stats.reconnects;
        if (!observer) {
            log_info("store",
                     "reconnected to PostgreSQL after " + std::to_string(attempts) + " attempt(s)");
        }
        notify({attempts, true, std::chrono::milliseconds(0), ""});
        attempts = 0;
        backoff.reset();
        return true;
    }

    void encode(std::size_t n) {
        buffer.clear();
        append_copy_header(buffer);
        for (std::size_t i = 0; i < n; ++i)
            append_copy_tuple(pending[i].reading, buffer);
        append_copy_trailer(buffer);
    }

    // The slow path for a batch the database partly knows: stage it, then insert what is new.
    // Returns the number of rows inserted.
    std::uint64_t write_through_staging(std::size_t n) {
        if (!staging_ready) {
            conn.exec(create_staging_sql, "create the staging table");
            staging_ready = true;
        }
        conn.exec("BEGIN", "begin a staged batch");
        try {
            conn.copy_in(copy_staging_sql, buffer,
                         "COPY " + std::to_string(n) + " readings into rill_staging");
            const Result r = conn.exec(insert_from_staging_sql,
                                       "insert " + std::to_string(n) + " staged readings");
            conn.exec("COMMIT", "commit a staged batch");
            return r.affected();
        } catch (...) {
            if (conn.connected()) {
                try {
                    conn.exec("ROLLBACK", "roll back a staged batch");
                } catch (...) {
                }
            }
            throw;
        }
    }

    // Writes the first n pending readings in one transaction. Throws StoreError.
    void write_batch(std::size_t n) {
        const auto start = Clock::now();
        encode(n);
        std::uint64_t inserted = 0;
        try {
            // The hot path: a single COPY is one transaction of its own.
            inserted = conn.copy_in(copy_readings_sql, buffer,
                                    "COPY " + std::to_string(n) + " readings into readings");
        } catch (const StoreError& e) {
            if (e.sqlstate() != "23505") throw;
            inserted = write_through_staging(n);
            ++stats.fallback_batches;
            stats.duplicates_hit += n - inserted;
            log_info("store", "batch of " + std::to_string(n) + " hit " +
                                  std::to_string(n - inserted) +
                                  " readings already stored; inserted the rest");
        }
        const auto took =
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
        stats.readings_stored += inserted;
        ++stats.batches;
        stats.last_batch_latency = took;
        stats.max_batch_latency = std::max(stats.max_batch_latency, took);
        stats.total_batch_latency += took;
        book_commit(n);
    }

    // Moves the first n pending readings from pending to stored, range by range.
    void book_commit(std::size_t n) {
        std::vector<SensorState*> touched;
        auto close_run = [](SensorState* s) {
            s->stored.insert(s->run);
            s->pending.erase(s->run);
            s->has_run = false;
        };
        for (std::size_t i = 0; i < n; ++i) {
            SensorState* s = pending[i].state;
            const std::uint64_t seq = pending[i].reading.seq;
            if (s->has_run && seq == s->run.last + 1) {
                s->run.last = seq;
                continue;
            }
            if (s->has_run) {
                close_run(s);
            } else {
                touched.push_back(s);
            }
            s->has_run = true;
            s->run = {seq, seq};
        }
        for (SensorState* s : touched) {
            if (s->has_run) close_run(s);
        }
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n));
    }

    bool probe() {
        if (!conn.connected()) {
            if (Clock::now() < retry_at) return false;
            return reconnect();
        }
        try {
            (void)conn.exec("SELECT 1", "probe the database");
            return true;
        } catch (const StoreError& e) {
            ++stats.database_errors;
            if (!e.transient()) throw;
            (void)schedule_retry(e);
            return false;
        }
    }

    std::size_t flush() {
        std::size_t done = 0;
        while (!pending.empty()) {
            if (!conn.connected()) {
                if (Clock::now() < retry_at) return done;
                if (!reconnect()) return done;
            }
            const std::size_t n = std::min(options.batch_max, pending.size());
            try {
                write_batch(n);
            } catch (const StoreError& e) {
                ++stats.database_errors;
                if (!e.transient()) throw;
                (void)schedule_retry(e);
                return done;
            }
            done += n;
        }
        return done;
    }
};

BatchWriter::BatchWriter(WriterOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
    impl_->conn = Connection::open(impl_->options.conninfo);
    if (impl_->options.migrate) {
        const auto applied = migrate(impl_->conn);
        for (const int v : applied) {
            log_info("store", "applied schema migration " + std::to_string(v));
        }
    }
    impl_->load_stored_ranges();
}

BatchWriter::~BatchWriter() = default;
BatchWriter::BatchWriter(BatchWriter&&) noexcept = default;
BatchWriter& BatchWriter::operator=(BatchWriter&&) noexcept = default;

BatchWriter::AddResult BatchWriter::add(Reading reading) {
    Impl& w = *impl_;
    if (reading.seq > max_seq || reading_problem(reading)) {
        ++w.stats.invalid_rejected;
        return AddResult::invalid;
    }
    auto it = w.sensors.find(reading.sensor);
    if (it != w.sensors.end() &&
        (it->second.stored.contains(reading.seq) || it->second.pending.contains(reading.seq))) {
        ++w.stats.duplicates_skipped;
        return AddResult::duplicate;
    }
    if (w.pending.size() >= w.options.pending_max) return AddResult::full;
    if (it == w.sensors.end()) it = w.sensors.try_emplace(reading.sensor).first;
    SensorState& s = it->second;
    s.pending.insert(reading.seq);
    if (w.pending.empty()) w.oldest = Clock::now();
    w.pending.push_back(Pending{std::move(reading), &s});
    return AddResult::accepted;
}

std::size_t BatchWriter::add(std::span<const Reading> readings) {
    std::size_t taken = 0;
    for (const auto& r : readings) {
        if (add(r) == AddResult::full) break;
        ++taken;
    }
    return taken;
}

bool BatchWriter::due() const noexcept {
    const auto at = next_deadline();
    return at && Clock::now() >= *at;
}

std::optional<std::chrono::steady_clock::time_point> BatchWriter::next_deadline() const noexcept {
    const Impl& w = *impl_;
    if (w.pending.empty()) return std::nullopt;
    const auto ready =
        w.pending.size() >= w.options.batch_max ? w.oldest : w.oldest + w.options.flush_interval;
    if (!w.conn.connected()) return std::max(ready, w.retry_at);
    return ready;
}

std::size_t BatchWriter::flush() {
    return impl_->flush();
}

bool BatchWriter::drain(std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        (void)impl_->flush();
        if (impl_->pending.empty()) return true;
        const auto now = Clock::now();
        if (now >= deadline) return false;
        std::this_thread::sleep_until(std::min(std::max(impl_->retry_at, now), deadline));
    }
}

std::size_t BatchWriter::pending() const noexcept {
    return impl_->pending.size();
}
std::size_t BatchWriter::pending_max() const noexcept {
    return impl_->options.pending_max;
}
double BatchWriter::fill() const noexcept {
    return static_cast<double>(impl_->pending.size()) /
           static_cast<double>(impl_->options.pending_max);
}
bool BatchWriter::probe() {
    return impl_->probe();
}

bool BatchWriter::connected() const noexcept {
    return impl_->conn.connected();
}

SeqRanges BatchWriter::stored_ranges(std::string_view sensor) const {
    const auto it = impl_->sensors.find(std::string(sensor));
    return it == impl_->sensors.end() ? SeqRanges{} : it->second.stored;
}

std::vector<std::string> BatchWriter::sensors() const {
    std::vector<std::string> out;
    for (const auto& [name, state] : impl_->sensors) {
        if (!state.stored.empty()) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

WriterStats BatchWriter::stats() const noexcept {
    return impl_->stats;
}

BatchWriter open_writer(const WriterOptions& options, const std::function<bool()>& keep_trying,
                        const std::function<void(const ReconnectEvent&)>& observer) {
    Backoff backoff(options.backoff);
    for (unsigned attempt = 1;; ++attempt) {
        try {
            return BatchWriter(options);
        } catch (const StoreError& e) {
            if (!e.transient()) throw;
            const auto delay = backoff.next_delay();
            if (observer) {
                observer({attempt, false, delay, e.what()});
            } else {
                log_warn("store", std::string(e.what()) + "; retrying in " +
                                      std::to_string(delay.count()) + " ms");
            }
            const auto until = Clock::now() + delay;
            while (Clock::now() < until) {
                if (!keep_trying()) throw;
                std::this_thread::sleep_for(
                    std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
            }
            if (!keep_trying()) throw;
        }
    }
}

void BatchWriter::on_reconnect(std::function<void(const ReconnectEvent&)> observer) {
    impl_->observer = std::move(observer);
}

}  // namespace rill::store
