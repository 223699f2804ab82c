#include <doctest/doctest.h>

#include <string>

#include "rill/crc32c.hpp"

using rill::crc32c;

TEST_CASE("crc32c matches the published check values") {
    CHECK(crc32c("") == 0u);
    CHECK(crc32c("123456789") == 0xE3069283u);
    // RFC 3720 (iSCSI) appendix B.4 test vectors.
    CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
    CHECK(crc32c(std::string(32, '\xFF')) == 0x62A8AB43u);
    std::string ascending;
    for (int i = 0; i < 32; ++i)
        ascending.push_back(static_cast<char>(i));
    CHECK(crc32c(ascending) == 0x46DD794Eu);
}

TEST_CASE("crc32c extends a previous checksum across any split") {
    std::string data;
    for (int i = 0; i < 1000; ++i)
        data.push_back(static_cast<char>((i * 37) & 0xFF));
    const auto whole = crc32c(data);
    for (std::size_t cut : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
        const std::string_view v(data);
        CHECK(crc32c(v.substr(cut), crc32c(v.substr(0, cut))) == whole);
    }
    data[500] = static_cast<char>(data[500] ^ 1);
    CHECK(crc32c(data) != whole);
}
