#include <doctest/doctest.h>

#include "rill/store.hpp"

namespace {

std::string bytes(std::initializer_list<int> list) {
    std::string out;
    for (const int b : list)
        out += static_cast<char>(b);
    return out;
}

}  // namespace

TEST_CASE("the binary COPY payload has the PGCOPY header, big-endian fields and the trailer") {
    rill::Reading r;
    r.sensor = "s1";
    r.seq = 258;
    // 2000-01-01T00:00:01Z: one second after PostgreSQL's epoch.
    r.ts = rill::Timestamp{std::chrono::microseconds{946'684'801'000'000LL}};
    r.temperature = 1.0f;  // 0x3F800000
    r.humidity = -2.0f;    // 0xC0000000
    std::string out;
    rill::store::encode_copy_binary(std::span<const rill::Reading>(&r, 1), out);
    const std::string expected = std::string("PGCOPY\n\xff\r\n\0", 11) +
                                 bytes({0, 0, 0, 0, 0, 0, 0, 0}) +              // flags, ext
                                 bytes({0, 6}) +                                // fields
                                 bytes({0, 0, 0, 2}) + "s1" +                   // sensor
                                 bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2}) +  // seq
                                 bytes({0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0F, 0x42, 0x40}) +  // ts
                                 bytes({0, 0, 0, 4, 0x3F, 0x80, 0, 0}) +  // temperature
                                 bytes({0, 0, 0, 4, 0xC0, 0, 0, 0}) +     // humidity
                                 bytes({0xFF, 0xFF, 0xFF, 0xFF}) +        // extra NULL
                                 bytes({0xFF, 0xFF});                     // trailer
    CHECK(out == expected);
}

TEST_CASE("extras are encoded as a jsonb version 1 object with exact numbers") {
    rill::Reading r;
    r.sensor = "s";
    r.seq = 1;
    r.ts = rill::Timestamp{std::chrono::microseconds{946'684'800'000'000LL}};
    r.extras = {{"pressure", 1013.25}, {"q\"uote", 0.1}};
    std::string out;
    rill::store::append_copy_tuple(r, out);
    const std::string json = R"({"pressure":1013.25,"q\"uote":0.1})";
    // 2 + (4+1) + (4+8) * 2 + (4+4) * 2 bytes before the extra field.
    const std::size_t at = 2 + 5 + 24 + 16;
    REQUIRE(out.size() == at + 4 + 1 + json.size());
    const auto len = static_cast<std::size_t>(static_cast<unsigned char>(out[at + 3]));
    CHECK(out.substr(at, 3) == bytes({0, 0, 0}));
    CHECK(len == 1 + json.size());
    CHECK(out[at + 4] == '\x01');
    CHECK(out.substr(at + 5) == json);
}
