#include "rill/replay.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <limits>
#include <map>
#include <mutex>

#include <msgpack.hpp>

#include "rill/codec.hpp"
#include "rill/outbox.hpp"
#include "support/msgpack.hpp"
#include "support/process.hpp"
#include "support/readings.hpp"

using namespace std::chrono_literals;

namespace {

using rill::test::pack;
using rill::test::reading;

// An in-memory outbox: sensor -> readings kept [first, newest], as sensor-pub's will be.
// answer() runs on the server's thread: once the server runs, the test touches the members
// only under `mutex` (the reply travelling back over TCP orders the accesses too, but through
// libzmq and the kernel, where ThreadSanitizer cannot see it).
struct FakeOutbox {
    std::mutex mutex;
    std::map<std::string, std::vector<rill::Reading>> kept;
    std::map<std::string, std::uint64_t> newest;
    std::vector<rill::ReplayRequest> seen;

    rill::ReplayReply answer(const rill::ReplayRequest& req) {
        std::lock_guard lock(mutex);
        seen.push_back(req);
        rill::ReplayReply reply;
        reply.newest = newest[req.sensor];
        const auto& rs = kept[req.sensor];
        reply.first_available = rs.empty() ? reply.newest + 1 : rs.front().seq;
        for (const auto& r : rs) {
            if (r.seq >= req.from_seq && reply.readings.size() < req.max_readings) {
                reply.readings.push_back(r);
            }
        }
        return reply;  // the server fills in `lost`
    }
};

}  // namespace

TEST_CASE("replay requests and replies round trip") {
    const rill::ReplayRequest req{"greenhouse-07", 17, 500};
    CHECK(rill::decode_replay_request(rill::encode_replay_request(req)) == req);

    rill::ReplayReply reply;
    reply.readings = {reading("greenhouse-07", 20), reading("greenhouse-07", 21)};
    reply.first_available = 20;
    reply.newest = 30;
    rill::set_lost_range(req, reply);
    REQUIRE(reply.lost);
    CHECK(*reply.lost == rill::SeqRange{17, 19});
    CHECK(reply.lost->size() == 3);
    CHECK(rill::decode_replay_reply(rill::encode_replay_reply(reply)) == reply);
    CHECK_FALSE(rill::replay_reply_problem(req, reply));

    rill::ReplayReply empty;
    empty.first_available = 1;
    empty.newest = 0;
    CHECK(rill::decode_replay_reply(rill::encode_replay_reply(empty)) == empty);

    // Fields a later revision appends are ignored, as in reading_v1.
    CHECK(rill::decode_replay_request(pack(std::make_tuple("greenhouse-07", 17, 500, "new"))) ==
          req);
    const auto nil = msgpack::type::nil_t{};
    CHECK(rill::decode_replay_reply(
              pack(std::make_tuple(std::vector<char>{}, 1, 0, nil, nil, 9))) == empty);
}

