#include "rill/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <variant>

namespace rill {

namespace {

bool valid_name(std::string_view name, bool allow_colon) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
        const char c = name[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                           (allow_colon && c == ':');
        const bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0)) return false;
    }
    return true;
}

Labels sorted_labels(const Labels& labels) {
    Labels out = labels;
    std::sort(out.begin(), out.end());
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (!valid_name(out[i].first, false) || out[i].first == "le") {
            throw std::invalid_argument("invalid metric label name \"" + out[i].first + "\"");
        }
        if (i > 0 && out[i].first == out[i - 1].first) {
            throw std::invalid_argument("duplicate metric label \"" + out[i].first + "\"");
        }
    }
    return out;
}

void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
    } else if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
    } else {
        char buf[64];
        const auto res = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, res.ptr);
    }
}

void append_number(std::string& out, std::uint64_t v) {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, res.ptr);
}

void append_label_value(std::string& out, std::string_view v) {
    for (const char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

void append_help(std::string& out, std::string_view v) {
    for (const char c : v) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
}

// `{a="1",b="2"}` plus an optional extra label (le) last; nothing when there are no labels.
void append_labels(std::string& out, const Labels& labels, std::string_view extra_name = {},
                   std::string_view extra_value = {}) {
    if (labels.empty() && extra_name.empty()) return;
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) out += ',';
        first = false;
        out += k;
        out += "=\"";
        append_label_value(out, v);
        out += '"';
    }
    if (!extra_name.empty()) {
        if (!first) out += ',';
        out += extra_name;
        out += "=\"";
        out += extra_value;
        out += '"';
    }
    out += '}';
}

}  // namespace

// --- Histogram ------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
    for (const double b : bounds_) {
        if (!std::isfinite(b)) throw std::invalid_argument("histogram bounds must be finite");
    }
    std::sort(bounds_.begin(), bounds_.end());
    bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
    buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
    for (std::size_t i = 0; i <= bounds_.size(); ++i)
        buckets_[i].store(0);
}

void Histogram::observe(double value) noexcept {
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
    const auto index = static_cast<std::size_t>(it - bounds_.begin());
    buckets_[index].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot s;
    s.bounds = bounds_;
    s.counts.resize(bounds_.size() + 1);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        s.counts[i] = cumulative;
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    // The +Inf bucket and the count must agree for scrapers; take the bucket total.
    s.count = cumulative;
    return s;
}

std::vector<double> latency_buckets() {
    return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
            0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

// --- MetricsRegistry ------------------------------------------------------------------------

enum class MetricKind { counter, gauge, histogram };

namespace detail {

// A collector of collect_gauges(): shared by its family (while registered) and its handle.
// `call` is held while `fn` runs, so that unregistering waits for a render calling it.
struct CollectorEntry {
    std::string name;
    std::mutex call;
    GaugeCollector fn;
};

}  // namespace detail

struct MetricsRegistry::Family {
    MetricKind kind;
    std::string help;
    std::map<Labels, std::variant<std::unique_ptr<Counter>, std::unique_ptr<Gauge>,
                                  std::unique_ptr<Histogram>>>
        members;
    std::shared_ptr<detail::CollectorEntry> collector;  // set: a collected gauge family
};

namespace {

std::string_view kind_name(MetricKind k) {
    switch (k) {
        case MetricKind::counter:
            return "counter";
        case MetricKind::gauge:
            return "gauge";
        case MetricKind::histogram:
            return "histogram";
    }
    return "untyped";
}

}  // namespace

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

namespace {

template <typename Families>
auto& family_for(Families& families, std::string_view name, std::string_view help,
                 MetricKind kind) {
    if (!valid_name(name, true)) {
        throw std::invalid_argument("invalid metric name \"" + std::string(name) + "\"");
    }
    auto it = families.find(name);
    if (it == families.end()) {
        using FamilyPtr = typename Families::mapped_type;
        auto family = FamilyPtr(new typename FamilyPtr::element_type{kind, std::string(help), {}});
        it = families.emplace(std::string(name), std::move(family)).first;
    } else if (it->second->collector) {
        throw std::invalid_argument("metric \"" + std::string(name) +
                                    "\" is already registered by a collector");
    } else if (it->second->kind != kind) {
        throw std::invalid_argument("metric \"" + std::string(name) + "\" is already a " +
                                    std::string(kind_name(it->second->kind)) + ", not a " +
                                    std::string(kind_name(kind)));
    }
    return *it->second;
}

}  // namespace

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  const Labels& labels) {
    auto key = sorted_labels(labels);
    const std::lock_guard lock(mutex_);
    auto& family = family_for(families_, name, help, MetricKind::counter);
    auto [it, inserted] = family.members.try_emplace(std::move(key));
    if (inserted) it->second = std::make_unique<Counter>();
    return *std::get<std::unique_ptr<Counter>>(it->second);
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    auto key = sorted_labels(labels);
    const std::lock_guard lock(mutex_);
    auto& family = family_for(families_, name, help, MetricKind::gauge);
    auto [it, inserted] = family.members.try_emplace(std::move(key));
    if (inserted) it->second = std::make_unique<Gauge>();
    return *std::get<std::unique_ptr<Gauge>>(it->second);
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::vector<double> bounds, const Labels& labels) {
    auto key = sorted_labels(labels);
    const std::lock_guard lock(mutex_);
    auto& family = family_for(families_, name, help, MetricKind::histogram);
    auto [it, inserted] = family.members.try_emplace(std::move(key));
    if (inserted) it->second = std::make_unique<Histogram>(std::move(bounds));
    return *std::get<std::unique_ptr<Histogram>>(it->second);
}

