// Differential test of the payload decoder: the hand-written msgpack reader in lib/src/codec.cpp
// against the msgpack-c object-tree decoder it replaced (codec_reference.hpp), on payloads from
// the encoder, hand-built payloads using every msgpack form, and random mutations of both.
#include <doctest/doctest.h>

#include <algorithm>

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "codec_reference.hpp"
#include "rill/codec.hpp"

using namespace rill;

namespace {

using Rng = std::mt19937_64;

std::size_t below(Rng& rng, std::size_t n) {
    return static_cast<std::size_t>(std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng));
}

// The same over the whole 64-bit range (timestamps): std::size_t is 32 bits on armhf.
std::uint64_t below64(Rng& rng, std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
}
bool chance(Rng& rng, unsigned percent) {
    return below(rng, 100) < percent;
}

// Writes msgpack by hand, choosing at random among the forms that can hold each value.
struct Writer {
    Rng& rng;
    std::string out;

    void byte(unsigned b) { out += static_cast<char>(b); }
    void be(std::uint64_t v, int bytes) {
        for (int k = bytes - 1; k >= 0; --k)
            byte(static_cast<unsigned>((v >> (8 * k)) & 0xff));
    }

    // An integer >= 0 in any form that holds it: fixint, uint8..64, or int8..64.
    void uint(std::uint64_t v) {
        std::vector<int> forms;  // 0 fixint, 1..4 uint8..64, 5..8 int8..64
        if (v <= 0x7f) forms.push_back(0);
        for (int k = 0; k < 4; ++k) {
            const int bits = 8 << k;
            if (bits == 64 || v < (std::uint64_t{1} << bits)) forms.push_back(1 + k);
            if (v < (std::uint64_t{1} << (bits - 1))) forms.push_back(5 + k);
        }
        const int f = forms[below(rng, forms.size())];
        if (f == 0) return byte(static_cast<unsigned>(v));
        const int k = (f - 1) % 4;
        byte((f <= 4 ? 0xcc : 0xd0) + static_cast<unsigned>(k));
        be(v, 1 << k);
    }

    // An integer < 0 in any form that holds it: negative fixint or int8..64.
    void negative(std::int64_t v) {
        std::vector<int> forms;
        if (v >= -32) forms.push_back(0);
        for (int k = 0; k < 4; ++k) {
            const int bits = 8 << k;
            if (bits == 64 || v >= -(std::int64_t{1} << (bits - 1))) forms.push_back(1 + k);
        }
        const int f = forms[below(rng, forms.size())];
        if (f == 0) return byte(static_cast<unsigned>(v) & 0xff);
        byte(0xd0 + static_cast<unsigned>(f - 1));
        be(static_cast<std::uint64_t>(v), 1 << (f - 1));
    }

    void f32(float v) {
        std::uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        byte(0xca);
        be(bits, 4);
    }
    void f64(double v) {
        std::uint64_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        byte(0xcb);
        be(bits, 8);
    }

    // A number: an integer form when `v` is whole, float32 when exact, or float64.
    void number(double v) {
        const unsigned pick = static_cast<unsigned>(below(rng, 3));
        if (pick == 0 && v == static_cast<double>(static_cast<std::int64_t>(v)) &&
            std::abs(v) < 1e18) {
            const auto i = static_cast<std::int64_t>(v);
            return i >= 0 ? uint(static_cast<std::uint64_t>(i)) : negative(i);
        }
        if (pick <= 1 && static_cast<double>(static_cast<float>(v)) == v) {
            return f32(static_cast<float>(v));
        }
        f64(v);
    }

    void str(std::string_view s) {
        std::vector<int> forms{3, 4};  // str16, str32 always fit
        if (s.size() < 32) forms.push_back(0);
        if (s.size() < 256) forms.push_back(2);
        const int f = forms[below(rng, forms.size())];
        if (f == 0) {
            byte(0xa0 | static_cast<unsigned>(s.size()));
        } else {
            byte(0xd9 + static_cast<unsigned>(f - 2));
            be(s.size(), 1 << (f - 2));
        }
        out += s;
    }

    void container(unsigned fix, unsigned first16, std::size_t n) {
        const unsigned pick = static_cast<unsigned>(below(rng, n < 16 ? 3 : 2));
        if (pick == 2) return byte(fix | static_cast<unsigned>(n));
        byte(first16 + pick);
        be(n, pick == 0 ? 2 : 4);
    }
    void array(std::size_t n) { container(0x90, 0xdc, n); }
    void map(std::size_t n) { container(0x80, 0xde, n); }