TEST_CASE("replay decoding rejects malformed requests and replies") {
    using E = rill::DecodeErrc;
    const std::vector<std::pair<std::string, E>> requests{
        {pack(std::make_tuple("s", 1)), E::malformed},
        {pack(std::make_tuple(1, 1, 10)), E::wrong_type},
        {pack(std::make_tuple("s", 0, 10)), E::invalid_value},
        {pack(std::make_tuple("s", 1, 0)), E::invalid_value},
        {pack(std::make_tuple("s", 1, 10001)), E::too_large},
        {pack(std::make_tuple("s", -1, 10)), E::wrong_type},
        {pack(std::make_tuple("", 1, 10)), E::invalid_value},
        {pack(std::make_tuple(std::string(65, 's'), 1, 10)), E::too_large},
        {pack(std::make_tuple("s", 1, 10)) + "\x01", E::trailing_bytes},
        {"\xc1", E::malformed},
    };
    for (const auto& [bytes, code] : requests) {
        CAPTURE(bytes);
        try {
            (void)rill::decode_replay_request(bytes);
            FAIL("decoded a malformed request");
        } catch (const rill::DecodeError& e) {
            CHECK(e.code() == code);
        }
    }
    const auto nil = msgpack::type::nil_t{};
    const auto no_bin = std::vector<char>{};
    const auto batch = rill::encode(reading("s", 5));
    const auto bin = std::vector<char>(batch.begin(), batch.end());
    const std::vector<std::pair<std::string, E>> replies{
        {pack(std::make_tuple(no_bin, 1, 0)), E::malformed},
        {pack(std::make_tuple("text", 1, 0, nil)), E::wrong_type},
        {pack(std::make_tuple(std::vector<char>{'x'}, 1, 0, nil)), E::wrong_type},
        {pack(std::make_tuple(no_bin, 0, 0, nil)), E::invalid_value},
        {pack(std::make_tuple(no_bin, 5, 3, nil)), E::invalid_value},
        {pack(std::make_tuple(no_bin, 5, 9, std::make_tuple(1, 3))), E::invalid_value},
        {pack(std::make_tuple(no_bin, 5, 9, std::make_tuple(4, 2))), E::invalid_value},
        {pack(std::make_tuple(no_bin, 5, 9, std::make_tuple(4))), E::malformed},
        {pack(std::make_tuple(bin, 6, 9, nil)), E::invalid_value},  // seq 5 < first_available
        {pack(std::make_tuple(bin, 1, 4, nil)), E::invalid_value},  // seq 5 > newest
    };
    for (const auto& [bytes, code] : replies) {
        CAPTURE(bytes.size());
        try {
            (void)rill::decode_replay_reply(bytes);
            FAIL("decoded a malformed reply");
        } catch (const rill::DecodeError& e) {
            CHECK(e.code() == code);
        }
    }
    // A valid reply that does not answer the request it claims to answer.
    rill::ReplayReply reply;
    reply.readings = {reading("other", 5)};
    reply.first_available = 1;
    reply.newest = 9;
    CHECK(rill::replay_reply_problem({"s", 1, 10}, reply));
    reply.readings = {reading("s", 5), reading("s", 6)};
    CHECK(rill::replay_reply_problem({"s", 1, 1}, reply));   // more than asked for
    CHECK(rill::replay_reply_problem({"s", 6, 10}, reply));  // below from_seq
    CHECK_FALSE(rill::replay_reply_problem({"s", 5, 10}, reply));
}

TEST_CASE("a replay client fetches a range in chunks and reports what the outbox dropped") {
    zmq::context_t ctx;
    FakeOutbox outbox;
    // Published 1..250; the outbox dropped 1..39 and still holds 40..250.
    for (std::uint64_t s = 40; s <= 250; ++s)
        outbox.kept["greenhouse-07"].push_back(reading("greenhouse-07", s));
    outbox.newest["greenhouse-07"] = 250;
    rill::ReplayServer server(ctx, "tcp://127.0.0.1:0",
                              [&](const rill::ReplayRequest& r) { return outbox.answer(r); });
    rill::ReplayClient client(ctx, server.last_endpoint());

    rill::ReplayFetchOptions options;
    options.chunk = 50;
    options.call = {5s, 1};
    const auto got = client.fetch("greenhouse-07", 10, 200, options);
    CHECK(got.newest == 250);
    REQUIRE(got.lost.size() == 1);
    CHECK(got.lost[0] == rill::SeqRange{10, 39});
    REQUIRE(got.readings.size() == 161);
    for (std::size_t i = 0; i < got.readings.size(); ++i) {
        CHECK(got.readings[i] == reading("greenhouse-07", 40 + i));
    }
    CHECK(got.requests == 4);  // 10 -> 40..89, 90..139, 140..189, 190..200
    {
        std::lock_guard lock(outbox.mutex);
        CHECK(outbox.seen.front() == rill::ReplayRequest{"greenhouse-07", 10, 50});
    }

    // Asking beyond the newest seq stops at newest without counting the future as lost.
    const auto tail = client.fetch("greenhouse-07", 240, 1000, options);
    CHECK(tail.readings.size() == 11);
    CHECK(tail.lost.empty());
    CHECK(tail.requests == 1);

    // A sensor the outbox no longer holds anything of: everything up to newest is lost.
    {
        std::lock_guard lock(outbox.mutex);
        outbox.newest["gone"] = 30;
    }
    const auto gone = client.fetch("gone", 1, 100, options);
    CHECK(gone.readings.empty());
    REQUIRE(gone.lost.size() == 1);
    CHECK(gone.lost[0] == rill::SeqRange{1, 30});

    // A sensor never published: nothing, nothing lost.
    const auto unknown = client.fetch("never", 1, 100, options);
    CHECK(unknown.readings.empty());
    CHECK(unknown.lost.empty());
    CHECK(unknown.newest == 0);
}

