// sensor-pub: reads a DHT11/DHT22 (libgpiod or the kernel IIO driver), a CSV file or a
// simulator, and publishes the readings durably (outbox, replay service, heartbeats).
//
// flags -> a Source, a ReliablePublisher and a rill::SourcePump that runs the delivery loop;
// this file adds the admin HTTP server and systemd's notifications.
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>

#include "common/app_options.hpp"
#include "common/http_admin.hpp"
#include "common/shutdown.hpp"
#include "common/systemd_notify.hpp"
#include "flags.hpp"
#include "rill/gpio.hpp"
#include "rill/log.hpp"
#include "rill/metrics.hpp"
#include "rill/pump.hpp"
#include "rill/reliable.hpp"
#include "rill/security.hpp"

namespace {

using rill::sensor_pub::Options;

// Where the stream goes, for the start line: the addresses bound (port 0 resolved), or the
// endpoints as given when the publisher only connects (">tcp://collector:5556").
std::string published_on(const rill::Publisher& publisher, const std::string& endpoints) {
    std::string out;
    for (const auto& b : publisher.bound())
        out += (out.empty() ? "" : ",") + b;
    return out.empty() ? endpoints : out;
}

void log_start(const Options& o, rill::ReliablePublisher& rp, const rill::Source& source) {
    const auto replay = rp.replay_endpoint().empty() ? std::string("(none)") : rp.replay_endpoint();
    rill::log_info("sensor-pub", "sensor " + o.sensor_id + " from " + source.describe() +
                                     ", publishing on " + published_on(rp.publisher(), o.pub) +
                                     ", replay on " + replay + ", outbox " +
                                     rp.outbox().dir().string() + " at seq " +
                                     std::to_string(rp.outbox().newest(o.sensor_id)));
}

// systemd: READY once the outbox is open and the sockets bound, STATUS once a second (what
// `systemctl status` shows), WATCHDOG=1 when due, STOPPING with the reason.
rill::PumpHooks systemd_hooks(rill::app::SystemdNotifier& systemd,
                              const rill::app::Shutdown& shutdown) {
    rill::PumpHooks hooks;
    hooks.ready = [&systemd](const rill::PumpStatus& s) { systemd.ready(s.line()); };
    hooks.status = [&systemd](const rill::PumpStatus& s) { systemd.status(s.line()); };
    hooks.keep_alive = [&systemd] {
        systemd.keep_alive();
        return systemd.keep_alive_due();
    };
    hooks.stopping = [&systemd, &shutdown](rill::PumpEnd end, const rill::PumpStatus&) {
        const auto why =
            end == rill::PumpEnd::stop_requested ? shutdown.reason() : std::string("end of input");
        systemd.stopping("stopping on " + why + ": flushing the outbox");
    };
    return hooks;
}

// Removes the outbox directory again if this run created it and then failed before publishing
// (a port in use, an unreadable key): a failed start leaves no files behind.
class CreatedOutbox {
  public:
    explicit CreatedOutbox(std::filesystem::path dir)
        : dir_(std::move(dir)), existed_(std::filesystem::exists(dir_)) {}
    ~CreatedOutbox() {
        std::error_code ignored;
        if (!kept_ && !existed_) std::filesystem::remove_all(dir_, ignored);
    }
    CreatedOutbox(const CreatedOutbox&) = delete;
    CreatedOutbox& operator=(const CreatedOutbox&) = delete;
    void keep() noexcept { kept_ = true; }

  private:
    std::filesystem::path dir_;
    bool existed_;
    bool kept_ = false;
};

int run(const Options& o) {
    rill::app::apply_common_options(o.common);
    auto& shutdown = rill::app::Shutdown::install();
    rill::app::SystemdNotifier systemd;
    if (auto problem = rill::sensor_id_problem(o.sensor_id)) {
        throw rill::app::UsageError("--sensor-id: " + *problem);
    }
    // Every flag value is checked before anything is opened or bound.
    const auto so = rill::sensor_pub::source_options(o);
    auto po = rill::sensor_pub::publisher_options(o);

    // The source (opening it may fail: a missing file, no GPIO chip, no IIO device).
    auto source = rill::gpio::make_source(o.source, so);
    std::optional<rill::ZapHandler> zap;
    if (!o.curve_secret.empty() && !o.curve_allow.empty()) {
        zap.emplace(rill::default_context(), o.curve_allow);
    }
    CreatedOutbox created(po.outbox_dir);
    rill::ReliablePublisher rp(std::move(po));
    std::optional<rill::app::HttpAdmin> admin;
    if (!o.common.metrics.empty()) {
        admin.emplace(
            o.common.metrics, [] { return rill::default_registry().render_prometheus(); },
            [] { return rill::app::Health{}; });
    }
    created.keep();  // every socket is bound: from here on the outbox holds readings
    log_start(o, rp, *source);

    rill::PumpOptions pump_options;
    pump_options.sensor_id = o.sensor_id;
    pump_options.count = o.count;
    pump_options.linger = o.linger;  // every end of a finite source: CSV or --count
    pump_options.linger_full = o.linger_full;
    pump_options.log_component = "sensor-pub";
    pump_options.hooks = systemd_hooks(systemd, shutdown);
    rill::SourcePump pump(std::move(pump_options), std::move(source), rp);
    (void)pump.run(shutdown.stop());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "sensor-pub: read a DHT11/DHT22 (libgpiod or the kernel IIO driver), a CSV file or a "
        "simulator, and publish the readings on ZeroMQ. Every reading is written to an outbox "
        "on disk before it is sent, and a replay service answers from it."};
    rill::sensor_pub::add_flags(app, o);
    return rill::app::run_main(app, argc, argv, "sensor-pub", [&] { return run(o); });
}