    // A value a later revision might add: anything msgpack has, nested up to `depth` more levels.
    void junk(int depth) {
        switch (below(rng, depth > 0 ? 12 : 10)) {
            case 0:
                return byte(0xc0);
            case 1:
                return byte(0xc2 + static_cast<unsigned>(below(rng, 2)));
            case 2:
                return uint(rng() >> below(rng, 64));
            case 3:
                return negative(-1 - static_cast<std::int64_t>(rng() >> (1 + below(rng, 63))));
            case 4:
                return f32(static_cast<float>(below(rng, 1000)) / 8);
            case 5:
                return f64(static_cast<double>(below(rng, 1000)) / 3);
            case 6:
                return str(std::string(below(rng, 40), 'j'));
            case 7: {  // bin8/16/32
                const unsigned k = static_cast<unsigned>(below(rng, 3));
                const std::size_t n = below(rng, 20);
                byte(0xc4 + k);
                be(n, 1 << k);
                out.append(n, '\x07');
                return;
            }
            case 8: {  // fixext 1..16
                const unsigned k = static_cast<unsigned>(below(rng, 5));
                byte(0xd4 + k);
                byte(0x05);
                out.append(std::size_t{1} << k, '\x09');
                return;
            }
            case 9: {  // ext8/16/32
                const unsigned k = static_cast<unsigned>(below(rng, 3));
                const std::size_t n = below(rng, 20);
                byte(0xc7 + k);
                be(n, 1 << k);
                byte(0x7f);
                out.append(n, '\x0b');
                return;
            }
            case 10: {
                const std::size_t n = below(rng, 4);
                array(n);
                for (std::size_t k = 0; k < n; ++k)
                    junk(depth - 1);
                return;
            }
            default: {
                const std::size_t n = below(rng, 3);
                map(n);
                for (std::size_t k = 0; k < n; ++k) {
                    junk(depth - 1);
                    junk(depth - 1);
                }
                return;
            }
        }
    }
    void junk_fields(unsigned max, int depth) {
        for (std::uint64_t k = below(rng, max + 1); k > 0; --k)
            junk(depth);
    }
};

const std::vector<std::string> sensors{"kitchen", "k", "greenhouse-07", "küche-℃-🌡",
                                       std::string(64, 's')};

