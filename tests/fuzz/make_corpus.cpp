// fuzz-make-corpus: writes the seed corpora of the fuzz targets from the real encoders and the
// real Outbox, so that the fuzzers start from valid inputs. Usage:
//   fuzz-make-corpus DIR      (writes DIR/codec, DIR/outbox, DIR/rpc, DIR/web-params)
// Every file is small (a few KiB at most). Rerun after a wire or file format change.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "rill/codec.hpp"
#include "rill/log.hpp"
#include "rill/outbox.hpp"
#include "rill/replay.hpp"
#include "rill/rpc.hpp"
#ifdef RILL_FUZZ_WEB_PARAMS
#include "params.hpp"
#endif

namespace {

namespace fs = std::filesystem;
using std::chrono::microseconds;

const rill::Timestamp t0{microseconds(1'763'719'200'000'000)};  // 2025-11-21T10:00:00Z

void write(const fs::path& dir, const std::string& name, std::string_view bytes) {
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}

rill::Reading reading(std::string sensor, std::uint64_t seq, rill::Timestamp ts, float t, float h,
                      std::vector<rill::Extra> extras = {}) {
    return rill::Reading{std::move(sensor), seq, ts, t, h, std::move(extras)};
}

// `bytes` with the float32 `from` (its msgpack form `ca` + 4 bytes) replaced by a NaN: what the
// encoder refuses to write, for seeds holding an invalid reading.
std::string with_nan_for(std::string bytes, float from) {
    std::uint32_t bits;
    std::memcpy(&bits, &from, sizeof bits);
    std::string pattern(1, '\xca');
    for (int shift = 24; shift >= 0; shift -= 8)
        pattern += static_cast<char>((bits >> shift) & 0xff);
    const auto at = bytes.find(pattern);
    if (at == std::string::npos) throw std::runtime_error("with_nan_for: value not found");
    bytes.replace(at, pattern.size(), std::string("\xca\x7f\xc0\x00\x00", 5));
    return bytes;
}

// The codec target's input: one byte of topic length, the topic, the payload.
std::string frames(std::string_view topic, std::string_view payload) {
    std::string out(1, static_cast<char>(topic.size()));
    out.append(topic);
    out.append(payload);
    return out;
}

void codec_corpus(const fs::path& dir) {
    // proto/reading_v1.md 6.1, 6.2 and 6.3: the encoder writes exactly those bytes.
    const auto one = reading("kitchen", 1, t0, 21.5f, 40.25f);
    write(dir, "reading_v1_6.1", frames("kitchen", rill::encode(one)));
    const std::vector<rill::Reading> two{
        reading("garden", 41, t0, -3.5f, 87.0f, {{"battery_v", 3.3}}),
        reading("garden", 42, t0 + std::chrono::seconds(5), -3.25f, 86.5f)};
    write(dir, "reading_v1_6.2", frames("garden", rill::encode_batch(two)));
    rill::Heartbeat hb{"pi-garden",
                       t0 + std::chrono::seconds(6),
                       std::chrono::milliseconds(1000),
                       "tcp://*:5557",
                       {{"garden", 42}}};
    write(dir, "reading_v1_6.3", frames(rill::heartbeat_topic, rill::encode_heartbeat(hb)));
    // Seqs 1, 2, 3 with NaN in the middle one: the lenient decode keeps 1 and 3.
    const std::vector<rill::Reading> three{reading("kitchen", 1, t0, 20.0f, 40.0f),
                                           reading("kitchen", 2, t0, 12.5f, 40.0f),
                                           reading("kitchen", 3, t0, 21.0f, 40.0f)};
    write(dir, "invalid_middle", frames("kitchen", with_nan_for(rill::encode_batch(three), 12.5f)));
    // proto/reading_v1.md 6.4 and quantities not measured (nil): humidity, temperature, both
    // with an extra.
    write(dir, "reading_v1_6.4",
          frames("kitchen", rill::encode(reading("kitchen", 1, t0, 21.5f, rill::not_measured))));
    const std::vector<rill::Reading> partial{
        reading("pond", 1, t0, 14.5f, rill::not_measured),
        reading("pond", 2, t0, rill::not_measured, 61.0f),
        reading("pond", 3, t0, rill::not_measured, rill::not_measured,
                {{"pressure_hpa", 1013.25}})};
    write(dir, "not_measured", frames("pond", rill::encode_batch(partial)));

    std::vector<rill::Reading> many;
    for (std::uint64_t i = 0; i < 20; ++i) {
        std::vector<rill::Extra> extras;
        if (i % 3 == 0) extras = {{"battery_v", 3.0 + 0.01 * double(i)}, {"rssi", -60.0}};
        many.push_back(reading("greenhouse-07", 1000 + i, t0 + microseconds(i * 250'000),
                               20.0f + 0.1f * float(i), 55.0f - 0.5f * float(i), extras));
    }
    write(dir, "batch_20_extras", frames("greenhouse-07", rill::encode_batch(many)));
    write(dir, "extremes",
          frames("x",
                 rill::encode(reading("x", ~std::uint64_t{0} >> 1,
                                      rill::Timestamp{microseconds(rill::limits::max_ts_us)},
                                      static_cast<float>(rill::limits::max_temperature), 100.0f))));
    write(dir, "heartbeat_empty",
          frames(rill::heartbeat_topic,
                 rill::encode_heartbeat({"p", t0, std::chrono::milliseconds(1), "", {}})));
    rill::Heartbeat big{
        "sensor-pub@pi-3", t0, std::chrono::milliseconds(60'000), "tcp://10.0.0.7:5557", {}};
    for (int i = 0; i < 12; ++i)
        big.newest.emplace_back("sensor-" + std::to_string(i), 1U << i);
    write(dir, "heartbeat_12", frames(rill::heartbeat_topic, rill::encode_heartbeat(big)));
}

std::string file_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The outbox target's input: a mode byte (bit 0: the harness fixes checksums), the segment.
void outbox_corpus(const fs::path& dir) {
    rill::set_log_level(rill::LogLevel::error);
    std::string pattern = (fs::temp_directory_path() / "rill-fuzz-seeds-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    const fs::path scratch(pattern);
    const auto newest_segment = [&](const fs::path& d) {
        fs::path newest;
        for (const auto& e : fs::directory_iterator(d))
            if (e.path().extension() == ".seg" && e.path() > newest) newest = e.path();
        return file_bytes(newest);
    };
    const auto make = [&](const std::string& name, auto&& fill) {
        const fs::path d = scratch / name;
        rill::OutboxOptions o;
        o.fsync = rill::FsyncPolicy::never;
        o.segment_bytes = 4096;
        o.max_bytes = 1 << 20;
        o.clock = [] { return t0; };
        {
            rill::Outbox outbox(d, o);
            fill(outbox);
        }
        const std::string seg = newest_segment(d);
        write(dir, name + "_raw", std::string(1, '\0') + seg);
        write(dir, name + "_fixed", std::string(1, '\1') + seg);
    };
    make("empty", [](rill::Outbox&) {});
    make("one_reading", [](rill::Outbox& outbox) {
        auto r = reading("kitchen", 0, t0, 21.5f, 40.25f);
        (void)outbox.append(r);
    });
    make("two_sensors_batches", [](rill::Outbox& outbox) {
        for (std::uint64_t i = 0; i < 10; ++i) {
            std::vector<rill::Reading> batch;
            for (std::uint64_t j = 0; j < 3; ++j)
                batch.push_back(reading(i % 2 ? "garden" : "kitchen", 0,
                                        t0 + microseconds((3 * i + j) * 1000), 20.0f, 50.0f,
                                        {{"battery_v", 3.3}}));
            (void)outbox.append(batch);
        }
    });
    make("second_segment", [](rill::Outbox& outbox) {  // starts with a snapshot of both sensors
        for (std::uint64_t i = 0; i < 80; ++i) {
            auto r =
                reading(i % 2 ? "garden" : "kitchen", 0, t0 + microseconds(i * 1000), 20.0f, 50.0f);
            (void)outbox.append(r);
        }
    });
    fs::remove_all(scratch);
}

void rpc_corpus(const fs::path& dir) {
    const rill::ReplayRequest request{"kitchen", 1200, 500};
    const std::string params = rill::encode_replay_request(request);
    write(dir, "replay_request_params", params);
    write(dir, "rpc_request_replay",
          rill::encode_rpc_request({7, std::string(rill::replay_method), params}));
    write(dir, "rpc_request_no_params", rill::encode_rpc_request({1, "status", ""}));
    write(
        dir, "rpc_request_strs",
        rill::encode_rpc_request({4'000'000'000U, "echo", rill::rpc_pack::str_array({"a", "bc"})}));

    rill::ReplayReply reply;
    for (std::uint64_t seq = 1200; seq < 1205; ++seq)
        reply.readings.push_back(reading("kitchen", seq, t0 + microseconds(seq), 21.0f, 40.0f));
    reply.first_available = 1000;
    reply.newest = 1300;
    write(dir, "replay_reply_result", rill::encode_replay_reply(reply));
    write(dir, "rpc_response_replay",
          rill::encode_rpc_response({7, std::nullopt, rill::encode_replay_reply(reply)}));
    rill::ReplayReply lost;
    lost.first_available = 50;
    lost.newest = 60;
    rill::set_lost_range({"garden", 10, 100}, lost);
    write(dir, "replay_reply_lost", rill::encode_replay_reply(lost));
    write(dir, "rpc_response_lost",
          rill::encode_rpc_response({8, std::nullopt, rill::encode_replay_reply(lost)}));
    // A reply with an invalid reading (NaN) and the 5th element, a skipped range [1250, 1260].
    rill::ReplayReply odd = reply;
    odd.readings[2].temperature = 12.5f;
    std::string odd_bytes = with_nan_for(rill::encode_replay_reply(odd), 12.5f);
    if (odd_bytes.front() != '\x94') throw std::runtime_error("a replay reply is not a fixarray 4");
    odd_bytes.front() = '\x95';
    odd_bytes += std::string("\x92\xcd\x04\xe2\xcd\x04\xec", 7);
    write(dir, "replay_reply_invalid_skipped", odd_bytes);
    write(dir, "rpc_response_invalid_skipped",
          rill::encode_rpc_response({11, std::nullopt, odd_bytes}));
    write(dir, "rpc_request_five_elements", std::string("\x95\x00\x0c\xa4ping\x90\xc0", 10));
    write(dir, "rpc_response_error", rill::encode_rpc_response({9, "unknown method: nope", ""}));
    write(dir, "rpc_response_uint",
          rill::encode_rpc_response({10, std::nullopt, rill::rpc_pack::uint(42)}));
}

#ifdef RILL_FUZZ_WEB_PARAMS
void web_params_corpus(const fs::path& dir) {
    const std::string cursor =
        rill::web::encode_cursor({t0 + microseconds(123'456), "kitchen", 42});
    write(dir, "readings_all",
          "sensor=kitchen&from=2025-11-21T09:00:00Z&to=2025-11-21T10:00:00Z&limit=50");
    write(dir, "readings_cursor", "sensor=garden&limit=100&cursor=" + cursor);
    write(dir, "cursor_token", cursor);
    write(dir, "unix_seconds", "from=1763712000&to=1763719200.5");
    write(dir, "offsets", "from=2025-11-21T10:00:00.123456+01:00&to=2025-11-21T12:00:00-00:30");
    write(dir, "series", "sensor=greenhouse-07&from=2025-11-20T10:00:00Z&points=500");
    write(dir, "csv_limit", "limit=1000000");
    write(dir, "listen_v4", "127.0.0.1:8080");
    write(dir, "listen_v6", "[::1]:0");
}
#endif

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: fuzz-make-corpus DIR\n";
        return 2;
    }
    const fs::path root(argv[1]);
    try {
        codec_corpus(root / "codec");
        outbox_corpus(root / "outbox");
        rpc_corpus(root / "rpc");
#ifdef RILL_FUZZ_WEB_PARAMS
        web_params_corpus(root / "web-params");
#endif
    } catch (const std::exception& e) {
        std::cerr << "fuzz-make-corpus: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