TEST_CASE("holes inside a replay answer are reported as lost") {
    zmq::context_t ctx;
    FakeOutbox outbox;
    for (std::uint64_t s : {1, 2, 3, 7, 8, 20})
        outbox.kept["s"].push_back(reading("s", s));
    outbox.newest["s"] = 20;
    rill::ReplayServer server(ctx, "tcp://127.0.0.1:0",
                              [&](const rill::ReplayRequest& r) { return outbox.answer(r); });
    rill::ReplayClient client(ctx, server.last_endpoint());
    rill::ReplayFetchOptions options;
    options.chunk = 2;
    const auto got = client.fetch("s", 1, 20, options);
    CHECK(got.readings.size() == 6);
    CHECK(got.lost == std::vector<rill::SeqRange>{{4, 6}, {9, 19}});
}

TEST_CASE("the replay server refuses invalid requests and invalid callback replies") {
    zmq::context_t ctx;
    std::atomic<int> calls{0};  // incremented on the server thread
    rill::ReplayServer server(ctx, "tcp://127.0.0.1:0", [&](const rill::ReplayRequest& r) {
        ++calls;
        if (r.sensor == "throws") throw std::runtime_error("outbox is corrupt");
        rill::ReplayReply reply;
        reply.readings = {reading("someone-else", r.from_seq)};
        reply.first_available = 1;
        reply.newest = r.from_seq;
        return reply;
    });
    rill::RpcClient rpc(ctx, server.last_endpoint());
    try {
        (void)rpc.call(rill::replay_method, pack(std::make_tuple("s", 0, 10)), {5s, 0});
        FAIL("an invalid request was served");
    } catch (const rill::RpcError& e) {
        CHECK(e.remote_message().find("invalid replay request") != std::string::npos);
    }
    CHECK(calls == 0);

    rill::ReplayClient client(ctx, server.last_endpoint());
    try {
        (void)client.request({"s", 3, 10}, {5s, 0});
        FAIL("an invalid reply was sent");
    } catch (const rill::RpcError& e) {
        CHECK(e.remote_message().find("invalid replay reply") != std::string::npos);
    }
    try {
        (void)client.request({"throws", 3, 10}, {5s, 0});
        FAIL("a failing callback was answered");
    } catch (const rill::RpcError& e) {
        CHECK(e.remote_message() == "outbox is corrupt");
    }
    CHECK(calls == 2);
}

TEST_CASE("a replay fetch times out when the publisher is absent") {
    zmq::context_t ctx;
    rill::test::TempDir dir;
    rill::ReplayClient client(ctx, "ipc://" + (dir.path() / "absent").string());
    rill::ReplayFetchOptions options;
    options.call = {100ms, 1};
    CHECK_THROWS_AS((void)client.fetch("s", 1, 10, options), rill::RpcTimeout);
    CHECK(client.stats().resent == 1);
}

