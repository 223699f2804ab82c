#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <msgpack.hpp>

#include "rill/codec.hpp"
#include "support/msgpack.hpp"
#include "support/readings.hpp"

using namespace rill;
using namespace std::chrono_literals;

namespace {

// A valid reading with fixed values; the tests vary what they examine.
Reading sample(std::uint64_t seq = 1, std::string sensor = "kitchen") {
    return rill::test::reading(std::move(sensor), seq, 21.5f, 40.25f);
}

using test::pack_array;
using test::packed;
using test::Packer;

constexpr long long valid_ts = 1'700'000'000'000'000LL;

// A readings payload whose single reading is the array given.
template <typename... T>
std::string payload_with_reading(const T&... fields) {
    return packed([&](Packer& pk) {
        pk.pack_array(4);
        pk.pack(1);
        pk.pack(0);
        pk.pack(std::string("kitchen"));
        pk.pack_array(1);
        pk.pack_array(sizeof...(T));
        (pk.pack(fields), ...);
    });
}

// A readings payload of sensor "kitchen" with one reading per seq given, unchecked.
std::string batch_of_seqs(std::initializer_list<int> seqs) {
    return packed([&](Packer& pk) {
        pk.pack_array(4);
        pk.pack(1);
        pk.pack(0);
        pk.pack(std::string("kitchen"));
        pk.pack_array(static_cast<std::uint32_t>(seqs.size()));
        for (int seq : seqs) {
            pk.pack_array(4);
            pk.pack(seq);
            pk.pack(1'700'000'000'000'000LL);
            pk.pack(1.0f);
            pk.pack(2.0f);
        }
    });
}

DecodeErrc decode_error_of(std::string_view payload) {
    try {
        (void)decode_batch(payload);
    } catch (const DecodeError& e) {
        return e.code();
    }
    FAIL("payload was accepted");
    return DecodeErrc::malformed;
}

}  // namespace

TEST_CASE("a single reading survives an encode and decode round trip") {
    const auto r = sample();
    const auto out = decode_batch(encode(r));
    REQUIRE(out.size() == 1);
    CHECK(out[0] == r);
}

TEST_CASE("a batch of readings survives a round trip in order") {
    std::vector<Reading> batch;
    for (std::uint64_t s = 5; s < 105; ++s)
        batch.push_back(sample(s));
    CHECK(decode_batch(encode_batch(batch)) == batch);
}

TEST_CASE("extreme values round trip: max-length id, negative temperature, the largest seq") {
    Reading r = sample(limits::max_seq - 1, std::string(limits::max_sensor_id_bytes, 'x'));
    r.temperature = -40.5f;
    r.humidity = 0.0f;
    r.ts = Timestamp{std::chrono::microseconds{limits::max_ts_us}};
    Reading next = r;
    next.seq = limits::max_seq;
    next.humidity = 100.0f;
    std::vector<Reading> batch{r, next};
    CHECK(decode_batch(encode_batch(batch)) == batch);
}

TEST_CASE("extras round trip, and an empty extras list encodes as a four-field reading") {
    Reading r = sample();
    const auto plain = encode(r);
    r.extras = {{"pressure_hpa", 1013.25}, {"battery_v", 3.3}, {"größe", -1e300}};
    const auto with = encode(r);
    CHECK(decode_batch(with).front() == r);
    CHECK(with.size() > plain.size());
    // Element 3 of the payload is the readings array; its first reading has 4 fields.
    const auto oh = msgpack::unpack(plain.data(), plain.size());
    CHECK(oh.get().via.array.ptr[3].via.array.ptr[0].via.array.size == 4);
}

TEST_CASE("a multibyte UTF-8 sensor id round trips") {
    const auto r = sample(1, "küche-℃-🌡");
    CHECK(decode_batch(encode(r)).front().sensor == "küche-℃-🌡");
}

TEST_CASE("the encoder refuses readings a decoder would reject") {
    CHECK_THROWS_AS((void)encode(sample(0)), std::invalid_argument);
    Reading inf = sample();
    inf.temperature = std::numeric_limits<float>::infinity();
    CHECK_THROWS_AS((void)encode(inf), std::invalid_argument);
    Reading nothing = sample();
    nothing.temperature = not_measured;
    nothing.humidity = not_measured;
    CHECK_THROWS_AS((void)encode(nothing), std::invalid_argument);
    std::vector<Reading> mixed{sample(1, "a"), sample(2, "b")};
    CHECK_THROWS_AS((void)encode_batch(mixed), std::invalid_argument);
    std::vector<Reading> backwards{sample(2), sample(1)};
    CHECK_THROWS_AS((void)encode_batch(backwards), std::invalid_argument);
    CHECK_THROWS_AS((void)encode_batch(std::vector<Reading>{}), std::invalid_argument);
}

TEST_CASE("a quantity not measured is nil on the wire and round trips as not measured") {
    Reading dry = sample(1);
    dry.humidity = not_measured;
    Reading cold = sample(2);
    cold.temperature = not_measured;
    Reading only_extra = sample(3);
    only_extra.temperature = not_measured;
    only_extra.humidity = not_measured;
    only_extra.extras = {{"pressure_hpa", 1013.25}};
    const std::vector<Reading> batch{dry, cold, only_extra};
    const auto bytes = encode_batch(batch);
    const auto out = decode_batch(bytes);
    REQUIRE(out.size() == 3);
    CHECK(out == batch);
    CHECK(out[0].temperature == 21.5f);
    CHECK_FALSE(is_measured(out[0].humidity));
    CHECK_FALSE(is_measured(out[1].temperature));
    CHECK(out[1].humidity == 40.25f);
    CHECK_FALSE(is_measured(out[2].temperature));
    CHECK_FALSE(is_measured(out[2].humidity));
    // The wire holds nil (0xc0) where a value is not measured, never a float NaN.
    const auto oh = msgpack::unpack(bytes.data(), bytes.size());
    const auto& readings = oh.get().via.array.ptr[3].via.array;
    CHECK(readings.ptr[0].via.array.ptr[2].type == msgpack::type::FLOAT32);
    CHECK(readings.ptr[0].via.array.ptr[3].type == msgpack::type::NIL);
    CHECK(readings.ptr[1].via.array.ptr[2].type == msgpack::type::NIL);
    CHECK(readings.ptr[2].via.array.ptr[2].type == msgpack::type::NIL);
    CHECK(readings.ptr[2].via.array.ptr[3].type == msgpack::type::NIL);
    // A reading without humidity is the 33-byte example of proto/reading_v1.md less 4 bytes.
    Reading kitchen = sample(1);
    kitchen.ts = Timestamp{1'763'719'200'000'000us};
    kitchen.humidity = not_measured;
    CHECK(encode(kitchen).size() == 29);
    CHECK(encode(kitchen).back() == '\xc0');
}

TEST_CASE("nil is decoded as not measured, a float NaN on the wire is still invalid") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto nanf = std::numeric_limits<float>::quiet_NaN();
    const msgpack::type::nil_t nil;
    const auto t_only = decode_batch(payload_with_reading(1, valid_ts, 1.5, nil));
    REQUIRE(t_only.size() == 1);
    CHECK(t_only[0].temperature == 1.5f);
    CHECK_FALSE(is_measured(t_only[0].humidity));
    const auto h_only = decode_batch(payload_with_reading(1, valid_ts, nil, 55));
    REQUIRE(h_only.size() == 1);
    CHECK_FALSE(is_measured(h_only[0].temperature));
    CHECK(h_only[0].humidity == 55.0f);
    CHECK(decode_error_of(payload_with_reading(1, valid_ts, nan, 2.0)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, valid_ts, nanf, 2.0)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, valid_ts, 1.0, nanf)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, valid_ts, nil, nan)) ==
          DecodeErrc::invalid_value);
    // Nothing measured: valid with an extra (empty extras or nil count as none), invalid
    // without.
    CHECK(decode_error_of(payload_with_reading(1, valid_ts, nil, nil)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, valid_ts, nil, nil, nil)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(
              payload_with_reading(1, valid_ts, nil, nil, std::map<std::string, double>{})) ==
          DecodeErrc::invalid_value);
    const auto extra_only = decode_batch(
        payload_with_reading(1, valid_ts, nil, nil, std::map<std::string, double>{{"v", 3.5}}));
    REQUIRE(extra_only.size() == 1);
    CHECK(extra_only[0].extras == std::vector<Extra>{{"v", 3.5}});
}

