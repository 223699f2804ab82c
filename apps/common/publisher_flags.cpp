#include "common/publisher_flags.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/app_options.hpp"
#include "rill/security.hpp"

namespace rill::app {

namespace {

using namespace std::chrono_literals;

FsyncPolicy parse_fsync(const std::string& s) {
    if (s == "always") return FsyncPolicy::always;
    if (s == "batch") return FsyncPolicy::batch;
    if (s == "never") return FsyncPolicy::never;
    throw UsageError("--fsync: '" + s + "' is not always, batch or never");
}

std::string env_value(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

}  // namespace

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
    return buf;
}

std::filesystem::path default_outbox_dir(const std::string& name,
                                         const std::function<std::string(const char*)>& env) {
    // systemd's StateDirectory= may list several directories, separated by colons.
    if (const auto state = env("STATE_DIRECTORY"); !state.empty()) {
        return std::filesystem::path(state.substr(0, state.find(':'))) / name;
    }
    // XDG: a relative $XDG_STATE_HOME is invalid and ignored.
    if (const auto xdg = env("XDG_STATE_HOME"); !xdg.empty() && xdg.front() == '/') {
        return std::filesystem::path(xdg) / "rill" / name;
    }
    if (const auto home = env("HOME"); !home.empty()) {
        return std::filesystem::path(home) / ".local" / "state" / "rill" / name;
    }
    return name;
}

void add_stream_flags(CLI::App& app, PublisherFlags& o, const std::string& identity_default) {
    add_duration_option(app, "--batch-interval", o.batch_interval,
                        "Collect readings this long into one frame (0: send each at once)")
        ->envname("RILL_BATCH_INTERVAL");
    app.add_option("--batch-max", o.batch_max, "At most this many readings per frame")
        ->envname("RILL_BATCH_MAX")
        ->capture_default_str();
    app.add_option("--pub", o.pub, "Where to publish (@ binds, > connects)")
        ->envname("RILL_PUB")
        ->capture_default_str();
    app.add_option("--replay", o.replay, "Where the replay service binds ('none' to disable)")
        ->envname("RILL_REPLAY")
        ->capture_default_str();
    app.add_option("--announce-replay", o.announce_replay,
                   "The replay endpoint heartbeats announce (default: the bound one)")
        ->envname("RILL_ANNOUNCE_REPLAY");
    app.add_option("--publisher-id", o.publisher_id,
                   "This publisher's identity in heartbeats (default " + identity_default + ")")
        ->envname("RILL_PUBLISHER_ID");
    add_duration_option(app, "--heartbeat-interval", o.heartbeat_interval,
                        "Time between heartbeats")
        ->envname("RILL_HEARTBEAT_INTERVAL");
    app.add_option("--curve-secret", o.curve_secret,
                   "CURVE: this publisher's secret key file (enables encryption)")
        ->envname("RILL_CURVE_SECRET");
    app.add_option("--curve-allow", o.curve_allow,
                   "CURVE: directory of client public key files allowed to connect")
        ->envname("RILL_CURVE_ALLOW");
}

void add_outbox_flags(CLI::App& app, PublisherFlags& o, const std::string& outbox_name) {
    app.add_option("--outbox", o.outbox,
                   "Outbox directory (default: $STATE_DIRECTORY/" + outbox_name +
                       " under systemd, else $XDG_STATE_HOME/rill/" + outbox_name +
                       ", $XDG_STATE_HOME defaulting to ~/.local/state)")
        ->envname("RILL_OUTBOX");
    app.add_option("--fsync", o.fsync, "When the outbox syncs to disk: always, batch or never")
        ->envname("RILL_FSYNC")
        ->capture_default_str();
    add_size_option(app, "--outbox-max-bytes", o.outbox_max_bytes,
                    "Outbox size bound; the oldest readings are dropped (and counted) beyond it")
        ->envname("RILL_OUTBOX_MAX_BYTES");
    add_duration_option(app, "--outbox-max-age", o.outbox_max_age, "Outbox age bound (0: none)")
        ->envname("RILL_OUTBOX_MAX_AGE");
    add_size_option(app, "--outbox-segment-bytes", o.outbox_segment_bytes,
                    "Outbox segment file size")
        ->envname("RILL_OUTBOX_SEGMENT_BYTES");
}

ReliablePublisherOptions publisher_options(const PublisherFlags& o, const std::string& outbox_name,
                                           const std::string& identity_default) {
    using std::chrono::duration_cast;
    ReliablePublisherOptions po;
    po.outbox_dir = o.outbox.empty() ? default_outbox_dir(outbox_name, env_value)
                                     : std::filesystem::path(o.outbox);
    po.outbox.fsync = parse_fsync(o.fsync);
    po.outbox.max_bytes = o.outbox_max_bytes;
    po.outbox.max_age = duration_cast<std::chrono::seconds>(o.outbox_max_age);
    po.outbox.segment_bytes = o.outbox_segment_bytes;
    po.publish_endpoints = o.pub;
    po.replay_endpoints = o.replay == "none" ? "" : o.replay;
    po.announce_replay = o.announce_replay;
    po.publisher.identity = o.publisher_id.empty() ? identity_default : o.publisher_id;
    po.publisher.heartbeat_interval =
        duration_cast<std::chrono::milliseconds>(o.heartbeat_interval);
    po.publisher.batch.max_readings = std::max<std::size_t>(1, o.batch_max);
    po.publisher.batch.max_delay = duration_cast<std::chrono::milliseconds>(o.batch_interval);
    po.publisher.socket.send_hwm = 100'000;
    po.publisher.socket.linger = 1000ms;
    if (!o.curve_secret.empty()) {
        const auto keys = curve_server_keys(o.curve_secret);
        po.publisher.socket.curve_server = keys;
        po.replay_socket.curve_server = keys;
    }
    return po;
}

}  // namespace rill::app