std::optional<double> MetricsRegistry::value(std::string_view name, const Labels& labels) const {
    Labels key = labels;
    std::sort(key.begin(), key.end());
    const std::lock_guard lock(mutex_);
    const auto fit = families_.find(name);
    if (fit == families_.end()) return std::nullopt;
    const auto mit = fit->second->members.find(key);
    if (mit == fit->second->members.end()) return std::nullopt;
    return std::visit(
        [](const auto& m) -> double {
            using T = std::decay_t<decltype(*m)>;
            if constexpr (std::is_same_v<T, Histogram>) {
                return static_cast<double>(m->snapshot().count);
            } else {
                return static_cast<double>(m->value());
            }
        },
        mit->second);
}

namespace {

// Labels sorted by name when every name is valid (and not `le`) and unique; else nothing.
std::optional<Labels> checked_labels(Labels labels) {
    std::sort(labels.begin(), labels.end());
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (!valid_name(labels[i].first, false) || labels[i].first == "le") return std::nullopt;
        if (i > 0 && labels[i].first == labels[i - 1].first) return std::nullopt;
    }
    return labels;
}

// What a collector returns now, ready to render: valid samples sorted by labels, the first of
// each label set kept. Nothing from a collector that threw.
std::vector<Sample> collect_now(detail::CollectorEntry& entry) {
    std::vector<Sample> samples;
    {
        const std::lock_guard call(entry.call);
        if (!entry.fn) return samples;
        try {
            samples = entry.fn();
        } catch (...) {
            return {};
        }
    }
    std::vector<Sample> valid;
    valid.reserve(samples.size());
    for (auto& s : samples) {
        if (auto labels = checked_labels(std::move(s.labels))) {
            valid.push_back(Sample{std::move(*labels), s.value});
        }
    }
    const auto by_labels = [](const Sample& a, const Sample& b) { return a.labels < b.labels; };
    std::stable_sort(valid.begin(), valid.end(), by_labels);
    valid.erase(std::unique(valid.begin(), valid.end(),
                            [](const Sample& a, const Sample& b) { return a.labels == b.labels; }),
                valid.end());
    return valid;
}

}  // namespace

CollectorHandle MetricsRegistry::collect_gauges(std::string_view name, std::string_view help,
                                                GaugeCollector collect) {
    if (!collect) {
        throw std::invalid_argument("metric \"" + std::string(name) + "\" needs a collector");
    }
    if (!valid_name(name, true)) {
        throw std::invalid_argument("invalid metric name \"" + std::string(name) + "\"");
    }
    auto entry = std::make_shared<detail::CollectorEntry>();
    entry->name = std::string(name);
    entry->fn = std::move(collect);
    const std::lock_guard lock(mutex_);
    if (families_.find(name) != families_.end()) {
        throw std::invalid_argument("metric \"" + std::string(name) + "\" is already registered");
    }
    auto family =
        std::unique_ptr<Family>(new Family{MetricKind::gauge, std::string(help), {}, entry});
    families_.emplace(std::string(name), std::move(family));
    return CollectorHandle(this, std::move(entry));
}

