#include "rill/version.hpp"

namespace rill {

std::string_view version() noexcept {
    return RILL_VERSION_STRING;
}

}  // namespace rill