// A valid readings payload written with randomly chosen forms; its sensor id in `sensor`.
std::string hand_built_readings(Rng& rng, std::string& sensor) {
    Writer w{rng, {}};
    sensor = sensors[below(rng, sensors.size())];
    const unsigned extra_fields = static_cast<unsigned>(chance(rng, 30) ? below(rng, 3) : 0);
    w.array(4 + extra_fields);
    w.uint(1);
    w.uint(0);
    w.str(sensor);
    const std::size_t n = 1 + below(rng, 4);
    w.array(n);
    std::uint64_t seq = chance(rng, 10) ? limits::max_seq + 1 - n : 1 + below(rng, 1'000'000);
    for (std::size_t k = 0; k < n; ++k) {
        const bool extras = chance(rng, 40);
        const unsigned more = static_cast<unsigned>(chance(rng, 20) ? 1 + below(rng, 2) : 0);
        w.array(4 + (extras || more > 0 ? 1 : 0) + more);
        w.uint(seq++);
        w.uint(chance(rng, 10) ? static_cast<std::uint64_t>(limits::max_ts_us)
                               : 1 + below64(rng, 2'000'000'000'000'000));
        w.number(static_cast<double>(static_cast<std::int64_t>(below(rng, 1273)) - 273) +
                 (chance(rng, 50) ? 0.25 : 0.0));
        w.number(static_cast<double>(below(rng, 100)) + (chance(rng, 50) ? 0.5 : 0.0));
        if (extras || more > 0) {
            if (!extras) {
                w.byte(0xc0);
            } else {
                const std::size_t e = below(rng, 4);
                w.map(e);
                for (std::size_t i = 0; i < e; ++i) {
                    w.str(i == 0 && chance(rng, 30) ? "größe" : "x" + std::to_string(i));
                    w.number(static_cast<double>(below(rng, 10000)) / 7 - 500);
                }
            }
        }
        for (unsigned i = 0; i < more; ++i)
            w.junk(3);
    }
    for (unsigned i = 0; i < extra_fields; ++i)
        w.junk(4);
    return std::move(w.out);
}

std::string hand_built_heartbeat(Rng& rng) {
    Writer w{rng, {}};
    const unsigned extra_fields = static_cast<unsigned>(chance(rng, 30) ? below(rng, 3) : 0);
    w.array(7 + extra_fields);
    w.uint(1);
    w.uint(1);
    w.str(chance(rng, 50) ? "pi-garden" : "publisher/Ω");
    w.uint(1 + below64(rng, static_cast<std::uint64_t>(limits::max_ts_us)));
    w.uint(1 + below(rng, 86'400'000));
    w.str(chance(rng, 50) ? "" : "tcp://*:5557");
    const std::size_t n = below(rng, 4);
    w.map(n);
    for (std::size_t k = 0; k < n; ++k) {
        w.str(sensors[k]);
        w.uint(rng() >> below(rng, 64));
    }
    for (unsigned i = 0; i < extra_fields; ++i)
        w.junk(4);
    return std::move(w.out);
}

std::string encoder_readings(Rng& rng, std::string& sensor) {
    sensor = sensors[below(rng, sensors.size())];
    std::vector<Reading> batch(1 + below(rng, 3));
    std::uint64_t seq = 1 + below(rng, 1000);
    for (auto& r : batch) {
        r.sensor = sensor;
        r.seq = seq++;
        r.ts = Timestamp{std::chrono::microseconds{
            1 + static_cast<std::int64_t>(
                    below64(rng, static_cast<std::uint64_t>(limits::max_ts_us)))}};
        r.temperature = static_cast<float>(below(rng, 12000)) / 10.0f - 200.0f;
        r.humidity = static_cast<float>(below(rng, 1001)) / 10.0f;
        if (chance(rng, 30)) r.extras = {{"battery_v", 3.3}, {"p", -1e300}};
    }
    return encode_batch(batch);
}

std::string encoder_heartbeat(Rng& rng) {
    Heartbeat hb{
        "pub-" + std::to_string(below(rng, 100)),
        Timestamp{std::chrono::microseconds{1 + static_cast<std::int64_t>(below(rng, 1u << 30))}},
        std::chrono::milliseconds{1 + below(rng, 5000)},
        chance(rng, 50) ? "" : "tcp://192.0.2.1:5557",
        {}};
    for (std::size_t k = below(rng, 4); k > 0; --k)
        hb.newest.emplace_back(sensors[k], below(rng, 1000));
    return encode_heartbeat(hb);
}

// One random mutation: flip a bit, set a byte, insert or delete bytes, truncate, or duplicate a
// slice.
void mutate(Rng& rng, std::string& p) {
    static const unsigned char interesting[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                                0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc7, 0xca,
                                                0xcb, 0xcc, 0xcf, 0xd0, 0xd3, 0xd4, 0xd8, 0xd9,
                                                0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    const auto pos = [&](std::size_t extra) { return below(rng, p.size() + extra); };
    const auto any_byte = [&]() {
        return static_cast<char>(chance(rng, 50) ? interesting[below(rng, sizeof interesting)]
                                                 : below(rng, 256));
    };
    if (p.empty()) {
        p += any_byte();
        return;
    }
    switch (below(rng, 7)) {
        case 0:
            p[pos(0)] ^= static_cast<char>(1u << below(rng, 8));
            break;
        case 1:
        case 2:
            p[pos(0)] = any_byte();
            break;
        case 3:
            p.insert(pos(1), 1 + below(rng, 3), any_byte());
            break;
        case 4:
            p.erase(pos(0), 1 + below(rng, 3));
            break;
        case 5:
            p.resize(pos(0));
            break;
        default: {
            const std::size_t from = pos(0);
            const std::string slice = p.substr(from, 1 + below(rng, 8));
            p.insert(pos(1), slice);
        }
    }
}

// What a decoder made of a payload.
struct Outcome {
    std::optional<Message> value;
    DecodeErrc code = DecodeErrc::malformed;
    std::string what;
};

template <typename F>
Outcome outcome_of(F&& decode) {
    Outcome o;
    try {
        o.value = decode();
    } catch (const DecodeError& e) {
        o.code = e.code();
        o.what = e.what();
    }
    return o;
}

struct Tally {
    std::size_t cases = 0;
    std::size_t accepted = 0;
    std::size_t rejected = 0;
    std::size_t by_code[8] = {};
};

// Checks the decode that discards invalid readings alone against the strict one: where the
// strict one accepts, it gives the same readings and none invalid; where it fails, the strict
// one fails too; where it accepts what the strict one refuses, what it kept is valid, what it
// discarded is named, and together they are in strictly increasing seq order.
void check_lenient(std::string_view payload) {
    std::vector<Reading> out;
    std::vector<InvalidReading> invalid;
    bool lenient_ok = true;
    try {
        decode_batch(payload, out, invalid);
    } catch (const DecodeError&) {
        lenient_ok = false;
        CHECK(out.empty());
        CHECK(invalid.empty());
    }
    std::optional<std::vector<Reading>> strict;
    try {
        strict = decode_batch(payload);
    } catch (const DecodeError&) {
    }
    if (strict) {
        REQUIRE(lenient_ok);
        CHECK(out == *strict);
        CHECK(invalid.empty());
        return;
    }
    if (!lenient_ok) return;
    CHECK_FALSE(invalid.empty());
    std::vector<std::uint64_t> seqs;
    for (const auto& r : out) {
        CHECK_FALSE(reading_problem(r).has_value());
        seqs.push_back(r.seq);
    }
    for (const auto& r : invalid) {
        CHECK_FALSE(r.problem.empty());
        CHECK(r.seq >= 1);
        CHECK(r.seq <= limits::max_seq);
        seqs.push_back(r.seq);
    }
    std::sort(seqs.begin(), seqs.end());
    CHECK(std::adjacent_find(seqs.begin(), seqs.end()) == seqs.end());
}

// Decodes `payload` with both decoders in all three ways and checks that they agree: the same
// readings or heartbeat, or the same error code and message.
void check_agree(std::string_view topic, std::string_view payload, Tally& tally) {
    check_lenient(payload);
    const Outcome outcomes[3][2] = {
        {outcome_of([&] { return Message{decode_batch(payload)}; }),
         outcome_of([&] { return Message{reference::decode_batch(payload)}; })},
        {outcome_of([&] { return Message{decode_heartbeat(payload)}; }),
         outcome_of([&] { return Message{reference::decode_heartbeat(payload)}; })},
        {outcome_of([&] { return decode_message(topic, payload); }),
         outcome_of([&] { return reference::decode_message(topic, payload); })},
    };
    for (const auto& [fresh, ref] : outcomes) {
        ++tally.cases;
        const bool agree = fresh.value.has_value() == ref.value.has_value() &&
                           (fresh.value ? *fresh.value == *ref.value
                                        : fresh.code == ref.code && fresh.what == ref.what);
        if (!agree) {
            std::string hex;
            for (unsigned char ch : payload) {
                static const char digits[] = "0123456789abcdef";
                hex += digits[ch >> 4];
                hex += digits[ch & 15];
                hex += ' ';
            }
            CAPTURE(hex);
            CAPTURE(fresh.what);
            CAPTURE(ref.what);
            FAIL("the decoders disagree");
        }
        if (fresh.value) {
            ++tally.accepted;
        } else {
            ++tally.rejected;
            ++tally.by_code[static_cast<std::size_t>(fresh.code)];
        }
    }
}

}  // namespace

TEST_CASE("differential: hand-built payloads in every msgpack form decode as the reference does") {
    Rng rng(20261122);
    Tally tally;
    for (int k = 0; k < 3000; ++k) {
        std::string sensor;
        const bool heartbeat = k % 4 == 3;
        const auto p = heartbeat ? hand_built_heartbeat(rng) : hand_built_readings(rng, sensor);
        const std::string topic = heartbeat ? std::string(heartbeat_topic) : sensor;
        CAPTURE(k);
        // Valid by construction: both decoders must accept it, and agree on what it holds.
        if (heartbeat) {
            REQUIRE_NOTHROW((void)decode_heartbeat(p));
        } else {
            REQUIRE_NOTHROW((void)decode_batch(p));
        }
        check_agree(topic, p, tally);
    }
    CHECK(tally.accepted == tally.cases / 3 * 2);  // each payload fits two of the three calls
}

TEST_CASE("differential: random mutations of valid payloads are judged as the reference does") {
    Rng rng(1122);
    Tally tally;
    const int seeds = 2000;
    const int mutations_per_seed = 50;
    for (int k = 0; k < seeds; ++k) {
        std::string sensor;
        const bool heartbeat = k % 5 == 4;
        const bool hand_built = k % 2 == 0;
        const std::string seed =
            heartbeat
                ? (hand_built ? hand_built_heartbeat(rng) : encoder_heartbeat(rng))
                : (hand_built ? hand_built_readings(rng, sensor) : encoder_readings(rng, sensor));
        const std::string topic = heartbeat ? std::string(heartbeat_topic) : sensor;
        for (int m = 0; m < mutations_per_seed; ++m) {
            std::string p = seed;
            for (std::uint64_t n = 1 + (chance(rng, 25) ? below(rng, 4) : 0); n > 0; --n)
                mutate(rng, p);
            check_agree(topic, p, tally);
        }
    }
    MESSAGE("differential cases: " << tally.cases << ", accepted " << tally.accepted
                                   << ", rejected " << tally.rejected);
    for (std::size_t c = 0; c < 8; ++c) {
        MESSAGE("  " << to_string(static_cast<DecodeErrc>(c)) << ": " << tally.by_code[c]);
    }
    CHECK(tally.cases == 3u * seeds * mutations_per_seed);
    // The mutations reach both verdicts and every structural error.
    CHECK(tally.accepted > tally.cases / 100);
    CHECK(tally.by_code[static_cast<std::size_t>(DecodeErrc::malformed)] > 0);
    CHECK(tally.by_code[static_cast<std::size_t>(DecodeErrc::trailing_bytes)] > 0);
    CHECK(tally.by_code[static_cast<std::size_t>(DecodeErrc::too_large)] > 0);
    CHECK(tally.by_code[static_cast<std::size_t>(DecodeErrc::wrong_type)] > 0);
    CHECK(tally.by_code[static_cast<std::size_t>(DecodeErrc::invalid_value)] > 0);
}

TEST_CASE("differential: hostile counts and nesting are judged as the reference does") {
    Tally tally;
    const std::string head("\x94\x01\x00\xa1k", 5);  // [1, 0, "k", ...
    const std::string reading("\x94\x01\xcf\x00\x06\x44\x17\xe0\x66\x48\x00\x00\x00", 13);
    auto readings_then = [&](const std::string& trailing) {
        // [1, 0, "k", [reading], trailing]
        return std::string("\x95\x01\x00\xa1k\x91", 6) + reading + trailing;
    };
    auto nested = [](int levels, const std::string& inner) {
        return std::string(static_cast<std::size_t>(levels), '\x91') + inner;
    };
    struct Case {
        std::string payload;
        std::optional<DecodeErrc> expect;  // nothing: accepted
    };
    const Case cases[] = {
        // Counts far beyond the bytes present, at every level.
        {head + std::string("\xdd\x00\x00\x27\x10", 5), DecodeErrc::malformed},  // 10000 readings
        {head + std::string("\xdd\xff\xff\xff\xff", 5), DecodeErrc::too_large},
        {readings_then(std::string("\xdf\x00\x00\x10\x00", 5)), DecodeErrc::malformed},
        {readings_then(std::string("\xdf\xff\xff\xff\xff", 5)), DecodeErrc::too_large},
        {readings_then(std::string("\xdb\xff\xff\xff\xff", 5)), DecodeErrc::malformed},
        {readings_then(std::string("\xc6\xff\xff\xff\xff", 5)), DecodeErrc::malformed},
        {readings_then(std::string("\xc9\xff\xff\xff\xff\x01", 6)), DecodeErrc::malformed},
        {std::string("\x97\x01\x01\xa1p\x01\x01\xa0\xdf\x00\x00\x10\x00", 13),
         DecodeErrc::malformed},  // a heartbeat declaring 4096 sensors
        // Nesting: the payload is level 1, so a trailing field is at level 2 and may hold arrays
        // or maps down to level 8; one more, even empty, is too deep.
        {readings_then(nested(6, "\x90")), std::nullopt},
        {readings_then(nested(7, "\x90")), DecodeErrc::too_large},
        {readings_then(nested(7, "\x01")), std::nullopt},
        {readings_then(nested(7, "\x80")), DecodeErrc::too_large},
        {readings_then(nested(200, "")), DecodeErrc::too_large},
        // Trailing bytes after a complete payload, and a payload that is only a header.
        {readings_then("\x01") + "\x01", DecodeErrc::trailing_bytes},
        {std::string("\xdd", 1), DecodeErrc::malformed},
    };
    for (const auto& c : cases) {
        CAPTURE(c.payload.size());
        check_agree("k", c.payload, tally);
        if (c.expect) {
            try {
                (void)decode_batch(c.payload);
                FAIL("accepted");
            } catch (const DecodeError& e) {
                CHECK(e.code() == *c.expect);
            }
        } else {
            CHECK(decode_batch(c.payload).size() == 1);
        }
    }
}