TEST_CASE("a python client written from proto/replay_v1.md gets readings and the lost range") {
    zmq::context_t ctx;
    FakeOutbox outbox;
    for (std::uint64_t s = 20; s <= 42; ++s)
        outbox.kept["greenhouse-07"].push_back(reading("greenhouse-07", s));
    outbox.newest["greenhouse-07"] = 42;
    rill::ReplayServer server(ctx, "tcp://127.0.0.1:0",
                              [&](const rill::ReplayRequest& r) { return outbox.answer(r); });
    const auto script = R"(
import sys, zmq, msgpack
s = zmq.Context.instance().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
s.send(msgpack.packb([0, 9, "replay.v1", ["greenhouse-07", 17, 5]]))
assert s.poll(10000), "timeout"
kind, msgid, error, result = msgpack.unpackb(s.recv(), raw=False)
assert kind == 1 and msgid == 9 and error is None, (kind, msgid, error)
payload, first_available, newest, lost = result[:4]
version, k, sensor, rows = msgpack.unpackb(payload, raw=False)[:4]
print(sensor, [r[0] for r in rows], first_available, newest, lost)
s.send(msgpack.packb([0, 10, "replay.v1", ["greenhouse-07", 0, 5]]))
assert s.poll(10000), "timeout"
print(msgpack.unpackb(s.recv(), raw=False)[2])
)";
    std::string out;
    REQUIRE(rill::test::run_command({"/usr/bin/python3", "-c", script, server.last_endpoint()}, 30s,
                                    &out) == 0);
    CHECK(out.find("greenhouse-07 [20, 21, 22, 23, 24] 20 42 [17, 19]\n") != std::string::npos);
    CHECK(out.find("invalid replay request") != std::string::npos);
}

TEST_CASE("mutated replay replies decode or throw DecodeError, never anything else") {
    rill::ReplayReply reply;
    for (std::uint64_t s = 20; s < 25; ++s)
        reply.readings.push_back(reading("greenhouse-07", s));
    reply.first_available = 20;
    reply.newest = 42;
    rill::set_lost_range({"greenhouse-07", 17, 500}, reply);
    const auto seed = rill::encode_replay_reply(reply);
    std::uint64_t state = 0x2545f4914f6cdd1dull;
    const auto next = [&state] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    int rejected = 0;
    for (int i = 0; i < 20000; ++i) {
        auto bytes = seed;
        bytes[static_cast<std::size_t>(next() % bytes.size())] = static_cast<char>(next() & 0xff);
        if (next() % 4 == 0) bytes.resize(static_cast<std::size_t>(next() % bytes.size()));
        try {
            (void)rill::decode_replay_reply(bytes);
        } catch (const rill::DecodeError&) {
            ++rejected;
        }
    }
    CHECK(rejected > 1000);
}

namespace {

// What ReliablePublisher answers with: the outbox's stored bytes.
rill::ReplayPayloadReply stored_answer(const rill::Outbox& outbox, const rill::ReplayRequest& req) {
    return rill::ReplayPayloadReply{
        outbox.read_payload(req.sensor, req.from_seq, req.max_readings)};
}

}  // namespace

TEST_CASE("a replay answered from stored bytes is byte for byte the reply encoded from readings") {
    rill::test::TempDir dir("replay");
    rill::OutboxOptions options;
    options.fsync = rill::FsyncPolicy::never;
    rill::Outbox outbox(dir.path(), options);
    for (int b = 0; b < 5; ++b) {  // records of 10: seqs 1-10, 11-20, ...
        auto batch = rill::test::readings("greenhouse-07", 1, 10);
        (void)outbox.append(batch);
    }
    // from_seq at a record start, inside a record, a count cut inside a record, nothing new.
    for (const rill::ReplayRequest& req :
         {rill::ReplayRequest{"greenhouse-07", 11, 10},
          rill::ReplayRequest{"greenhouse-07", 14, 10}, rill::ReplayRequest{"greenhouse-07", 21, 5},
          rill::ReplayRequest{"greenhouse-07", 51, 5}}) {
        CAPTURE(req.from_seq);
        auto bytes = stored_answer(outbox, req);
        bytes.lost = std::nullopt;
        REQUIRE(!rill::replay_reply_problem(req, bytes));
        const auto read = outbox.read(req.sensor, req.from_seq, req.max_readings);
        rill::ReplayReply decoded;
        decoded.readings = read.readings;
        decoded.first_available = read.first_available;
        decoded.newest = read.newest;
        CHECK(rill::encode_replay_reply(bytes) == rill::encode_replay_reply(decoded));
        CHECK(rill::decode_replay_reply(rill::encode_replay_reply(bytes)) == decoded);
    }

    // Served: the client gets the readings the outbox holds.
    zmq::context_t ctx;  // the outbox is thread-safe: the server thread reads it
    rill::ReplayServer server(
        ctx, "tcp://127.0.0.1:0",
        rill::ReplayServer::PayloadCallback(
            [&](const rill::ReplayRequest& r) { return stored_answer(outbox, r); }));
    rill::ReplayClient client(ctx, server.last_endpoint());
    const auto got = client.fetch("greenhouse-07", 7, 43, {7, {5s, 0}});
    CHECK(got.readings == outbox.read("greenhouse-07", 7, 37).readings);
    CHECK(got.lost.empty());
    CHECK(got.newest == 50);
}