void MetricsRegistry::remove_collector(detail::CollectorEntry& entry) noexcept {
    {
        const std::lock_guard lock(mutex_);
        const auto it = families_.find(entry.name);
        if (it != families_.end() && it->second->collector.get() == &entry) families_.erase(it);
    }
    const std::lock_guard call(entry.call);  // waits for a render running the callback
    entry.fn = nullptr;
}

std::string MetricsRegistry::render_prometheus() const {
    // Collectors run first, without mutex_ held: they may use this registry or their own locks.
    std::vector<std::shared_ptr<detail::CollectorEntry>> entries;
    {
        const std::lock_guard lock(mutex_);
        for (const auto& [name, family] : families_) {
            if (family->collector) entries.push_back(family->collector);
        }
    }
    std::map<const detail::CollectorEntry*, std::vector<Sample>> collected;
    for (const auto& e : entries)
        collected.emplace(e.get(), collect_now(*e));

    std::string out;
    const std::lock_guard lock(mutex_);
    for (const auto& [name, family] : families_) {
        out += "# HELP ";
        out += name;
        out += ' ';
        append_help(out, family->help);
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += kind_name(family->kind);
        out += '\n';
        if (family->collector) {
            // Registered after the collectors ran: no samples this time.
            const auto it = collected.find(family->collector.get());
            if (it == collected.end()) continue;
            for (const auto& s : it->second) {
                out += name;
                append_labels(out, s.labels);
                out += ' ';
                append_number(out, s.value);
                out += '\n';
            }
            continue;
        }
        for (const auto& [labels, member] : family->members) {
            if (const auto* c = std::get_if<std::unique_ptr<Counter>>(&member)) {
                out += name;
                append_labels(out, labels);
                out += ' ';
                append_number(out, (*c)->value());
                out += '\n';
            } else if (const auto* g = std::get_if<std::unique_ptr<Gauge>>(&member)) {
                out += name;
                append_labels(out, labels);
                out += ' ';
                append_number(out, (*g)->value());
                out += '\n';
            } else {
                const auto s = std::get<std::unique_ptr<Histogram>>(member)->snapshot();
                for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
                    std::string le;
                    if (i < s.bounds.size()) {
                        append_number(le, s.bounds[i]);
                    } else {
                        le = "+Inf";
                    }
                    out += name;
                    out += "_bucket";
                    append_labels(out, labels, "le", le);
                    out += ' ';
                    append_number(out, s.counts[i]);
                    out += '\n';
                }
                out += name;
                out += "_sum";
                append_labels(out, labels);
                out += ' ';
                append_number(out, s.sum);
                out += '\n';
                out += name;
                out += "_count";
                append_labels(out, labels);
                out += ' ';
                append_number(out, s.count);
                out += '\n';
            }
        }
    }
    return out;
}

// --- CollectorHandle ------------------------------------------------------------------------

CollectorHandle::CollectorHandle() noexcept = default;

CollectorHandle::CollectorHandle(MetricsRegistry* registry,
                                 std::shared_ptr<detail::CollectorEntry> entry)
    : registry_(registry), entry_(std::move(entry)) {}

CollectorHandle::CollectorHandle(CollectorHandle&& other) noexcept
    : registry_(std::exchange(other.registry_, nullptr)), entry_(std::move(other.entry_)) {}

CollectorHandle& CollectorHandle::operator=(CollectorHandle&& other) noexcept {
    if (this != &other) {
        reset();
        registry_ = std::exchange(other.registry_, nullptr);
        entry_ = std::move(other.entry_);
    }
    return *this;
}

CollectorHandle::~CollectorHandle() {
    reset();
}

void CollectorHandle::reset() noexcept {
    if (!entry_) return;
    registry_->remove_collector(*entry_);
    entry_.reset();
    registry_ = nullptr;
}

MetricsRegistry& default_registry() {
    static auto* registry = new MetricsRegistry();
    return *registry;
}

}  // namespace rill