TEST_CASE("a heartbeat survives a round trip") {
    Heartbeat hb;
    hb.publisher = "pi-garden:sensor-pub";
    hb.sent_at = Timestamp{1'763'719'200'123'456us};
    hb.interval = 1500ms;
    hb.replay_endpoint = "tcp://192.0.2.7:5557";
    hb.newest = {{"garden", 42}, {"shed", 7}};
    CHECK(decode_heartbeat(encode_heartbeat(hb)) == hb);
}

TEST_CASE("decode_message checks that the topic frame agrees with the payload") {
    const auto r = sample();
    const auto m = decode_message("kitchen", encode(r));
    REQUIRE(std::holds_alternative<std::vector<Reading>>(m));
    CHECK(std::get<std::vector<Reading>>(m).front() == r);

    try {
        (void)decode_message("kitch", encode(r));
        FAIL("mismatched topic accepted");
    } catch (const DecodeError& e) {
        CHECK(e.code() == DecodeErrc::topic_mismatch);
    }

    Heartbeat hb{"p", Timestamp{1s}, 1000ms, "", {}};
    CHECK(std::holds_alternative<Heartbeat>(decode_message(heartbeat_topic, encode_heartbeat(hb))));
    CHECK_THROWS_AS((void)decode_message("kitchen", encode_heartbeat(hb)), DecodeError);
}

TEST_CASE("unknown trailing fields are ignored at every level") {
    // A reading with a sixth field and a payload with a fifth: a later minor version may add them.
    const auto payload = packed([](Packer& pk) {
        pk.pack_array(5);
        pk.pack(1);
        pk.pack(0);
        pk.pack(std::string("kitchen"));
        pk.pack_array(1);
        pk.pack_array(6);
        pk.pack(7);
        pk.pack(1'700'000'000'000'000LL);
        pk.pack(20.0f);
        pk.pack(50.0);
        pk.pack_nil();
        pk.pack(std::string("future"));
        pk.pack(std::string("trailing field"));
    });
    const auto out = decode_batch(payload);
    REQUIRE(out.size() == 1);
    CHECK(out[0].seq == 7);
    CHECK(out[0].humidity == 50.0f);
    CHECK(out[0].extras.empty());
}

TEST_CASE("integers and float64 are accepted where numbers are expected") {
    const auto out = decode_batch(payload_with_reading(3, 1'700'000'000'000'000LL, -5, 55.5));
    CHECK(out[0].temperature == -5.0f);
    CHECK(out[0].humidity == 55.5f);
}

TEST_CASE("an unknown version is rejected with a clear error") {
    auto p = encode(sample());
    p[1] = 2;  // fixarray header, then the version as a positive fixint
    try {
        (void)decode_batch(p);
        FAIL("version 2 accepted");
    } catch (const DecodeError& e) {
        CHECK(e.code() == DecodeErrc::unknown_version);
        CHECK(std::string(e.what()).find("version 2") != std::string::npos);
    }
}

TEST_CASE("an unknown payload kind is rejected") {
    auto p = encode(sample());
    p[2] = 9;
    CHECK(decode_error_of(p) == DecodeErrc::unknown_kind);
}

TEST_CASE("a heartbeat is not mistaken for readings") {
    Heartbeat hb{"p", Timestamp{1s}, 1000ms, "", {}};
    CHECK(decode_error_of(encode_heartbeat(hb)) == DecodeErrc::wrong_type);
}

TEST_CASE("every truncation of a valid payload is rejected as malformed") {
    std::vector<Reading> batch{sample(1), sample(2)};
    batch[1].extras = {{"v", 1.0}};
    const auto p = encode_batch(batch);
    for (std::size_t n = 0; n < p.size(); ++n) {
        CAPTURE(n);
        const auto code = decode_error_of(std::string_view(p).substr(0, n));
        CHECK((code == DecodeErrc::malformed || code == DecodeErrc::wrong_type));
    }
}

TEST_CASE("trailing garbage after the payload is rejected") {
    CHECK(decode_error_of(encode(sample()) + "x") == DecodeErrc::trailing_bytes);
}

TEST_CASE("bytes that are not msgpack are rejected") {
    CHECK(decode_error_of("\xc1") == DecodeErrc::malformed);  // 0xc1 is never used
    CHECK(decode_error_of("") == DecodeErrc::malformed);
    CHECK(decode_error_of("hello") == DecodeErrc::trailing_bytes);  // 'h' is a fixint
    CHECK(decode_error_of(std::string_view("\x93\x01\x00\xa1k", 5)) == DecodeErrc::malformed);
}

TEST_CASE("wrong field types are rejected naming the field") {
    try {
        (void)decode_batch(
            payload_with_reading(std::string("1"), 1'700'000'000'000'000LL, 1.0, 2.0));
        FAIL("string seq accepted");
    } catch (const DecodeError& e) {
        CHECK(e.code() == DecodeErrc::wrong_type);
        CHECK(std::string(e.what()) == "reading 0: seq is a str, expected positive integer");
    }
    CHECK(decode_error_of(payload_with_reading(1, 1'700'000'000'000'000LL, true, 2.0)) ==
          DecodeErrc::wrong_type);
    CHECK(decode_error_of(payload_with_reading(1, 1.5, 1.0, 2.0)) == DecodeErrc::wrong_type);
    CHECK(decode_error_of(payload_with_reading(1, 1'700'000'000'000'000LL, 1.0, 2.0, 5)) ==
          DecodeErrc::wrong_type);  // extras must be a map or nil
    CHECK(decode_error_of(pack_array(1, 0, 5, std::vector<int>{})) == DecodeErrc::wrong_type);
}

TEST_CASE("values outside their domain are rejected") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto inf = std::numeric_limits<double>::infinity();
    const long long ts = 1'700'000'000'000'000LL;
    CHECK(decode_error_of(payload_with_reading(0, ts, 1.0, 2.0)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, 0, 1.0, 2.0)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, -5, 1.0, 2.0)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, limits::max_ts_us + 1, 1.0, 2.0)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, ts, nan, 2.0)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, ts, 1.0, inf)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, ts, -300.0, 2.0)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(1, ts, 1.0, 100.5)) == DecodeErrc::invalid_value);
    CHECK(decode_error_of(
              payload_with_reading(1, ts, 1.0, 2.0, std::map<std::string, double>{{"x", nan}})) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(
              payload_with_reading(1, ts, 1.0, 2.0, std::map<std::string, double>{{"", 1.0}})) ==
          DecodeErrc::invalid_value);
}

TEST_CASE("bad sensor ids are rejected: empty, too long, control characters, invalid UTF-8") {
    for (const std::string& id :
         {std::string(), std::string(65, 'a'), std::string("a\nb"), std::string("\xff"),
          std::string("\xc0\xaf"), std::string("\0hb", 3)}) {
        CAPTURE(id);
        const auto p = pack_array(1, 0, id, std::vector<int>{});
        const auto code = decode_error_of(p);
        CHECK((code == DecodeErrc::invalid_value || code == DecodeErrc::too_large));
    }
}

TEST_CASE("seq must increase within a batch") {
    CHECK(decode_error_of(batch_of_seqs({5, 5})) == DecodeErrc::invalid_value);
}

TEST_CASE("declared sizes over the limits are rejected before allocation") {
    // An array32 header declaring 4 billion readings, in a 14-byte payload.
    const std::string p("\x94\x01\x00\xa1k\xdd\xff\xff\xff\xff", 10);
    CHECK(decode_error_of(p) == DecodeErrc::too_large);
    // A str32 sensor id declaring 4 GiB.
    const std::string q("\x94\x01\x00\xdb\xff\xff\xff\xff", 8);
    const auto code = decode_error_of(q);
    CHECK((code == DecodeErrc::too_large || code == DecodeErrc::malformed));
    // Too many extras.
    std::map<std::string, double> extras;
    for (int i = 0; i < 17; ++i)
        extras["e" + std::to_string(i)] = i;
    CHECK(decode_error_of(payload_with_reading(1, 1'700'000'000'000'000LL, 1.0, 2.0, extras)) ==
          DecodeErrc::too_large);
    // A payload over the byte limit.
    CHECK(decode_error_of(std::string(limits::max_payload_bytes + 1, '\x90')) ==
          DecodeErrc::too_large);
}

TEST_CASE("a failed decode leaves the output vector as it was") {
    std::vector<Reading> out{sample(1)};
    // Two readings, the second with seq 0: decoding fails after the first was appended.
    const std::string bad = batch_of_seqs({2, 0});
    CHECK_THROWS_AS(decode_batch(bad, out), DecodeError);
    REQUIRE(out.size() == 1);
    CHECK(out[0] == sample(1));
}

TEST_CASE("heartbeats with bad fields are rejected") {
    Heartbeat hb{"pub", Timestamp{1s}, 1000ms, "tcp://h:1", {{"a", 1}}};
    auto p = encode_heartbeat(hb);
    CHECK_THROWS_AS((void)decode_heartbeat(p + "x"), DecodeError);
    CHECK_THROWS_AS((void)decode_heartbeat(p.substr(0, p.size() - 1)), DecodeError);
    hb.interval = 0ms;
    CHECK_THROWS_AS((void)encode_heartbeat(hb), std::invalid_argument);
    hb.interval = 1000ms;
    hb.publisher = "";
    CHECK_THROWS_AS((void)encode_heartbeat(hb), std::invalid_argument);
}

namespace {
std::string unhex(std::string_view hex) {
    std::string out;
    int hi = -1;
    for (char c : hex) {
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (v < 0) continue;
        if (hi < 0) {
            hi = v;
        } else {
            out += static_cast<char>(hi * 16 + v);
            hi = -1;
        }
    }
    return out;
}
}  // namespace

TEST_CASE("the encoder writes the exact bytes of the examples in proto/reading_v1.md") {
    // Section 6.1
    const Reading one{"kitchen", 1, Timestamp{1'763'719'200'000'000us}, 21.5f, 40.25f, {}};
    CHECK(encode(one) == unhex("94 01 00 a7 6b 69 74 63 68 65 6e 91 94 01 cf 00 06 44 17 e0 66 "
                               "48 00 ca 41 ac 00 00 ca 42 21 00 00"));
    // Section 6.2
    const std::vector<Reading> two{
        {"garden", 41, Timestamp{1'763'719'200'000'000us}, -3.5f, 87.0f, {{"battery_v", 3.3}}},
        {"garden", 42, Timestamp{1'763'719'205'000'000us}, -3.25f, 86.5f, {}}};
    CHECK(encode_batch(two) ==
          unhex("94 01 00 a6 67 61 72 64 65 6e 92 95 29 cf 00 06 44 17 e0 66 48 00 ca c0 60 00 00 "
                "ca 42 ae 00 00 81 a9 62 61 74 74 65 72 79 5f 76 cb 40 0a 66 66 66 66 66 66 94 2a "
                "cf 00 06 44 17 e0 b2 93 40 ca c0 50 00 00 ca 42 ad 00 00"));
    // Section 6.3
    const Heartbeat hb{
        "pi-garden", Timestamp{1'763'719'206'000'000us}, 1000ms, "tcp://*:5557", {{"garden", 42}}};
    CHECK(encode_heartbeat(hb) ==
          unhex("97 01 01 a9 70 69 2d 67 61 72 64 65 6e cf 00 06 44 17 e0 c1 d5 80 cd 03 e8 ac 74 "
                "63 70 3a 2f 2f 2a 3a 35 35 35 37 81 a6 67 61 72 64 65 6e 2a"));
    // Section 6.4
    const Reading dry{"kitchen", 1, Timestamp{1'763'719'200'000'000us}, 21.5f, not_measured, {}};
    CHECK(encode(dry) == unhex("94 01 00 a7 6b 69 74 63 68 65 6e 91 94 01 cf 00 06 44 17 e0 66 "
                               "48 00 ca 41 ac 00 00 c0"));
}

// --- the bounds as reading_v1 writes them -----------------------------------------------------

namespace {

// Whether a one-reading payload with this temperature (packed in the type given: msgpack-c
// writes a float as float32, a double as float64, an integer as an integer) is accepted.
template <typename T>
bool temperature_accepted(T t) {
    try {
        (void)decode_batch(payload_with_reading(1, valid_ts, t, 2.0));
        return true;
    } catch (const DecodeError& e) {
        CHECK(e.code() == DecodeErrc::invalid_value);
        return false;
    }
}

}  // namespace

TEST_CASE("a temperature is compared with -273.15 and 1000 in the precision it arrived in") {
    CHECK(temperature_accepted(-273.15));        // float64, exactly the bound
    CHECK_FALSE(temperature_accepted(-273.16));  // float64 below it
    CHECK_FALSE(temperature_accepted(std::nextafter(-273.15, -300.0)));  // one ulp below
    CHECK(temperature_accepted(-273.15f));                               // float32: -273.149994
    CHECK_FALSE(temperature_accepted(std::nextafter(-273.15f, -300.0f)));
    CHECK_FALSE(temperature_accepted(-274));  // an integer
    CHECK(temperature_accepted(1000));
    CHECK(temperature_accepted(1000.0));
    CHECK(temperature_accepted(1000.0f));
    CHECK_FALSE(temperature_accepted(1000.0001));                         // float64
    CHECK_FALSE(temperature_accepted(std::nextafter(1000.0f, 2000.0f)));  // the next float32
    CHECK_FALSE(temperature_accepted(1001));
    // A float64 -273.15 decodes to the float nearest it, which the encoder accepts again.
    const auto out = decode_batch(payload_with_reading(1, valid_ts, -273.15, 2.0));
    REQUIRE(out.size() == 1);
    CHECK(out[0].temperature == -273.15f);
    CHECK_FALSE(reading_problem(out[0]).has_value());
    CHECK(decode_batch(encode(out[0])) == out);
}

TEST_CASE("reading_problem applies the same temperature bounds to a float") {
    Reading r = sample();
    r.temperature = -273.15f;
    CHECK_FALSE(reading_problem(r).has_value());
    r.temperature = std::nextafter(-273.15f, -300.0f);
    CHECK(reading_problem(r).has_value());
    r.temperature = 1000.0f;
    CHECK_FALSE(reading_problem(r).has_value());
    r.temperature = std::nextafter(1000.0f, 2000.0f);
    CHECK(reading_problem(r).has_value());
    CHECK_THROWS_AS((void)encode(r), std::invalid_argument);
}

TEST_CASE(
    "a seq above 2^63 - 1 is rejected by every decode and the encoder, the largest accepted") {
    const std::uint64_t too_big = limits::max_seq + 1;  // 2^63
    CHECK(decode_error_of(payload_with_reading(too_big, valid_ts, 1.0, 2.0)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_error_of(payload_with_reading(~std::uint64_t{0}, valid_ts, 1.0, 2.0)) ==
          DecodeErrc::invalid_value);
    CHECK(decode_batch(payload_with_reading(limits::max_seq, valid_ts, 1.0, 2.0)).at(0).seq ==
          limits::max_seq);
    // Structural even where one invalid reading is discarded alone: the whole payload goes.
    std::vector<Reading> out;
    std::vector<InvalidReading> invalid;
    CHECK_THROWS_AS(decode_batch(payload_with_reading(too_big, valid_ts, 1.0, 2.0), out, invalid),
                    DecodeError);
    CHECK(out.empty());
    CHECK(invalid.empty());
    CHECK_THROWS_AS(
        (void)decode_message("kitchen", payload_with_reading(too_big, valid_ts, 1.0, 2.0), invalid),
        DecodeError);
    Reading r = sample(too_big);
    CHECK(reading_problem(r).has_value());
    CHECK_THROWS_AS((void)encode(r), std::invalid_argument);
}

// --- one invalid reading is discarded alone -----------------------------------------------------

namespace {

// A readings payload of sensor "kitchen" from readings given as packing functions.
template <typename... F>
std::string batch_of(const F&... readings) {
    return packed([&](Packer& pk) {
        pk.pack_array(4);
        pk.pack(1);
        pk.pack(0);
        pk.pack(std::string("kitchen"));
        pk.pack_array(sizeof...(F));
        (readings(pk), ...);
    });
}

// Packs a reading [seq, ts, t, h, more...].
template <typename... T>
auto reading_fields(const T&... fields) {
    return [=](Packer& pk) {
        pk.pack_array(sizeof...(T));
        (pk.pack(fields), ...);
    };
}

}  // namespace

TEST_CASE("a batch with NaN in its middle reading keeps the first and the last") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto p =
        batch_of(reading_fields(1, valid_ts, 20.0, 40.0), reading_fields(2, valid_ts, nan, 40.0),
                 reading_fields(3, valid_ts, 21.0, 41.0));
    CHECK(decode_error_of(p) == DecodeErrc::invalid_value);  // the strict decode: all or nothing
    std::vector<Reading> out{sample(7, "before")};
    std::vector<InvalidReading> invalid;
    decode_batch(p, out, invalid);
    REQUIRE(out.size() == 3);
    CHECK(out[0] == sample(7, "before"));
    CHECK(out[1].seq == 1);
    CHECK(out[1].temperature == 20.0f);
    CHECK(out[2].seq == 3);
    CHECK(out[2].humidity == 41.0f);
    REQUIRE(invalid.size() == 1);
    CHECK(invalid[0].sensor == "kitchen");
    CHECK(invalid[0].seq == 2);
    CHECK(invalid[0].problem.find("temperature") != std::string::npos);

    std::vector<InvalidReading> via_message;
    const auto m = decode_message("kitchen", p, via_message);
    REQUIRE(std::holds_alternative<std::vector<Reading>>(m));
    CHECK(std::get<std::vector<Reading>>(m).size() == 2);
    CHECK(via_message == invalid);
}

TEST_CASE("a reading measuring nothing in a batch is discarded alone, naming why") {
    const msgpack::type::nil_t nil;
    const auto p =
        batch_of(reading_fields(1, valid_ts, 1.0f, nil), reading_fields(2, valid_ts, nil, nil),
                 reading_fields(3, valid_ts, nil, 50.0f));
    std::vector<Reading> out;
    std::vector<InvalidReading> invalid;
    decode_batch(p, out, invalid);
    REQUIRE(out.size() == 2);
    CHECK_FALSE(is_measured(out[0].humidity));
    CHECK_FALSE(is_measured(out[1].temperature));
    REQUIRE(invalid.size() == 1);
    CHECK(invalid[0].seq == 2);
    CHECK(invalid[0].problem == "reading measures nothing: no temperature, humidity or extra");
}

TEST_CASE("every kind of bad content in a reading discards that reading alone") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    std::map<std::string, double> too_many;
    for (int i = 0; i < 17; ++i)
        too_many["e" + std::to_string(i)] = i;
    const std::vector<std::function<void(Packer&)>> bad{
        reading_fields(2, 0, 1.0, 2.0),                      // ts 0
        reading_fields(2, -5, 1.0, 2.0),                     // ts negative
        reading_fields(2, limits::max_ts_us + 1, 1.0, 2.0),  // ts after year 9999
        reading_fields(2, valid_ts, -300.0, 2.0),            // too cold
        reading_fields(2, valid_ts, 1.0, 100.5),             // humidity
        reading_fields(2, valid_ts, "warm", 2.0),            // temperature of a wrong type
        reading_fields(2, valid_ts, 1.0, 2.0, std::map<std::string, double>{{"x", nan}}),
        reading_fields(2, valid_ts, 1.0, 2.0, std::map<std::string, double>{{"", 1.0}}),
        reading_fields(2, valid_ts, 1.0, 2.0,
                       std::map<std::string, double>{{std::string(33, 'n'), 1.0}}),
        reading_fields(2, valid_ts, 1.0, 2.0, too_many),
        reading_fields(2, valid_ts, 1.0, 2.0, 5),  // extras neither map nor nil
    };
    for (std::size_t i = 0; i < bad.size(); ++i) {
        CAPTURE(i);
        const auto p = packed([&](Packer& pk) {
            pk.pack_array(4);
            pk.pack(1);
            pk.pack(0);
            pk.pack(std::string("kitchen"));
            pk.pack_array(3);
            reading_fields(1, valid_ts, 1.0, 2.0)(pk);
            bad[i](pk);
            reading_fields(3, valid_ts, 1.0, 2.0, msgpack::type::nil_t{}, "a later field")(pk);
        });
        std::vector<Reading> out;
        std::vector<InvalidReading> invalid;
        REQUIRE_NOTHROW(decode_batch(p, out, invalid));
        REQUIRE(out.size() == 2);
        CHECK(out[0].seq == 1);
        CHECK(out[1].seq == 3);
        REQUIRE(invalid.size() == 1);
        CHECK(invalid[0].seq == 2);
        CHECK_FALSE(invalid[0].problem.empty());
    }
}

TEST_CASE("structural problems still void the whole batch, leaving both outputs as they were") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto invalid_first = reading_fields(1, valid_ts, nan, 2.0);
    const std::vector<std::string> payloads{
        batch_of(invalid_first, reading_fields(1, valid_ts, 1.0, 2.0)),        // seq not increasing
        batch_of(invalid_first, reading_fields(0, valid_ts, 1.0, 2.0)),        // seq 0
        batch_of(invalid_first, reading_fields("2", valid_ts, 1.0, 2.0)),      // seq not an integer
        batch_of(invalid_first, reading_fields(2, valid_ts, 1.0)),             // 3 fields
        batch_of(invalid_first, [](Packer& pk) { pk.pack(7); }),               // not an array
        batch_of(invalid_first, reading_fields(2, valid_ts, 1.0, 2.0)) + "x",  // trailing byte
    };
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        CAPTURE(i);
        std::vector<Reading> out{sample(9)};
        std::vector<InvalidReading> invalid{{"other", 4, "kept"}};
        CHECK_THROWS_AS(decode_batch(payloads[i], out, invalid), DecodeError);
        CHECK(out == std::vector<Reading>{sample(9)});
        CHECK(invalid == std::vector<InvalidReading>{{"other", 4, "kept"}});
    }
    // Truncated anywhere, the invalid reading included.
    const auto whole = batch_of(invalid_first, reading_fields(2, valid_ts, 1.0, 2.0));
    for (std::size_t n = 0; n < whole.size(); ++n) {
        std::vector<Reading> out;
        std::vector<InvalidReading> invalid;
        CHECK_THROWS_AS(decode_batch(whole.substr(0, n), out, invalid), DecodeError);
        CHECK(invalid.empty());
    }
    // The wrong topic voids it too, with what it found invalid.
    std::vector<InvalidReading> invalid;
    CHECK_THROWS_AS((void)decode_message("garden", whole, invalid), DecodeError);
    CHECK(invalid.empty());
}

TEST_CASE("a batch whose every reading is invalid decodes to no readings and all of them invalid") {
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    std::vector<Reading> out;
    std::vector<InvalidReading> invalid;
    decode_batch(batch_of(reading_fields(4, valid_ts, nan, 2.0), reading_fields(6, 0, 1.0, 2.0)),
                 out, invalid);
    CHECK(out.empty());
    REQUIRE(invalid.size() == 2);
    CHECK(invalid[0].seq == 4);
    CHECK(invalid[1].seq == 6);
}

TEST_CASE("an ext 32 declaring 4 GiB in a short payload is truncated on every architecture") {
    // 0xc9 ff ff ff ff: with its type byte the ext is 2^32 bytes, which a 32-bit size_t wraps to
    // 0 (armhf read it as an empty ext followed by trailing bytes before the fix).
    const std::string payload(
        "\x95\x01\x00\xa1\x6b\x91\x94\x01\xcf\x00\x06\x44\x17\xe0"
        "\x66\x48\x00\x00\x00\xc9\xff\xff\xff\xff\x01",
        25);
    try {
        (void)decode_batch(payload);
        FAIL("decoded");
    } catch (const DecodeError& e) {
        CHECK(e.code() == DecodeErrc::malformed);
        CHECK(std::string(e.what()).find("truncated") != std::string::npos);
    }
}