TEST_CASE("the replay server refuses a stored-bytes reply that does not answer the request") {
    zmq::context_t ctx;
    rill::ReplayServer server(
        ctx, "tcp://127.0.0.1:0",
        rill::ReplayServer::PayloadCallback([](const rill::ReplayRequest& r) {
            rill::OutboxPayload stored;
            stored.payload = rill::encode_batch(std::vector{reading("someone-else", r.from_seq)});
            stored.count = r.sensor == "miscounted" ? 2 : 1;
            stored.first_seq = stored.last_seq = r.from_seq;
            stored.first_available = 1;
            stored.newest = r.from_seq;
            return rill::ReplayPayloadReply{stored};
        }));
    rill::ReplayClient client(ctx, server.last_endpoint());
    for (const char* sensor : {"s", "miscounted"}) {
        try {
            (void)client.request({sensor, 3, 10}, {5s, 0});
            FAIL("an invalid reply was sent");
        } catch (const rill::RpcError& e) {
            CHECK(e.remote_message().find("invalid replay reply") != std::string::npos);
        }
    }
}

namespace {

// A readings payload of sensor "s" with a reading per seq; a NaN temperature makes one invalid.
std::string payload_of(const std::vector<std::pair<std::uint64_t, double>>& rs) {
    return rill::test::readings_payload("s", rs);
}

std::vector<char> bin_of(const std::string& s) {
    return std::vector<char>(s.begin(), s.end());
}

const double nan_value = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST_CASE("a replay reply keeps its valid readings and names the invalid one") {
    const auto nil = msgpack::type::nil_t{};
    const auto bytes = pack(
        std::make_tuple(bin_of(payload_of({{5, 20.0}, {6, nan_value}, {7, 21.0}})), 1, 9, nil));
    const auto reply = rill::decode_replay_reply(bytes);
    REQUIRE(reply.readings.size() == 2);
    CHECK(reply.readings[0].seq == 5);
    CHECK(reply.readings[1].seq == 7);
    REQUIRE(reply.invalid.size() == 1);
    CHECK(reply.invalid[0].sensor == "s");
    CHECK(reply.invalid[0].seq == 6);
    CHECK(reply.invalid[0].problem.find("temperature") != std::string::npos);
    CHECK_FALSE(reply.skipped);
    CHECK_FALSE(rill::replay_reply_problem({"s", 5, 3}, reply));
    CHECK(rill::replay_reply_problem({"s", 5, 2}, reply));   // 3 readings, 2 asked for
    CHECK(rill::replay_reply_problem({"s", 7, 10}, reply));  // invalid seq 6 below from_seq
    CHECK(rill::replay_reply_problem({"t", 5, 10}, reply));  // another sensor
    // Structural problems still void the reply; an invalid reading outside the bounds too.
    CHECK_THROWS_AS((void)rill::decode_replay_reply(pack(std::make_tuple(
                        bin_of(payload_of({{5, 20.0}, {5, nan_value}})), 1, 9, nil))),
                    rill::DecodeError);
    CHECK_THROWS_AS((void)rill::decode_replay_reply(pack(std::make_tuple(
                        bin_of(payload_of({{5, 20.0}, {10, nan_value}})), 1, 9, nil))),
                    rill::DecodeError);
    CHECK_THROWS_AS((void)rill::decode_replay_reply(pack(std::make_tuple(
                        bin_of(payload_of({{rill::limits::max_seq + 1, 20.0}})), 1, 9, nil))),
                    rill::DecodeError);
}

TEST_CASE("a replay reply of 4, 5 or more elements decodes, the 5th being the skipped range") {
    using E = rill::DecodeErrc;
    const auto nil = msgpack::type::nil_t{};
    const auto no_bin = std::vector<char>{};
    const auto payload = bin_of(payload_of({{2, 20.0}, {9, 21.0}}));
    auto reply = rill::decode_replay_reply(pack(std::make_tuple(payload, 1, 9, nil)));
    CHECK_FALSE(reply.skipped);
    reply = rill::decode_replay_reply(pack(std::make_tuple(payload, 1, 9, nil, nil)));
    CHECK_FALSE(reply.skipped);
    reply = rill::decode_replay_reply(
        pack(std::make_tuple(payload, 1, 9, nil, std::make_tuple(3, 8), "a 6th element")));
    REQUIRE(reply.skipped);
    CHECK(*reply.skipped == rill::SeqRange{3, 8});
    CHECK(reply.readings.size() == 2);
    const std::vector<std::pair<std::string, E>> bad{
        {pack(std::make_tuple(payload, 1, 9, nil, std::make_tuple(2, 4))), E::invalid_value},
        {pack(std::make_tuple(payload, 1, 9, nil, std::make_tuple(0, 1))), E::invalid_value},
        {pack(std::make_tuple(no_bin, 1, 9, nil, std::make_tuple(5, 4))), E::invalid_value},
        {pack(std::make_tuple(no_bin, 1, 9, nil, std::make_tuple(5, 10))), E::invalid_value},
        {pack(std::make_tuple(no_bin, 1, 9, nil, std::make_tuple(5))), E::malformed},
        {pack(std::make_tuple(no_bin, 1, 9, nil, "5..7")), E::wrong_type},
    };
    for (const auto& [bytes, code] : bad) {
        CAPTURE(bytes.size());
        try {
            (void)rill::decode_replay_reply(bytes);
            FAIL("decoded a bad skipped range");
        } catch (const rill::DecodeError& e) {
            CHECK(e.code() == code);
        }
    }
}

TEST_CASE("a fetch returns invalid readings and skipped seqs apart, neither counted as lost") {
    zmq::context_t ctx;
    rill::RpcServer server(ctx, "tcp://127.0.0.1:0");
    std::atomic<int> calls{0};
    // Sensor s: 1, 2 valid, 3 invalid (NaN), 4 valid, 5..7 skipped, 8 valid, 9 gone, 10 valid.
    server.handle(std::string(rill::replay_method), [&](std::string_view params) {
        ++calls;
        const auto req = rill::decode_replay_request(params);
        std::vector<std::pair<std::uint64_t, double>> rs;
        for (const auto& [seq, t] : std::vector<std::pair<std::uint64_t, double>>{
                 {1, 20.0}, {2, 20.5}, {3, nan_value}, {4, 21.0}, {8, 21.5}, {10, 22.0}}) {
            if (seq >= req.from_seq && rs.size() < req.max_readings) rs.emplace_back(seq, t);
        }
        return pack(std::make_tuple(bin_of(payload_of(rs)), 1, 10, msgpack::type::nil_t{},
                                    std::make_tuple(5, 7)));
    });
    server.start();
    rill::ReplayClient client(ctx, server.last_endpoint());
    const auto got = client.fetch("s", 1, 20);
    std::vector<std::uint64_t> seqs;
    for (const auto& r : got.readings)
        seqs.push_back(r.seq);
    CHECK(seqs == std::vector<std::uint64_t>{1, 2, 4, 8, 10});
    REQUIRE(got.invalid.size() == 1);
    CHECK(got.invalid[0].seq == 3);
    CHECK(got.skipped == std::vector<rill::SeqRange>{{5, 7}});
    CHECK(got.lost == std::vector<rill::SeqRange>{{9, 9}});
    CHECK(got.newest == 10);
    CHECK(got.requests == 1);
    CHECK(calls == 1);

    // In chunks of 2 the same, each invalid reading and skipped seq reported once.
    rill::ReplayFetchOptions options;
    options.chunk = 2;
    const auto chunked = client.fetch("s", 1, 20, options);
    CHECK(chunked.readings.size() == 5);
    REQUIRE(chunked.invalid.size() == 1);
    CHECK(chunked.invalid[0].seq == 3);
    CHECK(chunked.skipped == std::vector<rill::SeqRange>{{5, 7}});
    CHECK(chunked.lost == std::vector<rill::SeqRange>{{9, 9}});
}
