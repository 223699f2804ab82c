// rill/log.hpp: one line per event, foreign multi-line messages folded onto it.
#include <doctest/doctest.h>

#include <string>

#include "rill/log.hpp"

TEST_CASE("one_line folds libpq's multi-line connection error onto one line") {
    const std::string libpq =
        "connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: No such file or "
        "directory\n\tIs the server running locally and accepting connections on that "
        "socket?\n";
    CHECK(rill::one_line(libpq) ==
          "connection to server on socket \"/tmp/x/.s.PGSQL.5432\" failed: No such file or "
          "directory Is the server running locally and accepting connections on that socket?");
}

TEST_CASE("one_line turns tabs into spaces and other control characters into question marks") {
    CHECK(rill::one_line("a\tb\x01"
                         "c\x7f") == "a b?c?");
    CHECK(rill::one_line("  first \r\n\n   second  \n") == "first second");
    CHECK(rill::one_line("\n\n") == "");
}

TEST_CASE("one_line leaves a message without control characters as it is") {
    const std::string plain = "database reachable again after 3 attempts: 100% fine";
    CHECK(rill::one_line(plain) == plain);
    CHECK(rill::one_line("température 21,5 °C") == "température 21,5 °C");
}
