// rill/version.hpp: the version of the linked rill library.
#pragma once

#include <string_view>

namespace rill {

/// The library's version, "MAJOR.MINOR.PATCH" (the CMake project version it was built from).
/// Apps print it for --version and export it as the label of `rill_build_info`.
[[nodiscard]] std::string_view version() noexcept;

}  // namespace rill
